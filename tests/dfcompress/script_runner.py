"""Run one of the dfcompress command-line programs as a new process, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def run_script(module: str, *arguments: str, cwd: Path, timeout: float = 900):
    """`python -m module arguments...` in `cwd` with the repository importable and TensorFlow's
    C++ logging silenced; returns the completed process (stdout/stderr captured as text)."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPOSITORY), environment.get("PYTHONPATH")])
    )
    return subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
