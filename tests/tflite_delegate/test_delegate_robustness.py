"""Bad or unsupported input never crashes: each case is "not claimed" (with a reason and the
reference result) or a clear Python error. Cases that could take the process down run in a
subprocess, so a crash shows up as a failed test with its signal instead of ending the session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from tests.tflite_delegate.delegate_test_support import (
    assert_outputs_close,
    available_isas,
    delegate_interpreter,
    model_inputs,
    reference_interpreter,
    run,
)
from tflite_delegate import litert_compat
from tflite_delegate.flatbuffer_models import ConvSpec, build_conv_model

REPOSITORY = Path(__file__).resolve().parents[2]


def _sparse_filter(out_channels, kernel, in_channels, seed=0):
    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 0.3, (out_channels, kernel, kernel, in_channels)).astype(np.float32)
    weights[: out_channels // 2, :, :, : in_channels // 2] = 0.0
    return weights


def _decision(delegate, node_index):
    import tflite_delegate

    (decision,) = [
        d for d in tflite_delegate.delegation_report(delegate) if d.node_index == node_index
    ]
    return decision


def _same_as_reference(content: bytes, delegate_options: dict, batch: int = 1):
    reference = reference_interpreter(content)
    inputs = model_inputs(reference, batch, seed=5)
    interpreter, delegate = delegate_interpreter(content, **delegate_options)
    assert_outputs_close(run(interpreter, inputs), run(reference, inputs))
    return delegate


@pytest.mark.parametrize(
    ("spec", "reason_code", "reason_words"),
    [
        (
            ConvSpec(_sparse_filter(8, 3, 6), None, activation="TANH"),
            "unsupported_activation",
            ("TANH",),
        ),
        (ConvSpec(_sparse_filter(8, 3, 3), None), "grouped_convolution", ("groups=2",)),
        (
            ConvSpec(_sparse_filter(8, 3, 6), None, filter_from_input=True),
            "not_constant",
            ("filter",),
        ),
        (
            ConvSpec(_sparse_filter(8, 3, 6), None, filter_type="int8"),
            "unsupported_tensor_type",
            ("INT8",),
        ),
    ],
    ids=["tanh-activation", "grouped-conv", "runtime-filter", "int8-filter"],
)
def test_unsupported_convs_are_left_to_tflite(spec, reason_code, reason_words):
    content = build_conv_model((1, 9, 7, 6), [spec])
    delegate = _same_as_reference(content, {"min_sparsity": 0.0})
    decision = _decision(delegate, len(_op_nodes(content)) - 1)
    assert not decision.claimed
    assert decision.reason_code == reason_code, decision
    # The message still names the detail for people.
    assert all(word in decision.reason for word in reason_words), decision.reason


def _op_nodes(content: bytes) -> list:
    return litert_compat.ops_details(reference_interpreter(content))


@pytest.mark.parametrize("block_n", [1, 32])
def test_forced_block_width_is_correct_even_when_pattern_does_not_hold(block_n):
    spec = ConvSpec(_sparse_filter(20, 3, 6), np.linspace(-1, 1, 20, dtype=np.float32))
    content = build_conv_model((1, 11, 9, 6), [spec])
    delegate = _same_as_reference(content, {"min_sparsity": 0.0, "block_n": block_n}, batch=2)
    decision = _decision(delegate, 0)
    assert decision.claimed and decision.block_n == block_n


def test_filter_computed_at_run_time_by_a_tf_function():
    """A real converter output: tf.nn.conv2d whose filter is a model input (via a TRANSPOSE)."""
    import tensorflow as tf

    @tf.function(
        input_signature=[tf.TensorSpec([1, 9, 11, 5], tf.float32), tf.TensorSpec([3, 3, 5, 4])]
    )
    def convolve(images, kernel):
        return tf.nn.relu(tf.nn.conv2d(images, kernel, 1, "SAME"))

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [convolve.get_concrete_function()], convolve
    )
    content = converter.convert()
    conv_nodes = [op["index"] for op in _op_nodes(content) if op["op_name"] == "CONV_2D"]
    delegate = _same_as_reference(content, {"min_sparsity": 0.0})
    decision = _decision(delegate, conv_nodes[0])
    assert not decision.claimed and decision.reason_code == "not_constant"
    assert "constant" in decision.reason


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"bogus": 1}, "bogus"),
        ({"num_threads": "many"}, "num_threads"),
        ({"num_threads": -2}, "num_threads"),
        ({"min_sparsity": 1.5}, "min_sparsity"),
        ({"min_sparsity": "nan"}, "min_sparsity"),
        ({"block_n": 3}, "block_n"),
        ({"isa": "sse2"}, "isa"),
        ({"verbose": "perhaps"}, "verbose"),
        ({"per_image_bytes": "lots"}, "per_image_bytes"),
    ],
)
def test_malformed_options_raise_value_error_naming_them(options, named):
    import tflite_delegate

    with pytest.raises(ValueError, match=named):
        tflite_delegate.load_delegate(**options)


_ISOLATED_PRELUDE = """
import json, numpy as np
import tflite_delegate
from tflite_delegate.flatbuffer_models import ConvSpec, build_conv_model
from tests.tflite_delegate.delegate_test_support import (
    delegate_interpreter, model_inputs, reference_interpreter, run)

