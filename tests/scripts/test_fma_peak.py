"""scripts.fma_peak: the per-core FMA peak the benchmarks divide by, parsed and measured."""

import pytest

from scripts.fma_peak import FmaPeak, measure_fma_peak, parse_ceilings

# fma_ceilings' output on an AVX2-only CPU (its AVX-512 rows skipped), values made up.
AVX2_ONLY_OUTPUT = """\
| FMA form | microkernels | chains | GFLOP/s | FMA per ns |
|---|---|---:|---:|---:|
| zmm FMA, register operands | fp32 peak | 8 | (CPU lacks AVX-512F/VL) | |
| ymm FMA, {1to8} broadcast (EVEX) | 1x8 (AVX-512) | 8 | (CPU lacks AVX-512F/VL) | |
| ymm vbroadcastss + FMA (VEX) | 1x8, 1x16 (AVX2) | 8 | 91.5 | 5.72 |

| memory pass | bytes read + written | us | GB/s |
|---|---:|---:|---:|
| 56x56x64 in, 56x56x64 out | 1605632 | 14.3 | 112.2 |
"""

AVX512_OUTPUT = """\
| FMA form | microkernels | chains | GFLOP/s | FMA per ns |
|---|---|---:|---:|---:|
| zmm FMA, register operands | fp32 peak | 8 | 227.9 | 7.12 |
| zmm FMA, {1to16} broadcast | 1x16, 1x32 (AVX-512) | 8 | 231.9 | 7.25 |
| ymm FMA, {1to8} broadcast (EVEX) | (16 chains) | 16 | 123.3 | 7.71 |
| 1x16 tile loop with 16 pixels | (not registered) | 16 | 240.5 | 7.52 |
| 1x16 group pass, 16 taps (Cin 64 at 75 %) | 1x16 p8 | 8 | 236.0 | 7.38 |
"""


def test_the_fastest_measured_form_is_the_peak():
    assert parse_ceilings(AVX512_OUTPUT) == FmaPeak(231.9, "zmm FMA, {1to16} broadcast, 8 chains")
    # Skipped rows, the tile loops and group passes (the microkernel's work, not the core's) and
    # the memory table are not FMA rates.
    assert parse_ceilings(AVX2_ONLY_OUTPUT) == FmaPeak(
        91.5, "ymm vbroadcastss + FMA (VEX), 8 chains"
    )


def test_output_without_a_measured_row_is_an_error():
    with pytest.raises(ValueError, match="no measured FMA row"):
        parse_ceilings(AVX2_ONLY_OUTPUT.replace("91.5", "(CPU lacks AVX2/FMA)"))


def test_measured_on_this_machine():
    peak = measure_fma_peak(sample_ms=5)
    # Any x86-64 core with AVX2 issues well over a few GFLOP/s, and none reaches 1000 per core.
    assert 5 < peak.gflops_per_core < 1000
    assert "FMA" in peak.form and "chains" in peak.form


def test_a_missing_compiler_is_named():
    with pytest.raises(RuntimeError, match="no C compiler 'no-such-cc'"):
        measure_fma_peak(compiler="no-such-cc")
    with pytest.raises(ValueError, match="sample_ms must be > 0"):
        measure_fma_peak(sample_ms=0)
