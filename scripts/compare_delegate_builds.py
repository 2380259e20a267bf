"""Two or more builds of the delegate library on the same `.tflite` models, in one process.

How a change to the native code is judged on this project's shared, noisy machines: the old and
the new library side by side, interleaved, so that the host's drift hits both alike. Each
`--libraries` entry NAME=PATH gets its own interpreter per model: `$TFLITE_SPARSE_DELEGATE_LIBRARY`
is set to PATH for that `load_delegate` call (LiteRT opens each distinct path once; copy a build
to its own path before replacing it). With `--xnnpack` plain LiteRT runs the model too, as the
reference the speedups are taken against.

All interpreters of a model are built and warmed up first, then sampled in `--rounds` rounds
whose starting interpreter rotates; a sample is the mean latency of enough back-to-back invokes
to last `--min_sample_ms`. Per model the table gives each build's median, its speedup over
XNNPACK (ratio of medians), and for every build after the first the median over rounds of
(first build's sample / this build's sample) in the same round: above 1 means faster than the
first build. Outputs are compared bitwise with the first build's on the same random input; the
process exits with status 1 if any differ (a build that changes results is not a speed change).

With `--profile` every build runs with the delegate option `profile` (builds from 2026-12-04 on)
and each model's line is followed by one line per claimed conv: its mean time per invoke in each
build (over the warm-up and every sampled invoke), the microkernel each build runs it with, and
the first build's time over each other build's (above 1: faster than the first build).

Run: python -m scripts.compare_delegate_builds --models=a.tflite,b.tflite \\
       --libraries=old=/tmp/old.so,new=tflite_delegate/libtflite_sparse_delegate.so \\
       [--batch=8] [--threads=2] [--rounds=9] [--min_sample_ms=200] [--json=out.json] \\
       [--profile]
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from scripts.core_round_trip import round_trip_text  # noqa: E402

XNNPACK = "xnnpack"

FLAGS = flags.FLAGS
flags.DEFINE_list("models", [], ".tflite files to run (float32 input)")
flags.DEFINE_list("libraries", [], "NAME=PATH of each delegate build; the first is the baseline")
flags.DEFINE_integer("batch", 1, "batch size the input is resized to", lower_bound=1)
flags.DEFINE_integer(
    "threads", 1, "threads of every interpreter (XNNPACK and delegate)", lower_bound=1
)
flags.DEFINE_integer("rounds", 9, "interleaved rounds of samples", lower_bound=1)
flags.DEFINE_float("min_sample_ms", 200.0, "a sample repeats invokes for at least this long")
flags.DEFINE_bool("xnnpack", True, "also run plain LiteRT (XNNPACK) as the speedup reference")
flags.DEFINE_integer("seed", 0, "seed of the random input")
flags.DEFINE_string("json", None, "also write the rows to this JSON file")
flags.DEFINE_bool("profile", False, "time every claimed conv per build (delegate option profile)")


def parse_libraries(entries: Sequence[str]) -> dict[str, Path]:
    """NAME=PATH entries -> {name: path}, in order; ValueError naming a bad or duplicate entry."""
    libraries: dict[str, Path] = {}
    for entry in entries:
        name, separator, path = entry.partition("=")
        if not separator or not name or not path:
            raise ValueError(f"--libraries entry {entry!r} is not NAME=PATH")
        if name in libraries or name == XNNPACK:
            raise ValueError(f"--libraries name {name!r} is used twice (or is {XNNPACK!r})")
        if not Path(path).is_file():
            raise ValueError(f"--libraries {name}: {path} is not a file")
        libraries[name] = Path(path).resolve()
    if not libraries:
        raise ValueError("--libraries needs at least one NAME=PATH")
    return libraries


@contextlib.contextmanager
def _library_override(path: Path) -> Iterator[None]:
    from tflite_delegate.runtime import LIBRARY_ENVIRONMENT_VARIABLE

    previous = os.environ.get(LIBRARY_ENVIRONMENT_VARIABLE)
    os.environ[LIBRARY_ENVIRONMENT_VARIABLE] = str(path)
    try:
        yield
    finally:
        if previous is None:
            del os.environ[LIBRARY_ENVIRONMENT_VARIABLE]
        else:
            os.environ[LIBRARY_ENVIRONMENT_VARIABLE] = previous


def _interpreter(
    model: Path, library: Path | None, batch: int, threads: int, seed: int, profile: bool = False
) -> Any:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from tflite_delegate.runtime import load_delegate

    delegates = []
    if library is not None:
        with _library_override(library):
            options = {"profile": True} if profile else {}
            delegates = [load_delegate(num_threads=threads, **options)]
    interpreter = Interpreter(
        model_path=str(model), num_threads=threads, experimental_delegates=delegates
    )
    detail = interpreter.get_input_details()[0]
    if batch != detail["shape"][0]:
        interpreter.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    values = np.random.default_rng(seed).standard_normal(detail["shape"]).astype(np.float32)
    interpreter.set_tensor(detail["index"], values)
    interpreter.invoke()  # warm-up, and the output compared below
    return interpreter


def compare_model(
    model: Path,
    libraries: dict[str, Path],
    *,
    batch: int = 1,
    threads: int = 1,
    rounds: int = 9,
    min_sample_ms: float = 200.0,
    xnnpack: bool = True,
    seed: int = 0,
    profile: bool = False,
) -> dict[str, Any]:
    """Times every build (and XNNPACK) on `model`, interleaved; one row (see the module doc).

    Returns {"model", "batch", "threads", "rounds", "median_ms": {name: ms}, "speedup_over_xnnpack":
    {name: x} (empty without XNNPACK), "over_first": {name: median per-round ratio} for every build
    after the first, "bitwise_equal": {name: bool} against the first build}; with `profile` also
    "layers": per claimed conv of the first build, in node order, {"node", "filter_shape" (O, KH,
    KW, I), "run_ms": {name: mean ms per invoke}, "microkernel": {name: registry name}} (a build
    that did not claim the node has no entry for it).
    """
    import numpy as np

    names = list(libraries) + ([XNNPACK] if xnnpack else [])
    interpreters = {
        name: _interpreter(model, libraries.get(name), batch, threads, seed, profile)
        for name in names
    }
    first = names[0]

    def output(name: str) -> np.ndarray:
        interpreter = interpreters[name]
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    bitwise = {name: bool(np.array_equal(output(first), output(name))) for name in libraries}
    start = time.perf_counter()
    interpreters[first].invoke()
    invokes = max(1, int(min_sample_ms / 1e3 / max(time.perf_counter() - start, 1e-6)))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            for _ in range(invokes):
                interpreters[name].invoke()
            samples[name].append((time.perf_counter() - start) / invokes * 1e3)
    median = {name: statistics.median(values) for name, values in samples.items()}
    layers = _layer_times(interpreters, list(libraries)) if profile else None
    row = {
        "model": str(model),
        "batch": batch,
        "threads": threads,
        "rounds": rounds,
        "invokes_per_sample": invokes,
        "median_ms": median,
        "speedup_over_xnnpack": (
            {name: median[XNNPACK] / median[name] for name in libraries} if xnnpack else {}
        ),
        "over_first": {
            name: statistics.median(
                a / b for a, b in zip(samples[first], samples[name], strict=True)
            )
            for name in list(libraries)[1:]
        },
        "bitwise_equal": bitwise,
    }
    if layers is not None:
        row["layers"] = layers
    return row


def _layer_times(interpreters: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    """Per claimed conv of the first build: each build's mean ms per invoke and microkernel."""
    from tflite_delegate.runtime import delegation_report

    claimed = {
        name: {d.node_index: d for d in delegation_report(interpreters[name]) if d.claimed}
        for name in names
    }
    layers = []
    for node, decision in sorted(claimed[names[0]].items()):
        builds = {name: claimed[name][node] for name in names if node in claimed[name]}
        layers.append(
            {
                "node": node,
                "filter_shape": list(decision.filter_shape),
                "run_ms": {name: d.run_ms for name, d in builds.items()},
                "microkernel": {name: d.microkernel for name, d in builds.items()},
            }
        )
    return layers


