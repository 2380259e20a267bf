"""Compile the 1xN sparse-convolution delegate (tflite_delegate/native) with g++.

Used by setup.py's build_ext (through runpy, so this file imports only the standard library) and
runnable by hand:

    python tools/build_delegate.py --output tflite_delegate/libtflite_sparse_delegate.so
    python tools/build_delegate.py --output build/sanitizers/lib.so --sanitize
    python tools/build_delegate.py --tests build/native/delegate_native_tests   # C++ unit tests
    python tools/build_delegate.py --bench build/native/bench_kernels           # microbenchmark

Each ISA's microkernels are one translation unit compiled with its own -m flags (never
-march=native); the rest of the library is baseline x86-64 (or whatever the host architecture
is), and the microkernels are selected at run time from the registry
(tflite_delegate/native/microkernels/registry.cc). On non-x86 hosts only the portable
microkernels are built. The Bazel build (BUILD) compiles the same sources with the same flags;
tests/tflite_delegate/test_delegate_bazel_sources.py keeps the two lists equal.
"""

import argparse
import concurrent.futures
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
SOURCE_DIR = REPOSITORY / "tflite_delegate" / "native"
VERSION_SCRIPT = SOURCE_DIR / "abi" / "exports.lds"
NATIVE_TEST_DIR = REPOSITORY / "tests" / "tflite_delegate" / "native"
BENCH_SOURCE = REPOSITORY / "tools" / "bench_kernels.cc"
COMPILER = os.environ.get("CXX", "g++")
PARALLEL_JOBS = 2

# Library sources (relative to SOURCE_DIR), by layer.
PORTABLE_SOURCES = (
    "abi/plugin_entry.cc",
    "claiming/add_fusion.cc",
    "claiming/pad_folding.cc",
    "claiming/pool_fusion.cc",
    "claiming/partition_preview.cc",
    "claiming/tensor_use.cc",
    "claiming/claiming_policy.cc",
    "claiming/constant_weights.cc",
    "claiming/reason_code.cc",
    "common/cache_size.cc",
    "common/conv_geometry.cc",
    "delegate/partition_kernel.cc",
    "delegate/partition_schedule.cc",
    "delegate/delegate.cc",
    "delegate/options.cc",
    "delegate/report_json.cc",
    "delegate/run_log.cc",
    "microkernels/cpu_features.cc",
    "microkernels/f32_generic.cc",
    "microkernels/registry.cc",
    "operator/max_pool_operator.cc",
    "operator/sparse_conv_operator.cc",
    "packing/block_pattern.cc",
    "packing/packing.cc",
    "threading/thread_pool.cc",
)
# Extra flags per ISA translation unit (x86-64 only).
X86_MICROKERNEL_SOURCES = {
    "microkernels/f32_avx2.cc": ("-mavx2", "-mfma"),
    "microkernels/f32_avx512.cc": ("-mavx512f", "-mavx512vl", "-mavx2", "-mfma"),
}
# Microkernels keep multiply and add separate where they are written separately, so every output
# element gets the same arithmetic whichever tile or thread computes it.
MICROKERNEL_FLAGS = ("-ffp-contract=off",)
MICROKERNEL_FILES = {"microkernels/f32_generic.cc", *X86_MICROKERNEL_SOURCES}
# The entry points are the library's only exports; tests and the benchmark link the rest.
ENTRY_POINT_SOURCES = {"abi/plugin_entry.cc"}

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


def library_sources() -> dict[str, tuple[str, ...]]:
    """Every library translation unit of this host (relative to SOURCE_DIR) -> its ISA flags."""
    sources: dict[str, tuple[str, ...]] = {name: () for name in PORTABLE_SOURCES}
    if is_x86_64():
        sources.update(X86_MICROKERNEL_SOURCES)
    return sources


def _compile_command(source: Path, obj: Path, flags: tuple[str, ...], sanitize: bool) -> list[str]:
    optimisation = ("-O1",) if sanitize else ("-O2",)
    extra = SANITIZER_FLAGS if sanitize else ()
    return [
        COMPILER,
        *COMMON_FLAGS,
        *optimisation,
        *extra,
        *flags,
        f"-I{SOURCE_DIR}",
        "-c",
        str(source),
        "-o",
        str(obj),
    ]


