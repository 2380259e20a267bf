"""The fused ADD (option fuse_add): a residual ADD after a claimed conv runs in the conv's
epilogue. Which ADDs are fused, which are not and why, and that the outputs are bitwise those of
the unfused delegate (and close to the reference kernels) for batch 1 and 3, 1 and 2 threads."""

from __future__ import annotations

from functools import cache

import pytest
from ai_edge_litert.interpreter import Interpreter

from tests.tflite_delegate.delegate_keras_models import converted_zoo_model, masked_tflite
from tests.tflite_delegate.delegate_test_support import (
    assert_close_with_xnnpack_over_resized_batches,
    assert_option_changes_no_bits,
)


def _operators(content: bytes) -> dict[int, dict]:
    """Node index -> {op_name, inputs, outputs} of the model's main subgraph."""
    return {op["index"]: op for op in Interpreter(model_content=content)._get_ops_details()}


def _fused(interpreter) -> dict[int, int]:
    """Claimed conv node -> the ADD node it runs, from the delegate's report."""
    import tflite_delegate

    return {
        decision.node_index: decision.fused_add_node
        for decision in tflite_delegate.delegation_report(interpreter)
        if decision.fused_add_node is not None
    }


def _assert_fused_equals_unfused(content: bytes, batches=(1, 3)) -> dict[int, int]:
    """Runs the delegate alone with and without fusion at 1 and 2 threads; returns the fusion."""
    fusion, _ = assert_option_changes_no_bits(content, "fuse_add", _fused, batches)
    return fusion


def test_every_shortcut_add_of_a_resnet_is_fused():
    path, _, _ = converted_zoo_model("resnet_small")
    content = path.read_bytes()
    operators = _operators(content)
    fusion = _assert_fused_equals_unfused(content)
    adds = {index for index, op in operators.items() if op["op_name"] == "ADD"}
    assert adds and set(fusion.values()) == adds
    for conv, add in fusion.items():
        # The conv's output is one operand of its ADD; the other (the shortcut) comes from
        # earlier in the plan, so the conv is the later producer.
        assert operators[conv]["op_name"] == "CONV_2D"
        assert operators[conv]["outputs"][0] in operators[add]["inputs"]


@cache
def _residual_cases_model() -> bytes:
    """Six ADDs after 1x16-sparse convs, three fusable and three not:

    block_a  conv + projection conv -> ADD -> ReLU6: both operands are claimed convs; the one
             later in the execution plan takes the ADD.
    block_b  conv -> ADD(identity) without activation: fused.
    block_c  conv -> ADD(identity) -> ReLU, fused; block_c's conv output is not used elsewhere.
    tapped   conv whose output is also a model output: not fused.
    shared   conv whose output feeds the ADD and another conv: not fused.
    broadcast  conv + its input's spatial mean (a broadcasting ADD): not fused.
    """
    import keras

    keras.utils.set_random_seed(11)
    conv = keras.layers.Conv2D
    inputs = keras.Input((10, 9, 16), name="image")
    a = conv(32, 3, padding="same", activation="relu", name="a_1")(inputs)
    a = conv(32, 3, padding="same", name="a_2")(a)
    projection = conv(32, 1, name="a_projection")(inputs)
    x = keras.layers.ReLU(max_value=6.0)(keras.layers.Add()([projection, a]))
    b = conv(32, 3, padding="same", name="b_conv")(x)
    x = keras.layers.Add()([x, b])
    c = conv(32, 1, name="c_conv")(x)
    x = keras.layers.ReLU()(keras.layers.Add()([c, x]))
    tapped = conv(32, 3, padding="same", name="tapped_conv")(x)
    x = keras.layers.Add()([x, tapped])
    shared = conv(32, 1, name="shared_conv")(x)
    x = keras.layers.Add()([x, shared])
    x = conv(32, 1, name="after_shared")(shared) + x
    pooled = keras.layers.Lambda(lambda t: keras.ops.mean(t, axis=(1, 2), keepdims=True))(x)
    x = conv(32, 1, name="broadcast_conv")(x) + pooled
    model = keras.Model(inputs, [x, tapped], name="residual_cases")
    return masked_tflite(model, seed=12)


def test_only_adds_that_cannot_change_anything_are_fused():
    content = _residual_cases_model()
    operators = _operators(content)
    fusion = _assert_fused_equals_unfused(content)
    tensors = {
        detail["index"]: detail["name"]
        for detail in Interpreter(model_content=content).get_tensor_details()
    }

    model_outputs = {d["index"] for d in Interpreter(model_content=content).get_output_details()}
    (tapped,) = [
        i
        for i, op in operators.items()
        if op["op_name"] == "CONV_2D" and op["outputs"][0] in model_outputs
    ]

    def conv_named(fragment: str) -> int:
        (index,) = [
            i
            for i, op in operators.items()
            if op["op_name"] == "CONV_2D" and f"/{fragment}" in tensors[op["outputs"][0]]
        ]
        return index

    # Node indices are the execution plan's order here.
    later_of_block_a = max(conv_named("a_2"), conv_named("a_projection"))
    fused_convs = {later_of_block_a} | {
        conv_named(name) for name in ("b_conv", "c_conv", "after_shared")
    }
    assert set(fusion) == fused_convs, {tensors[operators[i]["outputs"][0]] for i in fusion}
    for conv, add in fusion.items():
        assert operators[add]["op_name"] == "ADD"
        assert operators[conv]["outputs"][0] in operators[add]["inputs"]
    # The refused ones keep their ADD as a separate node: still there, still correct (above).
    earlier_of_block_a = min(conv_named("a_2"), conv_named("a_projection"))
    assert earlier_of_block_a not in fusion
    assert tapped not in fusion
    for name in ("shared_conv", "broadcast_conv"):
        assert conv_named(name) not in fusion, name


def test_fused_add_with_xnnpack_and_a_resized_batch():
    """The way users run it: our delegate first, XNNPACK for the rest; batch resized after."""
    import tflite_delegate

    content = _residual_cases_model()
    ours = tflite_delegate.Interpreter(model_content=content, num_threads=2)
    assert len(_fused(ours)) == 4
    assert_close_with_xnnpack_over_resized_batches(ours, content, seed=7)


@pytest.mark.parametrize("value", ["2", "maybe"])
def test_bad_fuse_add_value_names_the_option(value):
    import tflite_delegate

    with pytest.raises(ValueError, match="fuse_add"):
        tflite_delegate.load_delegate(fuse_add=value)
