"""The fp32 FMA peak of one core of this machine, measured rather than assumed.

The benchmarks report each row's GFLOP/s as a share of the core's peak. A fixed number is wrong
as soon as the machine changes: this project's VMs moved from AMD Zen 4 (one 512-bit FMA per
cycle, about 115 GFLOP/s) to Zen 5 (two per cycle, about 230 GFLOP/s) under the same model name.
So the peak is measured where the benchmark runs: `benchmarks/ceilings/fma_ceilings.c` (the
program behind `make bench-ceilings`) is compiled with the system C compiler and run with short
samples, and the peak is the highest rate of any FMA form it prints (the 512-bit register form
on AVX-512 machines, the 256-bit forms on AVX2-only ones).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from scripts.c_probe import run_c_program

REPOSITORY = Path(__file__).resolve().parents[1]
CEILINGS_SOURCE = REPOSITORY / "benchmarks" / "ceilings" / "fma_ceilings.c"

# A row of fma_ceilings' first table: | form | used by | chains | GFLOP/s | FMA per ns |
_ROW = re.compile(r"^\|\s*([^|]+?)\s*\|\s*[^|]*\|\s*(\d+)\s*\|\s*([0-9.]+)\s*\|\s*[0-9.]+\s*\|$")


@dataclass(frozen=True)
class FmaPeak:
    """gflops_per_core: the highest rate, GFLOP/s; form: the FMA form that reached it."""

    gflops_per_core: float
    form: str


def parse_ceilings(output: str) -> FmaPeak:
    """The fastest FMA form in fma_ceilings' printed table (rows the CPU lacks and the 1x16
    tile-loop and group-pass rows are skipped).

    Raises ValueError when the output holds no measured row.
    """
    best: FmaPeak | None = None
    for line in output.splitlines():
        match = _ROW.match(line.strip())
        if match is None:
            continue
        form, chains, gflops = match.group(1), match.group(2), float(match.group(3))
        # The tile-loop and group-pass rows time the 1x16 microkernel's own work, loads and
        # stores included: a core's peak is what its FMA forms alone reach (those rows can only
        # match it within noise).
        if "tile loop" in form or "group pass" in form:
            continue
        if best is None or gflops > best.gflops_per_core:
            best = FmaPeak(gflops, f"{form}, {chains} chains")
    if best is None:
        raise ValueError("fma_ceilings printed no measured FMA row:\n" + output[-2000:])
    return best


def measure_fma_peak(sample_ms: float = 40.0, compiler: str | None = None) -> FmaPeak:
    """Compiles and runs fma_ceilings (samples of `sample_ms` ms, best of 5 per form).

    `compiler` defaults to $CC, else cc. Raises RuntimeError naming what failed (no compiler,
    a compile error, the program's exit status); the caller can fall back to a given peak.
    """
    if not sample_ms > 0:
        raise ValueError(f"sample_ms must be > 0, got {sample_ms}")
    return parse_ceilings(run_c_program(CEILINGS_SOURCE, [f"{sample_ms:g}"], compiler))
