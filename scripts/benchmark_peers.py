"""Our 1xN sparse delegate against other engines on this CPU: libxnnpack's sparse operator and
onnxruntime's dense run.

- **operator**: 1x1 convolutions (batch 1, Conv2D + bias + ReLU) at several sparsities. Our
  single-conv model (1xN blocks, built and cached as scripts.benchmark_delegate does) runs with
  the delegate and with LiteRT's dense XNNPACK; the very same weights, read back from that
  `.tflite`, go to Debian libxnnpack-dev's NCHW convolution (`xnn_create_convolution2d_nchw_f32`,
  its 2022 API), whose SpMM microkernels skip every zero weight whatever the pattern. That peer
  is the small C program benchmarks/peers/xnnpack_sparse_conv.c, compiled here with gcc into
  the cache (never linked into the project), which checks its output against a double-precision
  loop and then times invokes on request, so it is interleaved with the other engines. The
  tensor layouts differ (NCHW there, NHWC here); each engine is timed on its own layout.
- **model**: a model-level configuration of scripts.benchmark_delegate (default ResNet-50 1x16
  p=66/128, "2.0G") with our delegate, with dense XNNPACK and with onnxruntime's CPU provider on
  the same network: the cached `.tflite` converted to ONNX by tf2onnx (so the weights, the folded
  batch norms and the zeros are identical; onnxruntime gets no speed from the zeros). Outputs are
  compared on one random input.

Timing as in scripts.benchmark_delegate: every engine at every thread count built and warmed
up, then `--repeats` interleaved rounds, medians, ratios of medians. The peers' worker threads
do not spin between runs (`--ort_spinning`, `--libxnnpack_spinning` to allow it), or they would
take the cores from the engines measured after them (on a busy machine, libxnnpack's spinning
workers also slow its own 2-thread runs tenfold).

Needs: gcc, Debian's libxnnpack-dev and libpthreadpool-dev (operator level), and the PyPI
packages onnxruntime and tf2onnx (model level). Outputs in `--out_dir`: peer_benchmark.md
(carrying the command) and peer_benchmark.json.

Run: python -m scripts.benchmark_peers [--quick] [--levels operator --threads 1 ...]
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from scripts import benchmark_delegate as bench  # noqa: E402

if TYPE_CHECKING:
    import numpy as np

LEVELS = ("operator", "model")
REPOSITORY = Path(__file__).resolve().parents[1]
PEER_SOURCE = REPOSITORY / "benchmarks" / "peers" / "xnnpack_sparse_conv.c"
XNNPACK_HEADER = Path("/usr/include/xnnpack.h")
APT_HINT = "as root: apt-get update && apt-get install -y libxnnpack-dev libpthreadpool-dev"
RESULT_STEM = "peer_benchmark"
QUICK_DEFAULTS: dict[str, Any] = {
    "shapes": ["7:1024:1024"],
    "sparsity": ["0.9"],
    "repeats": 3,
    "warmup": 1,
    "min_sample_ms": 5.0,
}

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Define this script's absl flags (only when it runs as the program)."""
    flags.DEFINE_list("levels", list(LEVELS), f"What to measure: any of {LEVELS}.")
    flags.DEFINE_list(
        "shapes",
        ["56:128:128", "28:256:256", "14:512:512", "7:1024:1024"],
        "Operator level: 1x1 convs as WIDTH:CIN:COUT (square WIDTH x WIDTH input, stride 1).",
    )
    flags.DEFINE_list("sparsity", ["0.7", "0.8", "0.9", "0.95"], "Operator level: sparsities.")
    flags.DEFINE_integer("block_n", 16, "Operator level: block length N of our model's 1xN blocks.")
    flags.DEFINE_list("threads", ["1", "2"], "Thread counts (every engine runs at each).")
    flags.DEFINE_enum(
        "model_config",
        "resnet50_2.0G",
        list(bench.MODEL_CONFIGS),
        "Model level: a configuration of scripts.benchmark_delegate.",
    )
    flags.DEFINE_list("batches", ["1"], "Model level: batch sizes.")
    flags.DEFINE_integer("repeats", 15, "Interleaved rounds: timed samples per engine.")
    flags.DEFINE_integer("warmup", 2, "Untimed invokes per engine before timing.")
    flags.DEFINE_float("min_sample_ms", 20.0, "A sample averages invokes lasting at least this.")
    flags.DEFINE_float("min_sparsity", None, "Delegate option min_sparsity; default: its own.")
    flags.DEFINE_float(
        "tolerance", 1e-4, "Largest accepted max|difference| / max|reference| of an engine."
    )
    flags.DEFINE_bool("ort_spinning", False, "Let onnxruntime's idle worker threads spin.")
    flags.DEFINE_bool(
        "libxnnpack_spinning", False, "Let libxnnpack's idle worker threads spin (no yield)."
    )
    flags.DEFINE_integer("seed", 0, "Seed of weights, masks and inputs.")
    flags.DEFINE_string(
        "out_dir",
        None,
        "Results and the cache (models, peer binary); default results/peer_benchmark "
        "(results/peer_benchmark_quick with --quick).",
    )
    flags.DEFINE_bool("rebuild", False, "Reconvert cached models and rebuild the peer binary.")
    flags.DEFINE_bool(
        "convert_only", False, "Fill the cache (models, ONNX, peer binary) and exit without timing."
    )
    bench.define_quick_flag(QUICK_DEFAULTS)


