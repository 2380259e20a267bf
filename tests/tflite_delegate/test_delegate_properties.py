"""Property-based tests: random conv configurations match the reference interpreter, and the C++
block detection agrees with the numpy analysis."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tflite_delegate.delegate_test_support import (
    BLOCK_SIZES,
    assert_bitwise_equal,
    assert_outputs_close,
    available_isas,
    block_mask,
    delegate_interpreter,
    masked_filter,
    model_inputs,
    reference_interpreter,
    run,
)
from tflite_delegate.block_pattern import analyze_filter
from tflite_delegate.flatbuffer_models import (
    ACTIVATIONS,
    ConvSpec,
    build_conv_model,
    conv_output_size,
)

CLAIMABLE_ACTIVATIONS = sorted(set(ACTIVATIONS) - {"TANH"})


@st.composite
def conv_configurations(draw):
    kernel = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    effective = [(k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True)]
    height = draw(st.integers(effective[0] if padding == "VALID" else 1, 24))
    width = draw(st.integers(effective[1] if padding == "VALID" else 1, 24))
    return {
        "kernel": kernel,
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "dilation": dilation,
        "padding": padding,
        "input_shape": (1, height, width, draw(st.integers(1, 40))),
        "out_channels": draw(st.integers(1, 70)),
        "activation": draw(st.sampled_from(CLAIMABLE_ACTIVATIONS)),
        "bias": draw(st.booleans()),
        "block_n": draw(st.sampled_from(BLOCK_SIZES)),
        "sparsity": draw(st.floats(0.0, 1.0)),
        "uniform": draw(st.booleans()),
        "whole_kernel": draw(st.booleans()),
        "batch": draw(st.integers(1, 3)),
        "isa": draw(st.sampled_from(available_isas())),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(config=conv_configurations())
def test_random_convolutions_match_reference(config):
    import tflite_delegate

    rng = np.random.default_rng(config["seed"])
    in_channels = config["input_shape"][3]
    mask = block_mask(
        config["out_channels"],
        config["kernel"],
        in_channels,
        config["block_n"],
        config["sparsity"],
        config["uniform"],
        config["whole_kernel"],
        rng,
    )
    bias = rng.uniform(-1, 1, config["out_channels"]).astype(np.float32) if config["bias"] else None
    spec = ConvSpec(
        masked_filter(mask, rng),
        bias,
        config["stride"],
        config["dilation"],
        config["padding"],
        config["activation"],
    )
    for axis in (1, 2):
        size = conv_output_size(
            config["input_shape"][axis],
            config["kernel"][axis - 1],
            config["stride"][axis - 1],
            config["dilation"][axis - 1],
            config["padding"],
        )
        assert size >= 1
    content = build_conv_model(config["input_shape"], [spec])
    reference = reference_interpreter(content)
    inputs = model_inputs(reference, config["batch"], seed=config["seed"])
    expected = run(reference, inputs)

    results = []
    for threads in (1, 2):
        interpreter, delegate = delegate_interpreter(
            content, num_threads=threads, isa=config["isa"], min_sparsity=0.0
        )
        (decision,) = [d for d in tflite_delegate.delegation_report(delegate) if d.node_index == 0]
        assert decision.claimed, decision.reason
        pattern = analyze_filter(spec.filter_ohwi)
        assert decision.block_n == pattern.block_n
        assert (decision.kept_tap_vectors_min, decision.kept_tap_vectors_max) == (
            pattern.kept_tap_vectors_min,
            pattern.kept_tap_vectors_max,
        )
        assert (decision.kept_blocks_min, decision.kept_blocks_max) == (
            pattern.kept_blocks_min,
            pattern.kept_blocks_max,
        )
        results.append(run(interpreter, inputs))
        assert_outputs_close(results[-1], expected, str(config))
    assert_bitwise_equal(results[0], results[1], "1 vs 2 threads")
