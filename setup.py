"""Build script: package metadata lives in pyproject.toml; this file adds the C++ delegate build.

The delegate is a plain shared library (`tflite_delegate/libtflite_sparse_delegate.so`) loaded by
LiteRT/TFLite through ctypes, not a Python extension module. It still rides on setuptools' `build_ext`
so that `pip install .`, `pip install -e .` and wheel builds all compile it, and so that the wheel is
tagged as platform-specific. The compiler invocation itself lives in `tools/build_delegate.py`, which
the Makefile's sanitizer, C++ test and microbenchmark builds reuse; the sources are under
`tflite_delegate/native/`.
"""

import runpy
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
LIBRARY_MODULE = "tflite_delegate.libtflite_sparse_delegate"


class SharedLibrary(Extension):
    """A shared library that is shipped inside a package but is not importable from Python."""


class BuildSharedLibraries(build_ext):
    def get_ext_filename(self, fullname: str) -> str:
        # distutils asks with the dotted name in some places and with only its last part in
        # others (get_ext_fullpath); both must map to the plain `.so` name, no ABI suffix.
        library_package, library_name = LIBRARY_MODULE.rsplit(".", 1)
        if fullname == LIBRARY_MODULE:
            return f"{library_package}/{library_name}.so"
        if fullname == library_name:
            return f"{library_name}.so"
        return super().get_ext_filename(fullname)

    def build_extension(self, ext: Extension) -> None:
        if not isinstance(ext, SharedLibrary):
            super().build_extension(ext)
            return
        builder = runpy.run_path(str(ROOT / "tools" / "build_delegate.py"))
        builder["build_shared_library"](
            output_path=self.get_ext_fullpath(ext.name),
            build_temp=self.build_temp,
            sanitize=False,
        )


setup(
    ext_modules=[SharedLibrary(LIBRARY_MODULE, sources=[])],
    cmdclass={"build_ext": BuildSharedLibraries},
)
