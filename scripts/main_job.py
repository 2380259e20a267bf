"""The project's main job (`make demo`): train -> sparsify -> convert -> run with the delegate -> report.

1. A dense baseline CNN (`cnn_zoo.models.vgg_small`) trained on real Fashion-MNIST.
2. The same architecture trained from scratch with SUBP (`keras_subp`): uniform 1xN block sparsity.
3. The stripped SUBP model converted to a float32 `.tflite` (`tflite_delegate.convert`) and run on the
   whole test set with LiteRT twice: with the sparse delegate and with plain XNNPACK. The report gives
   accuracy (Keras and TFLite), prediction agreement, which convolutions the delegate claimed, and
   batch-1 latency of both interpreters (interleaved repeats, medians).

Data: the full Fashion-MNIST (60,000 / 10,000) from the first local place that has it
(`cnn_zoo.datasets`); if none does and no download is possible, the committed 5,000 / 1,000 sample
in tests/fixtures, said loudly in the report. Data-free compression (dfcompress) joins when it lands.

Example:
  python -m scripts.main_job --epochs 5 --subp_epochs 5 --output_dir results/main_job
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Directory holding the four Fashion-MNIST IDX files.")
flags.DEFINE_integer("epochs", 5, "Training epochs for the dense baseline.")
flags.DEFINE_integer("subp_epochs", 5, "Training epochs for the SUBP model (0 skips stages 2-3).")
flags.DEFINE_integer("block_n", 16, "N of the 1xN blocks (output channels per block).")
flags.DEFINE_float("sparsity", 0.75, "Fraction of blocks pruned in every sparse layer.")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_float("learning_rate", 2e-3, "Adam learning rate (cosine-decayed to zero).")
flags.DEFINE_integer("threads", 2, "Threads for the LiteRT interpreters.")
flags.DEFINE_integer("latency_repeats", 200, "Batch-1 invocations timed per interpreter.")
flags.DEFINE_integer("seed", 0, "Seed for weights, shuffling and every random choice.")
flags.DEFINE_string("output_dir", "results/main_job", "Where the report (JSON) and models go.")
flags.DEFINE_bool("allow_download", True, "Try keras.datasets if no local copy is found.")

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "fashion-mnist-sample"


def load_data(data_dir: str | None, allow_download: bool):
    """Full Fashion-MNIST if any local place (or a download) has it, else the committed sample.

    Returns (dataset, is_sample).
    """
    from cnn_zoo.datasets import DatasetNotFoundError, load_fashion_mnist, load_idx_directory

    try:
        return load_fashion_mnist(data_dir, allow_download=allow_download), False
    except DatasetNotFoundError as error:
        logging.warning("%s", error)
        sample = load_idx_directory(SAMPLE_DIR, name="fashion-mnist (committed sample)")
        return sample, True


def fit_and_evaluate(model, dataset, epochs: int, callbacks=()) -> dict:
    """Adam with cosine decay, cross-entropy on logits; returns test accuracy and training time."""
    import keras

    from cnn_zoo.datasets import to_model_inputs

    steps = epochs * -(-len(dataset.x_train) // FLAGS.batch_size)
    model.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(FLAGS.learning_rate, steps)
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(
        to_model_inputs(dataset.x_train),
        dataset.y_train,
        batch_size=FLAGS.batch_size,
        epochs=epochs,
        callbacks=list(callbacks),
        verbose=2,
    )
    train_seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(
        to_model_inputs(dataset.x_test), dataset.y_test, batch_size=500, verbose=0
    )
    return {
        "epochs": epochs,
        "train_seconds": round(train_seconds, 1),
        "test_accuracy": round(float(accuracy), 4),
    }


def train_dense_baseline(dataset, output_dir: Path) -> dict:
    """Stage 1: the dense `vgg_small`."""
    import keras

    from cnn_zoo.models import vgg_small

    keras.utils.set_random_seed(FLAGS.seed)
    model = vgg_small(seed=FLAGS.seed)
    result = fit_and_evaluate(model, dataset, FLAGS.epochs)
    model.save(output_dir / "dense_baseline.keras")
    return {"model": model.name, "parameters": model.count_params(), **result}


def train_subp(dataset, output_dir: Path):
    """Stage 2: `vgg_small` wrapped with SUBP and trained from scratch; returns (stripped model, report).

    The schedule ramps the sparsity over the first epochs (cubic, as SUBP) and leaves the last epoch
    with a fixed mask for recovery.
    """
    import keras

    import keras_subp
    from cnn_zoo.models import vgg_small

    keras.utils.set_random_seed(FLAGS.seed)
    end_epoch = max(FLAGS.subp_epochs - 1, 1)
    pruned = keras_subp.prune_subp(
        vgg_small(seed=FLAGS.seed),
        n=FLAGS.block_n,
        sparsity=FLAGS.sparsity,
        schedule=keras_subp.schedules.Cubic(start_epoch=0, end_epoch=end_epoch),
        seed=FLAGS.seed,
    )
    result = fit_and_evaluate(
        pruned, dataset, FLAGS.subp_epochs, callbacks=[keras_subp.UpdateSUBP()]
    )
    stripped = keras_subp.strip_subp(pruned)
    stripped.save(output_dir / "subp_stripped.keras")
    flops = keras_subp.count_flops(stripped, n=FLAGS.block_n)
    layers = keras_subp.sparsity_report(stripped, n=FLAGS.block_n)
    print(keras_subp.format_sparsity_report(layers))
    return stripped, {
        "block_n": FLAGS.block_n,
        "sparsity": FLAGS.sparsity,
        **result,
        "flops_per_image": {
            "dense": flops.dense,
            "subp_accounting": flops.subp,
            "actual": flops.actual,
        },
    }


def tflite_predictions(interpreter, images: np.ndarray) -> np.ndarray:
    """Logits for all `images` (N, 28, 28, 1), in batches of 500 (the input is resized once)."""
    batch = 500
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    outputs = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        if interpreter.get_input_details()[0]["shape"][0] != len(chunk):
            interpreter.resize_tensor_input(input_index, chunk.shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(input_index, chunk)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_index).copy())
    return np.concatenate(outputs)


def batch1_latency_ms(interpreters: dict, image, repeats: int) -> dict:
    """Median batch-1 latency (ms) of each interpreter, with the interpreters interleaved per repeat."""
    timings = {name: [] for name in interpreters}
    for interpreter in interpreters.values():
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, image.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, image)
        interpreter.invoke()  # warm-up
    for _ in range(repeats):
        for name, interpreter in interpreters.items():
            start = time.perf_counter()
            interpreter.invoke()
            timings[name].append(time.perf_counter() - start)
    return {name: round(float(np.median(values)) * 1e3, 4) for name, values in timings.items()}


def deploy_with_delegate(stripped, dataset, output_dir: Path) -> dict:
    """Stage 3: convert to TFLite, run the test set with and without the delegate, time batch 1."""
    import tflite_delegate
    from cnn_zoo.datasets import to_model_inputs

    model_path = tflite_delegate.convert(stripped, output_dir / "subp_stripped.tflite")
    images = to_model_inputs(dataset.x_test)
    keras_logits = stripped.predict(images, batch_size=500, verbose=0)
    interpreters = {
        # The delegate's default min_sparsity: the dense stem stays with XNNPACK, as for a user.
        "sparse_delegate": tflite_delegate.Interpreter(
            model_path=str(model_path), num_threads=FLAGS.threads
        ),
        "xnnpack_only": tflite_delegate.Interpreter(
            model_path=str(model_path), num_threads=FLAGS.threads, sparse=False
        ),
    }
    decisions = tflite_delegate.delegation_report(interpreters["sparse_delegate"])
    result = {"tflite_file": str(model_path), "tflite_bytes": model_path.stat().st_size}
    for name, interpreter in interpreters.items():
        logits = tflite_predictions(interpreter, images)
        result[name] = {
            "test_accuracy": round(float(np.mean(logits.argmax(1) == dataset.y_test)), 4),
            "agreement_with_keras": round(
                float(np.mean(logits.argmax(1) == keras_logits.argmax(1))), 4
            ),
            "max_abs_logit_difference_to_keras": float(np.max(np.abs(logits - keras_logits))),
        }
    latency = batch1_latency_ms(interpreters, images[:1], FLAGS.latency_repeats)
    for name, milliseconds in latency.items():
        result[name]["batch1_latency_ms_median"] = milliseconds
    result["latency_ratio_xnnpack_over_delegate"] = round(
        latency["xnnpack_only"] / latency["sparse_delegate"], 3
    )
    result["claimed_convolutions"] = [
        {"node": d.node_index, "claimed": d.claimed, "reason": d.reason, "block_n": d.block_n}
        for d in decisions
    ]
    return result


def print_report(report: dict, is_sample: bool, output_dir: Path) -> None:
    data, dense = report["data"], report["dense_baseline"]
    print("\n=== main job report ===")
    print(f"command: {report['command']}")
    print(f"data: {data['name']}, {data['train_images']} train / {data['test_images']} test images")
    print(f"      from {data['source']}")
    if is_sample:
        print("      NOTE: the full dataset was not found; this is the small committed sample, so")
        print("      accuracies are not comparable to full-data results (README 'Full datasets').")
    print(
        f"1. dense baseline {dense['model']} ({dense['parameters']:,} parameters): test accuracy "
        f"{dense['test_accuracy']:.4f} after {dense['epochs']} epochs ({dense['train_seconds']} s)"
    )
    if "subp" in report:
        subp, flops = report["subp"], report["subp"]["flops_per_image"]
        print(
            f"2. SUBP 1x{subp['block_n']}, {subp['sparsity']:.0%} of blocks pruned: test accuracy "
            f"{subp['test_accuracy']:.4f} after {subp['epochs']} epochs ({subp['train_seconds']} s); "
            f"FLOPs/image {flops['actual']:,} actual vs {flops['dense']:,} dense"
        )
    if "tflite" in report:
        tflite = report["tflite"]
        claimed = sum(entry["claimed"] for entry in tflite["claimed_convolutions"])
        print(
            f"3. TFLite ({tflite['tflite_bytes']:,} bytes): delegate claimed {claimed} of "
            f"{len(tflite['claimed_convolutions'])} convolutions"
        )
        for name in ("sparse_delegate", "xnnpack_only"):
            entry = tflite[name]
            print(
                f"   {name:16s} test accuracy {entry['test_accuracy']:.4f}, agreement with Keras "
                f"{entry['agreement_with_keras']:.4f}, batch-1 latency {entry['batch1_latency_ms_median']} ms"
            )
        print(
            f"   latency ratio XNNPACK / delegate: {tflite['latency_ratio_xnnpack_over_delegate']}"
        )
    print(f"report: {output_dir / 'report.json'}")


def main(argv: list[str]) -> None:
    del argv
    output_dir = Path(FLAGS.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    dataset, is_sample = load_data(FLAGS.data_dir, FLAGS.allow_download)
    flag_names = ("epochs", "subp_epochs", "block_n", "sparsity", "batch_size", "threads", "seed")
    report = {
        "command": "python -m scripts.main_job "
        + " ".join(f"--{name}={FLAGS[name].value}" for name in flag_names),
        "data": {
            "name": dataset.name,
            "source": dataset.source,
            "train_images": len(dataset.x_train),
            "test_images": len(dataset.x_test),
        },
        "dense_baseline": train_dense_baseline(dataset, output_dir),
    }
    if FLAGS.subp_epochs > 0:
        stripped, report["subp"] = train_subp(dataset, output_dir)
        report["tflite"] = deploy_with_delegate(stripped, dataset, output_dir)
    (output_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print_report(report, is_sample, output_dir)


if __name__ == "__main__":
    app.run(main)
