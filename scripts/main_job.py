"""The project's main job (`make demo`): train a dense baseline CNN on real Fashion-MNIST and report.

Data: the full Fashion-MNIST (60,000 / 10,000) from the first local place that has it
(`cnn_zoo.datasets`); if none does and no download is possible, the committed 5,000 / 1,000 sample
in tests/fixtures, said loudly in the report. The report says which data was used.

Example:
  python -m scripts.main_job --epochs 6 --output_dir results/main_job
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Directory holding the four Fashion-MNIST IDX files.")
flags.DEFINE_integer("epochs", 6, "Training epochs for the dense baseline.")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_float("learning_rate", 2e-3, "Adam learning rate (cosine-decayed to zero).")
flags.DEFINE_integer("seed", 0, "Seed for weights, shuffling and every random choice.")
flags.DEFINE_string(
    "output_dir", "results/main_job", "Where the report (JSON) and model are written."
)
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


def train_dense_baseline(dataset, output_dir: Path) -> dict:
    """Train `cnn_zoo.models.vgg_small` and return its test accuracy, timings and settings."""
    import keras

    from cnn_zoo.datasets import to_model_inputs
    from cnn_zoo.models import vgg_small

    keras.utils.set_random_seed(FLAGS.seed)
    x_train, x_test = to_model_inputs(dataset.x_train), to_model_inputs(dataset.x_test)
    model = vgg_small(seed=FLAGS.seed)
    steps = FLAGS.epochs * -(-len(x_train) // FLAGS.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(FLAGS.learning_rate, steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(x_train, dataset.y_train, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, verbose=2)
    train_seconds = time.perf_counter() - start
    _, test_accuracy = model.evaluate(x_test, dataset.y_test, batch_size=512, verbose=0)
    model.save(output_dir / "dense_baseline.keras")
    return {
        "model": model.name,
        "parameters": model.count_params(),
        "epochs": FLAGS.epochs,
        "train_seconds": round(train_seconds, 1),
        "test_accuracy": round(float(test_accuracy), 4),
    }


def main(argv: list[str]) -> None:
    del argv
    output_dir = Path(FLAGS.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    dataset, is_sample = load_data(FLAGS.data_dir, FLAGS.allow_download)
    report = {
        "command": "python -m scripts.main_job "
        + " ".join(f"--{name}={FLAGS[name].value}" for name in ("epochs", "batch_size", "seed")),
        "data": {
            "name": dataset.name,
            "source": dataset.source,
            "train_images": len(dataset.x_train),
            "test_images": len(dataset.x_test),
        },
        "dense_baseline": train_dense_baseline(dataset, output_dir),
    }
    (output_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    baseline = report["dense_baseline"]
    print("\n=== main job report ===")
    print(f"data: {dataset.name}, {len(dataset.x_train)} train / {len(dataset.x_test)} test images")
    print(f"      from {dataset.source}")
    if is_sample:
        print(
            "      NOTE: the full dataset was not found; this is the small committed sample, so the"
        )
        print(
            "      accuracy below is not comparable to full-data results (see README 'Full datasets')."
        )
    print(
        f"dense baseline {baseline['model']} ({baseline['parameters']:,} parameters): "
        f"test accuracy {baseline['test_accuracy']:.4f} after {baseline['epochs']} epochs "
        f"({baseline['train_seconds']} s of training)"
    )
    print(f"report: {output_dir / 'report.json'}")


if __name__ == "__main__":
    app.run(main)
