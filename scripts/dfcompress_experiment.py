"""Data-free compression on real Fashion-MNIST: dfcompress's methods against their baselines.

Trains (or loads from the cache in --output_dir/models) a VGG-style and a ResNet-style BN CNN from
`cnn_zoo.models` on the full Fashion-MNIST training set, then compresses each without any data and
evaluates on the 10,000 test images:

1. UDFC-style table (after UDFC's CIFAR-10 table): plain pruning, Neuron Merging and UDFC (the
   default objective, and the paper's with `objective="bn"`) at three pruning ratios, with the l2
   and l1 criteria; Prune and NM keep float32 weights, UDFC quantizes to the table's bit width.
   Ave-Im = mean over the two criteria minus plain pruning's mean.
2. DF-MPC-style table: float32, direct MP2/6 (the same per-layer bits and quantizers as DF-MPC,
   without compensation) and DF-MPC MP2/6.
3. Deployment: sizes of float32 and int8 `.tflite` files (`dfcompress.to_tflite`) with the int8
   file's test accuracy next to the Keras model's, and batch-1 latency of float32 / int8 (DEQUANTIZE
   + float kernels) / int8 (dynamic-range kernels) for the VGG model and for ImageNet-shaped
   ResNet-50 (random weights, 8-bit symmetric; latency only). Interleaved repeats, medians.

Results go to --output_dir as results.md and results.json; every table carries the command that
made it. Sizes are MiB (2^20 bytes). Data: the full dataset from the first local place
`cnn_zoo.datasets` finds; if there is none, the committed 5,000/1,000 sample, said in every table.
`--quick` is a smoke run (sample data, one epoch, one ratio, no ResNet-50).

Example (about 40 minutes on 2 cores):
  python -m scripts.dfcompress_experiment --output_dir results/dfcompress
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Directory holding the four Fashion-MNIST IDX files.")
flags.DEFINE_string("output_dir", "results/dfcompress", "Where results and cached models go.")
flags.DEFINE_integer("epochs", 4, "Training epochs per model (ignored for cached models).")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_float("learning_rate", 3e-3, "Adam learning rate (cosine-decayed to zero).")
flags.DEFINE_list("models", ["vgg", "resnet"], "Which models: vgg, resnet (one or both).")
flags.DEFINE_list("vgg_ratios", ["0.3", "0.5", "0.7"], "Pruning ratios of the VGG table.")
flags.DEFINE_list("resnet_ratios", ["0.3", "0.4", "0.5"], "Pruning ratios of the ResNet table.")
flags.DEFINE_integer("vgg_bits", 6, "UDFC weight bits of the VGG rows (UDFC's VGG-16 rows: 6).")
flags.DEFINE_integer("resnet_bits", 4, "UDFC weight bits of the ResNet rows (ResNet-56 rows: 4).")
flags.DEFINE_integer("latency_repeats", 30, "Timed batch-1 invocations per .tflite variant.")
flags.DEFINE_bool(
    "resnet50_latency", True, "Also time ImageNet-shaped ResNet-50 (slow to convert)."
)
flags.DEFINE_bool("quick", False, "Smoke run: committed sample, 1 epoch, one ratio, no ResNet-50.")
flags.DEFINE_bool("retrain", False, "Ignore cached models.")
flags.DEFINE_integer("seed", 0, "Seed for weights, shuffling and every random choice.")


@flags.validator("vgg_ratios", "every ratio must be a number in [0, 1)")
def _vgg_ratios(values) -> bool:
    return _ratios_ok(values)


@flags.validator("resnet_ratios", "every ratio must be a number in [0, 1)")
def _resnet_ratios(values) -> bool:
    return _ratios_ok(values)


def _ratios_ok(values) -> bool:
    try:
        return bool(values) and all(0 <= float(v) < 1 for v in values)
    except ValueError:
        return False


flags.register_validator("epochs", lambda v: v >= 1, "must be at least 1")
flags.register_validator(
    "models", lambda v: bool(v) and set(v) <= {"vgg", "resnet"}, "must list vgg and/or resnet"
)
flags.register_validator("vgg_bits", lambda v: 1 <= v <= 8, "must be in 1..8")
flags.register_validator("resnet_bits", lambda v: 1 <= v <= 8, "must be in 1..8")
flags.register_validator("latency_repeats", lambda v: v >= 1, "must be at least 1")

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "fashion-mnist-sample"
CRITERIA = ("l2", "l1")


def command_line() -> str:
    return " ".join(["python -m scripts.dfcompress_experiment", *map(shlex.quote, sys.argv[1:])])


def load_data():
    """(dataset, description); the committed sample when --quick or when no full copy exists."""
    from cnn_zoo.datasets import DatasetNotFoundError, load_fashion_mnist, load_idx_directory

    if not FLAGS.quick:
        try:
            data = load_fashion_mnist(FLAGS.data_dir, allow_download=False)
            return (
                data,
                f"full Fashion-MNIST ({len(data.y_train)}/{len(data.y_test)}), {data.source}",
            )
        except DatasetNotFoundError as error:
            logging.warning("%s", error)
    data = load_idx_directory(SAMPLE_DIR, name="fashion-mnist sample")
    reason = "--quick" if FLAGS.quick else "no full copy found"
    return data, (
        f"committed SAMPLE of Fashion-MNIST ({len(data.y_train)}/{len(data.y_test)}; {reason}): "
        "not comparable with full-data results"
    )


def build_models() -> list[tuple[str, str, object]]:
    """(cache key, table name, builder) of the two BN CNNs (28x28x1 inputs, logits out)."""
    from cnn_zoo.models import resnet_small, vgg_small

    return [
        ("vgg", "VGG (vgg_small)", lambda: vgg_small(seed=FLAGS.seed)),
        ("resnet", "ResNet (resnet_small)", lambda: resnet_small(seed=FLAGS.seed)),
    ]


def train_or_load(key: str, builder, data, description: str, models_dir: Path):
    """The trained model and its training record, from the cache when it matches the settings."""
    import keras

    from cnn_zoo.datasets import to_model_inputs

    subset = "sample" if "SAMPLE" in description else "full"
    key = f"{key}_seed{FLAGS.seed}_e{FLAGS.epochs}_{subset}"
    path = models_dir / f"{key}.keras"
    record_path = models_dir / f"{key}.json"
    if path.exists() and record_path.exists() and not FLAGS.retrain:
        logging.info("using the cached %s", path)
        return keras.models.load_model(path, compile=False), json.loads(record_path.read_text())
    keras.utils.set_random_seed(FLAGS.seed)
    model = builder()
    steps = FLAGS.epochs * -(-len(data.x_train) // FLAGS.batch_size)
    model.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(FLAGS.learning_rate, steps)
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(
        to_model_inputs(data.x_train),
        data.y_train,
        batch_size=FLAGS.batch_size,
        epochs=FLAGS.epochs,
        verbose=2,
    )
    record = {
        "epochs": FLAGS.epochs,
        "train_seconds": round(time.perf_counter() - start, 1),
        "parameters": model.count_params(),
        "data": description,
    }
    model.save(path)
    record_path.write_text(json.dumps(record, indent=2))
    return model, record


def accuracy(model, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(model.predict(images, batch_size=1000, verbose=0).argmax(1) == labels))


def tflite_accuracy(path: Path, images: np.ndarray, labels: np.ndarray) -> float:
    """Test accuracy of a `.tflite` file through LiteRT (batches of 500)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=2)
    (input_detail,) = interpreter.get_input_details()
    (output_detail,) = interpreter.get_output_details()
    batch = 500
    interpreter.resize_tensor_input(input_detail["index"], [batch, *images.shape[1:]])
    interpreter.allocate_tensors()
    predictions = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        padded = np.zeros((batch, *images.shape[1:]), np.float32)
        padded[: len(chunk)] = chunk
        interpreter.set_tensor(input_detail["index"], padded)
        interpreter.invoke()
        predictions.append(interpreter.get_tensor(output_detail["index"])[: len(chunk)].argmax(1))
    return float(np.mean(np.concatenate(predictions) == labels))