@dataclass(frozen=True)
class PeerSettings:
    """Validated flags."""

    levels: tuple[str, ...]
    shapes: tuple[bench.ConvShape, ...]
    sparsities: tuple[float, ...]
    block_n: int
    threads: tuple[int, ...]
    config: bench.ModelConfig
    batches: tuple[int, ...]
    repeats: int
    warmup: int
    min_sample_ms: float
    min_sparsity: float | None
    tolerance: float
    ort_spinning: bool
    libxnnpack_spinning: bool
    seed: int
    out_dir: Path
    rebuild: bool


def parse_shape(text: str) -> bench.ConvShape:
    """'WIDTH:CIN:COUT' -> a 1x1 stride-1 ConvShape; raises app.UsageError naming the entry."""
    match = re.fullmatch(r"(\d+):(\d+):(\d+)", text.strip())
    if not match or min(int(v) for v in match.groups()) < 1:
        raise app.UsageError(f"--shapes entry {text!r} is not WIDTH:CIN:COUT (positive integers)")
    width, cin, cout = (int(v) for v in match.groups())
    return bench.ConvShape(out_size=width, cin=cin, cout=cout, kernel=1, stride=1)


def validate_flags() -> PeerSettings:
    """Check every flag and return them typed; raises app.UsageError naming the bad flag."""
    bench.apply_quick_defaults(QUICK_DEFAULTS)
    levels = bench._choices("levels", FLAGS.levels, LEVELS)
    if not levels:
        raise app.UsageError("--levels is empty")
    shapes = tuple(dict.fromkeys(parse_shape(text) for text in FLAGS.shapes))
    sparsities = bench.parse_sparsities(FLAGS.sparsity)
    if FLAGS.block_n not in bench.DELEGATE_BLOCK_NS:
        raise app.UsageError(f"--block_n must be in {bench.DELEGATE_BLOCK_NS}")
    bad = [shape for shape in shapes if shape.cout % FLAGS.block_n]
    if bad:
        raise app.UsageError(f"--shapes {bad}: Cout not divisible by --block_n {FLAGS.block_n}")
    if "operator" in levels and (not shapes or not sparsities):
        raise app.UsageError("the operator level needs --shapes and --sparsity")
    threads = bench._integers("threads", FLAGS.threads, 1)
    batches = bench._integers("batches", FLAGS.batches, 1)
    if not threads or ("model" in levels and not batches):
        raise app.UsageError("--threads (and --batches for the model level) must not be empty")
    if FLAGS.repeats < 1 or FLAGS.warmup < 0 or FLAGS.min_sample_ms < 0:
        raise app.UsageError("--repeats must be >= 1, --warmup and --min_sample_ms >= 0")
    if FLAGS.tolerance <= 0:
        raise app.UsageError("--tolerance must be > 0")
    out_dir = Path(FLAGS.out_dir or "results/peer_benchmark" + ("_quick" if FLAGS.quick else ""))
    if out_dir.exists() and not out_dir.is_dir():
        raise app.UsageError(f"--out_dir {out_dir} exists and is not a directory")
    return PeerSettings(
        levels=levels,
        shapes=shapes,
        sparsities=sparsities,
        block_n=FLAGS.block_n,
        threads=threads,
        config=bench.MODEL_CONFIGS[FLAGS.model_config],
        batches=batches,
        repeats=FLAGS.repeats,
        warmup=FLAGS.warmup,
        min_sample_ms=FLAGS.min_sample_ms,
        min_sparsity=FLAGS.min_sparsity,
        tolerance=FLAGS.tolerance,
        ort_spinning=FLAGS.ort_spinning,
        libxnnpack_spinning=FLAGS.libxnnpack_spinning,
        seed=FLAGS.seed,
        out_dir=out_dir,
        rebuild=FLAGS.rebuild,
    )


