"""Benchmark of the 1xN sparse CONV_2D delegate against LiteRT's XNNPACK on the same model.

Model (default): ResNet-50 (keras.applications, weights=None, 224x224x3, logits head), batch 1.
Every Conv2D except the stem (the first convolution / <= 3 input channels; the classifier is a
Dense and never pruned) gets a uniform 1xN block mask at sparsity p: keras_subp.prune_subp with a
`Constant(0)` schedule, one `update_masks` (schedule value 1, nothing regrows), then
`strip_subp`. Every stripped kernel is checked to have exactly P = int(p * Cin) all-zero 1xN
blocks (whole KxK kernel, N consecutive output channels) in every output group (the rare exact
zeros the initialiser draws inside kept blocks are counted and left: the delegate's width
detection tolerates them, as it must for trained and float16 models). The model is converted with
`tflite_delegate.convert` (float32, zeros kept) and cached in `--work_dir`.

Variants, at every `--threads` count: (a) "xnnpack": LiteRT's Interpreter (XNNPACK only, the
dense baseline); (b) "delegate": `tflite_delegate.Interpreter` (our delegate first, XNNPACK for the
rest). The delegate's report gives how many CONV_2D nodes it claimed and, from the filters it
read, whether every analysed node has the expected uniform pattern. Outputs of (a) and (b) on the
same random input are compared (max abs difference over max abs output).

Timing: each interpreter is warmed up (`--warmup` invokes), then all variants are interleaved in
`--repeats` rounds (so load drifts hit all of them); in each round every variant runs `--invokes`
back-to-back invokes and records their mean. Reported: the median over rounds per variant, the
speedup XNNPACK/delegate (ratio of medians) per thread count, and the scaling from the first to
the last thread count. The machine's load average is printed before and after: any concurrent
process ruins the multi-thread numbers, so run it on an otherwise idle machine.

Run: python -m scripts.benchmark_delegate [--model resnet_small --repeats 3 --invokes 2 ...]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

IMAGENET_MODELS = ("resnet50", "resnet18", "resnet34", "mobilenet_v1")
SMALL_MODELS = ("resnet_small", "vgg_small", "mobilenet_v1_small")

FLAGS = flags.FLAGS
flags.DEFINE_enum(
    "model",
    "resnet50",
    list(IMAGENET_MODELS + SMALL_MODELS),
    "Model: ImageNet-shaped (224x224x3, 1000 classes) or 28x28x1 (10 classes, quick runs).",
)
flags.DEFINE_integer("block_n", 16, "Block length N of the 1xN mask.")
flags.DEFINE_float("sparsity", 66 / 128, "Block sparsity p: int(p * Cin) blocks zeroed per group.")
flags.DEFINE_list("threads", ["1", "2"], "Thread counts; every variant runs at each.")
flags.DEFINE_integer("repeats", 15, "Interleaved rounds (timed samples per variant).")
flags.DEFINE_integer("invokes", 5, "Invokes per variant per round (one sample is their mean).")
flags.DEFINE_integer("warmup", 3, "Untimed invokes per interpreter before timing.")
flags.DEFINE_float(
    "min_sparsity",
    None,
    "Delegate option min_sparsity (claim layers at least this block-sparse); "
    "default: the delegate's own default.",
)
flags.DEFINE_string(
    "delegate_block_n",
    None,
    'Delegate option block_n ("auto" or 1/2/4/8/16/32); default: the delegate\'s own (auto).',
)
flags.DEFINE_string(
    "work_dir",
    None,
    "Directory caching the .tflite; default <tmp>/subp_benchmark_delegate.",
)
flags.DEFINE_bool("rebuild", False, "Rebuild and reconvert the model even if cached.")
flags.DEFINE_integer("seed", 0, "Seed of the model's weights, the mask and the input.")
flags.DEFINE_string("output", None, "Also write all results as JSON to this path.")


def _input_shape() -> tuple[int, int, int]:
    return (224, 224, 3) if FLAGS.model in IMAGENET_MODELS else (28, 28, 1)


def _build_dense_model():
    import keras

    from cnn_zoo import models

    if FLAGS.model in ("resnet50", "mobilenet_v1"):
        # As cnn_zoo.models builds them, but with a logits head: comparing softmax outputs of a
        # randomly initialised network would hide differences.
        keras.utils.set_random_seed(FLAGS.seed)
        builder = (
            keras.applications.ResNet50
            if FLAGS.model == "resnet50"
            else keras.applications.MobileNet
        )
        return builder(weights=None, input_shape=_input_shape(), classifier_activation=None)
    num_classes = 1000 if FLAGS.model in IMAGENET_MODELS else 10
    return getattr(models, FLAGS.model)(
        input_shape=_input_shape(), num_classes=num_classes, seed=FLAGS.seed
    )


def _check_uniform_kernel(name: str, kernel, n: int, sparsity: float):
    """Raise unless `kernel` (KH, KW, Cin, Cout) has exactly int(p * Cin) all-zero 1xN blocks in
    every output group; return a boolean array marking the zero weights inside kept blocks (the
    initialisers draw an exact 0 now and then: ~3 in ResNet-50's 23.5M conv weights)."""
    import numpy as np

    kh, kw, cin, cout = kernel.shape
    blocks = kernel.reshape(kh, kw, cin, cout // n, n)
    zero_blocks = np.all(blocks == 0, axis=(0, 1, 4))  # (Cin, G)
    expected = int(sparsity * cin)
    per_group = zero_blocks.sum(axis=0)
    if not np.all(per_group == expected):
        raise AssertionError(
            f"{name}: zero 1x{n} blocks per group {sorted(set(per_group.tolist()))}, "
            f"expected {expected} (Cin={cin})"
        )
    in_zero_block = np.broadcast_to(zero_blocks[None, None, :, :, None], blocks.shape)
    return ((blocks == 0) & ~in_zero_block).reshape(kernel.shape)


def build_sparse_tflite(path: Path) -> dict:
    """Build, mask, strip, check and convert the model to `path`; return facts about it."""
    import keras

    import keras_subp
    import tflite_delegate
    from keras_subp.model_walk import iter_leaf_layers

    dense = _build_dense_model()
    wrapped = keras_subp.prune_subp(
        dense,
        n=FLAGS.block_n,
        sparsity=FLAGS.sparsity,
        schedule=keras_subp.schedules.Constant(0),  # r(1) = 1: the full target, no regrowth
        criterion="l1",
        seed=FLAGS.seed,
    )
    updates = keras_subp.update_masks(wrapped)
    for update in updates:
        if update.regrown_per_group != 0 or update.schedule_value != 1.0:
            raise AssertionError(f"mask update of {update.layer_name} is not final: {update}")
    wrapped_names = {wrapper.layer.name for wrapper in keras_subp.subp_wrappers(wrapped)}
    stripped = keras_subp.strip_subp(wrapped)
    convolutions = [
        layer for layer in iter_leaf_layers(stripped) if isinstance(layer, keras.layers.Conv2D)
    ]
    checked = 0
    stray_zeros = 0
    dense_convolutions = []
    for layer in convolutions:
        if layer.name in wrapped_names:
            kernel = layer.get_weights()[0]
            stray = _check_uniform_kernel(layer.name, kernel, FLAGS.block_n, FLAGS.sparsity)
            stray_zeros += int(stray.sum())
            checked += 1
        else:
            dense_convolutions.append(layer.name)
    if checked != len(wrapped_names):
        raise AssertionError(f"checked {checked} kernels, {len(wrapped_names)} were wrapped")
    tflite_delegate.convert(stripped, path)
    return {
        "conv2d_layers": len(convolutions),
        "masked_conv2d_layers": checked,
        "zero_weights_in_kept_blocks": stray_zeros,
        "dense_conv2d_layers": dense_convolutions,
    }


def _make_interpreter(kind: str, path: Path, threads: int):
    import tflite_delegate

    if kind == "xnnpack":
        interpreter = tflite_delegate.Interpreter(
            model_path=path, num_threads=threads, sparse=False
        )
    else:
        interpreter = tflite_delegate.Interpreter(
            model_path=path,
            num_threads=threads,
            min_sparsity=FLAGS.min_sparsity,
            block_n=FLAGS.delegate_block_n,
        )
    interpreter.allocate_tensors()
    return interpreter


def _run(interpreter, image):
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def _claim_summary(interpreter) -> dict:
    """Claimed CONV_2D nodes and a check of the uniform pattern the delegate read."""
    import tflite_delegate

    summary = tflite_delegate.delegate_summary(interpreter)
    n = FLAGS.block_n
    reasons: dict[str, int] = {}
    pattern_mismatches = []
    pattern_checked = 0
    claimed_block_n: dict[str, int] = {}
    for node in summary.nodes:
        if node.claimed:
            key = f"1x{node.block_n}"
            claimed_block_n[key] = claimed_block_n.get(key, 0) + 1
        else:
            reasons[node.reason] = reasons.get(node.reason, 0) + 1
        _, kh, kw, cin = node.filter_shape
        if cin <= 3 or node.blocks_per_group_min is None:
            continue  # the stem (dense) or a node rejected before its filter was analysed
        # The delegate counts 1xN blocks per (kh, kw, c) position of the OHWI filter.
        expected_kept = kh * kw * (cin - int(FLAGS.sparsity * cin))
        pattern_checked += 1
        if not (
            node.block_n == n
            and node.uniform
            and node.blocks_per_group_min == node.blocks_per_group_max == expected_kept
        ):
            pattern_mismatches.append(
                f"node {node.node_index} {node.filter_shape}: 1x{node.block_n}, kept "
                f"{node.blocks_per_group_min}..{node.blocks_per_group_max} (expected "
                f"{expected_kept})"
            )
    return {
        "isa": summary.isa,
        "delegate_threads": summary.num_threads,
        "conv2d_nodes": len(summary.nodes),
        "claimed": sum(node.claimed for node in summary.nodes),
        "claimed_block_n": claimed_block_n,
        "not_claimed_reasons": reasons,
        "pattern_checked": pattern_checked,
        "pattern_mismatches": pattern_mismatches,
    }


def _time_invokes(interpreter, invokes: int) -> float:
    start = time.perf_counter()
    for _ in range(invokes):
        interpreter.invoke()
    return (time.perf_counter() - start) / invokes


def benchmark(path: Path) -> dict:
    import numpy as np

    thread_counts = [int(value) for value in FLAGS.threads]
    rng = np.random.default_rng(FLAGS.seed)
    image = rng.random((1, *_input_shape()), dtype=np.float32)
    variants = {}
    claims = {}
    agreement = {}
    for threads in thread_counts:
        outputs = {}
        for kind in ("xnnpack", "delegate"):
            interpreter = _make_interpreter(kind, path, threads)
            outputs[kind] = _run(interpreter, image)  # leaves the input set for the timed runs
            for _ in range(FLAGS.warmup):
                interpreter.invoke()
            variants[(kind, threads)] = interpreter
        claims[threads] = _claim_summary(variants[("delegate", threads)])
        difference = float(np.max(np.abs(outputs["delegate"] - outputs["xnnpack"])))
        scale = float(np.max(np.abs(outputs["xnnpack"])))
        agreement[threads] = {
            "max_abs_diff": difference,
            "max_abs_output": scale,
            "relative": difference / scale if scale else float("inf"),
        }
    samples = {key: [] for key in variants}
    for _ in range(FLAGS.repeats):
        for key, interpreter in variants.items():  # interleaved, so load drifts hit all
            samples[key].append(_time_invokes(interpreter, FLAGS.invokes))
    medians = {key: statistics.median(values) * 1e3 for key, values in samples.items()}
    return {
        "thread_counts": thread_counts,
        "claims": claims,
        "agreement": agreement,
        "median_ms": medians,
        "all_ms": {key: [v * 1e3 for v in values] for key, values in samples.items()},
    }


def _markdown(command: str, facts: dict, result: dict, load_before, load_after) -> str:
    threads = result["thread_counts"]
    median = result["median_ms"]
    first, last = threads[0], threads[-1]
    claim = result["claims"][first]
    min_sparsity = "default" if FLAGS.min_sparsity is None else f"{FLAGS.min_sparsity}"
    shape = "x".join(str(v) for v in _input_shape())
    lines = [
        f"### 1x{FLAGS.block_n} sparse delegate vs XNNPACK: {FLAGS.model} {shape}, batch 1, "
        f"p={FLAGS.sparsity:.6g}",
        "",
        f"Command: `{command}`",
        "",
        f"CPUs visible: {os.cpu_count()}; delegate ISA: {claim['isa']}; load average "
        f"before {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, after "
        f"{load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} (1/5/15 min)",
        f"Masked Conv2D: {facts.get('masked_conv2d_layers', '?')} of "
        f"{facts.get('conv2d_layers', '?')} (dense: {facts.get('dense_conv2d_layers', '?')}); "
        f"delegate claimed {claim['claimed']} of {claim['conv2d_nodes']} CONV_2D nodes "
        f"{claim['claimed_block_n']} (min_sparsity {min_sparsity}, block_n "
        f"{FLAGS.delegate_block_n or 'default'}; not claimed: {claim['not_claimed_reasons'] or 'none'}); "
        f"uniform 1x{FLAGS.block_n} pattern in the filters the delegate read: "
        f"{claim['pattern_checked'] - len(claim['pattern_mismatches'])} of "
        f"{claim['pattern_checked']} analysed non-stem nodes",
        "Agreement (max |delegate - xnnpack| / max |xnnpack|): "
        + ", ".join(
            f"{t} thread(s) {result['agreement'][t]['relative']:.2e}"
            f" (abs {result['agreement'][t]['max_abs_diff']:.2e})"
            for t in threads
        ),
        f"Median of {FLAGS.repeats} interleaved rounds x {FLAGS.invokes} invokes, ms/invoke:",
        "",
        "| threads | XNNPACK (dense) ms | delegate ms | speedup XNNPACK/delegate |",
        "|---:|---:|---:|---:|",
    ]
    for t in threads:
        dense, sparse = median[("xnnpack", t)], median[("delegate", t)]
        lines.append(f"| {t} | {dense:.2f} | {sparse:.2f} | {dense / sparse:.3f}x |")
    if last != first:
        lines.append(
            f"| scaling {first}->{last} threads | "
            f"{median[('xnnpack', first)] / median[('xnnpack', last)]:.3f}x | "
            f"{median[('delegate', first)] / median[('delegate', last)]:.3f}x | |"
        )
    return "\n".join(lines)


def main(argv):
    del argv
    import ai_edge_litert
    import numpy as np

    command = ("python -m scripts.benchmark_delegate " + " ".join(sys.argv[1:])).strip()
    print(f"command: {command}")
    if FLAGS.block_n < 1 or not 0 <= FLAGS.sparsity < 1:
        raise app.UsageError("--block_n must be >= 1 and --sparsity in [0, 1)")
    if not FLAGS.threads or any(int(value) < 1 for value in FLAGS.threads):
        raise app.UsageError("--threads must list positive integers")
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    print(
        f"ai_edge_litert {getattr(ai_edge_litert, '__version__', '?')}, numpy "
        f"{np.__version__}, CPUs visible: {os.cpu_count()}"
    )
    work_dir = Path(FLAGS.work_dir or Path(tempfile.gettempdir()) / "subp_benchmark_delegate")
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / (
        f"{FLAGS.model}_1x{FLAGS.block_n}_p{FLAGS.sparsity:.6f}_seed{FLAGS.seed}.tflite"
    )
    facts_path = path.with_suffix(".json")
    if FLAGS.rebuild or not path.is_file() or not facts_path.is_file():
        start = time.perf_counter()
        facts = build_sparse_tflite(path)
        facts_path.write_text(json.dumps(facts, indent=1))
        print(f"built, checked and converted {path} in {time.perf_counter() - start:.1f} s")
    else:
        facts = json.loads(facts_path.read_text())
        print(f"using cached {path} (--rebuild to rebuild)")
    print(
        f"masked Conv2D layers: {facts['masked_conv2d_layers']} of {facts['conv2d_layers']}, "
        f"uniform 1x{FLAGS.block_n} pattern verified; exact-zero weights from the initialiser "
        f"in kept blocks: {facts['zero_weights_in_kept_blocks']}; dense: "
        f"{facts['dense_conv2d_layers']}"
    )

    result = benchmark(path)
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    for threads, claim in result["claims"].items():
        print(
            f"delegate at {threads} thread(s): claimed {claim['claimed']} of "
            f"{claim['conv2d_nodes']} CONV_2D nodes {claim['claimed_block_n']}, ISA {claim['isa']}, delegate threads "
            f"{claim['delegate_threads']}; not claimed: {claim['not_claimed_reasons'] or 'none'}"
        )
        for mismatch in claim["pattern_mismatches"]:
            print(f"  WARNING pattern seen by the delegate differs: {mismatch}")
    for key, values in result["all_ms"].items():
        print(f"{key[0]:>8} {key[1]}T all rounds (ms): " + ", ".join(f"{v:.2f}" for v in values))
    print()
    print(_markdown(command, facts, result, load_before, load_after))

    if FLAGS.output:
        record = {
            "command": command,
            "model": FLAGS.model,
            "input_shape": list(_input_shape()),
            "block_n": FLAGS.block_n,
            "sparsity": FLAGS.sparsity,
            "min_sparsity": FLAGS.min_sparsity,
            "delegate_block_n": FLAGS.delegate_block_n,
            "repeats": FLAGS.repeats,
            "invokes": FLAGS.invokes,
            "tflite": str(path),
            "load_average_before": list(load_before),
            "load_average_after": list(load_after),
            "model_facts": facts,
            "claims": {str(t): claim for t, claim in result["claims"].items()},
            "agreement": {str(t): value for t, value in result["agreement"].items()},
            "median_ms": {f"{kind}_{t}": v for (kind, t), v in result["median_ms"].items()},
            "all_ms": {f"{kind}_{t}": v for (kind, t), v in result["all_ms"].items()},
        }
        Path(FLAGS.output).write_text(json.dumps(record, indent=1))
        print(f"\nwrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