def udfc_table(model, images, labels, ratios: list[float], bits: int) -> dict:
    """Prune / NM / UDFC accuracies (percent) per ratio and criterion, sizes in MiB."""
    import dfcompress

    rows = []
    for ratio in ratios:
        row = {"prune_ratio": ratio, "udfc_bits": bits}
        for criterion in CRITERIA:
            pruned, prune_report = dfcompress.prune_channels(model, ratio, criterion)
            merged, _ = dfcompress.neuron_merging(model, ratio, criterion)
            compressed, udfc_report = dfcompress.udfc(
                model, prune_ratio=ratio, weight_bits=bits, criterion=criterion
            )
            paper, _ = dfcompress.udfc(
                model, prune_ratio=ratio, weight_bits=bits, criterion=criterion, objective="bn"
            )
            float_udfc, _ = dfcompress.udfc(
                model, prune_ratio=ratio, weight_bits=None, criterion=criterion
            )
            row[f"prune_{criterion}"] = 100 * accuracy(pruned, images, labels)
            row[f"nm_{criterion}"] = 100 * accuracy(merged, images, labels)
            row[f"udfc_{criterion}"] = 100 * accuracy(compressed, images, labels)
            row[f"udfc_bn_{criterion}"] = 100 * accuracy(paper, images, labels)
            row[f"udfc_fp32_{criterion}"] = 100 * accuracy(float_udfc, images, labels)
            row["size_mb_pruned_fp32"] = prune_report.size_mb_after
            row["size_mb_udfc"] = udfc_report.size_mb_after
            row["udfc_seconds"] = udfc_report.seconds
        prune_mean = np.mean([row[f"prune_{c}"] for c in CRITERIA])
        row["ave_im_nm"] = float(np.mean([row[f"nm_{c}"] for c in CRITERIA]) - prune_mean)
        row["ave_im_udfc"] = float(np.mean([row[f"udfc_{c}"] for c in CRITERIA]) - prune_mean)
        rows.append(row)
        logging.info("UDFC table row: %s", row)
    return {"rows": rows}