def format_layers(row: dict[str, Any]) -> list[str]:
    """One line per claimed conv of a profiled row: each build's ms and microkernel, and the
    first build's time over each other build's."""
    lines = []
    for layer in row.get("layers", []):
        shape = "x".join(str(size) for size in layer["filter_shape"])
        parts = [f"  node {layer['node']} ({shape}):"]
        times = layer["run_ms"]
        first = next(iter(times.values()), None)
        for name, ms in times.items():
            text = f"{name} {ms:.3f} ms {layer['microkernel'][name]}" if ms is not None else name
            if first and ms and name != next(iter(times)):
                text += f" [first/this {first / ms:.3f}]"
            parts.append(text)
        lines.append("  ".join(parts))
    return lines


def format_row(row: dict[str, Any]) -> str:
    """One line per model: medians, speedups over XNNPACK, per-round ratios, output check."""
    parts = [f"{Path(row['model']).name} b{row['batch']} t{row['threads']}:"]
    for name, ms in row["median_ms"].items():
        text = f"{name} {ms:.3f} ms"
        if name in row["speedup_over_xnnpack"]:
            text += f" ({row['speedup_over_xnnpack'][name]:.2f}x XNNPACK)"
        if name in row["over_first"]:
            text += f" [first/this per round {row['over_first'][name]:.3f}]"
        parts.append(text)
    differing = [name for name, same in row["bitwise_equal"].items() if not same]
    parts.append(
        f"outputs DIFFER: {', '.join(differing)}" if differing else "outputs bitwise equal"
    )
    return "  ".join(parts)


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        libraries = parse_libraries(FLAGS.libraries)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    models = [Path(model) for model in FLAGS.models]
    if not models:
        raise app.UsageError("--models needs at least one .tflite file")
    missing = [str(model) for model in models if not model.is_file()]
    if missing:
        raise app.UsageError(f"--models: no such file: {', '.join(missing)}")
    print(
        f"# {' '.join(sys.argv)}\n# load average at start: {os.getloadavg()[0]:.2f}; "
        f"{round_trip_text()}",
        flush=True,
    )
    rows = []
    for model in models:
        row = compare_model(
            model,
            libraries,
            batch=FLAGS.batch,
            threads=FLAGS.threads,
            rounds=FLAGS.rounds,
            min_sample_ms=FLAGS.min_sample_ms,
            xnnpack=FLAGS.xnnpack,
            seed=FLAGS.seed,
            profile=FLAGS.profile,
        )
        print(format_row(row), flush=True)
        for line in format_layers(row):
            print(line, flush=True)
        rows.append(row)
    print(f"# load average at end: {os.getloadavg()[0]:.2f}; {round_trip_text()}")
    if FLAGS.json:
        Path(FLAGS.json).write_text(json.dumps({"command": sys.argv, "rows": rows}, indent=1))
    return 0 if all(all(row["bitwise_equal"].values()) for row in rows) else 1


if __name__ == "__main__":
    app.run(main)