def check_requirements(levels: Sequence[str]) -> None:
    """Fail early, saying what to install, when a level's tools are missing."""
    missing = []
    if "operator" in levels:
        if shutil.which("gcc") is None:
            missing.append("gcc (apt-get install gcc)")
        if not XNNPACK_HEADER.is_file():
            missing.append(f"libxnnpack-dev and libpthreadpool-dev ({APT_HINT})")
    if "model" in levels:
        for module in ("onnxruntime", "tf2onnx"):
            if importlib.util.find_spec(module) is None:  # found, not imported (tf2onnx loads TF)
                missing.append(f"the PyPI package {module} (pip install {module})")
    if missing:
        raise app.UsageError("missing: " + "; ".join(missing))


# ----------------------------------------------------------------------------- libxnnpack peer


def build_peer(cache: Path, rebuild: bool) -> Path:
    """Compile benchmarks/peers/xnnpack_sparse_conv.c into the cache (when newer); its path."""
    binary = cache / "xnnpack_sparse_conv"
    if not rebuild and binary.is_file() and binary.stat().st_mtime >= PEER_SOURCE.stat().st_mtime:
        return binary
    temporary = binary.with_name(f".{binary.name}.tmp")
    command = [
        "gcc",
        "-O2",
        "-std=c11",
        "-D_POSIX_C_SOURCE=199309L",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-o",
        str(temporary),
        str(PEER_SOURCE),
        "-lXNNPACK",
        "-lpthreadpool",
        "-lm",
    ]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"building the libxnnpack peer failed:\n{completed.stderr}")
    os.replace(temporary, binary)
    return binary


