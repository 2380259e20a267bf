"""Compile the 1xN sparse-convolution delegate into a plain shared library with g++.

Used by setup.py's build_ext (through runpy, so this file imports only the standard library) and
runnable by hand:

    python tflite_delegate/build_library.py --output tflite_delegate/libtflite_sparse_delegate.so
    python tflite_delegate/build_library.py --output /tmp/asan/libtflite_sparse_delegate.so --sanitize

Each ISA variant of the kernels is its own translation unit compiled with its own -m flags (never
-march=native); the rest of the library is baseline x86-64 (or whatever the host architecture
is), and the kernels are selected at run time. On non-x86 hosts only the portable kernels are
built.
"""

import argparse
import concurrent.futures
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent
VERSION_SCRIPT = SOURCE_DIR / "exports.lds"
COMPILER = os.environ.get("CXX", "g++")
PARALLEL_JOBS = 2

PORTABLE_SOURCES = (
    "block_pattern.cc",
    "claiming_policy.cc",
    "conv_geometry.cc",
    "cpu_features.cc",
    "delegate.cc",
    "kernels_dispatch.cc",
    "kernels_generic.cc",
    "options.cc",
    "packing.cc",
    "plugin_entry.cc",
    "report_json.cc",
    "sparse_conv_kernel.cc",
    "thread_pool.cc",
)
# Extra flags per ISA translation unit (x86-64 only).
X86_KERNEL_SOURCES = {
    "kernels_avx2.cc": ("-mavx2", "-mfma"),
    "kernels_avx512.cc": ("-mavx512f", "-mavx2", "-mfma"),
}
# Kernels keep multiply and add separate where they are written separately, so every output
# element gets the same arithmetic whichever tile or thread computes it.
KERNEL_FLAGS = ("-ffp-contract=off",)
KERNEL_FILES = {"kernels_generic.cc", *X86_KERNEL_SOURCES}

COMMON_FLAGS = (
    "-std=c++17",
    "-fPIC",
    "-fvisibility=hidden",
    "-fvisibility-inlines-hidden",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pthread",
)
SANITIZER_FLAGS = (
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=undefined",
    "-fno-omit-frame-pointer",
)


def is_x86_64() -> bool:
    """True when the host (and so the default g++ target) is x86-64."""
    return platform.machine().lower() in {"x86_64", "amd64"}


def compile_commands(build_temp: Path, sanitize: bool) -> list[tuple[list[str], Path]]:
    """The g++ command and object path for every translation unit of this host."""
    optimisation = ("-O1",) if sanitize else ("-O2",)
    extra = SANITIZER_FLAGS if sanitize else ()
    sources: dict[str, tuple[str, ...]] = {name: () for name in PORTABLE_SOURCES}
    if is_x86_64():
        sources.update(X86_KERNEL_SOURCES)
    commands = []
    for name, isa_flags in sources.items():
        kernel_flags = KERNEL_FLAGS if name in KERNEL_FILES else ()
        obj = build_temp / (Path(name).stem + ".o")
        command = [
            COMPILER,
            *COMMON_FLAGS,
            *optimisation,
            *extra,
            *kernel_flags,
            *isa_flags,
            "-c",
            str(SOURCE_DIR / name),
            "-o",
            str(obj),
        ]
        commands.append((command, obj))
    return commands


def run(command: list[str]) -> None:
    """Run one compiler/linker command, raising RuntimeError with its output on failure."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"command failed ({result.returncode}): {shlex.join(command)}\n"
            f"{result.stdout}{result.stderr}"
        )


def build_shared_library(output_path: str, build_temp: str, sanitize: bool = False) -> None:
    """Compile and link `libtflite_sparse_delegate.so` at `output_path`.

    Object files go to `build_temp` (created if needed). `sanitize=True` builds with
    AddressSanitizer and UndefinedBehaviorSanitizer (UBSan reports abort), for loading with
    LD_PRELOAD of libasan in a test run.
    """
    temp = Path(build_temp) / ("tflite_delegate_asan" if sanitize else "tflite_delegate")
    temp.mkdir(parents=True, exist_ok=True)
    commands = compile_commands(temp, sanitize)
    with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL_JOBS) as pool:
        for future in [pool.submit(run, command) for command, _ in commands]:
            future.result()
    output = Path(output_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    link = [
        COMPILER,
        "-shared",
        *COMMON_FLAGS,
        *(SANITIZER_FLAGS if sanitize else ()),
        f"-Wl,--version-script={VERSION_SCRIPT}",
        "-Wl,--no-undefined",
        "-o",
        str(output),
        *(str(obj) for _, obj in commands),
    ]
    run(link)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="path of the .so to write")
    parser.add_argument(
        "--build-temp", default=None, help="object directory (default: build/delegate-objects)"
    )
    parser.add_argument("--sanitize", action="store_true", help="build with ASan + UBSan")
    args = parser.parse_args(argv)
    build_temp = args.build_temp or str(SOURCE_DIR.parent / "build" / "delegate-objects")
    try:
        build_shared_library(args.output, build_temp, sanitize=args.sanitize)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"built {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
