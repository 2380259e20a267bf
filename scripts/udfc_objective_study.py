"""Where should UDFC fit its combinations? Its two objectives against Neuron Merging, over seeds.

Trains small BN CNNs (`cnn_zoo.models` vgg_small / resnet_small; Adam 2e-3, batch 64, seeded) on the
committed Fashion-MNIST sample (5,000 training images; or a full copy with --data_dir), then at each
pruning ratio compares, on the test images, with the same channels removed everywhere:

- plain pruning and Neuron Merging (float32 weights);
- UDFC with the paper's objective (`objective="bn"`: the combination fitted at the BN output);
- UDFC with the default objective (`objective="activation"`: fitted after the activation).

Both UDFC columns quantize every kernel to --weight_bits as well (0 = pruning only). Prints (and
with --output writes) a markdown table, one row per model, seed and ratio, and a summary: how often
each UDFC beats Neuron Merging and plain pruning, and the mean differences.

Example (about 5 minutes on 2 cores; docs/compression.md has its table):
  python -m scripts.udfc_objective_study --models=resnet,vgg --seeds=0,1,2,3,4 --ratios=0.3,0.5
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from scripts.compression_evaluation import (  # noqa: E402
    OUTPUT_TAKEN,
    SAMPLE_DIR,
    CommandError,
    accuracy,
    finish_report,
    output_is_free,
    run_report_program,
)

MODELS = ("resnet", "vgg")
FLAGS = flags.FLAGS
flags.DEFINE_list("models", list(MODELS), f"Networks to train, from {MODELS}.")
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Training seeds (one model per seed).")
flags.DEFINE_list("ratios", ["0.3", "0.5"], "Pruning ratios, each in (0, 1).")
flags.DEFINE_integer("epochs", 3, "Training epochs per model.", lower_bound=1)
flags.DEFINE_integer("weight_bits", 6, "UDFC weight bits (0 = pruning only).", lower_bound=0)
flags.DEFINE_string(
    "data_dir", None, "Directory with Fashion-MNIST's four IDX files (default: committed sample)."
)
flags.DEFINE_string("output", None, "Also write the table to this markdown file (not replaced).")


@flags.validator("models", f"must be a non-empty subset of {MODELS}")
def _models_known(value: list[str]) -> bool:
    return bool(value) and all(model in MODELS for model in value)


@flags.validator("seeds", "must be a non-empty list of integers >= 0")
def _seeds_are_integers(value: list[str]) -> bool:
    return bool(value) and all(seed.isdigit() for seed in value)


@flags.validator("ratios", "must be a non-empty list of numbers in (0, 1)")
def _ratios_in_range(value: list[str]) -> bool:
    try:
        return bool(value) and all(0 < float(ratio) < 1 for ratio in value)
    except ValueError:
        return False


@flags.validator("weight_bits", "must be 0 (pruning only) or 2..16")
def _bits_in_range(value: int) -> bool:
    return value == 0 or 2 <= value <= 16


flags.register_validator("output", output_is_free, OUTPUT_TAKEN)


def study(data, models: list[str], seeds: list[int], ratios: list[float], epochs: int, bits):
    """(rows, summary lines): one row dict per model, seed and ratio with every accuracy (%)."""
    import keras
    import numpy as np

    import dfcompress
    from cnn_zoo.datasets import to_model_inputs
    from cnn_zoo.models import resnet_small, vgg_small

    builders = {"resnet": resnet_small, "vgg": vgg_small}
    x_train, x_test = to_model_inputs(data.x_train), to_model_inputs(data.x_test)
    labels = data.y_test.astype(np.int64)
    rows = []
    for name in models:
        for seed in seeds:
            keras.utils.set_random_seed(seed)
            model = builders[name](seed=seed)
            model.compile(
                optimizer=keras.optimizers.Adam(2e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            model.fit(x_train, data.y_train, epochs=epochs, batch_size=64, verbose=0)
            fp32 = 100 * accuracy(model, x_test, labels)
            for ratio in ratios:
                row = {"model": name, "seed": seed, "ratio": ratio, "fp32": fp32}
                candidates = {
                    "prune": dfcompress.prune_channels(model, ratio)[0],
                    "nm": dfcompress.neuron_merging(model, ratio)[0],
                    "udfc_bn": dfcompress.udfc(model, ratio, bits, objective="bn")[0],
                    "udfc": dfcompress.udfc(model, ratio, bits)[0],
                }
                for key, candidate in candidates.items():
                    row[key] = 100 * accuracy(candidate, x_test, labels)
                rows.append(row)
                print(
                    f"{name} seed {seed} ratio {ratio}: "
                    + ", ".join(f"{k} {v:.1f}" for k, v in row.items() if k in candidates),
                    flush=True,
                )
    summary = []
    for key, label in (("udfc_bn", "UDFC, paper objective"), ("udfc", "UDFC, default objective")):
        over_nm = [row[key] - row["nm"] for row in rows]
        over_prune = [row[key] - row["prune"] for row in rows]
        summary.append(
            f"- {label}: above Neuron Merging in {sum(d > 0 for d in over_nm)} of {len(rows)} "
            f"rows (mean {np.mean(over_nm):+.1f} points), above plain pruning in "
            f"{sum(d > 0 for d in over_prune)} of {len(rows)} (mean {np.mean(over_prune):+.1f})."
        )
    return rows, summary


def markdown(rows: list[dict], summary: list[str], source: str, command: str, bits) -> str:
    bit_text = "float32 weights" if bits is None else f"every kernel at {bits} bits"
    lines = [
        f"`{command}`",
        "",
        f"Test accuracy in % ({source}). Prune and NM keep float32 weights; both UDFC columns "
        f"have {bit_text}. Criterion l2; the same channels are removed by every method.",
        "",
        "| model | seed | FP32 | ratio | Prune | NM | UDFC paper obj. | UDFC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['seed']} | {row['fp32']:.1f} | {100 * row['ratio']:.0f} % "
            f"| {row['prune']:.1f} | {row['nm']:.1f} | {row['udfc_bn']:.1f} | {row['udfc']:.1f} |"
        )
    return "\n".join(lines + ["", *summary])


def run() -> str:
    from cnn_zoo.datasets import DatasetNotFoundError, load_idx_directory
    from cnn_zoo.idx_format import IdxFormatError

    directory = Path(FLAGS.data_dir) if FLAGS.data_dir else SAMPLE_DIR
    try:
        data = load_idx_directory(directory, name="fashion-mnist")
    except (DatasetNotFoundError, IdxFormatError, OSError) as error:
        raise CommandError(f"--data_dir: {error}") from error
    source = f"{len(data.y_train):,} training / {len(data.y_test):,} test images from " + (
        "the committed sample" if FLAGS.data_dir is None else str(directory)
    )
    bits = FLAGS.weight_bits or None
    rows, summary = study(
        data,
        FLAGS.models,
        [int(seed) for seed in FLAGS.seeds],
        [float(ratio) for ratio in FLAGS.ratios],
        FLAGS.epochs,
        bits,
    )
    command = "python -m scripts.udfc_objective_study " + " ".join(sys.argv[1:])
    text = markdown(rows, summary, source, command, bits) + "\n"
    return finish_report(text, FLAGS.output)


def main(argv: list[str]) -> None:
    run_report_program(argv, run)


if __name__ == "__main__":
    app.run(main)
