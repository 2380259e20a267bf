"""The folded PAD (option fold_pad): a zero PAD node whose output only a claimed conv reads becomes
part of that conv's padding. Which PADs are folded, which are not and why, and that the outputs
are bitwise those of the delegate without folding (and close to the reference kernels) at batch
1 and 3, 1 and 2 threads, with and without XNNPACK for the rest of the graph."""

from __future__ import annotations

from functools import cache

import pytest
from ai_edge_litert.interpreter import Interpreter

from tests.tflite_delegate.delegate_keras_models import apply_block_masks, session_tflite
from tests.tflite_delegate.delegate_test_support import (
    assert_close_with_xnnpack_over_resized_batches,
    assert_option_changes_no_bits,
    few_channel_stem_claimed,
)


@cache
def _pad_cases_model() -> bytes:
    """Seven PAD nodes, each before a conv, three foldable and four not:

    stem       ZeroPadding2D(3), then a dense 7x7 stride-2 VALID conv over 3 channels (ResNet's
               stem, claimed by the few-input-channel rule, which is AVX-512 only: with another
               ISA the stem and its PAD stay with TFLite): folded.
    asymmetric ZeroPadding2D(((1, 2), (0, 3))), then a SAME 3x3 conv: folded, the PAD's zeros in
               front of the SAME padding.
    strided    ZeroPadding2D(((1, 1), (2, 0))), then a VALID 3x3 stride-2 conv: folded.
    shared     ZeroPadding2D(((0, 2), (2, 0))) read by a conv and by a max pool: not folded.
    channels   a PAD of the channel axis before a 1x1 conv: not folded.
    ones       a PAD with the constant 1.0 (PADV2) before a 3x3 conv: not folded.
    exposed    ZeroPadding2D(((2, 0), (0, 2))) whose output is also a model output: not folded.

    (The converter itself turns a PAD that SAME padding would add, such as ((0, 1), (0, 1))
    before a stride-2 3x3 conv, into the conv's SAME padding; these pads are not of that kind.)
    """
    import keras

    keras.utils.set_random_seed(21)
    conv = keras.layers.Conv2D
    inputs = keras.Input((70, 70, 3), name="image")
    x = keras.layers.ZeroPadding2D(3)(inputs)
    x = conv(64, 7, strides=2, activation="relu", name="stem")(x)  # 35 x 35 x 64
    x = keras.layers.ZeroPadding2D(((1, 2), (0, 3)))(x)
    x = conv(32, 3, padding="same", activation="relu", name="asymmetric")(x)  # 38 x 38
    x = keras.layers.ZeroPadding2D(((1, 1), (2, 0)))(x)
    x = conv(32, 3, strides=2, name="strided")(x)  # 19 x 19
    padded = keras.layers.ZeroPadding2D(((0, 2), (2, 0)))(x)
    shared = conv(32, 3, name="shared")(padded)
    x = shared + keras.layers.MaxPooling2D(3, 1)(padded)
    x = keras.layers.Lambda(lambda t: keras.ops.pad(t, [[0, 0], [0, 0], [0, 0], [0, 16]]))(x)
    x = conv(32, 1, name="channels")(x)
    x = keras.layers.Lambda(
        lambda t: keras.ops.pad(t, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=1.0)
    )(x)
    x = conv(32, 3, name="ones")(x)
    exposed = keras.layers.ZeroPadding2D(((2, 0), (0, 2)))(x)
    x = conv(32, 3, name="exposed")(exposed)
    model = keras.Model(inputs, [x, exposed], name="pad_cases")
    apply_block_masks(model, block_n=16, sparsity=0.5, seed=22, skip=("stem",))
    return session_tflite(model)


def _operators(content: bytes) -> dict[int, dict]:
    """Node index -> {op_name, inputs, outputs} of the model's main subgraph."""
    return {op["index"]: op for op in Interpreter(model_content=content)._get_ops_details()}


def _folds(interpreter) -> dict[int, int]:
    """Claimed conv node -> the PAD node folded into it, from the delegate's report."""
    import tflite_delegate

    return {
        decision.node_index: decision.folded_pad_node
        for decision in tflite_delegate.delegation_report(interpreter)
        if decision.folded_pad_node is not None
    }


def _conv_named(content: bytes, fragment: str) -> int:
    operators = _operators(content)
    tensors = {
        d["index"]: d["name"] for d in Interpreter(model_content=content).get_tensor_details()
    }
    (index,) = [
        i
        for i, op in operators.items()
        if op["op_name"] == "CONV_2D" and f"/{fragment}" in tensors[op["outputs"][0]]
    ]
    return index


def test_only_pads_that_cannot_change_anything_are_folded():
    content = _pad_cases_model()
    operators = _operators(content)
    folds, folded = assert_option_changes_no_bits(content, "fold_pad", _folds)
    stem = _conv_named(content, "stem")
    expected_convs = {_conv_named(content, name) for name in ("asymmetric", "strided")}
    if few_channel_stem_claimed(folded):
        expected_convs.add(stem)
    assert set(folds) == expected_convs
    for conv, pad in folds.items():
        assert operators[pad]["op_name"] == "PAD"
        assert operators[pad]["outputs"][0] == operators[conv]["inputs"][0]
    # The refused ones keep their PAD as a separate node and are still claimed (and correct,
    # above): a foldable PAD is never the reason a conv is left to TFLite.
    import tflite_delegate

    claimed = {d.node_index for d in tflite_delegate.delegation_report(folded) if d.claimed}
    convs = {index for index, op in operators.items() if op["op_name"] == "CONV_2D"}
    assert claimed == (convs if few_channel_stem_claimed(folded) else convs - {stem})
    refused = claimed - expected_convs  # shared, channels, ones, exposed
    producers = {op["outputs"][0]: op["op_name"] for op in operators.values() if op["outputs"]}
    refused_inputs = sorted(producers[operators[conv]["inputs"][0]] for conv in refused)
    assert refused_inputs == ["PAD", "PAD", "PAD", "PADV2"]


def test_folded_pad_with_xnnpack_and_a_resized_batch():
    """The way users run it: our delegate first, XNNPACK for the rest; batch resized after."""
    import tflite_delegate

    content = _pad_cases_model()
    ours = tflite_delegate.Interpreter(model_content=content, num_threads=2)
    assert len(_folds(ours)) == (3 if few_channel_stem_claimed(ours) else 2)
    assert_close_with_xnnpack_over_resized_batches(ours, content, seed=5)


@pytest.mark.parametrize("value", ["2", "sometimes"])
def test_bad_fold_pad_value_names_the_option(value):
    import tflite_delegate

    with pytest.raises(ValueError, match="fold_pad"):
        tflite_delegate.load_delegate(fold_pad=value)
