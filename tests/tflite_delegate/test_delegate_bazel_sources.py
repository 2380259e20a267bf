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


def test_bazel_and_setup_py_build_each_isa_file_with_the_same_flags():
    """An ISA flag added to one build and not the other (e.g. -mavx512vl) would make the Bazel
    library run different code, or fail to compile, on the same CPU."""
    builder = runpy.run_path(str(REPOSITORY / "tools" / "build_delegate.py"))
    build = (REPOSITORY / "BUILD").read_text()
    for source, flags in builder["X86_MICROKERNEL_SOURCES"].items():
        rule = re.search(
            r'srcs = \["tflite_delegate/native/' + re.escape(source) + r'"\],\s*copts = ([^)]*?\])',
            build,
        )
        assert rule is not None, f"no Bazel rule compiles {source} with copts"
        bazel_flags = re.findall(r'"(-m[\w.=-]+)"', rule.group(1))
        assert sorted(bazel_flags) == sorted(flags), source
