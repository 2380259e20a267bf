"""What the dfcompress command-line programs share: the test split they evaluate on, accuracy, and
the main function and --output handling of the programs that print a markdown report.

The training data is never used: compression is data-free, and the test split only measures the
result.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

DATASETS = {"fashion_mnist": "fashion-mnist", "mnist": "mnist"}
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "fashion-mnist-sample"


class CommandError(Exception):
    """A problem with the inputs found after flag parsing: reported as one line, exit status 1."""


def load_test_data(dataset: str, data_dir: str | None):
    """(images float32 [N, H, W, 1] in [0, 1], labels [N], description of the source)."""
    from cnn_zoo.datasets import (
        DatasetNotFoundError,
        load_dataset,
        load_idx_directory,
        to_model_inputs,
    )

    try:
        data = load_dataset(DATASETS[dataset], data_dir, allow_download=False)
        source = data.source
    except DatasetNotFoundError as error:
        if data_dir is not None:
            raise CommandError(
                f"--data_dir: no {DATASETS[dataset]} IDX files in {data_dir}"
            ) from error
        if dataset != "fashion_mnist":
            first = str(error).splitlines()[0]
            raise CommandError(f"--dataset={dataset}: {first} (see cnn_zoo/datasets.py)") from error
        data = load_idx_directory(SAMPLE_DIR, name="fashion-mnist sample")
        source = (
            f"the committed SAMPLE ({len(data.y_test)} test images, tests/fixtures), because no full "
            "Fashion-MNIST copy was found (apt-get install dataset-fashion-mnist, or --data_dir)"
        )
    return to_model_inputs(data.x_test), data.y_test.astype(np.int64), source


def accuracy(model, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of the model's outputs (logits or probabilities) on the images."""
    outputs = model.predict(images, batch_size=500, verbose=0)
    return float(np.mean(np.argmax(outputs, axis=-1) == labels))


OUTPUT_TAKEN = "exists already (choose another path) or its folder does not exist"


def output_is_free(value: str | None) -> bool:
    """The --output check: no output, or a path that does not exist yet in an existing folder."""
    return value is None or (not Path(value).exists() and Path(value).parent.is_dir())


def finish_report(text: str, output: str | None) -> str:
    """Write the report `text` to `output` when one is given (never replacing: the flag's
    validator refused an existing path) and return the text."""
    if output:
        Path(output).write_text(text)
    return text


def run_report_program(argv: list[str], run: Callable[[], str]) -> None:
    """The absl `main` of a program that prints a markdown report made by `run`: no positional
    arguments; absl warnings silenced (each method's model is new, so Keras retraces predict and
    absl logs a warning every time); a CommandError ends it with one line "error: ..." on stderr
    and exit status 1."""
    from absl import app, logging

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.ERROR)
    try:
        print(run())
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
