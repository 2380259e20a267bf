"""How long this machine's first two CPUs take to pass a cache line back and forth.

A 2-thread layer of the sparse delegate reads, every layer, data the other thread wrote, and
joins its threads once or twice per layer; on this project's 2-core VMs both cost what a cache
line's trip between the two cores costs. That trip is not fixed: from seconds to minutes at a
time it takes 400-1500 ns instead of about 90 ns (the host places or pauses the two vCPUs
differently), and then the delegate's 2-thread timings of ResNet-50 grow by 20-35 % while
XNNPACK's grow by about 5 % (docs/RESULTS.md, "Claiming tiles a few at a time"). The benchmarks
print the round trip beside the load average, measured by
`benchmarks/ceilings/core_round_trip.c`: a sample at the start and at the end of a run, so a
slow one says the run met such a period (a fast one does not rule one out in between).
"""

from __future__ import annotations

import re
from pathlib import Path

from scripts.c_probe import run_c_program

REPOSITORY = Path(__file__).resolve().parents[1]
ROUND_TRIP_SOURCE = REPOSITORY / "benchmarks" / "ceilings" / "core_round_trip.c"

# Round trips above this many nanoseconds are the slow periods (400-1500 ns measured; the usual
# placement measures 80-145 ns).
SLOW_ROUND_TRIP_NS = 250.0

_LINE = re.compile(r"^round trip ns: ([0-9.]+)$", re.MULTILINE)


def parse_round_trip(output: str) -> float:
    """The median round trip in nanoseconds that core_round_trip printed.

    Raises ValueError when the output holds no "round trip ns:" line.
    """
    match = _LINE.search(output)
    if match is None:
        raise ValueError("core_round_trip printed no round trip:\n" + output[-2000:])
    return float(match.group(1))


def measure_core_round_trip(round_trips: int = 20000, compiler: str | None = None) -> float:
    """Median of 5 samples of `round_trips` round trips each between the first two CPUs this
    process may use, in nanoseconds.

    Raises ValueError for a non-positive count and RuntimeError naming what failed (no
    compiler, a compile error, fewer than two CPUs).
    """
    if round_trips < 1:
        raise ValueError(f"round_trips must be >= 1, got {round_trips}")
    output = run_c_program(ROUND_TRIP_SOURCE, [str(round_trips)], compiler, ["-pthread"])
    return parse_round_trip(output)


def describe_round_trip(round_trip_ns: float | None, reason: str = "") -> str:
    """The benchmark header's text for a measured round trip (None: not measured, `reason`)."""
    if round_trip_ns is None:
        return f"core-to-core round trip not measured ({reason})"
    text = f"core-to-core round trip {round_trip_ns:.0f} ns"
    if round_trip_ns > SLOW_ROUND_TRIP_NS:
        text += (
            f" -- WARNING: above {SLOW_ROUND_TRIP_NS:.0f} ns, the two cores exchange data slowly;"
            " 2-thread timings of the delegate are suspect"
        )
    return text


def round_trip_text() -> str:
    """Measures the round trip now and describes it (a failure is described, not raised)."""
    try:
        return describe_round_trip(measure_core_round_trip())
    except (RuntimeError, ValueError) as error:
        return describe_round_trip(None, str(error).splitlines()[0])
