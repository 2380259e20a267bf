"""The delegate option pixel_pairs: whether the AVX-512 pixel-pair microkernels may run. Its
default, "auto", follows the CPU (off on AMD family 19h, Zen 4, where they ran slower than the
pixel-major ones); on or off, the outputs are bitwise the same, at 1 and 2 threads and at batch 1
and 3; a bad value is named in the error."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from tests.tflite_delegate.delegate_test_support import (
    assert_option_changes_no_bits,
    cpu_splits_avx512,
    default_pixel_pairs,
)
from tflite_delegate.flatbuffer_models import ConvSpec, build_conv_model

CPUINFO = Path("/proc/cpuinfo")


def _filter(out_channels, in_channels, kernel, block_n, kept, rng):
    """OHWI filter whose groups of `block_n` output channels each keep `kept` whole blocks."""
    weights = rng.uniform(-1.0, 1.0, (out_channels, kernel, kernel, in_channels)).astype(np.float32)
    for group in range(out_channels // block_n):
        pruned = rng.permutation(in_channels)[kept:]
        weights[group * block_n : (group + 1) * block_n, :, :, pruned] = 0.0
    return weights


@cache
def _model() -> bytes:
    """Convs that take the pixel-pair variants when allowed (AVX-512): 3x3 in 1x16 blocks at 50 %
    with an odd output width (vertical pairs), a strided 3x3 and a 1x1 in 1x16 blocks with
    enough work per paired input value, a 3x3 in 1x8 blocks at 75 %."""
    rng = np.random.default_rng(41)
    return build_conv_model(
        (1, 13, 13, 32),
        [
            ConvSpec(_filter(32, 32, 3, 16, 16, rng), None, activation="RELU"),
            ConvSpec(_filter(64, 32, 3, 16, 16, rng), None, stride=(2, 2), source=0),
            ConvSpec(_filter(256, 32, 1, 16, 16, rng), None, activation="RELU6", source=0),
            ConvSpec(_filter(32, 32, 3, 8, 8, rng), None, source=0),
        ],
    )


def _paired(interpreter) -> dict[int, str]:
    """Claimed node -> its pixel-pair microkernel, for the nodes that run one."""
    import tflite_delegate

    return {
        decision.node_index: decision.microkernel
        for decision in tflite_delegate.delegation_report(interpreter)
        if decision.claimed and "_pair__" in decision.microkernel
    }


def test_pixel_pairs_change_no_bits():
    paired, interpreter = assert_option_changes_no_bits(_model(), "pixel_pairs", _paired)
    import tflite_delegate

    decisions = tflite_delegate.delegation_report(interpreter)
    assert all(decision.claimed for decision in decisions), decisions
    if tflite_delegate.delegate_summary(interpreter).isa == "avx512":
        # Every node runs a pair variant: 1x16 for the first three, 1x8 for the last.
        assert sorted(paired.values()) == ["f32_1x16_p16_pair__avx512"] * 3 + [
            "f32_1x8_p16_pair__avx512"
        ]
    else:
        assert paired == {}


@pytest.mark.skipif(not CPUINFO.is_file(), reason="needs Linux's /proc/cpuinfo")
def test_auto_leaves_pixel_pairs_out_on_amd_family_19h_only():
    # The delegate reads CPUID; Linux's view of the same fields is the independent reference.
    import tflite_delegate

    fields = {}
    for line in CPUINFO.read_text().splitlines():
        key, _, value = line.partition(":")
        if not line.strip():
            break  # the first processor's block is enough
        fields[key.strip()] = value.strip()
    zen4 = fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "25"
    assert default_pixel_pairs() == (not zen4), fields.get("model name")
    assert cpu_splits_avx512() == zen4
    for value, expected in (("auto", not zen4), (True, True), ("0", False), ("True", True)):
        summary = tflite_delegate.delegate_summary(tflite_delegate.load_delegate(pixel_pairs=value))
        assert summary.pixel_pairs is expected, value


@pytest.mark.parametrize("value", ["on", "2", "", "yes"])
def test_bad_pixel_pairs_value_names_the_option(value):
    import tflite_delegate

    with pytest.raises(ValueError, match=f"option pixel_pairs='{value}' is invalid"):
        tflite_delegate.load_delegate(pixel_pairs=value)