def outcome(function):
    try:
        return ["ok", [a.tolist() for a in function()]]
    except (ValueError, RuntimeError) as error:
        return ["error", str(error)[:300]]

def decision(delegate):
    (d,) = [d for d in tflite_delegate.delegation_report(delegate) if d.node_index == 0]
    return [d.claimed, d.reason, d.reason_code]

rng = np.random.default_rng(0)
weights = rng.normal(0, 0.3, (8, 3, 3, 4)).astype(np.float32)
weights[:4, :, :, :2] = 0.0
"""


def _run_isolated(body: str) -> dict:
    """Run the prelude and `body` (which prints one JSON line last) in a fresh Python process;
    fail on a crash (a signal gives a negative exit status)."""
    result = subprocess.run(
        [sys.executable, "-c", _ISOLATED_PRELUDE + textwrap.dedent(body)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_zero_sized_tensors_do_not_crash():
    results = _run_isolated(
        """
        report = {}
        # (a) a batch resized to 0 after delegation
        content = build_conv_model((1, 7, 6, 4), [ConvSpec(weights, None)])
        interpreter, delegate = delegate_interpreter(content, min_sparsity=0.0)
        first = decision(delegate)
        report["batch0"] = outcome(lambda: run(interpreter, [np.zeros((0, 7, 6, 4), np.float32)]))
        report["batch0_reference"] = outcome(
            lambda: run(reference_interpreter(content), [np.zeros((0, 7, 6, 4), np.float32)]))
        report["batch0_then_1"] = outcome(
            lambda: run(interpreter, model_inputs(interpreter, 1, seed=1)))
        report["batch0_then_1_reference"] = outcome(
            lambda: run(reference_interpreter(content), model_inputs(interpreter, 1, seed=1)))
        report["first_decision"] = first
        # (b) a model whose declared input has zero height
        content = build_conv_model((1, 0, 6, 4), [ConvSpec(weights, None)])
        interpreter, delegate = delegate_interpreter(content, min_sparsity=0.0)
        report["zero_height_decision"] = decision(delegate)
        report["zero_height"] = outcome(lambda: run(interpreter, [np.zeros((1, 0, 6, 4), np.float32)]))
        # (c) a filter with zero output channels
        content = build_conv_model((1, 7, 6, 4), [ConvSpec(np.zeros((0, 3, 3, 4), np.float32), None)])
        try:
            interpreter, delegate = delegate_interpreter(content, min_sparsity=0.0)
            report["zero_filter_decision"] = decision(delegate)
        except (ValueError, RuntimeError) as error:
            report["zero_filter_decision"] = ["error", str(error)[:300]]
        # (d) two chained convs, one partition with an internal tensor: batch 0, then 3 image
        # by image
        second = rng.normal(0, 0.3, (8, 1, 1, 8)).astype(np.float32)
        content = build_conv_model(
            (1, 7, 6, 4), [ConvSpec(weights, None), ConvSpec(second, None, source=0)])
        interpreter, delegate = delegate_interpreter(content, min_sparsity=0.0, per_image_bytes=0)
        report["chain_batch0"] = outcome(
            lambda: run(interpreter, [np.zeros((0, 7, 6, 4), np.float32)]))
        report["chain_batch0_reference"] = outcome(
            lambda: run(reference_interpreter(content), [np.zeros((0, 7, 6, 4), np.float32)]))
        report["chain_batch3"] = outcome(lambda: run(interpreter, model_inputs(interpreter, 3, 2)))
        report["chain_batch3_reference"] = outcome(
            lambda: run(reference_interpreter(content), model_inputs(interpreter, 3, 2)))
        print(json.dumps(report))
        """
    )
    assert results["chain_batch0"][0] == results["chain_batch0_reference"][0]
    assert results["chain_batch3"][0] == "ok"
    assert np.allclose(results["chain_batch3"][1], results["chain_batch3_reference"][1], atol=1e-5)
    assert results["first_decision"][0] is True
    # Whatever the reference does with an empty batch, the delegate does the same, without crash.
    assert results["batch0"][0] == results["batch0_reference"][0]
    assert results["batch0_then_1"] == results["batch0_then_1_reference"] or np.allclose(
        results["batch0_then_1"][1], results["batch0_then_1_reference"][1], atol=1e-5
    )
    assert results["zero_height_decision"][0] is False
    assert results["zero_height_decision"][2] == "zero_sized_tensor"
    assert "zero-sized" in results["zero_height_decision"][1]
    assert results["zero_filter_decision"][0] in (False, "error")


def test_huge_shapes_are_refused_before_packing():
    """Declared shapes far beyond 32-bit indices (65536 x 65536 x 4 input, 2^34 floats): the
    delegate must decline without allocating anything. A claimed model resized to such a shape
    after delegation keeps its kernel (dynamic tensors are allowed), whose prepare refuses with a
    clear error; resized back, the same interpreter runs correctly again."""
    results = _run_isolated(
        """
        report = {}
        content = build_conv_model((1, 65536, 65536, 4), [ConvSpec(weights, None)])
        interpreter, delegate = delegate_interpreter(content, min_sparsity=0.0)
        report["declared_huge"] = decision(delegate)
        content = build_conv_model((1, 8, 8, 4), [ConvSpec(weights, None)])
        interpreter, delegate = delegate_interpreter(content, min_sparsity=0.0)
        report["small"] = decision(delegate)
        interpreter.resize_tensor_input(0, [1, 65536, 65536, 4])
        report["allocate_huge"] = outcome(lambda: [interpreter.allocate_tensors()] and [])
        interpreter.resize_tensor_input(0, [1, 8, 8, 4])
        inputs = model_inputs(interpreter, 1, seed=2)
        report["recovered"] = outcome(lambda: run(interpreter, inputs))
        report["reference"] = outcome(lambda: run(reference_interpreter(content), inputs))
        report["after_recovery"] = decision(delegate)
        print(json.dumps(report))
        """
    )
    assert results["declared_huge"][0] is False
    assert results["declared_huge"][2] == "index_overflow"
    assert "overflow" in results["declared_huge"][1]
    assert results["small"][0] is True
    assert results["allocate_huge"][0] == "error"
    assert "overflow 32-bit" in results["allocate_huge"][1]
    assert results["recovered"][0] == "ok" and results["after_recovery"][0] is True
    np.testing.assert_allclose(
        np.asarray(results["recovered"][1]),
        np.asarray(results["reference"][1]),
        rtol=1e-5,
        atol=1e-6,
    )


def test_padded_sizes_that_would_wrap_64_bit_are_refused():
    """SAME padding with a dilation near 2^30 makes the padded image 2^30 x 2^30 x 16 = 2^64
    floats, which wrapped to 0 in unchecked 64-bit arithmetic and passed the 32-bit limit (the
    kernel then wrote through a null buffer). Both that and a declared 2^30 x 2^30 input must be
    declined, and the interpreter must still run (on TFLite's own kernel)."""
    results = _run_isolated(
        """
        report = {}
        kept_tap = np.zeros((1, 2, 2, 16), np.float32)
        kept_tap[0, 0, 0, :] = 1.0
        for name, dilation in (("wrapping", (1 << 30) - 1), ("overflowing", 1 << 30)):
            content = build_conv_model(
                (1, 1, 1, 16), [ConvSpec(kept_tap, None, dilation=(dilation, dilation))])
            interpreter, delegate = delegate_interpreter(content, min_sparsity=0.0)
            report[name] = decision(delegate)
        print(json.dumps(report))
        """
    )
    for name in ("wrapping", "overflowing"):
        claimed, reason, code = results[name]
        assert claimed is False and code == "index_overflow", results
        assert "overflow 32-bit" in reason and "2^63" in reason, results


def test_prepare_after_out_of_memory_fails_again_then_recovers():
    """A resize whose padded-input buffer cannot be allocated fails with a clear error; asking
    again must fail again (not reuse a half-updated kernel), and resizing back must work."""
    if "asan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("RLIMIT_AS cannot bound memory under AddressSanitizer's shadow mappings")
    results = _run_isolated(
        """
        import resource
        report = {}
        # 9x9 kernel, stride 4, SAME on 8x8: the padded image is 13x13, 2.6 times the input.
        kernel = rng.normal(0, 0.3, (16, 9, 9, 4)).astype(np.float32)
        kernel[:8, :, :, :2] = 0.0
        content = build_conv_model((1, 8, 8, 4), [ConvSpec(kernel, None, stride=(4, 4))])
        interpreter, delegate = delegate_interpreter(content, min_sparsity=0.0)
        interpreter.allocate_tensors()
        size = next(int(line.split()[1]) for line in open("/proc/self/status")
                    if line.startswith("VmSize")) * 1024
        limit = size + (512 << 20)  # room for the 256 MiB input, not the 676 MiB padded copy
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
        interpreter.resize_tensor_input(0, [1 << 18, 8, 8, 4])
        report["first"] = outcome(lambda: [interpreter.allocate_tensors()] and [])
        report["second"] = outcome(lambda: [interpreter.allocate_tensors()] and [])
        interpreter.resize_tensor_input(0, [1, 8, 8, 4])
        inputs = model_inputs(interpreter, 1, seed=3)
        report["recovered"] = outcome(lambda: run(interpreter, inputs))
        report["reference"] = outcome(lambda: run(reference_interpreter(content), inputs))
        print(json.dumps(report))
        """
    )
    for attempt in ("first", "second"):
        assert results[attempt][0] == "error" and "out of memory" in results[attempt][1], results
    assert results["recovered"][0] == "ok"
    np.testing.assert_allclose(
        np.asarray(results["recovered"][1]),
        np.asarray(results["reference"][1]),
        rtol=1e-5,
        atol=1e-6,
    )


def test_non_finite_inputs_of_pruned_channels_do_not_reach_the_output():
    """Documented difference from the reference: the delegate skips all-zero blocks, so a NaN or
    Inf input that only meets pruned (zero) weights does not turn outputs into NaN, whereas the
    reference computes 0 * NaN = NaN. Non-finite inputs of kept channels propagate as usual."""

    rng = np.random.default_rng(8)
    weights = rng.normal(0, 0.4, (16, 1, 1, 8)).astype(np.float32)
    weights[:, :, :, 3] = 0.0  # input channel 3 pruned in every group
    content = build_conv_model((1, 4, 4, 8), [ConvSpec(weights, None)])
    pruned_nan = rng.normal(size=(1, 4, 4, 8)).astype(np.float32)
    pruned_nan[0, 1, 1, 3], pruned_nan[0, 2, 2, 3] = np.nan, np.inf
    kept_nan = pruned_nan.copy()
    kept_nan[0, 0, 0, 5] = np.nan
    reference = reference_interpreter(content)
    for isa in available_isas():
        interpreter, _ = delegate_interpreter(content, min_sparsity=0.0, isa=isa)
        (expected_finite,) = run(reference, [np.nan_to_num(pruned_nan, nan=0.0, posinf=0.0)])
        (output,) = run(interpreter, [pruned_nan])
        np.testing.assert_allclose(output, expected_finite, rtol=1e-5, atol=1e-6, err_msg=isa)
        (output,) = run(interpreter, [kept_nan])
        assert np.isnan(output[0, 0, 0]).all() and np.isfinite(output[0, 1:]).all(), isa
    (reference_output,) = run(reference, [pruned_nan])
    assert np.isnan(reference_output[0, 1, 1]).all()  # the reference propagates 0 * NaN


@pytest.mark.parametrize("activation", ["NONE", "RELU", "RELU6"])
def test_overflowing_outputs_stay_infinite_as_with_xnnpack(activation):
    """Documented difference from the reference: as in XNNPACK (LiteRT's default engine), an
    unbounded side of a fused activation is infinite, so a conv output that overflows stays
    +-inf, where TFLite's built-in kernels clamp it to +-FLT_MAX. Each output reads one kept tap
    vector here, so the overflow does not depend on the order of a sum."""

    weights = np.zeros((16, 1, 1, 8), np.float32)
    weights[:, 0, 0, 5] = np.where(np.arange(16) % 2 == 0, 2.0, -2.0)  # one kept block
    content = build_conv_model((1, 2, 2, 8), [ConvSpec(weights, None, activation=activation)])
    inputs = np.ones((1, 2, 2, 8), np.float32)
    inputs[0, 0, 0, 5] = 3e38  # times +-2: +-inf in float32
    (xnnpack,) = run(Interpreter(model_content=content), [inputs])
    (builtin,) = run(reference_interpreter(content), [inputs])
    bound = {"NONE": np.inf, "RELU": np.inf, "RELU6": 6.0}[activation]
    assert xnnpack[0, 0, 0, 0] == bound
    assert builtin[0, 0, 0, 0] == min(bound, np.finfo(np.float32).max)
    for isa in available_isas():
        interpreter, delegate = delegate_interpreter(content, min_sparsity=0.0, isa=isa)
        (output,) = run(interpreter, [inputs])
        assert _decision(delegate, 0).claimed, isa
        np.testing.assert_array_equal(output, xnnpack, err_msg=isa)