def dfmpc_row(model, images, labels) -> tuple[dict, object]:
    """FP / direct MP2/6 / DF-MPC MP2/6 accuracies (percent) and sizes; also the DF-MPC model."""
    import dfcompress

    compressed, report = dfcompress.dfmpc(model, low_bits=2, high_bits=6)
    direct, _ = dfcompress.quantize_weights(
        model, bits=report.layer_bits, quantizer=report.layer_quantizers
    )
    low = sum(1 for b in report.layer_bits.values() if b == 2)
    row = {
        "fp32": 100 * accuracy(model, images, labels),
        "direct_mp26": 100 * accuracy(direct, images, labels),
        "dfmpc_mp26": 100 * accuracy(compressed, images, labels),
        "low_layers": low,
        "weight_layers": len(report.layer_bits),
        "size_mb_fp32": report.size_mb_before,
        "size_mb_mp26": report.size_mb_after,
        "seconds": report.seconds,
    }
    return row, compressed


def time_tflite(paths: dict[str, Path], shape: tuple[int, ...], repeats: int) -> dict:
    """Median batch-1 latency (ms) of each file with LiteRT's default (XNNPACK) interpreter, one
    thread, interleaved repeats; plus which node types remain outside the XNNPACK partition."""
    from ai_edge_litert.interpreter import Interpreter

    from tflite_delegate.litert_compat import ops_details

    interpreters, ops = {}, {}
    sample = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    for name, path in paths.items():
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], sample)
        interpreter.invoke()  # warm-up (and the one-time DEQUANTIZE of constant filters)
        interpreters[name] = interpreter
        details = ops_details(interpreter)
        delegated = {int(i) for op in details if op["op_name"] == "DELEGATE" for i in op["inputs"]}
        ops[name] = {"nodes": len(details), "delegate_inputs": len(delegated)}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, interpreter in interpreters.items():
            start = time.perf_counter()
            interpreter.invoke()
            times[name].append(time.perf_counter() - start)
    base = float(np.median(times[next(iter(paths))]))
    return {
        name: {
            "median_ms": 1e3 * float(np.median(values)),
            "ratio_to_float32": float(np.median(values)) / base,
            "file_mb": paths[name].stat().st_size / 2**20,
        }
        for name, values in times.items()
    }


