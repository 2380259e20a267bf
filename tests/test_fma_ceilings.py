"""benchmarks/ceilings/fma_ceilings.c builds warning-free and prints one row per FMA form.

The figures are machine facts, not asserted; what is checked is that the program compiles with
the flags of `make bench-ceilings`, runs every row the CPU supports (a wrong target attribute or
operand would fault or not assemble) and prints a positive rate for each.
"""

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "benchmarks" / "ceilings" / "fma_ceilings.c"


@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> Path:
    """The program, compiled once with the flags of `make bench-ceilings`."""
    if platform.machine() != "x86_64" or shutil.which("gcc") is None:
        pytest.skip("x86-64 instruction forms, built with gcc")
    path = tmp_path_factory.mktemp("ceilings") / "fma_ceilings"
    subprocess.run(
        ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", str(SOURCE), "-o", str(path)], check=True
    )
    return path


def test_fma_ceilings_runs_every_supported_row(binary):
    output = subprocess.run([str(binary), "2"], capture_output=True, text=True, check=True).stdout
    fma_table, memory_table = output.strip().split("\n\n")
    rows = [line for line in fma_table.splitlines() if "---" not in line]
    assert rows[0].startswith("| FMA form |")
    assert len(rows) == 1 + 12
    # Then two rows time the 1x16 microkernel's own inner loop, with 8 and 16 pixels, and the
    # last two a whole group pass of it (bias, tap vectors, clamp, stores) at 7 and 16 taps.
    assert rows[-4].startswith("| 1x16 tile loop: weight + tap loads, 8 broadcast FMAs | ")
    assert rows[-3].startswith("| 1x16 tile loop with 16 pixels | ")
    assert rows[-2].startswith("| 1x16 group pass, 7 taps (Cin 64 at 90 %): ")
    assert rows[-1].startswith("| 1x16 group pass, 16 taps (Cin 64 at 75 %) | ")
    for row in rows[1:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if cells[3].startswith("(CPU lacks"):
            continue
        assert float(cells[3]) > 0 and float(cells[4]) > 0, row
        assert re.fullmatch(r"\d+", cells[2]), row
    header, _, memory_row = memory_table.splitlines()
    assert header.startswith("| memory pass |")
    cells = [cell.strip() for cell in memory_row.strip("|").split("|")]
    assert cells[1] == str(2 * 56 * 56 * 64 * 4)  # a 56x56x64 float input and output, in bytes
    if not cells[2].startswith("(CPU lacks"):
        assert float(cells[2]) > 0 and float(cells[3]) > 0, memory_row


def test_fma_ceilings_rejects_a_bad_sample_length(binary):
    result = subprocess.run([str(binary), "-5"], capture_output=True, text=True)
    assert result.returncode == 2 and "milliseconds per sample" in result.stderr
