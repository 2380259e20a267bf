"""`dfcompress.to_tflite`: float32 and int8-weight `.tflite` files of compressed Keras models.

References: the int8 filters are read back from the written flatbuffer with LiteRT's own schema
reader (not with the code that wrote them) and dequantized in numpy; Keras kernels are compared in
TFLite's layouts (OHWI convs, [1, KH, KW, C] depthwise, [out, in] dense); outputs come from LiteRT's
reference interpreter next to Keras' own predictions.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import dfcompress  # noqa: E402
from dfcompress.tflite_export import quantize_filter_int8  # noqa: E402

CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE, FULLY_CONNECTED = 3, 4, 6, 9
GRIDS = [("dorefa", k) for k in range(1, 8)] + [("twn", 2)]
GRIDS += [("symmetric", k) for k in range(2, 9)] + [("symmetric_per_channel", 8)]


def dorefa_grid(weights: np.ndarray, bits: int) -> np.ndarray:
    """Hand-written DoReFa k-bit grid with the max|W| scale restored (no exact zero)."""
    m = np.abs(weights).max()
    levels = 2**bits - 1
    return m * (2 / levels * np.round(levels * (weights / (2 * m) + 0.5)) - 1)


# ---------------------------------------------------------------------------------------------
# quantize_filter_int8 on hand-made grids


@pytest.mark.parametrize("bits", range(1, 8))
def test_dorefa_grids_up_to_7_bits_are_stored_exactly(bits):
    rng = np.random.default_rng(bits)
    weights = dorefa_grid(rng.normal(size=(16, 3, 3, 8)), bits).astype(np.float32)
    # Per output channel, as the converter's BatchNorm folding leaves it.
    weights *= rng.uniform(0.2, 3.0, size=(16, 1, 1, 1)).astype(np.float32)
    stored = quantize_filter_int8(weights, axis=0)
    assert stored.exact
    dequantized = stored.values.astype(np.float64) * stored.scales[:, None, None, None]
    np.testing.assert_allclose(dequantized, weights, rtol=1e-6, atol=0)
    # The DoReFa grid is the odd multiples of max|W| / (2^k - 1): never an even integer.
    assert np.all(np.abs(stored.values.astype(int)) % 2 == 1)
    assert np.abs(stored.values.astype(int)).max() <= 2**bits - 1


def test_dorefa_8_bits_is_rounded_within_half_an_int8_step():
    # 8-bit DoReFa has 256 levels without zero: odd multiples of m/255 up to 255, which need 9
    # bits as integers. Channels reaching beyond level 127 are rounded; documented bound.
    rng = np.random.default_rng(0)
    weights = dorefa_grid(rng.normal(size=(8, 64)), 8).astype(np.float32)
    stored = quantize_filter_int8(weights, axis=0)
    assert not stored.exact
    peak = np.abs(weights).max(axis=1, keepdims=True)
    error = np.abs(stored.values * stored.scales[:, None].astype(np.float64) - weights)
    assert np.all(error <= 0.5 * peak / 127 * 1.0001)


def test_zero_preserving_and_ternary_grids_keep_every_zero():
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(32, 3, 3, 16))
    weights[rng.random(weights.shape) < 0.6] = 0.0
    for bits in (2, 4, 8):
        step = np.abs(weights).max() / (2 ** (bits - 1) - 1)
        grid = (np.round(weights / step) * step).astype(np.float32)
        stored = quantize_filter_int8(grid, axis=0)
        assert stored.exact
        np.testing.assert_array_equal(stored.values == 0, grid == 0)
        np.testing.assert_allclose(
            stored.values * stored.scales[:, None, None, None].astype(np.float64),
            grid,
            rtol=1e-6,
            atol=0,
        )


def test_float_weights_get_standard_per_channel_rounding():
    rng = np.random.default_rng(2)
    weights = rng.normal(size=(3, 3, 4, 24)).astype(np.float32)  # depthwise-like: axis 3
    stored = quantize_filter_int8(weights, axis=3)
    assert not stored.exact
    assert stored.scales.shape == (24,)
    peak = np.abs(weights).max(axis=(0, 1, 2))
    assert np.all(np.abs(stored.values).max(axis=(0, 1, 2)) == 127)
    error = np.abs(stored.values * stored.scales.astype(np.float64) - weights)
    assert np.all(error <= 0.5 * peak / 127 * 1.01)


def test_quantize_filter_int8_rejects_non_finite_weights_and_bad_axis():
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize_filter_int8(np.array([[1.0, np.nan]]), axis=0)
    with pytest.raises(ValueError, match="axis 2 out of range"):
        quantize_filter_int8(np.zeros((2, 2)), axis=2)


# ---------------------------------------------------------------------------------------------
# Whole models


def read_filters(path) -> list[tuple[int, np.ndarray, str]]:
    """(builtin op, float filter, storage) for every conv/depthwise/dense node of a `.tflite`,
    in node order; int8 filters are dequantized here with their per-channel scales."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    graph = model.subgraphs[0]

    def opcode(operator):
        code = model.operatorCodes[operator.opcodeIndex]
        return max(code.builtinCode, code.deprecatedBuiltinCode)

    def constant(index):
        tensor = graph.tensors[index]
        data = bytes(bytearray(model.buffers[tensor.buffer].data))
        dtype = {schema.TensorType.FLOAT32: "<f4", schema.TensorType.INT8: "i1"}[tensor.type]
        return tensor, np.frombuffer(data, dtype=dtype).reshape(tuple(tensor.shape))

    producers = {int(o): op for op in graph.operators for o in op.outputs}
    filters = []
    for operator in graph.operators:
        if opcode(operator) not in (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED):
            continue
        index = int(operator.inputs[1])
        storage = "float32"
        if index in producers:
            assert opcode(producers[index]) == DEQUANTIZE
            index = int(producers[index].inputs[0])
            storage = "int8 via DEQUANTIZE"
        tensor, values = constant(index)
        if tensor.type == schema.TensorType.INT8:
            storage = storage if storage != "float32" else "int8 read by the op"
            quantization = tensor.quantization
            assert list(quantization.zeroPoint) == [0] * len(quantization.scale)
            shape = [1] * values.ndim
            shape[quantization.quantizedDimension] = -1
            scales = np.asarray(quantization.scale, dtype=np.float64).reshape(shape)
            values = values.astype(np.float64) * scales
        filters.append((opcode(operator), values, storage))
    return filters


