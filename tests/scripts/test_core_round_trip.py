"""scripts.core_round_trip and benchmarks/ceilings/core_round_trip.c: the core-to-core round trip
the benchmark headers print beside the load average."""

import os
import shutil
import subprocess

import pytest

from scripts.core_round_trip import (
    ROUND_TRIP_SOURCE,
    SLOW_ROUND_TRIP_NS,
    describe_round_trip,
    measure_core_round_trip,
    parse_round_trip,
)

TWO_CPUS = len(os.sched_getaffinity(0)) >= 2


def test_the_printed_median_is_parsed():
    assert parse_round_trip("CPUs 0 and 1\nround trip ns: 93.4\n") == 93.4
    with pytest.raises(ValueError, match="printed no round trip"):
        parse_round_trip("CPUs 0 and 1\n")


def test_a_slow_round_trip_carries_a_warning():
    assert describe_round_trip(94.2) == "core-to-core round trip 94 ns"
    slow = describe_round_trip(SLOW_ROUND_TRIP_NS + 200)
    assert slow.startswith("core-to-core round trip 450 ns -- WARNING: above 250 ns")
    assert describe_round_trip(None, "needs two CPUs") == (
        "core-to-core round trip not measured (needs two CPUs)"
    )


@pytest.mark.skipif(not TWO_CPUS, reason="needs two CPUs")
def test_measured_on_this_machine():
    # A cache line crosses between two cores in tens to hundreds of nanoseconds, never in under
    # a nanosecond (the two threads would not be exchanging it) nor in 100 us.
    assert 1.0 < measure_core_round_trip(round_trips=2000) < 100_000.0


def test_bad_counts_and_a_missing_compiler_are_named():
    with pytest.raises(ValueError, match="round_trips must be >= 1"):
        measure_core_round_trip(round_trips=0)
    with pytest.raises(RuntimeError, match="no C compiler 'no-such-cc'"):
        measure_core_round_trip(compiler="no-such-cc")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="built with gcc")
def test_the_program_builds_warning_free_and_refuses_one_cpu(tmp_path):
    binary = tmp_path / "core_round_trip"
    subprocess.run(
        [
            "gcc",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pthread",
            str(ROUND_TRIP_SOURCE),
            "-o",
            str(binary),
        ],
        check=True,
    )
    if shutil.which("taskset") is not None:
        one_cpu = subprocess.run(
            ["taskset", "-c", str(min(os.sched_getaffinity(0))), str(binary), "100"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert one_cpu.returncode == 2
        assert "needs two CPUs, this process may use 1" in one_cpu.stderr
    bad = subprocess.run([str(binary), "0"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "must be a positive integer, got 0" in bad.stderr
