"""`tflite_delegate.convert`: zeros survive conversion, fp16 weights, input checks, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tflite_delegate.delegate_keras_models import converted_small_model
from tests.tflite_delegate.delegate_test_support import (
    assert_outputs_close,
    reference_interpreter,
    run,
)
from tflite_delegate import litert_compat
from tflite_delegate.keras_conversion import convert
from tflite_delegate.tflite_model import FLOAT16_CONSTANT, FLOAT32_CONSTANT, read_conv_layers


def _op_names(path) -> set[str]:
    interpreter = reference_interpreter(path.read_bytes())
    return {op["op_name"] for op in litert_compat.ops_details(interpreter)}


@pytest.mark.parametrize("weights", ["float32", "float16"])
def test_converted_filters_keep_exact_zeros(weights):
    path, model, masks = converted_small_model(weights)
    assert path.is_file()
    assert "DENSIFY" not in _op_names(path)
    layers = {layer.name: layer for layer in read_conv_layers(model_path=path)}
    assert set(layers) == {"stem", "sparse_a", "sparse_b"}
    expected_source = FLOAT32_CONSTANT if weights == "float32" else FLOAT16_CONSTANT
    for name, mask in masks.items():
        layer = layers[name]
        assert layer.filter_source == expected_source
        # BN-free layers: the OHWI filter is the Keras HWIO kernel transposed.
        kernel = model.get_layer(name).get_weights()[0].transpose(3, 0, 1, 2)
        np.testing.assert_array_equal(layer.filter == 0, ~mask)
        np.testing.assert_allclose(layer.filter, kernel, rtol=1e-3 if weights == "float16" else 0)


@pytest.mark.parametrize("weights", ["float32", "float16"])
def test_converted_model_computes_what_keras_computes(weights):
    path, model, _ = converted_small_model(weights)
    images = np.random.default_rng(0).normal(size=(1, 12, 10, 3)).astype(np.float32)
    expected = np.asarray(model(images))
    (actual,) = run(reference_interpreter(path.read_bytes()), [images])
    if weights == "float32":
        assert_outputs_close([actual], [expected], "tflite vs keras")
    else:  # weights rounded to float16: about 1e-3 relative
        np.testing.assert_allclose(actual, expected, atol=5e-3 * np.abs(expected).max())


def test_float16_file_is_smaller():
    full, _, _ = converted_small_model("float32")
    half, _, _ = converted_small_model("float16")
    assert half.stat().st_size < 0.75 * full.stat().st_size


def test_rejects_non_keras_model_and_bad_weights(tmp_path):
    with pytest.raises(TypeError, match="keras.Model"):
        convert("not a model", tmp_path / "m.tflite")
    _, model, _ = converted_small_model()
    with pytest.raises(ValueError, match="weights"):
        convert(model, tmp_path / "m.tflite", weights="int8")
    assert not (tmp_path / "m.tflite").exists()


def test_rejects_bad_destinations(tmp_path):
    _, model, _ = converted_small_model()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert(model, tmp_path / "missing" / "m.tflite")
    with pytest.raises(IsADirectoryError):
        convert(model, tmp_path)


def test_failed_conversion_leaves_existing_file_untouched(tmp_path, monkeypatch):
    import tensorflow as tf

    _, model, _ = converted_small_model()
    destination = tmp_path / "m.tflite"
    destination.write_bytes(b"previous contents")

    class FailingConverter:
        def convert(self):
            raise RuntimeError("simulated converter failure")

    monkeypatch.setattr(
        tf.lite.TFLiteConverter, "from_keras_model", staticmethod(lambda m: FailingConverter())
    )
    with pytest.raises(ValueError, match="simulated converter failure"):
        convert(model, destination)
    assert destination.read_bytes() == b"previous contents"
    assert [p.name for p in tmp_path.iterdir()] == ["m.tflite"]  # no temporary left behind


def test_convert_writes_readable_file_and_returns_its_path(tmp_path):
    _, model, _ = converted_small_model()
    result = convert(model, str(tmp_path / "fresh.tflite"))
    assert result == tmp_path / "fresh.tflite"
    assert result.read_bytes()[4:8] == b"TFL3"
    assert oct(result.stat().st_mode & 0o777) == "0o644"