def plain_model(seed: int = 0) -> keras.Model:
    """Conv, depthwise, pointwise and dense layers without BatchNormalization, so the `.tflite`
    filters are the Keras kernels themselves (only transposed)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 3), name="image")
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.DepthwiseConv2D(3, activation="relu", name="depthwise")(x)
    x = keras.layers.Conv2D(64, 1, activation="relu", name="pointwise")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, name="classifier")(x)
    return keras.Model(inputs, outputs, name="plain")


def quantize_kernels(model: keras.Model, quantizer: str, bits: int) -> None:
    """Put every kernel on the named dfcompress grid (in place)."""
    grid = dfcompress.get_quantizer(quantizer)
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            layer.kernel.assign(grid.quantize(layer.kernel.numpy(), bits).astype(np.float32))


def tflite_layout(layer) -> np.ndarray:
    kernel = layer.kernel.numpy()
    return kernel.T if kernel.ndim == 2 else kernel.transpose(3, 0, 1, 2)


def run_tflite(path, images: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    runner = interpreter.get_signature_runner()
    (output,) = runner.get_output_details()
    return np.concatenate([runner(image=image[None])[output] for image in images])


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(7).uniform(0, 1, (8, 12, 12, 3)).astype(np.float32)


@pytest.mark.parametrize(("quantizer", "bits"), GRIDS)
def test_int8_file_dequantizes_to_the_keras_weights(tmp_path, images, quantizer, bits):
    model = plain_model()
    quantize_kernels(model, quantizer, bits)
    path = dfcompress.to_tflite(model, tmp_path / "model.tflite", weights="int8")
    filters = read_filters(path)
    layers = [model.get_layer(name) for name in ("conv", "depthwise", "pointwise", "classifier")]
    assert [op for op, _, _ in filters] == [CONV_2D, DEPTHWISE_CONV_2D, CONV_2D, FULLY_CONNECTED]
    for (_, dequantized, storage), layer in zip(filters, layers, strict=True):
        assert storage == "int8 via DEQUANTIZE", layer.name
        expected = tflite_layout(layer)
        scale = np.abs(expected).max()
        np.testing.assert_allclose(dequantized, expected, rtol=0, atol=1e-6 * scale)
        np.testing.assert_array_equal(dequantized == 0, expected == 0)
    reference = model.predict(images, verbose=0)
    np.testing.assert_allclose(run_tflite(path, images), reference, rtol=1e-4, atol=1e-5)


def bn_model_on_grid(quantizer: str = "dorefa", bits: int = 4) -> keras.Model:
    """`cnn_zoo` VGG with random BatchNorm statistics (so folding is not the identity)."""
    from cnn_zoo.models import vgg_small

    model = vgg_small(seed=3)
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.gamma.shape
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, shape),
                    rng.uniform(-0.2, 0.2, shape),
                    rng.uniform(-0.2, 0.2, shape),
                    rng.uniform(0.5, 1.5, shape),
                ]
            )
    quantize_kernels(model, quantizer, bits)
    return model


def test_int8_file_is_about_4x_smaller_and_matches_float32_file(tmp_path):
    model = bn_model_on_grid("dorefa", 4)
    float_path = dfcompress.to_tflite(model, tmp_path / "f32.tflite")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # every filter on a grid: no rounding
        int8_path = dfcompress.to_tflite(model, tmp_path / "i8.tflite", weights="int8")
    ratio = float_path.stat().st_size / int8_path.stat().st_size
    assert 3.5 < ratio < 4.0, ratio
    # BatchNorm folded by the converter: per-output-channel multiples of the DoReFa grid, still
    # exactly representable.
    for (op32, w32, storage32), (op8, w8, storage8) in zip(
        read_filters(float_path), read_filters(int8_path), strict=True
    ):
        assert (op32, storage32, storage8) == (op8, "float32", "int8 via DEQUANTIZE")
        np.testing.assert_allclose(w8, w32, rtol=0, atol=1e-6 * np.abs(w32).max())
    images = np.random.default_rng(0).uniform(0, 1, (16, 28, 28, 1)).astype(np.float32)
    reference = model.predict(images, verbose=0)
    for path in (float_path, int8_path):
        np.testing.assert_allclose(run_tflite(path, images), reference, rtol=1e-4, atol=1e-4)


def test_dynamic_kernels_read_int8_filters_directly(tmp_path):
    model = bn_model_on_grid("symmetric", 8)
    path = dfcompress.to_tflite(
        model, tmp_path / "dynamic.tflite", weights="int8", int8_kernels="dynamic"
    )
    float_path = dfcompress.to_tflite(model, tmp_path / "f32.tflite")
    filters = read_filters(path)
    assert {storage for _, _, storage in filters} == {"int8 read by the op"}
    for (_, w8, _), (_, w32, _) in zip(filters, read_filters(float_path), strict=True):
        np.testing.assert_allclose(w8, w32, rtol=0, atol=1e-6 * np.abs(w32).max())
    images = np.random.default_rng(1).uniform(0, 1, (32, 28, 28, 1)).astype(np.float32)
    reference = model.predict(images, verbose=0)
    logits = run_tflite(path, images)
    # Inputs are rounded to int8 at run time: close, not equal.
    relative = np.abs(logits - reference).max() / np.abs(reference).max()
    assert 0 < relative < 0.05, relative
    assert np.mean(logits.argmax(1) == reference.argmax(1)) >= 0.9


def test_int8_of_float_weights_warns_and_rounds(tmp_path, images):
    model = plain_model(seed=1)
    with pytest.warns(UserWarning, match="rounded to 127 levels"):
        path = dfcompress.to_tflite(model, tmp_path / "float.tflite", weights="int8")
    reference = model.predict(images, verbose=0)
    logits = run_tflite(path, images)
    assert np.abs(logits - reference).max() < 0.02 * np.abs(reference).max()


@pytest.fixture(scope="module")
def stripped_subp_model():
    import keras_subp
    from cnn_zoo.models import vgg_small

    return keras_subp.strip_subp(keras_subp.prune_1xn(vgg_small(seed=4), n=16, sparsity=0.75))


def delegate_decisions(model, path) -> list[tuple]:
    import tflite_delegate

    dfcompress.to_tflite(model, path)
    interpreter = tflite_delegate.Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    return [
        (d.node_index, d.claimed, d.block_n, round(d.block_sparsity, 6), d.filter_shape)
        for d in tflite_delegate.delegation_report(interpreter)
    ]


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_sparse_delegate_claims_quantized_stripped_subp_model(tmp_path, stripped_subp_model, bits):
    stripped = stripped_subp_model
    quantized, _ = dfcompress.quantize_weights(stripped, bits=bits, quantizer="symmetric")
    for layer in stripped.layers:
        if isinstance(layer, keras.layers.Conv2D):
            before = layer.kernel.numpy()
            after = quantized.get_layer(layer.name).kernel.numpy()
            assert not np.array_equal(before, after), layer.name  # really quantized
            assert np.all(after[before == 0] == 0), layer.name  # every pruned zero kept

    original = delegate_decisions(stripped, tmp_path / "stripped.tflite")
    claimed = [d for d in original if d[1]]
    assert len(claimed) == 2  # the two non-stem convs of vgg_small (the dense stem is refused)
    assert [d[3] for d in claimed] == [0.75, 0.75]
    if bits >= 6:
        # The same nodes claimed, with the same 1x16 pattern and microkernel width.
        compressed = delegate_decisions(quantized, tmp_path / "quantized.tflite")
        assert [d[:2] for d in compressed] == [d[:2] for d in original]
        assert [d for d in compressed if d[1]] == claimed
    else:
        # 4 bits round about a fifth of the kept weights to zero: more than 1 in 32 zeros are
        # then stray zeros inside kept 1x16 tap vectors, so the pattern holds only at N=1, whose
        # scalar microkernel the delegate claims by default only from 95 % sparsity (it would run
        # slower than XNNPACK); with min_sparsity given it claims them at N=1 (same results, less
        # speed); see docs/compression.md.
        import tflite_delegate

        path = tmp_path / "quantized.tflite"
        refused = [
            d for d in delegate_decisions(quantized, path) if d[0] in {c[0] for c in claimed}
        ]
        assert [(d[1], d[2]) for d in refused] == [(False, 1), (False, 1)]
        interpreter = tflite_delegate.Interpreter(model_path=str(path), min_sparsity=0.5)
        interpreter.allocate_tensors()
        forced = [d for d in tflite_delegate.delegation_report(interpreter) if d.claimed]
        assert [(d.block_n, round(d.block_sparsity, 6)) for d in forced] == [(1, 0.75), (1, 0.75)]


# ---------------------------------------------------------------------------------------------
# Argument errors; nothing half-written


def test_bad_arguments_raise_clear_errors(tmp_path):
    model = plain_model()
    with pytest.raises(ValueError, match="weights must be one of"):
        dfcompress.to_tflite(model, tmp_path / "a.tflite", weights="int4")
    with pytest.raises(ValueError, match="int8_kernels must be one of"):
        dfcompress.to_tflite(model, tmp_path / "a.tflite", weights="int8", int8_kernels="fast")
    with pytest.raises(TypeError, match="needs a keras.Model"):
        dfcompress.to_tflite("model.keras", tmp_path / "a.tflite")
    with pytest.raises(FileNotFoundError, match="output directory does not exist"):
        dfcompress.to_tflite(model, tmp_path / "missing" / "a.tflite")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        dfcompress.to_tflite(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_non_writable_directory_is_refused(tmp_path):
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            dfcompress.to_tflite(plain_model(), folder / "a.tflite")
    finally:
        folder.chmod(0o700)


def test_failed_write_keeps_the_existing_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    import dfcompress.tflite_export as export

    destination = tmp_path / "model.tflite"
    destination.write_bytes(b"previous model")

    replace = os.replace

    def fail_on_destination(source, target):
        if os.fspath(target) == os.fspath(destination):
            raise OSError("disk full")
        replace(source, target)

    monkeypatch.setattr(export.os, "replace", fail_on_destination)
    with pytest.raises(OSError, match="disk full"):
        dfcompress.to_tflite(plain_model(), destination, weights="int8")
    assert destination.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite"]
