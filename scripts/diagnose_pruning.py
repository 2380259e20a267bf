"""Which layers does each pruning compensation help or hurt? A per-layer diagnosis on real images.

For a saved `.keras` model and one pruning ratio, prints one row per prunable layer:
- the layer's size: channels kept / total, weights per filter D (UDFC's weight-level fit is exact
  when kept >= D), the activation;
- how well the pruned channels are rebuilt after the activation on `--images` test images
  (`dfcompress.reconstruction_errors`: 1.0 = as bad as dropping the channel), for UDFC, Neuron
  Merging and the best linear fit on those activations;
- test accuracy with *only that layer* pruned, by plain pruning, Neuron Merging and UDFC (pruning
  only, float32 weights);
and a last row with every layer pruned. The methods stay data-free; the images only measure.

Example:
  python -m scripts.diagnose_pruning --model_path vgg.keras --prune_ratio 0.3 --output diag.md
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from scripts.compression_evaluation import (  # noqa: E402
    DATASETS,
    OUTPUT_TAKEN,
    CommandError,
    accuracy,
    finish_report,
    load_test_data,
    output_is_free,
    run_report_program,
)

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Saved Keras model (.keras).")
flags.DEFINE_float("prune_ratio", 0.3, "Fraction of channels pruned per layer, in (0, 1).")
flags.DEFINE_enum("criterion", "l2", ("l1", "l2"), "Filter norm ranking channels.")
flags.DEFINE_enum(
    "objective",
    "activation",
    ("activation", "bn"),
    "Where UDFC fits its combinations: after the activation (default) or at the BN output (paper).",
)
flags.DEFINE_enum("dataset", "fashion_mnist", tuple(DATASETS), "Test data.")
flags.DEFINE_string("data_dir", None, "Directory with the dataset's four IDX files.")
flags.DEFINE_integer("images", 1000, "Test images for the reconstruction errors.", lower_bound=1)
flags.DEFINE_integer("eval_images", 0, "Test images for the accuracies (0 = all).", lower_bound=0)
flags.DEFINE_string("output", None, "Also write the table to this markdown file (not replaced).")
flags.mark_flag_as_required("model_path")


@flags.validator("prune_ratio", "must be in (0, 1)")
def _ratio_in_range(value: float) -> bool:
    return 0 < value < 1


@flags.validator("model_path", "no such file")
def _model_exists(value: str | None) -> bool:
    return value is None or Path(value).is_file()


flags.register_validator("output", output_is_free, OUTPUT_TAKEN)


def diagnose(
    model,
    images,
    labels,
    prune_ratio: float,
    criterion: str,
    fit_images: int,
    objective: str = "activation",
) -> str:
    """The markdown table described in the module docstring."""
    import dfcompress

    rows = dfcompress.reconstruction_errors(
        model, images[:fit_images], prune_ratio, criterion, objective=objective
    )

    def accuracies(layers) -> list[float]:
        return [
            accuracy(method(model, prune_ratio, criterion, layers=layers)[0], images, labels)
            for method in (
                dfcompress.prune_channels,
                dfcompress.neuron_merging,
                lambda m, r, c, layers: dfcompress.udfc(
                    m, r, None, c, layers=layers, objective=objective
                ),
            )
        ]

    lines = [
        f"Float model accuracy: {100 * accuracy(model, images, labels):.2f} % on {len(labels)} "
        f"test images; pruning ratio {prune_ratio}, criterion {criterion}, UDFC objective "
        f"{objective}; reconstruction errors "
        f"on {min(fit_images, len(images))} images (after the activation; 1.00 = as bad as "
        "dropping the channel).",
        "",
        "| layer | kept / channels | D | act. | UDFC err. (before act.) | NM err. | best fit err. "
        "| UDFC coef. < 0 | acc. prune | acc. NM | acc. UDFC |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        prune, merge, udfc = accuracies([row.layer])
        lines.append(
            f"| {row.layer} | {row.kept} / {row.channels} | {row.weights_per_filter} "
            f"| {row.activation or '-'} | {row.udfc_error:.2f} ({row.udfc_error_before_activation:.2f}) "
            f"| {row.neuron_merging_error:.2f} | {row.fitted_error:.2f} "
            f"| {100 * row.udfc_negative_fraction:.0f} % "
            f"| {100 * prune:.2f} | {100 * merge:.2f} | {100 * udfc:.2f} |"
        )
    prune, merge, udfc = accuracies(None)
    lines.append(
        f"| every layer above | | | | | | | | {100 * prune:.2f} | {100 * merge:.2f} "
        f"| {100 * udfc:.2f} |"
    )
    return "\n".join(lines)


def run() -> str:
    import keras

    images, labels, source = load_test_data(FLAGS.dataset, FLAGS.data_dir)
    if FLAGS.eval_images:
        images, labels = images[: FLAGS.eval_images], labels[: FLAGS.eval_images]
    try:
        model = keras.models.load_model(FLAGS.model_path)
    except Exception as error:  # Keras raises assorted types for an unreadable file
        raise CommandError(f"--model_path: cannot load {FLAGS.model_path}: {error}") from error
    print(f"test data: {source}")
    try:
        table = diagnose(
            model,
            images,
            labels,
            FLAGS.prune_ratio,
            FLAGS.criterion,
            FLAGS.images,
            FLAGS.objective,
        )
    except ValueError as error:
        raise CommandError(f"--model_path: {error}") from error
    command = "python -m scripts.diagnose_pruning " + " ".join(sys.argv[1:])
    text = f"`{command}`\n\n{table}\n"
    return finish_report(text, FLAGS.output)


def main(argv: list[str]) -> None:
    run_report_program(argv, run)


if __name__ == "__main__":
    app.run(main)
