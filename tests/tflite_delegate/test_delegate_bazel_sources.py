"""The Bazel build (root BUILD) compiles exactly the translation units of tools/build_delegate.py.

`make bazel-build` checks the Bazel library itself; this keeps the two source lists from
drifting apart in a suite that runs without Bazel, and checks that every library source on disk
is built.
"""

import re
import runpy
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
NATIVE = REPOSITORY / "tflite_delegate" / "native"


def test_bazel_and_setup_py_compile_the_same_sources():
    builder = runpy.run_path(str(REPOSITORY / "tools" / "build_delegate.py"))
    setup_py_sources = set(builder["PORTABLE_SOURCES"]) | set(builder["X86_MICROKERNEL_SOURCES"])
    bazel_sources = set(
        re.findall(r'"tflite_delegate/native/([\w/]+\.cc)"', (REPOSITORY / "BUILD").read_text())
    )
    on_disk = {path.relative_to(NATIVE).as_posix() for path in NATIVE.rglob("*.cc")}
    assert bazel_sources == setup_py_sources == on_disk
