"""Compile one of the repository's small C probe programs and run it where the benchmark runs.

The benchmarks measure facts of the machine they run on rather than assuming them (the FMA peak
of a core: scripts/fma_peak.py; how fast the two cores exchange a cache line:
scripts/core_round_trip.py). Each fact comes from a self-contained C program under
`benchmarks/ceilings/`, built here with the system C compiler into a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path


def run_c_program(
    source: Path,
    arguments: Sequence[str] = (),
    compiler: str | None = None,
    link_flags: Sequence[str] = (),
) -> str:
    """Builds `source` with `-O2` and runs it with `arguments`; returns its standard output.

    `compiler` defaults to $CC, else cc. Raises RuntimeError naming what failed: no compiler,
    a compile error (with the compiler's message), or the program's exit status and stderr.
    """
    compiler = compiler or os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C compiler {compiler!r} to build {source.name}")
    with tempfile.TemporaryDirectory(prefix=f"{source.stem}_") as directory:
        binary = Path(directory) / source.stem
        built = subprocess.run(
            [compiler, "-O2", str(source), "-o", str(binary), *link_flags],
            capture_output=True,
            text=True,
            check=False,
        )
        if built.returncode != 0:
            raise RuntimeError(f"{compiler} could not build {source}: {built.stderr[-2000:]}")
        ran = subprocess.run([str(binary), *arguments], capture_output=True, text=True, check=False)
        if ran.returncode != 0:
            raise RuntimeError(
                f"{source.stem} exited with {ran.returncode}: {ran.stderr[-2000:].strip()}"
            )
    return ran.stdout
