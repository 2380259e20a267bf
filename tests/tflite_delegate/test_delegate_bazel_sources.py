"""The Bazel build (root BUILD) compiles exactly the translation units of build_library.py.

`make bazel-build` checks the Bazel library itself; this keeps the two source lists from
drifting apart in a suite that runs without Bazel.
"""

import re
import runpy
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def test_bazel_and_setup_py_compile_the_same_sources():
    builder = runpy.run_path(str(REPOSITORY / "tflite_delegate" / "build_library.py"))
    setup_py_sources = set(builder["PORTABLE_SOURCES"]) | set(builder["X86_KERNEL_SOURCES"])
    bazel_sources = set(
        re.findall(r'"tflite_delegate/(\w+\.cc)"', (REPOSITORY / "BUILD").read_text())
    )
    on_disk = {path.name for path in (REPOSITORY / "tflite_delegate").glob("*.cc")}
    assert bazel_sources == setup_py_sources == on_disk
