"""Partitions of several claimed convs (delegate/partition_kernel.h): TFLite hands the delegate
every connected run of claimed convs and fused ADDs as one node; at batch > 1 the delegate runs a
prefix of its convs image by image (option per_image_bytes). Checked here: the node count, that
every schedule gives bitwise the output of the layer-by-layer one (and the reference's within
rounding) over resized batches and threads, that the image-by-image schedule is really taken, and
that an ADD whose first choice of conv lands in another partition stays fused."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from tests.tflite_delegate.delegate_keras_models import converted_zoo_model, masked_tflite
from tests.tflite_delegate.delegate_test_support import (
    assert_bitwise_equal,
    assert_outputs_close,
    delegate_interpreter,
    model_inputs,
    reference_interpreter,
    run,
)
from tests.tflite_delegate.test_delegate_add_fusion import _fused, _residual_cases_model


def _operators(interpreter) -> list[dict]:
    return interpreter._get_ops_details()


@cache
def _projection_after_pad_model() -> bytes:
    """A ResNet-18-style projection block behind an explicit PAD, then an identity block:

    x -> PAD -> conv 3x3 s2 (valid) -> conv 3x3 -> ADD <- conv 1x1 s2 (projection of x)
      -> ReLU -> conv 3x3 -> conv 3x3 -> ADD (identity) -> ReLU

    With the PAD left to TFLite (fold_pad=False), the projection conv, which needs only x, goes
    to the partition before the PAD; the block's ADD can then only run in the epilogue of the
    main path's second conv. With the PAD folded into main_1 the whole model is one node."""
    import keras

    keras.utils.set_random_seed(3)
    conv = keras.layers.Conv2D
    inputs = keras.Input((12, 10, 16), name="image")
    x = conv(32, 3, padding="same", activation="relu", name="stem")(inputs)
    main = keras.layers.ZeroPadding2D(1)(x)
    main = conv(32, 3, strides=2, padding="valid", activation="relu", name="main_1")(main)
    main = conv(32, 3, padding="same", name="main_2")(main)
    projection = conv(32, 1, strides=2, name="projection")(x)
    x = keras.layers.ReLU()(keras.layers.Add()([main, projection]))
    y = conv(32, 3, padding="same", activation="relu", name="identity_1")(x)
    y = conv(32, 3, padding="same", name="identity_2")(y)
    x = keras.layers.ReLU()(keras.layers.Add()([y, x]))
    model = keras.Model(inputs, x, name="projection_after_pad")
    return masked_tflite(model, seed=4)


def test_a_run_of_claimed_convs_is_one_delegate_node():
    """Every conv and ADD of the model in one node, except where a TFLite node (the PAD, when
    not folded) cuts the graph."""
    import tflite_delegate

    content = _projection_after_pad_model()
    original = [op["op_name"] for op in _operators(Interpreter(model_content=content))]
    assert original.count("CONV_2D") == 6 and original.count("ADD") == 2
    assert original.count("PAD") == 1
    # Before the PAD: the stem and the projection; after it: the rest (4 convs, 2 ADDs). Folded,
    # the PAD joins the one node.
    for fold_pad, nodes in ((False, 2), (True, 1)):
        interpreter, delegate = delegate_interpreter(content, fold_pad=fold_pad)
        interpreter.allocate_tensors()
        assert [op["op_name"] for op in _operators(interpreter)].count("DELEGATE") == nodes
        summary = tflite_delegate.delegate_summary(delegate)
        assert summary.kernels_created == 6  # one per claimed conv, whatever the partitions
        assert summary.partitions_created == nodes


def test_an_add_whose_later_conv_runs_earlier_moves_to_the_other_conv():
    content = _projection_after_pad_model()
    operators = {op["index"]: op for op in _operators(Interpreter(model_content=content))}
    fused_, _ = delegate_interpreter(content, num_threads=2, fold_pad=False)
    unfused, _ = delegate_interpreter(content, num_threads=2, fuse_add=False, fold_pad=False)
    fusion = _fused(fused_)
    adds = {index for index, op in operators.items() if op["op_name"] == "ADD"}
    assert set(fusion.values()) == adds
    tensors = {
        d["index"]: d["name"] for d in Interpreter(model_content=content).get_tensor_details()
    }
    fused_convs = {tensors[operators[conv]["outputs"][0]].split("/")[1] for conv in fusion}
    assert fused_convs == {"main_2_1", "identity_2_1"}, fused_convs
    reference = reference_interpreter(content)
    for batch in (1, 3):
        inputs = model_inputs(reference, batch, seed=batch)
        got = run(fused_, inputs)
        assert_bitwise_equal(got, run(unfused, inputs), f"batch {batch}")
        expected = run(reference, inputs)
        assert_outputs_close(
            got, expected, f"batch {batch}", [max(float(np.abs(e).max()), 1.0) for e in expected]
        )


def _models() -> dict[str, bytes]:
    path, _, _ = converted_zoo_model("resnet_small")
    return {
        "resnet_small": path.read_bytes(),
        "residual_cases": _residual_cases_model(),
        "projection_after_pad": _projection_after_pad_model(),
    }


@pytest.mark.parametrize("name", ["resnet_small", "residual_cases", "projection_after_pad"])
def test_image_by_image_gives_bitwise_the_layer_by_layer_output(name, capfd):
    """per_image_bytes=0 (every intermediate tensor counts: image by image up to the last
    conv that reads one), the default and off, at batches 3, 1 and 2 in turn on the same
    interpreters, 1 and 2 threads."""
    content = _models()[name]
    reference = reference_interpreter(content)
    for threads in (1, 2):
        interpreters = {
            setting: delegate_interpreter(
                content, num_threads=threads, per_image_bytes=setting, verbose=setting == 0
            )[0]
            for setting in (0, "auto", "off")
        }
        for batch in (3, 1, 2):
            inputs = model_inputs(reference, batch, seed=10 * threads + batch)
            outputs = {setting: run(it, inputs) for setting, it in interpreters.items()}
            for setting in (0, "auto"):
                assert_bitwise_equal(outputs[setting], outputs["off"], f"{setting}, batch {batch}")
            expected = run(reference, inputs)
            scales = [max(float(np.abs(e).max()), 1.0) for e in expected]
            assert_outputs_close(outputs["off"], expected, f"batch {batch}", scales)
    err = capfd.readouterr().err
    # The verbose interpreter's partitions said what they did at batch 3.
    image_by_image = [
        int(line.split(": ")[2].split(" run")[0])
        for line in err.splitlines()
        if "conv(s) at batch 3:" in line
    ]
    assert image_by_image and max(image_by_image) > 0, err


def test_a_tensor_read_inside_and_outside_its_partition_stays_in_tflite_memory():
    """residual_cases' tapped conv output is a model output and read by a later conv of the
    same partition: both readers see it, at batch 2, image by image."""
    content = _residual_cases_model()
    reference = reference_interpreter(content)
    ours, _ = delegate_interpreter(content, per_image_bytes=0)
    inputs = model_inputs(reference, 2, seed=5)
    expected = run(reference, inputs)
    got = run(ours, inputs)
    assert len(got) == 2
    assert_outputs_close(
        got, expected, "tapped", [max(float(np.abs(e).max()), 1.0) for e in expected]
    )