def deployment(model, label: str, folder: Path, images, labels, repeats: int) -> dict:
    """float32 / int8 / int8-dynamic `.tflite` files of one model: sizes, accuracy, latency."""
    import warnings

    import dfcompress

    paths = {
        "float32": folder / f"{label}_float32.tflite",
        "int8": folder / f"{label}_int8.tflite",
        "int8 dynamic": folder / f"{label}_int8_dynamic.tflite",
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dfcompress.to_tflite(model, paths["float32"])
        dfcompress.to_tflite(model, paths["int8"], weights="int8")
        dfcompress.to_tflite(model, paths["int8 dynamic"], weights="int8", int8_kernels="dynamic")
    result = {
        "int8_exact": not any("rounded to 127 levels" in str(w.message) for w in caught),
        "keras_accuracy": None if images is None else 100 * accuracy(model, images, labels),
        "variants": time_tflite(paths, (1, *model.inputs[0].shape[1:]), repeats),
    }
    if images is not None:
        for name, path in paths.items():
            result["variants"][name]["accuracy"] = 100 * tflite_accuracy(path, images, labels)
    return result


def _pair(row: dict, key: str) -> str:
    return " / ".join(f"{row[f'{key}_{c}']:.2f}" for c in CRITERIA)


def markdown(results: dict) -> str:
    command = results["command"]
    lines = [
        "# dfcompress on Fashion-MNIST",
        "",
        f"Data: {results['data']}. Machine: {results['machine']}. Total time "
        f"{results['seconds'] / 60:.1f} min.",
        "",
    ]
    for name, model in results["models"].items():
        fp = model["fp32_accuracy"]
        lines += [
            f"## {name}: Prune / Neuron Merging / UDFC (FP32 accuracy {fp:.2f} %)",
            "",
            f"Command: `{command}`",
            "",
            f"Trained {model['training']['epochs']} epoch(s), {model['training']['parameters']:,} "
            "parameters. Accuracy in % on the test set, l2 / l1 criterion. Prune and NM keep "
            "float32 weights; UDFC quantizes every kernel to the W-bit shown. UDFC: the default "
            'objective (combinations fitted after the activation); paper obj.: `objective="bn"`, '
            "the paper's Eq. 12; UDFC 32-bit: the default objective, pruning only "
            "(`weight_bits=None`), float32 weights like Prune and NM. Ave-Im: mean over the "
            "criteria minus Prune's mean. Size: MiB, kernels at their bits.",
            "",
            "| P-R | Prune | NM | UDFC | UDFC paper obj. | UDFC 32-bit | Ave-Im NM / UDFC "
            "| UDFC W-bit | Size MiB (32-bit / UDFC) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in model["udfc_table"]["rows"]:
            lines.append(
                f"| {100 * row['prune_ratio']:.0f}% | {_pair(row, 'prune')} | {_pair(row, 'nm')} | "
                f"{_pair(row, 'udfc')} | {_pair(row, 'udfc_bn')} | {_pair(row, 'udfc_fp32')} | "
                f"{row['ave_im_nm']:.2f} / {row['ave_im_udfc']:.2f} | "
                f"{row['udfc_bits']} | {row['size_mb_pruned_fp32']:.3f} / {row['size_mb_udfc']:.3f} |"
            )
        lines.append("")
    lines += [
        "## DF-MPC: FP32 / direct MP2/6 / DF-MPC MP2/6",
        "",
        f"Command: `{command}`",
        "",
        "Accuracy in %. Direct MP2/6 quantizes with exactly DF-MPC's per-layer bits and quantizers "
        "(`quantize_weights(model, report.layer_bits, report.layer_quantizers)`), no compensation.",
        "",
        "| Net | FP32 | Direct MP2/6 | DF-MPC MP2/6 | low (2-bit) layers | Size MiB (32 / MP2/6) |",
        "|---|---|---|---|---|---|",
    ]
    for name, model in results["models"].items():
        row = model["dfmpc"]
        lines.append(
            f"| {name} | {row['fp32']:.2f} | {row['direct_mp26']:.2f} | {row['dfmpc_mp26']:.2f} | "
            f"{row['low_layers']} of {row['weight_layers']} | {row['size_mb_fp32']:.3f} / "
            f"{row['size_mb_mp26']:.3f} |"
        )
    if not results["deployment"]:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "## Deployment: `.tflite` sizes, accuracy and batch-1 latency",
        "",
        f"Command: `{command}`",
        "",
        '`int8`: `to_tflite(weights="int8")` (int8 filters + DEQUANTIZE, float32 kernels); '
        '`int8 dynamic`: `int8_kernels="dynamic"` (dynamic-range int8 kernels). LiteRT with its '
        "default XNNPACK delegate, 1 thread, median of interleaved repeats.",
        "",
        "| Model | Variant | File MiB | Accuracy % | Latency ms | vs float32 |",
        "|---|---|---|---|---|---|",
    ]
    for label, entry in results["deployment"].items():
        for variant, numbers in entry["variants"].items():
            accuracy_text = f"{numbers['accuracy']:.2f}" if "accuracy" in numbers else "-"
            lines.append(
                f"| {label} | {variant} | {numbers['file_mb']:.3f} | {accuracy_text} | "
                f"{numbers['median_ms']:.2f} | {numbers['ratio_to_float32']:.2f}x |"
            )
    lines += ["", "int8 weights reproduce the Keras weights exactly (grid <= 8 bits): "]
    lines[-1] += ", ".join(f"{k}: {v['int8_exact']}" for k, v in results["deployment"].items())
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    import keras

    import dfcompress
    from cnn_zoo.datasets import to_model_inputs
    from cnn_zoo.models import resnet50

    start = time.perf_counter()
    if FLAGS.quick:
        FLAGS.epochs = 1
        FLAGS.vgg_ratios = FLAGS.vgg_ratios[:1]
        FLAGS.resnet_ratios = FLAGS.resnet_ratios[:1]
        FLAGS.latency_repeats = min(FLAGS.latency_repeats, 5)
        FLAGS.resnet50_latency = False
    output_dir = Path(FLAGS.output_dir)
    models_dir = output_dir / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    data, description = load_data()
    print(f"data: {description}", flush=True)
    images, labels = to_model_inputs(data.x_test), data.y_test.astype(np.int64)
    results = {
        "command": command_line(),
        "data": description,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "models": {},
        "deployment": {},
    }
    settings = {
        "vgg": ([float(r) for r in FLAGS.vgg_ratios], FLAGS.vgg_bits),
        "resnet": ([float(r) for r in FLAGS.resnet_ratios], FLAGS.resnet_bits),
    }
    for key, name, builder in build_models():
        if key not in FLAGS.models:
            continue
        model, training = train_or_load(key, builder, data, description, models_dir)
        ratios, bits = settings[key]
        entry = {"training": training, "fp32_accuracy": 100 * accuracy(model, images, labels)}
        print(f"{name}: FP32 accuracy {entry['fp32_accuracy']:.2f} %", flush=True)
        entry["udfc_table"] = udfc_table(model, images, labels, ratios, bits)
        entry["dfmpc"], dfmpc_model = dfmpc_row(model, images, labels)
        results["models"][name] = entry
        print(json.dumps(entry, indent=1), flush=True)
        if key == "vgg":
            tflite_dir = output_dir / "tflite"
            tflite_dir.mkdir(exist_ok=True)
            results["deployment"]["VGG FP32"] = deployment(
                model, "vgg_fp32", tflite_dir, images, labels, FLAGS.latency_repeats
            )
            udfc_model, _ = dfcompress.udfc(model, prune_ratio=ratios[0], weight_bits=bits)
            results["deployment"][f"VGG UDFC {ratios[0]:.0%} {bits}-bit"] = deployment(
                udfc_model, "vgg_udfc", tflite_dir, images, labels, FLAGS.latency_repeats
            )
            results["deployment"]["VGG DF-MPC MP2/6"] = deployment(
                dfmpc_model, "vgg_dfmpc", tflite_dir, images, labels, FLAGS.latency_repeats
            )
    if FLAGS.resnet50_latency:
        keras.utils.set_random_seed(FLAGS.seed)
        quantized, _ = dfcompress.quantize_weights(resnet50(seed=FLAGS.seed), 8, "symmetric")
        results["deployment"]["ResNet-50 224x224 (random, 8-bit symmetric)"] = deployment(
            quantized, "resnet50", output_dir / "tflite", None, None, FLAGS.latency_repeats
        )
    results["seconds"] = time.perf_counter() - start
    (output_dir / "results.json").write_text(json.dumps(results, indent=2))
    (output_dir / "results.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    app.run(main)
