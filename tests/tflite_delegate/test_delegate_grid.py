"""Delegate outputs equal the reference interpreter on a pairwise grid of conv configurations.

The grid (`delegate_test_support.GRID_AXES`) covers every pair of values of kernel 1/3/5/7,
stride 1/2, dilation 1/2, SAME/VALID, activation NONE/RELU/RELU6/RELU_N1_TO_1, bias or not,
N 1..32, block sparsity 0/50/90/100 %, uniform or not, tap or whole-kernel blocks, and channel
counts with or without a partial last group; its 32 convs live in 4 models over input channel
counts 13, 20, 37 and 5. Each model runs on every ISA path with 1 and 2 threads (bitwise equal),
at batch 1 and after a resize to batch 3.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from tests.tflite_delegate.delegate_test_support import (
    assert_bitwise_equal,
    assert_outputs_close,
    available_isas,
    delegate_interpreter,
    grid_conv_specs,
    grid_models,
    model_inputs,
    numpy_conv2d,
    reference_interpreter,
    run,
)
from tflite_delegate.block_pattern import analyze_filter
from tflite_delegate.flatbuffer_models import ConvSpec, build_conv_model
from tflite_delegate.tflite_model import read_conv_layers

GRID = {model.name: model for model in grid_models()}
BATCHES = (1, 3)


@cache
def grid_model_bytes(name: str, filter_type: str = "float32") -> bytes:
    model = GRID[name]
    return build_conv_model(model.input_shape, grid_conv_specs(model, filter_type))


@cache
def reference_outputs(name: str, filter_type: str, batch: int) -> tuple[np.ndarray, ...]:
    content = grid_model_bytes(name, filter_type)
    interpreter = reference_interpreter(content)
    return tuple(run(interpreter, model_inputs(interpreter, batch, seed=batch)))


def check_report(report, model_content: bytes, claimed_expected: bool = True) -> None:
    """Every conv has a decision; claimed ones agree with the numpy block analysis."""
    decisions = {decision.node_index: decision for decision in report}
    for layer in read_conv_layers(model_content=model_content):
        decision = decisions[layer.node_index]
        assert decision.claimed == claimed_expected, (layer.name, decision.reason)
        if not decision.claimed:
            continue
        pattern = analyze_filter(layer.filter)
        assert decision.reason_code == "claimed"
        assert tuple(decision.filter_shape) == layer.filter_shape
        assert decision.block_n == pattern.block_n, layer.name
        assert decision.block_sparsity == pytest.approx(pattern.block_sparsity, abs=1e-9)
        assert decision.kept_blocks_min == pattern.kept_blocks_min, layer.name
        assert decision.kept_blocks_max == pattern.kept_blocks_max, layer.name
        assert decision.balance_ratio == pytest.approx(pattern.balance_ratio, abs=1e-9)
        assert decision.tap_vector_sparsity == pytest.approx(pattern.tap_vector_sparsity, abs=1e-9)
        assert decision.kept_tap_vectors_min == pattern.kept_tap_vectors_min, layer.name
        assert decision.kept_tap_vectors_max == pattern.kept_tap_vectors_max, layer.name
        assert decision.uniform == (pattern.kept_tap_vectors_min == pattern.kept_tap_vectors_max), (
            layer.name
        )


@pytest.mark.parametrize("name", sorted(GRID))
def test_reference_interpreter_matches_numpy_convolution(name):
    """The hand-written flatbuffers mean what the grid says (independent float64 check)."""
    model = GRID[name]
    specs = grid_conv_specs(model)
    inputs = model_inputs(reference_interpreter(grid_model_bytes(name)), 3, seed=3)
    expected = [numpy_conv2d(inputs[0], spec) for spec in specs]
    assert_outputs_close(reference_outputs(name, "float32", 3), expected, name)


def test_grid_covers_every_block_width_and_group_shape():
    detected, empty_group, non_uniform, partial = set(), False, False, False
    for name in GRID:
        for spec in grid_conv_specs(GRID[name]):
            pattern = analyze_filter(spec.filter_ohwi)
            detected.add(pattern.block_n)
            empty_group |= pattern.kept_tap_vectors_min == 0 < pattern.kept_tap_vectors_max
            non_uniform |= pattern.kept_tap_vectors_min != pattern.kept_tap_vectors_max
            partial |= spec.filter_ohwi.shape[0] % pattern.block_n != 0
    assert detected == {1, 2, 4, 8, 16, 32}
    assert empty_group and non_uniform and partial


@pytest.mark.parametrize("isa", available_isas())
@pytest.mark.parametrize("name", sorted(GRID))
def test_grid_matches_reference_on_every_isa(name, isa):
    content = grid_model_bytes(name)
    outputs_by_threads = {}
    for threads in (1, 2):
        # Thread count once through the interpreter's num_threads, once through the option.
        thread_setting = {"interpreter_threads": 1} if threads == 1 else {"num_threads": 2}
        interpreter, delegate = delegate_interpreter(
            content, isa=isa, min_sparsity=0.0, **thread_setting
        )
        import tflite_delegate

        report = tflite_delegate.delegation_report(delegate)
        check_report(report, content)
        assert {d.isa for d in report if d.claimed} == {isa}
        outputs_by_threads[threads] = []
        for batch in (*BATCHES, 1):  # resize after delegation, then back
            inputs = model_inputs(interpreter, batch, seed=batch)
            outputs = run(interpreter, inputs)
            assert_outputs_close(outputs, reference_outputs(name, "float32", batch), f"{isa}")
            outputs_by_threads[threads].append(outputs)
    for first, second in zip(outputs_by_threads[1], outputs_by_threads[2], strict=True):
        assert_bitwise_equal(first, second, f"{name} {isa} 1 vs 2 threads")


@pytest.mark.parametrize("name", sorted(GRID)[:2])
def test_float16_weight_models_match_reference(name):
    content = grid_model_bytes(name, "float16")
    layers = read_conv_layers(model_content=content)
    assert all(layer.filter_source.startswith("float16") for layer in layers)
    interpreter, delegate = delegate_interpreter(content, num_threads=2, min_sparsity=0.0)
    import tflite_delegate

    check_report(tflite_delegate.delegation_report(delegate), content)
    for batch in BATCHES:
        outputs = run(interpreter, model_inputs(interpreter, batch, seed=batch))
        assert_outputs_close(outputs, reference_outputs(name, "float16", batch), "fp16")


def test_model_path_and_model_content_with_xnnpack_for_the_rest(tmp_path):
    import tflite_delegate

    name = sorted(GRID)[2]
    content = grid_model_bytes(name)
    path = tmp_path / "grid.tflite"
    path.write_bytes(content)
    results = []
    for source in ({"model_path": str(path)}, {"model_content": content}):
        interpreter = tflite_delegate.Interpreter(**source, num_threads=2, min_sparsity=0.0)
        check_report(tflite_delegate.delegation_report(interpreter), content)
        outputs = run(interpreter, model_inputs(interpreter, 1, seed=1))
        assert_outputs_close(outputs, reference_outputs(name, "float32", 1), str(source.keys()))
        results.append(outputs)
    assert_bitwise_equal(*results, "model_path vs model_content")


def test_tf_lite_runtime_with_tf_load_delegate(tmp_path):
    import tensorflow as tf

    import tflite_delegate

    name = sorted(GRID)[1]
    path = tmp_path / "grid.tflite"
    path.write_bytes(grid_model_bytes(name))
    delegate = tf.lite.experimental.load_delegate(
        tflite_delegate.library_path(), {"min_sparsity": 0, "num_threads": 2}
    )
    interpreter = tf.lite.Interpreter(
        model_path=str(path),
        experimental_delegates=[delegate],
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    for batch in BATCHES:
        outputs = run(interpreter, model_inputs(interpreter, batch, seed=batch))
        assert_outputs_close(outputs, reference_outputs(name, "float32", batch), "tf.lite")


def test_sequential_convs_share_partitions_correctly():
    """Five chained convs (internal tensors between claimed nodes), every activation."""
    rng = np.random.default_rng(7)
    specs, channels = [], 6
    for index, (out_channels, activation) in enumerate(
        [(16, "RELU"), (20, "RELU6"), (8, "NONE"), (12, "RELU_N1_TO_1"), (16, "RELU")]
    ):
        weights = rng.normal(0, 0.4, (out_channels, 3, 3, channels)).astype(np.float32)
        weights[: out_channels // 2, :, :, : channels // 2] = 0.0  # a 1x(O/2) pattern
        bias = rng.uniform(-0.3, 0.3, out_channels).astype(np.float32)
        stride = (2, 2) if index == 1 else (1, 1)
        specs.append(ConvSpec(weights, bias, stride, activation=activation, source=index - 1))
        channels = out_channels
    content = build_conv_model((1, 21, 18, 6), specs)
    reference = reference_interpreter(content)
    expected = run(reference, model_inputs(reference, 3, seed=11))
    interpreter, delegate = delegate_interpreter(content, num_threads=2, min_sparsity=0.0)
    import tflite_delegate

    check_report(tflite_delegate.delegation_report(delegate), content)
    # A layer's rounding differences come from its whole chain: scale by the largest magnitude
    # seen so far along the chain (errors stay near 1e-6 of it).
    magnitudes = np.maximum.accumulate([float(np.abs(e).max()) for e in expected])
    for _ in range(2):  # repeated invokes give the same result
        outputs = run(interpreter, model_inputs(interpreter, 3, seed=11))
        assert_outputs_close(outputs, expected, "chain", scales=magnitudes)


def test_stray_zeros_inside_kept_blocks_keep_the_block_width():
    """A 1x16 SUBP-style filter with one exact zero inside a kept tap vector (as float16 rounding or
    training can leave) still runs at N=16, and correctly; two such zeros among few fall back."""
    import tflite_delegate

    rng = np.random.default_rng(21)
    weights = rng.uniform(0.5, 1.5, (32, 3, 3, 8)).astype(np.float32)
    weights[:16, :, :, :4] = 0.0  # group 0 drops input channels 0-3 (whole 3x3 kernels)
    weights[16:, :, :, 4:] = 0.0  # group 1 drops 4-7
    weights[3, 1, 1, 6] = 0.0  # a stray zero in a kept tap vector: 1 of 577 zeros
    content = build_conv_model((1, 9, 7, 8), [ConvSpec(weights, None)])
    interpreter, delegate = delegate_interpreter(content, min_sparsity=0.0)
    (decision,) = tflite_delegate.delegation_report(delegate)
    assert (decision.claimed, decision.block_n) == (True, 16)
    assert (decision.kept_tap_vectors_min, decision.kept_tap_vectors_max) == (36, 36)
    assert (decision.kept_blocks_min, decision.kept_blocks_max) == (4, 4)
    check_report([decision], content)
    inputs = model_inputs(interpreter, 1, seed=4)
    assert_outputs_close(run(interpreter, inputs), run(reference_interpreter(content), inputs), "")
