"""The fused max pool (option fuse_pool): a MAX_POOL_2D that alone reads a claimed conv's output,
directly or through a zero PAD, runs in the conv's partition. Which pools are fused, which are
not and why, that the outputs are bitwise those of the delegate without fusion (and close to the
reference kernels) at batch 1 and 3, 1 and 2 threads, with and without XNNPACK for the rest of
the graph, and that a fused pool no longer cuts the claimed convs into partitions."""

from __future__ import annotations

from functools import cache

import pytest
from ai_edge_litert.interpreter import Interpreter

from tests.tflite_delegate.delegate_keras_models import apply_block_masks, session_tflite
from tests.tflite_delegate.delegate_test_support import (
    assert_close_with_xnnpack_over_resized_batches,
    assert_option_changes_no_bits,
    delegate_interpreter,
    few_channel_stem_claimed,
)


@cache
def _pool_cases_model() -> bytes:
    """Seven MAX_POOL_2D or AVERAGE_POOL_2D nodes after claimed convs, three fused, four not:

    stem       ZeroPadding2D(1) then a 3x3 stride-2 VALID max pool after the ReLU of a dense
               7x7 stride-2 stem (ResNet's pool1_pad and pool1_pool): fused with its PAD (with
               AVX-512, whose few-input-channel rule claims the dense stem; with another ISA
               the stem, its PADs and its pool stay with TFLite).
    linear     ZeroPadding2D(((1, 0), (0, 1))) then a 2x2 stride-2 max pool after a conv without
               activation, whose negative outputs lose to the PAD's zeros: fused with its PAD.
    same_pool  a 2x2 stride-2 SAME max pool on an odd-sized ReLU conv output (its padded
               positions take no part): fused.
    shared     a max pool of a conv output that an ADD also reads: not fused.
    ones       a max pool after a PAD with the constant 1.0 (PADV2): not fused.
    average    an average pool: not fused.
    exposed    a max pool of a conv output that is also a model output: not fused.
    """
    import keras

    keras.utils.set_random_seed(31)
    conv = keras.layers.Conv2D
    pool = keras.layers.MaxPooling2D
    inputs = keras.Input((70, 70, 3), name="image")
    x = keras.layers.ZeroPadding2D(3)(inputs)
    x = conv(64, 7, strides=2, activation="relu", name="stem")(x)  # 35 x 35 x 64
    x = pool(3, 2)(keras.layers.ZeroPadding2D(1)(x))  # 18 x 18
    x = conv(32, 3, padding="same", name="linear")(x)
    x = pool(2, 2)(keras.layers.ZeroPadding2D(((1, 0), (0, 1)))(x))  # 9 x 9
    x = conv(48, 3, padding="same", activation="relu", name="same_pool")(x)
    x = pool(2, 2, padding="same")(x)  # 5 x 5
    shared = conv(32, 1, name="shared")(x)
    x = pool(2, 1, padding="same")(shared) + shared
    x = conv(32, 3, padding="same", name="ones")(x)
    x = keras.layers.Lambda(
        lambda t: keras.ops.pad(t, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=1.0)
    )(x)
    x = pool(2, 1)(x)  # 6 x 6
    x = keras.layers.AveragePooling2D(2)(conv(32, 1, name="average")(x))  # 3 x 3
    exposed = conv(32, 1, name="exposed")(x)
    x = pool(2, 1)(exposed)
    model = keras.Model(inputs, [x, exposed], name="pool_cases")
    apply_block_masks(model, block_n=16, sparsity=0.5, seed=32, skip=("stem",))
    return session_tflite(model)


def _pools(interpreter) -> dict[int, tuple[int, int | None]]:
    """Claimed conv node -> (its fused MAX_POOL_2D node, that pool's PAD node), from the report."""
    import tflite_delegate

    return {
        decision.node_index: (decision.fused_pool_node, decision.fused_pool_pad_node)
        for decision in tflite_delegate.delegation_report(interpreter)
        if decision.fused_pool_node is not None
    }


def _conv_named(operators: dict, tensors: dict, fragment: str) -> int:
    (index,) = [
        i
        for i, op in operators.items()
        if op["op_name"] == "CONV_2D" and f"/{fragment}" in tensors[op["outputs"][0]]
    ]
    return index


def test_only_pools_that_cannot_change_anything_are_fused():
    content = _pool_cases_model()
    plain = Interpreter(model_content=content)
    operators = {op["index"]: op for op in plain._get_ops_details()}
    tensors = {d["index"]: d["name"] for d in plain.get_tensor_details()}
    pools, fused = assert_option_changes_no_bits(content, "fuse_pool", _pools)
    stem = _conv_named(operators, tensors, "stem")
    expected = {
        _conv_named(operators, tensors, name): padded
        for name, padded in (("stem", True), ("linear", True), ("same_pool", False))
    }
    if not few_channel_stem_claimed(fused):
        del expected[stem]
    assert {conv: pad is not None for conv, (_, pad) in pools.items()} == expected
    for conv, (pool, pad) in pools.items():
        assert operators[pool]["op_name"] == "MAX_POOL_2D"
        pool_input = operators[pool]["inputs"][0]
        if pad is None:
            assert pool_input == operators[conv]["outputs"][0]
        else:
            assert operators[pad]["op_name"] == "PAD"
            assert operators[pad]["inputs"][0] == operators[conv]["outputs"][0]
            assert pool_input == operators[pad]["outputs"][0]
    # Every conv is still claimed: a pool is never the reason a conv is left to TFLite.
    import tflite_delegate

    claimed = {d.node_index for d in tflite_delegate.delegation_report(fused) if d.claimed}
    convs = {index for index, op in operators.items() if op["op_name"] == "CONV_2D"}
    assert claimed == (convs if few_channel_stem_claimed(fused) else convs - {stem})


def test_fused_pools_join_the_partitions_they_cut():
    """Without fusion each of the three fusable pools cuts the claimed convs (stem | linear |
    same_pool | shared ...) into separate delegate nodes; fused, those four convs run in one."""
    import tflite_delegate

    content = _pool_cases_model()
    counts = {}
    for fuse_pool in (False, True):
        interpreter, delegate = delegate_interpreter(content, fuse_pool=fuse_pool)
        counts[fuse_pool] = tflite_delegate.delegate_summary(delegate).partitions_created
    # Without the stem (another ISA than AVX-512) the first fusable pool cuts nothing.
    assert counts[True] == counts[False] - (3 if few_channel_stem_claimed(interpreter) else 2)


def test_fused_pool_with_xnnpack_and_a_resized_batch():
    """The way users run it: our delegate first, XNNPACK for the rest; batch resized after."""
    import tflite_delegate

    content = _pool_cases_model()
    ours = tflite_delegate.Interpreter(model_content=content, num_threads=2)
    assert len(_pools(ours)) == (3 if few_channel_stem_claimed(ours) else 2)
    assert_close_with_xnnpack_over_resized_batches(ours, content, seed=7)


@pytest.mark.parametrize("value", ["2", "maybe"])
def test_bad_fuse_pool_value_names_the_option(value):
    import tflite_delegate

    with pytest.raises(ValueError, match="fuse_pool"):
        tflite_delegate.load_delegate(fuse_pool=value)