class XnnpackSparsePeer:
    """The C peer as a child process: checks itself at start, then times invokes on request."""

    def __init__(
        self, binary: Path, weights: Path, shape: bench.ConvShape, threads: int, spinning: bool
    ):
        arguments = [shape.out_size, shape.out_size, shape.cin, shape.cout, threads]
        arguments.append("spin" if spinning else "yield")
        self._process = subprocess.Popen(
            [str(binary), str(weights), *(str(value) for value in arguments)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self._process.stdout.readline()
        match = re.fullmatch(
            r"ready nonzeros=(\d+) max_abs_err=(\S+) max_abs_out=(\S+)\n", line or ""
        )
        if not match:
            self.close()
            raise RuntimeError(f"libxnnpack peer failed to start: {self._process.stderr.read()}")
        self.nonzeros = int(match.group(1))
        self.max_abs_err = float(match.group(2))
        self.max_abs_out = float(match.group(3))

    def sample(self, count: int) -> float:
        """Seconds that `count` back-to-back operator runs take (measured inside the peer)."""
        self._process.stdin.write(f"time {count}\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"libxnnpack peer stopped: {self._process.stderr.read()}")
        return float(line)

    def close(self) -> None:
        """Stop the child process (politely, then by force)."""
        if self._process.poll() is None:
            try:
                self._process.stdin.write("quit\n")
                self._process.stdin.close()
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()


def conv_weights(path: Path, shape: bench.ConvShape) -> tuple[np.ndarray, np.ndarray]:
    """(filter (O, I) float32, bias (O,) float32) of the single 1x1 CONV_2D in a .tflite."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    details = interpreter.get_tensor_details()
    filters = [d for d in details if list(d["shape"]) == [shape.cout, 1, 1, shape.cin]]
    biases = [d for d in details if list(d["shape"]) == [shape.cout]]
    if len(filters) != 1 or len(biases) != 1:
        raise ValueError(f"{path}: no single 1x1 filter and bias of {shape.describe()}")
    weights = interpreter.get_tensor(filters[0]["index"])[:, 0, 0, :].copy()
    return weights, interpreter.get_tensor(biases[0]["index"]).copy()


def _per_engine_ms(
    samples: dict[tuple[str, int], list[float]], threads: int
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Median and all samples in ms of every engine measured at `threads`."""
    engines = [engine for engine, count in samples if count == threads]
    medians = {engine: statistics.median(samples[engine, threads]) * 1e3 for engine in engines}
    return medians, {engine: [v * 1e3 for v in samples[engine, threads]] for engine in engines}


def run_operator_level(settings: PeerSettings, binary: Path) -> list[dict]:
    """Ours, libxnnpack sparse and dense XNNPACK on every (shape, sparsity, threads)."""
    import numpy as np

    cache = bench.cache_dir(settings.out_dir)
    rows = []
    for shape in settings.shapes:
        for sparsity in settings.sparsities:
            path, _ = bench.prepare_layer_model(
                settings.out_dir, settings.seed, shape, settings.block_n, sparsity, settings.rebuild
            )
            weights, bias = conv_weights(path, shape)
            weights_path = cache / f"{path.stem}.oi_bias.f32"
            np.concatenate([weights.ravel(), bias]).astype("<f4").tofile(weights_path)
            nonzeros = int(np.count_nonzero(weights))
            rng = np.random.default_rng([settings.seed, shape.out_size, shape.cin, shape.cout])
            image = rng.standard_normal((1, shape.in_size, shape.in_size, shape.cin), np.float32)
            samplers: dict[Any, Callable[[int], float]] = {}
            interpreters = {}
            peers: list[XnnpackSparsePeer] = []
            outputs = {}
            try:
                for threads in settings.threads:
                    for engine in ("delegate", "xnnpack"):
                        interpreter = bench.make_interpreter(
                            engine, path, threads, 1, settings.min_sparsity
                        )
                        outputs[engine, threads] = bench.run_once(interpreter, image)
                        interpreters[engine, threads] = interpreter
                        samplers[engine, threads] = bench.interpreter_sampler(interpreter)
                    peer = XnnpackSparsePeer(
                        binary, weights_path, shape, threads, settings.libxnnpack_spinning
                    )
                    peers.append(peer)
                    if peer.nonzeros != nonzeros:
                        raise RuntimeError(f"peer read {peer.nonzeros} non-zeros, not {nonzeros}")
                    samplers["libxnnpack", threads] = peer.sample
                samples, _ = bench.time_interleaved(
                    samplers, settings.repeats, settings.warmup, settings.min_sample_ms
                )
            finally:
                for peer in peers:
                    peer.close()
            pruned = bench.pruned_blocks(sparsity, shape.cin)
            kept_flops = shape.flops() * (shape.cin - pruned) / shape.cin
            for threads, peer in zip(settings.threads, peers, strict=True):
                medians, samples_ms = _per_engine_ms(samples, threads)
                match = bench.agreement(outputs["delegate", threads], outputs["xnnpack", threads])
                peer_relative = peer.max_abs_err / peer.max_abs_out if peer.max_abs_out else 0.0
                row = {
                    "level": "operator",
                    "conv": shape.describe(),
                    "width": shape.out_size,
                    "cin": shape.cin,
                    "cout": shape.cout,
                    "block_n": settings.block_n,
                    "sparsity": sparsity,
                    "block_sparsity": pruned / shape.cin,
                    "weight_sparsity": 1 - nonzeros / weights.size,
                    "threads": threads,
                    "delegate_ms": medians["delegate"],
                    "libxnnpack_sparse_ms": medians["libxnnpack"],
                    "xnnpack_dense_ms": medians["xnnpack"],
                    "delegate_speedup": medians["xnnpack"] / medians["delegate"],
                    "libxnnpack_speedup": medians["xnnpack"] / medians["libxnnpack"],
                    "delegate_over_libxnnpack": medians["libxnnpack"] / medians["delegate"],
                    "ideal_speedup": shape.flops() / kept_flops,
                    "delegate_gflops": kept_flops / (medians["delegate"] * 1e6),
                    "libxnnpack_gflops": kept_flops / (medians["libxnnpack"] * 1e6),
                    "claims": bench.claim_facts(interpreters["delegate", threads]),
                    "agreement_delegate_xnnpack": match,
                    "libxnnpack_relative_error": peer_relative,
                    "agree": match["relative"] <= settings.tolerance
                    and peer_relative <= settings.tolerance,
                    "samples_ms": samples_ms,
                    "tflite": str(path),
                }
                rows.append(row)
                print(
                    f"{shape.describe()} @{shape.out_size} s={sparsity:g} {threads}T: ours "
                    f"{row['delegate_ms']:.3f} ms, libxnnpack sparse "
                    f"{row['libxnnpack_sparse_ms']:.3f} ms, dense XNNPACK "
                    f"{row['xnnpack_dense_ms']:.3f} ms; ours/libxnnpack "
                    f"{row['delegate_over_libxnnpack']:.2f}x",
                    flush=True,
                )
            del interpreters, samplers
    return rows


# ----------------------------------------------------------------------------- onnxruntime


def onnx_model(tflite: Path, rebuild: bool) -> Path:
    """The .tflite converted to ONNX with tf2onnx (cached next to it)."""
    import contextlib
    import io
    import warnings

    import tf2onnx

    path = tflite.with_suffix(".onnx")
    if path.is_file() and not rebuild:
        return path
    temporary = path.with_name(f".{path.name}.tmp")
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # tf2onnx reads the flatbuffer through tf.lite.Interpreter, which warns it is deprecated.
        warnings.simplefilter("ignore", UserWarning)
        tf2onnx.convert.from_tflite(str(tflite), output_path=str(temporary))
    os.replace(temporary, path)
    return path


def ort_session(path: Path, threads: int, spinning: bool) -> Any:
    """onnxruntime CPU session: `threads` intra-op threads, sequential, all graph optimisations."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_model_level(settings: PeerSettings) -> list[dict]:
    """Ours, dense XNNPACK and dense onnxruntime on one model configuration."""
    import numpy as np

    config = settings.config
    tflite, facts = bench.prepare_model(settings.out_dir, settings.seed, config, settings.rebuild)
    print(f"converting {tflite.name} to ONNX ...", flush=True)
    onnx_path = onnx_model(tflite, settings.rebuild)
    rows = []
    for batch in settings.batches:
        rng = np.random.default_rng([settings.seed, batch, 99])
        image = rng.standard_normal((batch, *bench.IMAGE_SHAPE), dtype=np.float32)
        samplers: dict[Any, Callable[[int], float]] = {}
        interpreters = {}
        outputs = {}
        for threads in settings.threads:
            for engine in ("delegate", "xnnpack"):
                interpreter = bench.make_interpreter(
                    engine, tflite, threads, batch, settings.min_sparsity
                )
                outputs[engine, threads] = bench.run_once(interpreter, image)
                interpreters[engine, threads] = interpreter
                samplers[engine, threads] = bench.interpreter_sampler(interpreter)
            session = ort_session(onnx_path, threads, settings.ort_spinning)
            feed = {session.get_inputs()[0].name: image}
            outputs["onnxruntime", threads] = session.run(None, feed)[0]

            def sample(count: int, session=session, feed=feed) -> float:
                start = time.perf_counter()
                for _ in range(count):
                    session.run(None, feed)
                return time.perf_counter() - start

            samplers["onnxruntime", threads] = sample
        samples, _ = bench.time_interleaved(
            samplers, settings.repeats, settings.warmup, settings.min_sample_ms
        )
        for threads in settings.threads:
            medians, samples_ms = _per_engine_ms(samples, threads)
            reference = outputs["xnnpack", threads]
            delegate_match = bench.agreement(outputs["delegate", threads], reference)
            ort_match = bench.agreement(outputs["onnxruntime", threads], reference)
            row = {
                "level": "model",
                "config": config.name,
                "label": config.label,
                "batch": batch,
                "threads": threads,
                "delegate_ms": medians["delegate"],
                "xnnpack_dense_ms": medians["xnnpack"],
                "onnxruntime_dense_ms": medians["onnxruntime"],
                "delegate_speedup": medians["xnnpack"] / medians["delegate"],
                "delegate_over_onnxruntime": medians["onnxruntime"] / medians["delegate"],
                "onnxruntime_over_xnnpack": medians["xnnpack"] / medians["onnxruntime"],
                "ideal_speedup": facts["dense_flops"] / facts["kept_flops"],
                "dense_gflops_onnxruntime": facts["dense_flops"]
                * batch
                / (medians["onnxruntime"] * 1e6),
                "claims": bench.claim_facts(interpreters["delegate", threads]),
                "agreement_delegate_xnnpack": delegate_match,
                "agreement_onnxruntime_xnnpack": ort_match,
                "agree": max(delegate_match["relative"], ort_match["relative"])
                <= settings.tolerance,
                "samples_ms": samples_ms,
                "tflite": str(tflite),
                "onnx": str(onnx_path),
            }
            rows.append(row)
            print(
                f"{config.label} b{batch} {threads}T: ours {row['delegate_ms']:.2f} ms, dense "
                f"XNNPACK {row['xnnpack_dense_ms']:.2f} ms, dense onnxruntime "
                f"{row['onnxruntime_dense_ms']:.2f} ms",
                flush=True,
            )
        del interpreters, samplers
    return rows


# ----------------------------------------------------------------------------- reporting


def _versions() -> dict:
    versions = {}
    for module in ("onnxruntime", "tf2onnx"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    try:
        versions["libxnnpack-dev"] = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "libxnnpack-dev"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        versions["libxnnpack-dev"] = None
    return versions


def markdown_report(record: dict) -> str:
    """The whole markdown report of a results record (as written to the JSON)."""
    env = record["environment"]
    lines = [
        "# 1xN sparse delegate vs other engines",
        "",
        f"Command: `{record['command']}`",
        "",
        f"{record['created_utc']}; {bench.machine_text(env)}; "
        f"ai_edge_litert {env['ai_edge_litert']}; "
        + ", ".join(f"{name} {version}" for name, version in record["versions"].items())
        + ".",
        f"{record['load_start_line']}  ",
        f"{record['load_end_line']}",
        "",
        f"Median of {record['settings']['repeats']} interleaved samples per engine.",
    ]
    if record["operator_rows"]:
        lines += [
            "",
            "## 1x1 convolutions (batch 1): ours (1xN blocks) vs libxnnpack's sparse NCHW "
            "operator on the same weights vs dense XNNPACK",
            "",
            "| conv | width | s | thr | ours ms | libxnnpack sparse ms | dense XNNPACK ms | "
            "ours / libxnnpack | ours speedup | libxnnpack speedup | ideal | ours GFLOP/s | "
            "libxnnpack GFLOP/s | claimed | agree |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for row in record["operator_rows"]:
            lines.append(
                f"| {row['conv']} | {row['width']} | {row['block_sparsity']:.3f} | "
                f"{row['threads']} | {row['delegate_ms']:.3f} | "
                f"{row['libxnnpack_sparse_ms']:.3f} | {row['xnnpack_dense_ms']:.3f} | "
                f"{row['delegate_over_libxnnpack']:.2f}x | {row['delegate_speedup']:.2f}x | "
                f"{row['libxnnpack_speedup']:.2f}x | {row['ideal_speedup']:.2f} | "
                f"{row['delegate_gflops']:.1f} | {row['libxnnpack_gflops']:.1f} | "
                f"{bench._claim_cell(row)} | {'yes' if row['agree'] else 'NO'} |"
            )
    if record["model_rows"]:
        lines += [
            "",
            "## Model: ours (sparse) vs dense XNNPACK vs dense onnxruntime, same network",
            "",
            "| model | batch | thr | ours ms | dense XNNPACK ms | dense onnxruntime ms | "
            "ours speedup | ours / onnxruntime | onnxruntime / XNNPACK | ideal | claimed | agree |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for row in record["model_rows"]:
            lines.append(
                f"| {row['label']} | {row['batch']} | {row['threads']} | "
                f"{row['delegate_ms']:.2f} | {row['xnnpack_dense_ms']:.2f} | "
                f"{row['onnxruntime_dense_ms']:.2f} | {row['delegate_speedup']:.2f}x | "
                f"{row['delegate_over_onnxruntime']:.2f}x | "
                f"{row['onnxruntime_over_xnnpack']:.2f}x | {row['ideal_speedup']:.2f} | "
                f"{bench._claim_cell(row)} | {'yes' if row['agree'] else 'NO'} |"
            )
    return "\n".join(lines) + "\n"


def fill_cache(settings: PeerSettings) -> None:
    """Build everything the selected levels need (peer binary, models, ONNX), timing nothing."""
    if "operator" in settings.levels:
        build_peer(bench.cache_dir(settings.out_dir), settings.rebuild)
        for shape in settings.shapes:
            for sparsity in settings.sparsities:
                bench.prepare_layer_model(
                    settings.out_dir,
                    settings.seed,
                    shape,
                    settings.block_n,
                    sparsity,
                    settings.rebuild,
                )
    if "model" in settings.levels:
        tflite, _ = bench.prepare_model(
            settings.out_dir, settings.seed, settings.config, settings.rebuild
        )
        onnx_model(tflite, settings.rebuild)


def main(argv: Sequence[str]) -> int:
    """Validate the flags, measure the selected levels, write the results; 1 on disagreement."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    settings = validate_flags()
    check_requirements(settings.levels)
    logging.set_verbosity(logging.WARNING)
    command = ("python -m scripts.benchmark_peers " + " ".join(sys.argv[1:])).strip()
    print(f"command: {command}")
    load_start = bench.load_average()
    load_start_line = bench.print_load("at start", load_start)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    if FLAGS.convert_only:
        fill_cache(settings)
        print(f"--convert_only: cache in {bench.cache_dir(settings.out_dir)} is complete")
        return 0
    start = time.perf_counter()
    operator_rows = []
    if "operator" in settings.levels:
        binary = build_peer(bench.cache_dir(settings.out_dir), settings.rebuild)
        operator_rows = run_operator_level(settings, binary)
    model_rows = run_model_level(settings) if "model" in settings.levels else []
    load_end = bench.load_average()
    load_end_line = bench.print_load("at end", load_end)
    record = {
        "command": command,
        "created_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "environment": bench.environment(),
        "versions": _versions(),
        "settings": {
            "repeats": settings.repeats,
            "warmup": settings.warmup,
            "min_sample_ms": settings.min_sample_ms,
            "block_n": settings.block_n,
            "threads": list(settings.threads),
            "model_config": settings.config.name,
            "ort_spinning": settings.ort_spinning,
            "libxnnpack_spinning": settings.libxnnpack_spinning,
            "seed": settings.seed,
        },
        "load_average_start": load_start,
        "load_average_end": load_end,
        "load_start_line": load_start_line,
        "load_end_line": load_end_line,
        "elapsed_s": round(time.perf_counter() - start, 1),
        "operator_rows": operator_rows,
        "model_rows": model_rows,
    }
    bench.write_json_atomically(settings.out_dir / f"{RESULT_STEM}.json", record)
    markdown = markdown_report(record)
    bench.write_text_atomically(settings.out_dir / f"{RESULT_STEM}.md", markdown)
    print()
    print(markdown)
    print(f"wrote {settings.out_dir}/{RESULT_STEM}.{{md,json}}")
    disagreeing = [row for row in operator_rows + model_rows if not row["agree"]]
    for row in disagreeing:
        print(f"ERROR: outputs disagree: {row.get('label') or row['conv']}", file=sys.stderr)
    return 1 if disagreeing else 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