def compile_commands(build_temp: Path, sanitize: bool) -> list[tuple[list[str], Path, str]]:
    """The g++ command, object path and source name of every library translation unit."""
    commands = []
    for name, isa_flags in library_sources().items():
        kernel_flags = MICROKERNEL_FLAGS if name in MICROKERNEL_FILES else ()
        obj = build_temp / (name.replace("/", "__").removesuffix(".cc") + ".o")
        command = _compile_command(SOURCE_DIR / name, obj, (*kernel_flags, *isa_flags), sanitize)
        commands.append((command, obj, name))
    return commands


def run(command: list[str]) -> None:
    """Run one compiler/linker command, raising RuntimeError with its output on failure."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"command failed ({result.returncode}): {shlex.join(command)}\n"
            f"{result.stdout}{result.stderr}"
        )


def _newest_input_time(source: Path) -> float:
    """Newest modification time among `source`, every header it may include and this script."""
    headers = [*SOURCE_DIR.rglob("*.h"), *NATIVE_TEST_DIR.glob("*.h")]
    return max(path.stat().st_mtime for path in (source, Path(__file__), *headers))


def _run_all(commands: list[list[str]]) -> None:
    """Run the compile commands two at a time, skipping those whose object is up to date (newer
    than its source, every header and this script: a coarse rule that never misses a change)."""
    stale = []
    for command in commands:
        obj = Path(command[command.index("-o") + 1])
        source = Path(command[command.index("-c") + 1])
        if not obj.exists() or obj.stat().st_mtime < _newest_input_time(source):
            stale.append(command)
    with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL_JOBS) as pool:
        for future in [pool.submit(run, command) for command in stale]:
            future.result()


def _temp_dir(build_temp: str | os.PathLike, sanitize: bool) -> Path:
    temp = Path(build_temp) / ("tflite_delegate_asan" if sanitize else "tflite_delegate")
    temp.mkdir(parents=True, exist_ok=True)
    return temp


def build_shared_library(output_path: str, build_temp: str, sanitize: bool = False) -> None:
    """Compile and link `libtflite_sparse_delegate.so` at `output_path`.

    Object files go to `build_temp` (created if needed). `sanitize=True` builds with
    AddressSanitizer and UndefinedBehaviorSanitizer (UBSan reports abort), for loading with
    LD_PRELOAD of libasan in a test run.
    """
    commands = compile_commands(_temp_dir(build_temp, sanitize), sanitize)
    _run_all([command for command, _, _ in commands])
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
        *(str(obj) for _, obj, _ in commands),
    ]
    run(link)


def build_executable(
    output_path: str, sources: list[Path], build_temp: str, sanitize: bool = False
) -> None:
    """Link `sources` (C++ test or benchmark files) with the library's objects (entry points
    excluded) into the executable `output_path`."""
    temp = _temp_dir(build_temp, sanitize)
    library = [
        entry for entry in compile_commands(temp, sanitize) if entry[2] not in ENTRY_POINT_SOURCES
    ]
    extra = []
    for source in sources:
        obj = temp / ("exe__" + source.stem + ".o")
        flags = (f"-I{source.parent}",)
        extra.append((_compile_command(source, obj, flags, sanitize), obj))
    _run_all([command for command, _, _ in library] + [command for command, _ in extra])
    output = Path(output_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    run(
        [
            COMPILER,
            *COMMON_FLAGS,
            *(SANITIZER_FLAGS if sanitize else ()),
            "-o",
            str(output),
            *(str(obj) for _, obj in extra),
            *(str(obj) for _, obj, _ in library),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--output", help="path of the delegate .so to write")
    target.add_argument("--tests", metavar="PATH", help="build the C++ unit tests at PATH")
    target.add_argument("--bench", metavar="PATH", help="build the microbenchmark at PATH")
    parser.add_argument(
        "--build-temp", default=None, help="object directory (default: build/delegate-objects)"
    )
    parser.add_argument("--sanitize", action="store_true", help="build with ASan + UBSan")
    args = parser.parse_args(argv)
    build_temp = args.build_temp or str(REPOSITORY / "build" / "delegate-objects")
    try:
        if args.output:
            build_shared_library(args.output, build_temp, sanitize=args.sanitize)
            built = args.output
        elif args.tests:
            tests = sorted(NATIVE_TEST_DIR.glob("*.cc"))
            build_executable(args.tests, tests, build_temp, sanitize=args.sanitize)
            built = args.tests
        else:
            build_executable(args.bench, [BENCH_SOURCE], build_temp, sanitize=args.sanitize)
            built = args.bench
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"built {built}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
