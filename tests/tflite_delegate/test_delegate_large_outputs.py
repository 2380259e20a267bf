"""A claimed conv whose output is at least half the L3 cache writes it with non-temporal stores
(SparseConvOperator::StreamingOutputBytes). Through the whole TFLite path (arena tensors, a
second claimed conv reading the streamed tensor, 1 and 2 threads) the outputs must match the
builtin kernels and be bitwise equal across thread counts."""

import math

import numpy as np
import pytest

from tests.tflite_delegate.delegate_test_support import (
    assert_bitwise_equal,
    assert_outputs_close,
    available_isas,
    delegate_interpreter,
    model_inputs,
    reference_interpreter,
    run,
)
from tflite_delegate.flatbuffer_models import ConvSpec, build_conv_model


def _streaming_threshold_bytes() -> int:
    """What the delegate uses: half the L3 that Linux reports for CPU 0 in sysfs, else 16 MiB."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    for index in range(8):
        directory = f"/sys/devices/system/cpu/cpu0/cache/index{index}"
        try:
            with open(f"{directory}/level") as file:
                if file.read().strip() != "3":
                    continue
            with open(f"{directory}/size") as file:
                text = file.read().strip()
        except OSError:
            continue
        multiplier = units.get(text[-1:], 1)
        digits = text[:-1] if text[-1:] in units else text
        return int(digits) * multiplier // 2 if digits.isdigit() else 16 << 20
    return 16 << 20


def _half_pruned_1x16(out_channels: int, in_channels: int, seed: int) -> np.ndarray:
    """1x1 OHWI filter, every group of 16 output channels keeping half its input channels."""
    rng = np.random.default_rng(seed)
    weights = rng.uniform(-1.0, 1.0, (out_channels, 1, 1, in_channels)).astype(np.float32)
    for group in range(out_channels // 16):
        pruned = rng.permutation(in_channels)[: in_channels // 2]
        weights[group * 16 : (group + 1) * 16, :, :, pruned] = 0.0
    return weights


@pytest.mark.parametrize("isa", available_isas())
def test_a_streamed_output_feeds_the_next_conv_unchanged(isa):
    import tflite_delegate

    threshold = _streaming_threshold_bytes()
    if threshold > 64 << 20:
        pytest.skip(f"streaming starts at {threshold >> 20} MiB outputs here: too large a test")
    # The first conv's output (side x side x 64 floats) reaches the threshold.
    side = math.isqrt(-(-threshold // (64 * 4)) - 1) + 1
    assert side * side * 64 * 4 >= threshold
    rng = np.random.default_rng(3)
    first = ConvSpec(
        _half_pruned_1x16(64, 16, seed=1),
        rng.uniform(-0.5, 0.5, 64).astype(np.float32),
        activation="RELU",
    )
    second = ConvSpec(_half_pruned_1x16(32, 64, seed=2), None, source=0)
    content = build_conv_model((1, side, side, 16), [first, second])
    inputs = model_inputs(reference_interpreter(content), batch=1, seed=4)
    expected = run(reference_interpreter(content), inputs)
    outputs = {}
    for threads in (1, 2):
        interpreter, delegate = delegate_interpreter(content, isa=isa, num_threads=threads)
        assert all(decision.claimed for decision in tflite_delegate.delegation_report(delegate))
        outputs[threads] = run(interpreter, inputs)
        assert_outputs_close(outputs[threads], expected, f"{isa}, {threads} thread(s)")
    assert_bitwise_equal(outputs[1], outputs[2], f"{isa}: 1 vs 2 threads")
