"""The project's main job (`make demo`): train a 1xN sparse CNN, convert it, run it fast, compress it.

Steps (each one's results go to the report; details in docs/pipeline.md):

1. Train a dense baseline and a SUBP 1xN model of the same VGG-style network (`--widths`), and a
   SUBP model at each `--gap_sparsities` value (0.75: its accuracy gap only), side by side in
   one-thread child processes (`--train_jobs=2`), on Fashion-MNIST: the full 60,000/10,000 set
   when a local copy exists (`cnn_zoo.datasets`), else the committed 5,000/1,000 sample, said
   plainly. SUBP's cubic schedule advances `--mask_updates_per_epoch` times per epoch and makes
   the mask final after `--prune_end` of the training, so the network recovers for the rest of
   it.
2. Strip the SUBP model, convert both models to float32 `.tflite`, and check that the TFLite test
   accuracy equals the Keras one, with the sparse delegate and with XNNPACK alone.
3. Time batch-1 latency and batch-64 throughput of the SUBP model with and without the delegate
   (and of the dense model with XNNPACK) at --threads, and batch 1 at one thread too, all
   interpreters interleaved, medians of rounds; and a model-level ResNet-50 row (224x224x3, 1x16
   blocks, 66/128 block sparsity in every conv but the first, batch 1; its `.tflite` is cached in
   `--cache_dir`).
4. Compress the dense baseline with dfcompress UDFC and DF-MPC and the SUBP model with a
   zero-preserving symmetric quantizer; evaluate each; sizes at their bit widths and as float32
   and int8 `.tflite` files.
5. Write `--out_dir` (summary.md, report.json, PNG plots, models, logs) and print a short table.

The report folder is written under a temporary name and renamed into place at the end; an existing
folder is never replaced unless `--overwrite` is given. TensorFlow's native log lines go to
`logs/native_stderr.log` in the report folder, not to the terminal.

Examples:
  python -m scripts.pipeline                              # the default demo, 8-9 min on the 2-core Zen 4 VM
  python -m scripts.pipeline --sparsity=0.75 --out_dir=results/pipeline_p75
  python -m scripts.pipeline --tiny --out_dir=/tmp/pipeline_tiny   # smoke test, under a minute
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

REPOSITORY = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPOSITORY / "tests" / "fixtures" / "fashion-mnist-sample"
RESNET50_DEFAULT_SPARSITY = 66 / 128

FLAGS = flags.FLAGS
TINY_SETTINGS = {
    "widths": ["32", "32", "32"],
    "epochs": 1,
    "train_images": 256,
    "batch_size": 32,
    "repeats": 3,
    "invokes": 2,
    "resnet50": False,
}


POSITIVE_FLAGS = (
    "convs_per_stage",
    "epochs",
    "batch_size",
    "block_n",
    "threads",
    "repeats",
    "invokes",
    "mask_updates_per_epoch",
)


def define_flags() -> None:
    """Define the flags on absl's global FLAGS, with a validator for every single-flag rule.

    Called only when the module runs as a program, so that importing it (tests) defines nothing.
    """
    flags.DEFINE_string("data_dir", None, "Directory holding the four Fashion-MNIST IDX files.")
    flags.DEFINE_bool("allow_download", False, "Try keras.datasets if no local copy is found.")
    flags.DEFINE_list("widths", ["32", "64", "512"], "Conv widths of the VGG-style stages.")
    flags.DEFINE_integer("convs_per_stage", 1, "3x3 conv-BN-ReLU layers per stage.")
    flags.DEFINE_integer("epochs", 3, "Training epochs of each model (dense and SUBP).")
    flags.DEFINE_integer(
        "train_jobs",
        2,
        "2: train every model (dense, SUBP, one per --gap_sparsities) at once, each in its "
        "own process of one TensorFlow thread (on 2 cores about 1.4x the throughput of "
        "two-thread trainings one after the other); 1: one after the other in this process.",
    )
    flags.DEFINE_integer("batch_size", 128, "Training batch size.")
    flags.DEFINE_enum("optimizer", "sgd", ["sgd", "adam"], "sgd (momentum 0.9) or adam (AdamW).")
    flags.DEFINE_float(
        "lr", None, "Peak learning rate (cosine-decayed to 0); default adam 2e-3, sgd 0.1."
    )
    flags.DEFINE_float("label_smoothing", 0.1, "Label smoothing of the cross-entropy.")
    flags.DEFINE_float(
        "weight_decay", 1e-4, "Decoupled weight decay (not on BatchNorm parameters)."
    )
    flags.DEFINE_integer("train_images", 0, "Use only the first K training images (0: all).")
    flags.DEFINE_integer("test_images", 0, "Use only the first K test images (0: all).")
    flags.DEFINE_integer("block_n", 16, "N of the 1xN blocks (output channels per block).")
    flags.DEFINE_float("sparsity", 0.5, "Block sparsity p of every sparse layer, in [0, 1).")
    flags.DEFINE_list(
        "gap_sparsities",
        ["0.75"],
        "Further SUBP block sparsities, each trained alongside (same network, recipe and seed) "
        "only for its test accuracy and gap to dense; empty for none.",
    )
    flags.DEFINE_enum("criterion", "bpar", ["bpar", "l1", "l2"], "SUBP block importance criterion.")
    flags.DEFINE_float("prune_end", 0.4, "Fraction of training after which the mask is final.")
    flags.DEFINE_integer(
        "mask_updates_per_epoch", 4, "SUBP mask updates (schedule steps) per epoch."
    )
    flags.DEFINE_integer("threads", 2, "Threads of every LiteRT interpreter.")
    flags.DEFINE_integer("repeats", 15, "Interleaved timing rounds (the median is reported).")
    flags.DEFINE_integer(
        "invokes",
        100,
        "Batch-1 invokes per interpreter per round (batch 64: 1/5). At 0.2 ms per invoke a "
        "round's sample then lasts about 20 ms, so the wake-up of thread pools that slept while "
        "the other interpreters ran is a small part of it, as in a steady stream of requests.",
    )
    flags.DEFINE_bool("resnet50", True, "Add the model-level ResNet-50 1x16 row (batch 1).")
    flags.DEFINE_float("resnet50_sparsity", RESNET50_DEFAULT_SPARSITY, "ResNet-50 block sparsity.")
    flags.DEFINE_bool("compress", True, "Run the dfcompress step.")
    flags.DEFINE_float("udfc_prune_ratio", 0.3, "UDFC: fraction of channels pruned per layer.")
    flags.DEFINE_integer("udfc_bits", 6, "UDFC: weight bits.")
    flags.DEFINE_integer("dfmpc_low_bits", 2, "DF-MPC: bits of the low-precision layers.")
    flags.DEFINE_integer("dfmpc_high_bits", 6, "DF-MPC: bits of the other layers.")
    flags.DEFINE_integer(
        "subp_bits", 8, "Bits of the zero-preserving quantizer for the SUBP model."
    )
    flags.DEFINE_string("out_dir", "results/pipeline", "Report folder (must not exist yet).")
    flags.DEFINE_bool(
        "overwrite", False, "Replace an existing --out_dir once the new run succeeds."
    )
    flags.DEFINE_string("cache_dir", "results/cache", "Cache of the ResNet-50 .tflite.")
    flags.DEFINE_integer("seed", 0, "Seed of weights, shuffling, masks and inputs.")
    flags.DEFINE_bool(
        "tiny",
        False,
        "Smoke-test settings for flags not given explicitly: widths 32,32,32, 1 epoch, 256 training "
        "images, 3 timing rounds, no ResNet-50.",
    )

    for name in POSITIVE_FLAGS:
        flags.register_validator(name, lambda value: value >= 1, "must be >= 1")
    for name in ("train_images", "test_images"):
        flags.register_validator(name, lambda value: value >= 0, "must be >= 0")
    flags.register_validator(
        "widths",
        lambda values: (
            bool(values)
            and all(v.strip().isdigit() and int(v) > 0 and int(v) % 32 == 0 for v in values)
        ),
        "must list positive multiples of 32",
    )
    flags.register_validator("train_jobs", lambda value: value in (1, 2), "must be 1 or 2")
    flags.register_validator("sparsity", lambda value: 0 <= value < 1, "must be in [0, 1)")
    flags.register_validator(
        "gap_sparsities",
        lambda values: all(_is_float_in(v, 0, 1) for v in values),
        "must list block sparsities in (0, 1)",
    )
    flags.register_validator("resnet50_sparsity", lambda value: 0 <= value < 1, "must be in [0, 1)")
    flags.register_validator("prune_end", lambda value: 0 < value <= 1, "must be in (0, 1]")
    flags.register_validator("lr", lambda value: value is None or value > 0, "must be positive")
    flags.register_validator("label_smoothing", lambda value: 0 <= value < 1, "must be in [0, 1)")
    flags.register_validator("weight_decay", lambda value: value >= 0, "must be >= 0")
    flags.register_validator("udfc_prune_ratio", lambda value: 0 <= value < 1, "must be in [0, 1)")
    flags.register_validator("udfc_bits", lambda v: 2 <= v <= 16, "must be in [2, 16]")
    flags.register_validator("dfmpc_low_bits", lambda v: 2 <= v <= 8, "must be in [2, 8]")
    flags.register_validator("dfmpc_high_bits", lambda v: 2 <= v <= 16, "must be in [2, 16]")
    flags.register_validator("subp_bits", lambda v: 2 <= v <= 8, "must be in [2, 8]")
    flags.register_validator(
        "seed", lambda value: 0 <= value < 2**31 - 1, "must be in [0, 2**31 - 1)"
    )
    flags.register_validator("out_dir", lambda value: bool(value), "must not be empty")


def _is_float_in(text: str, low: float, high: float) -> bool:
    """Whether `text` parses as a float strictly between `low` and `high`."""
    try:
        return low < float(text) < high
    except ValueError:
        return False


class FlagError(ValueError):
    """A flag value that cannot work; the message names the flag."""


def check_flags() -> None:
    """Checks across flags (single-flag checks are absl validators). Raises FlagError."""
    widths = [int(w) for w in FLAGS.widths]
    if any(width % FLAGS.block_n for width in widths):
        raise FlagError(
            f"--block_n={FLAGS.block_n} must divide every width in --widths={','.join(FLAGS.widths)}"
        )
    gap_sparsities = [float(v) for v in FLAGS.gap_sparsities]
    if FLAGS.sparsity in gap_sparsities or len(set(gap_sparsities)) < len(gap_sparsities):
        raise FlagError(
            f"--gap_sparsities={','.join(FLAGS.gap_sparsities)} must not repeat a value or "
            f"--sparsity={FLAGS.sparsity:g}"
        )
    if FLAGS.dfmpc_low_bits >= FLAGS.dfmpc_high_bits:
        raise FlagError(
            f"--dfmpc_low_bits={FLAGS.dfmpc_low_bits} must be below "
            f"--dfmpc_high_bits={FLAGS.dfmpc_high_bits}"
        )
    out_dir = Path(FLAGS.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FlagError(f"--out_dir={out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not FLAGS.overwrite:
        raise FlagError(
            f"--out_dir={out_dir} already holds a report; choose another --out_dir or pass "
            "--overwrite (the old folder is replaced only when the new run succeeds)"
        )
    if FLAGS.data_dir is not None and not Path(FLAGS.data_dir).is_dir():
        raise FlagError(f"--data_dir={FLAGS.data_dir} is not a directory")


def apply_tiny_settings() -> None:
    """--tiny: smoke-test values for every flag of TINY_SETTINGS the user did not give."""
    if FLAGS.tiny:
        for name, value in TINY_SETTINGS.items():
            if not FLAGS[name].present:
                FLAGS[name].value = value


def command_line() -> str:
    """The command that reproduces this run: every flag that differs from its default."""
    parts = ["python -m scripts.pipeline"]
    own_flags = FLAGS.get_key_flags_for_module(sys.modules[__name__])
    for flag in sorted(own_flags, key=lambda flag: flag.name):
        if flag.value != flag.default:
            value = ",".join(flag.value) if isinstance(flag.value, list) else flag.value
            parts.append(f"--{flag.name}={value}")
    return " ".join(parts)


# ----------------------------------------------------------------------------- terminal output


class Console:
    """Step headers, one-line progress (rewritten in place on a terminal) and the final table.

    Writes to the process's original stdout; native stderr goes to a log file (see
    `redirect_native_stderr`).
    """

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self._open_line = False

    def _clock(self) -> str:
        seconds = int(time.perf_counter() - self.start)
        return f"{seconds // 60:02d}:{seconds % 60:02d}"

    def step(self, text: str) -> None:
        self.end_progress()
        print(f"[{self._clock()}] {text}", file=self.stream, flush=True)

    def note(self, text: str) -> None:
        self.end_progress()
        print(f"        {text}", file=self.stream, flush=True)

    def progress(self, text: str, final: bool = False) -> None:
        """On a terminal, rewrite one line; elsewhere print only `final` lines (logs stay short)."""
        if self.tty:
            print(f"\r\x1b[2K        {text}", end="", file=self.stream, flush=True)
            self._open_line = True
            if final:
                self.end_progress()
        elif final:
            print(f"        {text}", file=self.stream, flush=True)

    def end_progress(self) -> None:
        if self._open_line:
            print(file=self.stream, flush=True)
            self._open_line = False


@contextlib.contextmanager
def redirect_native_stderr(log_path: Path):
    """Send file descriptor 2 (TensorFlow's and the converter's C++ logging) to `log_path`.

    Python's own `sys.stderr` keeps writing to the original terminal, so tracebacks and error
    messages still reach the user.
    """
    sys.stderr.flush()
    original = os.dup(2)
    python_stderr = sys.stderr
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 2)
    sys.stderr = os.fdopen(os.dup(original), "w", buffering=1)
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(original, 2)
        os.close(original)


def import_tensorflow_quietly():
    """Import TensorFlow and Keras and silence their Python-side loggers; returns keras."""
    import keras
    import tensorflow as tf
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    tf.get_logger().setLevel("ERROR")
    tf.autograph.set_verbosity(0)
    return keras


# ----------------------------------------------------------------------------- 1. training


def load_data(data_dir: str | None, allow_download: bool):
    """Fashion-MNIST from the first place that has it (`cnn_zoo.datasets`), else the committed
    sample. Returns (dataset, fell_back_to_sample, reason the full set was not found or "")."""
    from cnn_zoo.datasets import DatasetNotFoundError, load_fashion_mnist, load_idx_directory

    try:
        return load_fashion_mnist(data_dir, allow_download=allow_download), False, ""
    except DatasetNotFoundError as error:
        sample = load_idx_directory(SAMPLE_DIR, name="fashion-mnist (committed sample)")
        return sample, True, str(error).splitlines()[0]


def prepare_data() -> tuple[dict, dict]:
    """Fashion-MNIST per --data_dir, --train_images and --test_images, as model inputs.

    Returns (arrays: x_train, y_train_onehot, x_test, y_test, y_test_onehot; facts for the
    report: name, source, is_full, fell_back_to_sample, why_not_full, image counts).
    """
    from cnn_zoo.datasets import to_model_inputs

    dataset, fell_back, why = load_data(FLAGS.data_dir, FLAGS.allow_download)
    is_full = dataset.x_train.shape[0] == 60000 and dataset.x_test.shape[0] == 10000
    x_train, y_train = dataset.x_train, dataset.y_train
    x_test, y_test = dataset.x_test, dataset.y_test
    if FLAGS.train_images:
        x_train, y_train = x_train[: FLAGS.train_images], y_train[: FLAGS.train_images]
    if FLAGS.test_images:
        x_test, y_test = x_test[: FLAGS.test_images], y_test[: FLAGS.test_images]
    data = {
        "x_train": to_model_inputs(x_train),
        "y_train_onehot": np.eye(10, dtype=np.float32)[y_train],
        "x_test": to_model_inputs(x_test),
        "y_test": y_test.astype(np.int64),
        "y_test_onehot": np.eye(10, dtype=np.float32)[y_test],
    }
    facts = {
        "name": dataset.name,
        "source": dataset.source,
        "is_full": is_full and not (FLAGS.train_images or FLAGS.test_images),
        "fell_back_to_sample": fell_back,
        "why_not_full": why,
        "train_images": len(x_train),
        "test_images": len(x_test),
    }
    return data, facts


def build_network(seed: int):
    """The network both models share: `cnn_zoo.models.vgg_small` with `--widths`."""
    from cnn_zoo.models import vgg_small

    return vgg_small(
        widths=tuple(int(w) for w in FLAGS.widths),
        convs_per_stage=FLAGS.convs_per_stage,
        seed=seed,
    )


def make_progress_callback(keras, show, label: str, epochs: int, steps: int):
    """A Keras callback reporting epoch, step and accuracy through `show(text, final)`: a short
    line every 10 steps and a final line per epoch with the test accuracy."""

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.epoch_start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if batch % 10 == 0 or batch + 1 == steps:
                logs = logs or {}
                seconds = time.perf_counter() - self.epoch_start
                show(
                    f"{label} epoch {self.epoch + 1}/{epochs} step {batch + 1}/{steps} "
                    f"acc {logs.get('accuracy', float('nan')):.3f} ({seconds:.0f} s)",
                    False,
                )

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            show(
                f"{label} epoch {epoch + 1}/{epochs}: train acc {logs.get('accuracy', 0):.4f}, "
                f"test acc {logs.get('val_accuracy', 0):.4f} "
                f"({time.perf_counter() - self.epoch_start:.0f} s)",
                True,
            )

    return Progress()


def make_mask_callback(keras, steps_per_epoch: int, updates_per_epoch: int):
    """Calls `keras_subp.update_masks` `updates_per_epoch` times per epoch (evenly spaced steps).

    Each call advances every SUBP layer's schedule by one position, so the schedule counts mask
    updates; `history` keeps (epoch + fraction, mean block sparsity) after each update.
    """
    import keras_subp

    interval = max(1, math.ceil(steps_per_epoch / updates_per_epoch))

    class MaskUpdates(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.history: list[tuple[float, float]] = []
            self.epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            if batch % interval == 0:
                updates = keras_subp.update_masks(self.model)
                sparsity = float(np.mean([update.block_sparsity for update in updates]))
                self.history.append((self.epoch + batch / steps_per_epoch, sparsity))

    return MaskUpdates()


def compile_for_training(keras, model, steps: int) -> None:
    """The training recipe: cosine-decayed LR, label-smoothed cross-entropy on logits, decoupled
    weight decay that skips BatchNorm parameters and biases."""
    lr = FLAGS.lr or (2e-3 if FLAGS.optimizer == "adam" else 0.1)
    schedule = keras.optimizers.schedules.CosineDecay(lr, steps)
    weight_decay = FLAGS.weight_decay or None
    if FLAGS.optimizer == "adam":
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=weight_decay or 0.0)
    else:
        optimizer = keras.optimizers.SGD(
            schedule, momentum=0.9, nesterov=False, weight_decay=weight_decay
        )
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias", "mask"])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=FLAGS.label_smoothing
        ),
        metrics=["accuracy"],
    )


def train(keras, model, data: dict, label: str, show, callbacks=()) -> dict:
    """Fit `model` for --epochs on data["x_train"]; returns per-epoch curves and wall time."""
    steps_per_epoch = math.ceil(len(data["x_train"]) / FLAGS.batch_size)
    compile_for_training(keras, model, FLAGS.epochs * steps_per_epoch)
    progress = make_progress_callback(keras, show, label, FLAGS.epochs, steps_per_epoch)
    start = time.perf_counter()
    history = model.fit(
        data["x_train"],
        data["y_train_onehot"],
        batch_size=FLAGS.batch_size,
        epochs=FLAGS.epochs,
        validation_data=(data["x_test"], data["y_test_onehot"]),
        validation_batch_size=500,
        callbacks=[*callbacks, progress],
        shuffle=True,
        verbose=0,
    )
    return {
        "epochs": FLAGS.epochs,
        "train_seconds": round(time.perf_counter() - start, 1),
        "curves": {
            "train_accuracy": [round(float(v), 4) for v in history.history["accuracy"]],
            "test_accuracy": [round(float(v), 4) for v in history.history["val_accuracy"]],
            "train_loss": [round(float(v), 4) for v in history.history["loss"]],
        },
    }


def keras_accuracy(model, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """(test accuracy, logits) of a Keras model, predicting in batches of 500."""
    logits = model.predict(x, batch_size=500, verbose=0)
    return float(np.mean(logits.argmax(1) == y)), logits


def subp_schedule(data: dict) -> tuple[int, int, int]:
    """(mask updates per epoch, total mask updates, the update after which the mask is final)."""
    steps_per_epoch = math.ceil(len(data["x_train"]) / FLAGS.batch_size)
    updates_per_epoch = min(FLAGS.mask_updates_per_epoch, steps_per_epoch)
    total_updates = FLAGS.epochs * updates_per_epoch
    end_update = max(1, min(total_updates - 1, round(FLAGS.prune_end * total_updates)))
    return updates_per_epoch, total_updates, end_update


def train_dense_model(keras, data: dict, work: Path, show) -> dict:
    """Train the dense baseline; saves models/dense.keras and returns its training results."""
    keras.utils.set_random_seed(FLAGS.seed)
    dense = build_network(FLAGS.seed)
    result = train(keras, dense, data, "dense", show)
    dense.save(work / "models" / "dense.keras")
    return result


def train_subp_model(
    keras, data: dict, work: Path, show, sparsity: float | None = None, role: str = "subp"
) -> dict:
    """Train a SUBP model at block sparsity `sparsity` (default --sparsity), strip it; saves
    models/<role>_stripped.keras and returns its training results with the wrapped layers'
    names and the mask history."""
    import keras_subp

    sparsity = FLAGS.sparsity if sparsity is None else sparsity

    steps_per_epoch = math.ceil(len(data["x_train"]) / FLAGS.batch_size)
    updates_per_epoch, _, end_update = subp_schedule(data)
    keras.utils.set_random_seed(FLAGS.seed)
    pruned = keras_subp.prune_subp(
        build_network(FLAGS.seed),
        n=FLAGS.block_n,
        sparsity=sparsity,
        schedule=keras_subp.schedules.Cubic(start_epoch=0, end_epoch=end_update),
        criterion=FLAGS.criterion,
        seed=FLAGS.seed,
    )
    masks = make_mask_callback(keras, steps_per_epoch, updates_per_epoch)
    label = "SUBP" if role == "subp" else f"SUBP p={sparsity:g}"
    result = train(keras, pruned, data, label, show, callbacks=[masks])
    keras_subp.strip_subp(pruned).save(work / "models" / f"{role}_stripped.keras")
    return {
        **result,
        "sparse_layers": [wrapper.layer.name for wrapper in keras_subp.subp_wrappers(pruned)],
        "mask_history": [[round(e, 3), round(s, 4)] for e, s in masks.history],
    }


def gap_role(sparsity: str) -> str:
    """The training role (and model file stem) of a --gap_sparsities value."""
    return f"subp_p{float(sparsity):g}"


def trainers() -> dict[str, Any]:
    """Every model step 1 trains, in order: role -> its training function
    (keras, data, work, show) -> training results; dense, subp, then one role per
    --gap_sparsities value."""
    roles: dict[str, Any] = {"dense": train_dense_model, "subp": train_subp_model}
    for value in FLAGS.gap_sparsities:
        role = gap_role(value)
        roles[role] = functools.partial(train_subp_model, sparsity=float(value), role=role)
    return roles


def training_child(role: str, flag_values: dict, work: str, messages) -> None:
    """A training child process (started with "spawn"): the parent's flag values, one
    TensorFlow thread; reports ("progress", role, text, final), then ("done", role, result) or
    ("error", role, traceback) on `messages`."""
    import traceback

    try:
        if "epochs" not in FLAGS:
            define_flags()
        for name, value in flag_values.items():
            FLAGS[name].value = value
        FLAGS.mark_as_parsed()
        keras = import_tensorflow_quietly()
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        data, _ = prepare_data()
        result = trainers()[role](
            keras,
            data,
            Path(work),
            lambda text, final: messages.put(("progress", role, text, final)),
        )
        messages.put(("done", role, result))
    except BaseException:
        messages.put(("error", role, traceback.format_exc()))


def train_side_by_side(work: Path, console: Console) -> dict[str, dict]:
    """Train every model of trainers() at once, each in a child process of one thread;
    returns {role: result}. A child's failure raises RuntimeError with its traceback."""
    import multiprocessing
    import queue

    own_flags = FLAGS.get_key_flags_for_module(sys.modules[__name__])
    values = {flag.name: flag.value for flag in own_flags}
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    children = {
        role: context.Process(
            target=training_child, args=(role, values, str(work), messages), name=f"train-{role}"
        )
        for role in trainers()
    }
    latest = {role: f"{role} starting" for role in children}
    results: dict[str, dict] = {}

    def handle(message) -> None:
        kind, role = message[0], message[1]
        if kind == "progress":
            text, final = message[2], message[3]
            if final:
                console.progress(text, final=True)
            else:
                latest[role] = text
                console.progress(" | ".join(latest.values()))
        elif kind == "done":
            results[role] = message[2]
        else:
            raise RuntimeError(
                f"training the {role} model failed in its child process:\n{message[2]}"
            )

    for child in children.values():
        child.start()
    try:
        while len(results) < len(children):
            try:
                handle(messages.get(timeout=1.0))
                continue
            except queue.Empty:
                pass
            if any(not child.is_alive() for role, child in children.items() if role not in results):
                # A child that exited has flushed its messages: take them, then judge.
                with contextlib.suppress(queue.Empty):
                    while True:
                        handle(messages.get(timeout=0.5))
                for role, child in children.items():
                    if role not in results and not child.is_alive():
                        raise RuntimeError(
                            f"the {role} training process exited with code {child.exitcode} "
                            "without a result (its native log is in logs/native_stderr.log)"
                        )
    finally:
        for child in children.values():
            if child.is_alive():
                child.terminate()
            child.join()
    return results


def train_models(
    keras, data: dict, work: Path, console: Console
) -> tuple[Any, Any, dict, dict[str, np.ndarray]]:
    """Step 1: the dense baseline, the SUBP model and the --gap_sparsities SUBP models; returns
    (dense, stripped SUBP, report, {"dense" | "subp": the Keras model's test-set logits}), the
    logits computed once here for every later comparison. The --gap_sparsities models only give
    their accuracy and gap to dense (report key "gap_models")."""
    import keras_subp

    updates_per_epoch, total_updates, end_update = subp_schedule(data)
    console.step(
        f"1/5 training the dense baseline and SUBP 1x{FLAGS.block_n} at {FLAGS.sparsity:.0%} "
        f"block sparsity ({FLAGS.criterion}; cubic schedule, mask final after {end_update} of "
        f"{total_updates} updates)"
        + "".join(f", and at {float(v):.0%}" for v in FLAGS.gap_sparsities)
        + f": {FLAGS.epochs} epochs on {len(data['x_train']):,} images, "
        + ("side by side, one thread each" if FLAGS.train_jobs == 2 else "one after the other")
    )
    if FLAGS.train_jobs == 2:
        results = train_side_by_side(work, console)
    else:
        results = {
            role: fit(keras, data, work, lambda text, final: console.progress(text, final))
            for role, fit in trainers().items()
        }
    dense = keras.models.load_model(work / "models" / "dense.keras")
    stripped = keras.models.load_model(work / "models" / "subp_stripped.keras")
    dense_result = results["dense"]
    subp_result = dict(results["subp"])
    wrapped = subp_result.pop("sparse_layers")
    mask_history = subp_result.pop("mask_history")
    dense_accuracy, dense_logits = keras_accuracy(dense, data["x_test"], data["y_test"])
    subp_accuracy, subp_logits = keras_accuracy(stripped, data["x_test"], data["y_test"])
    layers = keras_subp.sparsity_report(stripped, n=FLAGS.block_n)
    flops = keras_subp.count_flops(stripped, n=FLAGS.block_n)
    dense_flops = keras_subp.count_flops(dense)
    gap = dense_accuracy - subp_accuracy
    gap_models = []
    for value in FLAGS.gap_sparsities:
        role = gap_role(value)
        model = keras.models.load_model(work / "models" / f"{role}_stripped.keras")
        accuracy, _ = keras_accuracy(model, data["x_test"], data["y_test"])
        gap_models.append(
            {
                "role": role,
                "sparsity": float(value),
                "test_accuracy": round(accuracy, 4),
                "accuracy_gap_points": round(100 * (dense_accuracy - accuracy), 2),
                "macs_per_image_actual": int(keras_subp.count_flops(model, n=FLAGS.block_n).actual),
                "curves": results[role]["curves"],
                "train_seconds": results[role]["train_seconds"],
            }
        )
    report = {
        "network": {
            "builder": "cnn_zoo.models.vgg_small",
            "widths": [int(w) for w in FLAGS.widths],
            "convs_per_stage": FLAGS.convs_per_stage,
            "parameters": dense.count_params(),
            "macs_per_image": int(dense_flops.dense),
        },
        "recipe": {
            "optimizer": FLAGS.optimizer,
            "lr": FLAGS.lr or (2e-3 if FLAGS.optimizer == "adam" else 0.1),
            "lr_schedule": "cosine to 0",
            "label_smoothing": FLAGS.label_smoothing,
            "weight_decay": FLAGS.weight_decay,
            "batch_size": FLAGS.batch_size,
        },
        "side_by_side": FLAGS.train_jobs == 2,
        "dense": {**dense_result, "test_accuracy": round(dense_accuracy, 4)},
        "subp": {
            **subp_result,
            "test_accuracy": round(subp_accuracy, 4),
            "block_n": FLAGS.block_n,
            "sparsity": FLAGS.sparsity,
            "criterion": FLAGS.criterion,
            "schedule": {
                "kind": "cubic",
                "mask_updates_per_epoch": updates_per_epoch,
                "final_from_update": end_update,
                "final_from_epoch": round(end_update / updates_per_epoch, 2),
                "recovery_epochs": round(FLAGS.epochs - end_update / updates_per_epoch, 2),
            },
            "mask_history": mask_history,
            "sparse_layers": wrapped,
            "macs_per_image_actual": int(flops.actual),
            "layers": [
                {
                    "name": row.name,
                    "kernel_shape": list(row.kernel_shape),
                    "block_sparsity": round(row.block_sparsity, 4),
                    "kept_blocks_min": row.kept_blocks_min,
                    "kept_blocks_max": row.kept_blocks_max,
                    "balance_ratio": round(row.balance_ratio, 4),
                    "dense_macs": int(row.dense_flops),
                    "actual_macs": int(row.actual_flops),
                }
                for row in layers
                if row.name in wrapped
            ],
        },
        "accuracy_gap_points": round(100 * gap, 2),
        "gap_models": gap_models,
    }
    return dense, stripped, report, {"dense": dense_logits, "subp": subp_logits}


# ----------------------------------------------------------------------------- 2. TFLite


def tflite_logits(interpreter, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """Logits of every image (N, H, W, C) through `interpreter`, in batches of `batch`."""
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    outputs = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        if tuple(interpreter.get_input_details()[0]["shape"]) != chunk.shape:
            interpreter.resize_tensor_input(input_index, chunk.shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(input_index, chunk)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_index).copy())
    return np.concatenate(outputs)


def make_interpreter(path: Path, delegate: bool, threads: int | None = None):
    """A LiteRT interpreter of `path` with `threads` (default --threads), with or without the
    sparse delegate."""
    import tflite_delegate

    return tflite_delegate.Interpreter(
        model_path=path, num_threads=threads or FLAGS.threads, sparse=delegate
    )


def claims(interpreter) -> dict:
    """How many CONV_2D nodes the delegate claimed, and why the others were not."""
    import tflite_delegate

    decisions = tflite_delegate.delegation_report(interpreter)
    reasons: dict[str, int] = {}
    for decision in decisions:
        if not decision.claimed:
            reasons[decision.reason] = reasons.get(decision.reason, 0) + 1
    return {
        "conv2d_nodes": len(decisions),
        "claimed": sum(decision.claimed for decision in decisions),
        "not_claimed_reasons": reasons,
    }


def convert_and_check(
    dense, stripped, keras_logits: dict, data: dict, work: Path, console: Console
) -> dict:
    """Step 2: both models to float32 .tflite; TFLite accuracy against Keras (`keras_logits`:
    name -> the Keras model's test logits), with and without the delegate (the same predictions
    image by image, hence the same accuracy)."""
    import tflite_delegate

    console.step("2/5 convert to .tflite and check TFLite accuracy against Keras")
    x, y = data["x_test"], data["y_test"]
    result: dict[str, Any] = {}
    for name, model in (("dense", dense), ("subp", stripped)):
        path = tflite_delegate.convert(model, work / "models" / f"{name}.tflite")
        reference = keras_logits[name]
        keras_acc = float(np.mean(reference.argmax(1) == y))
        entry: dict[str, Any] = {
            "tflite_file": f"models/{name}.tflite",
            "tflite_bytes": path.stat().st_size,
            "keras_test_accuracy": round(keras_acc, 4),
        }
        variants = ("xnnpack", "delegate") if name == "subp" else ("xnnpack",)
        for variant in variants:
            interpreter = make_interpreter(path, delegate=variant == "delegate")
            interpreter.allocate_tensors()
            logits = tflite_logits(interpreter, x)
            predictions = logits.argmax(1)
            entry[variant] = {
                "test_accuracy": round(float(np.mean(predictions == y)), 4),
                "predictions_differing_from_keras": int(np.sum(predictions != reference.argmax(1))),
                "max_abs_logit_difference": float(np.max(np.abs(logits - reference))),
                "accuracy_equals_keras": bool(np.mean(predictions == y) == keras_acc),
            }
            if variant == "delegate":
                entry["claims"] = claims(interpreter)
            console.progress(
                f"{name} {variant}: TFLite accuracy {entry[variant]['test_accuracy']:.4f} "
                f"(Keras {keras_acc:.4f}), "
                f"{entry[variant]['predictions_differing_from_keras']} predictions differ",
                final=True,
            )
        result[name] = entry
    return result


# ----------------------------------------------------------------------------- 3. speed


def time_interleaved(
    interpreters: dict[str, Any], invokes: int, repeats: int, console: Console, label: str
) -> dict[str, float]:
    """Median over `repeats` rounds of the mean time (ms) of `invokes` back-to-back invokes; in
    each round every interpreter runs once, so load changes hit all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in interpreters}
    for interpreter in interpreters.values():
        interpreter.invoke()  # warm-up: first-run allocations and packing
    for round_index in range(repeats):
        for name, interpreter in interpreters.items():
            start = time.perf_counter()
            for _ in range(invokes):
                interpreter.invoke()
            samples[name].append((time.perf_counter() - start) / invokes * 1e3)
        console.progress(f"{label}: round {round_index + 1}/{repeats}")
    return {name: statistics.median(values) for name, values in samples.items()}


def prepared_interpreter(
    path: Path, delegate: bool, images: np.ndarray, threads: int | None = None
):
    """An interpreter of `path` (threads: default --threads) resized to `images` and holding them."""
    interpreter = make_interpreter(path, delegate, threads)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, images)
    return interpreter


def measure_speed(data: dict, work: Path, console: Console) -> dict:
    """Step 3a: batch-1 latency and batch-64 throughput of the trained models at --threads,
    and batch-1 latency at one thread too (key batch1_threads1) when --threads is more: at
    batch 1 each conv of this 18-million-MAC model lasts tens of microseconds, so on 2 cores the
    second thread helps the delegate only when its worker wakes in time, and the two figures
    together say how much it did."""
    console.step(
        f"3/5 speed of the trained models, {FLAGS.threads} thread(s)"
        + (" (batch 1 also at 1 thread)" if FLAGS.threads != 1 else "")
        + f", {FLAGS.repeats} interleaved rounds (load average {os.getloadavg()[0]:.2f})"
    )
    dense_path, subp_path = work / "models" / "dense.tflite", work / "models" / "subp.tflite"
    result: dict[str, Any] = {"threads": FLAGS.threads, "repeats": FLAGS.repeats}
    runs = [(1, FLAGS.threads, "batch1"), (64, FLAGS.threads, "batch64")]
    if FLAGS.threads != 1:
        runs.append((1, 1, "batch1_threads1"))
    for batch, threads, key in runs:
        invokes = FLAGS.invokes if batch == 1 else max(1, FLAGS.invokes // 5)
        images = data["x_test"][:batch]
        if len(images) < batch:
            images = np.resize(images, (batch, *images.shape[1:]))
        interpreters = {
            "dense_xnnpack": prepared_interpreter(dense_path, False, images, threads),
            "subp_xnnpack": prepared_interpreter(subp_path, False, images, threads),
            "subp_delegate": prepared_interpreter(subp_path, True, images, threads),
        }
        label = f"batch {batch}, {threads} thread{'s' if threads > 1 else ''}"
        median_ms = time_interleaved(interpreters, invokes, FLAGS.repeats, console, label)
        entry = {
            "threads": threads,
            "invokes_per_round": invokes,
            "median_ms": {name: round(value, 4) for name, value in median_ms.items()},
            "images_per_second": {
                name: round(batch / value * 1e3, 1) for name, value in median_ms.items()
            },
            "delegate_speedup": round(median_ms["subp_xnnpack"] / median_ms["subp_delegate"], 3),
            "speedup_over_dense": round(median_ms["dense_xnnpack"] / median_ms["subp_delegate"], 3),
        }
        result[key] = entry
        console.progress(
            f"{label}: dense XNNPACK {median_ms['dense_xnnpack']:.3f} ms, SUBP XNNPACK "
            f"{median_ms['subp_xnnpack']:.3f} ms, SUBP delegate {median_ms['subp_delegate']:.3f} "
            f"ms: delegate speedup {entry['delegate_speedup']:.2f}x",
            final=True,
        )
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    return result


def build_resnet50_tflite(keras, path: Path) -> dict:
    """ResNet-50 (weights=None, 224x224x3, logits) with a uniform 1x16 mask of
    --resnet50_sparsity in every Conv2D but the first, stripped and converted to `path`.

    The mask is SUBP's final mask from the start (a `Constant(0)` schedule, one update): every
    output group keeps the same number of blocks, chosen by L1 norm of the random weights.
    Returns the model's facts (MACs per image, layers).
    """
    import keras_subp
    import tflite_delegate

    keras.utils.set_random_seed(FLAGS.seed)
    model = keras.applications.ResNet50(
        weights=None, input_shape=(224, 224, 3), classifier_activation=None
    )
    first_conv = next(
        layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
    )
    wrapped = keras_subp.prune_subp(
        model,
        n=16,
        sparsity=FLAGS.resnet50_sparsity,
        schedule=keras_subp.schedules.Constant(0),
        criterion="l1",
        exclude=first_conv,
        seed=FLAGS.seed,
    )
    keras_subp.update_masks(wrapped)
    stripped = keras_subp.strip_subp(wrapped)
    flops = keras_subp.count_flops(stripped, n=16)
    tflite_delegate.convert(stripped, path)
    return {
        "sparse_conv2d_layers": len(keras_subp.subp_wrappers(wrapped)),
        "dense_first_conv": first_conv,
        "gmacs_dense": round(flops.dense / 1e9, 3),
        "gmacs_sparse": round(flops.actual / 1e9, 3),
    }


def measure_resnet50(keras, console: Console) -> dict:
    """Step 3b: the model-level ResNet-50 row, batch 1, XNNPACK against the delegate."""
    cache = Path(FLAGS.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"resnet50_1x16_p{FLAGS.resnet50_sparsity:.6f}_seed{FLAGS.seed}"
    path, facts_path = cache / f"{stem}.tflite", cache / f"{stem}.json"
    if path.is_file() and facts_path.is_file():
        facts = json.loads(facts_path.read_text())
        console.step(f"3/5 ResNet-50 1x16: cached {path}")
    else:
        console.step("3/5 ResNet-50 1x16: building, masking and converting (cached afterwards)")
        facts = build_resnet50_tflite(keras, path)
        facts_path.write_text(json.dumps(facts, indent=1) + "\n")
    image = np.random.default_rng(FLAGS.seed).random((1, 224, 224, 3), dtype=np.float32)
    interpreters = {
        "xnnpack": prepared_interpreter(path, False, image),
        "delegate": prepared_interpreter(path, True, image),
    }
    outputs = {}
    for name, interpreter in interpreters.items():
        interpreter.invoke()
        outputs[name] = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    scale = float(np.max(np.abs(outputs["xnnpack"]))) or 1.0
    median_ms = time_interleaved(
        interpreters, max(1, FLAGS.invokes // 5), FLAGS.repeats, console, "ResNet-50 batch 1"
    )
    result = {
        **facts,
        "tflite_file": str(path),
        "batch": 1,
        "median_ms": {name: round(value, 3) for name, value in median_ms.items()},
        "delegate_speedup": round(median_ms["xnnpack"] / median_ms["delegate"], 3),
        "relative_output_difference": float(
            np.max(np.abs(outputs["delegate"] - outputs["xnnpack"])) / scale
        ),
        "claims": claims(interpreters["delegate"]),
    }
    console.progress(
        f"ResNet-50 batch 1: XNNPACK {median_ms['xnnpack']:.1f} ms, delegate "
        f"{median_ms['delegate']:.1f} ms: speedup {result['delegate_speedup']:.2f}x",
        final=True,
    )
    return result


# ----------------------------------------------------------------------------- 4. compression


def block_zero_fraction(model, layer_names: list[str], n: int) -> float:
    """Fraction of all-zero 1xN blocks over the named Conv2D kernels (KH, KW, Cin, Cout)."""
    zero = total = 0
    for name in layer_names:
        kernel = model.get_layer(name).get_weights()[0]
        kh, kw, cin, cout = kernel.shape
        blocks = kernel.reshape(kh, kw, cin, cout // n, n)
        is_zero = np.all(blocks == 0, axis=(0, 1, 4))
        zero += int(is_zero.sum())
        total += is_zero.size
    return zero / total if total else 0.0


def compress_models(
    dense, stripped, keras_logits: dict, data: dict, training: dict, work: Path, console
) -> dict:
    """Step 4: UDFC and DF-MPC on the dense baseline, the zero-preserving quantizer on SUBP;
    the float32 rows take their accuracy from `keras_logits` (name -> test logits)."""
    try:
        import dfcompress

        methods = {
            name: getattr(dfcompress, name)
            for name in ("udfc", "dfmpc", "quantize_weights", "model_size_mb", "to_tflite")
        }
    except (ImportError, AttributeError) as error:
        message = f"dfcompress is not available ({type(error).__name__}: {error})"
        console.step(f"4/5 compression skipped: {message}")
        return {"status": "skipped", "reason": message}

    console.step("4/5 data-free compression (no data, no fine-tuning) and evaluation")
    x, y = data["x_test"], data["y_test"]
    sparse_layers = training["subp"]["sparse_layers"]
    jobs = [
        ("dense float32", "dense", dense, None),
        (
            f"UDFC {FLAGS.udfc_prune_ratio:.0%} pruned, {FLAGS.udfc_bits}-bit",
            "dense",
            dense,
            lambda m: methods["udfc"](
                m, prune_ratio=FLAGS.udfc_prune_ratio, weight_bits=FLAGS.udfc_bits
            ),
        ),
        (
            f"DF-MPC {FLAGS.dfmpc_low_bits}/{FLAGS.dfmpc_high_bits}-bit",
            "dense",
            dense,
            lambda m: methods["dfmpc"](
                m, low_bits=FLAGS.dfmpc_low_bits, high_bits=FLAGS.dfmpc_high_bits
            ),
        ),
        (f"SUBP 1x{FLAGS.block_n} float32", "subp", stripped, None),
        (
            f"SUBP 1x{FLAGS.block_n} + {FLAGS.subp_bits}-bit symmetric",
            "subp",
            stripped,
            lambda m: methods["quantize_weights"](m, bits=FLAGS.subp_bits, quantizer="symmetric"),
        ),
    ]
    rows = []
    for index, (label, source, model, method) in enumerate(jobs):
        console.progress(f"{label} ...")
        row: dict[str, Any] = {"name": label, "source_model": source}
        try:
            start = time.perf_counter()
            if method is None:
                compressed, layer_bits, method_report = model, None, None
            else:
                compressed, method_report = method(model)
                layer_bits = method_report.layer_bits
            row["seconds"] = round(time.perf_counter() - start, 2)
            if method is None:
                accuracy = float(np.mean(keras_logits[source].argmax(1) == y))
            else:
                accuracy, _ = keras_accuracy(compressed, x, y)
            row["test_accuracy"] = round(accuracy, 4)
            row["size_mb_at_bits"] = round(methods["model_size_mb"](compressed, layer_bits), 4)
            row["parameters"] = int(compressed.count_params())
            if method_report is not None:
                row["layer_bits"] = method_report.layer_bits
                row["macs_per_image"] = int(method_report.flops_after)
            if source == "subp":
                row["block_sparsity"] = round(
                    block_zero_fraction(compressed, sparse_layers, FLAGS.block_n), 4
                )
            for weights in ("float32", "int8"):
                path = methods["to_tflite"](
                    compressed, work / "models" / f"compressed_{index}_{weights}.tflite", weights
                )
                row[f"tflite_{weights}_bytes"] = path.stat().st_size
            row["status"] = "ok"
        except Exception as error:  # one failing method must not lose the others' results
            row.update(status="failed", error=f"{type(error).__name__}: {error}")
        console.progress(
            f"{label}: "
            + (
                f"test accuracy {row['test_accuracy']:.4f}, {row['size_mb_at_bits']:.3f} MiB"
                if row["status"] == "ok"
                else row["error"]
            ),
            final=True,
        )
        rows.append(row)
    return {"status": "ok", "rows": rows}


# ----------------------------------------------------------------------------- 5. report


def write_plots(report: dict, work: Path) -> list[str]:
    """The four PNG plots; returns their file names (empty, with a note, without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        report["plots_note"] = "plots skipped: matplotlib is not installed (pip install matplotlib)"
        return []
    written = []

    def save(figure, name: str) -> None:
        figure.tight_layout()
        figure.savefig(work / name, dpi=110)
        plt.close(figure)
        written.append(name)

    training = report["training"]

    figure, axis = plt.subplots(figsize=(7, 4.2))
    curve_sets = [
        ("dense", "-", training["dense"]["curves"]),
        (f"SUBP 1x{FLAGS.block_n} p={FLAGS.sparsity:g}", "--", training["subp"]["curves"]),
        *(
            (f"SUBP 1x{FLAGS.block_n} p={row['sparsity']:g}", ":", row["curves"])
            for row in training["gap_models"]
        ),
    ]
    for label, style, curves in curve_sets:
        epochs = np.arange(1, len(curves["test_accuracy"]) + 1)
        axis.plot(epochs, curves["train_accuracy"], style, marker="o", label=f"{label} train")
        axis.plot(epochs, curves["test_accuracy"], style, marker="s", label=f"{label} test")
    final_epoch = training["subp"]["schedule"]["final_from_epoch"]
    axis.axvline(final_epoch, color="grey", linestyle=":", label="SUBP mask final")
    axis.set_xlabel("epochs trained")
    axis.set_ylabel("accuracy")
    axis.set_title("Training curves")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    save(figure, "accuracy_curves.png")

    layers = training["subp"]["layers"]
    if layers:
        figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
        names = [layer["name"].replace("_conv", "") for layer in layers]
        positions = np.arange(len(layers))
        left.bar(positions, [layer["block_sparsity"] for layer in layers], color="tab:blue")
        left.axhline(FLAGS.sparsity, color="black", linestyle=":", label="target p")
        left.set_xticks(positions, names, rotation=30, fontsize=8)
        left.set_ylabel("block sparsity")
        left.set_title(f"1x{FLAGS.block_n} block sparsity per layer")
        left.legend(fontsize=8)
        low = [layer["kept_blocks_min"] for layer in layers]
        high = [layer["kept_blocks_max"] for layer in layers]
        right.bar(positions - 0.2, low, width=0.4, label="min over groups")
        right.bar(positions + 0.2, high, width=0.4, label="max over groups")
        right.set_xticks(positions, names, rotation=30, fontsize=8)
        right.set_ylabel("kept blocks per output group")
        right.set_title("Balance (equal bars: perfectly uniform)")
        right.legend(fontsize=8)
        save(figure, "sparsity_balance.png")

    speed = report["speed"]
    figure, axes = plt.subplots(1, 2 if "resnet50" in speed else 1, figsize=(9, 3.8), squeeze=False)
    labels = {
        "dense_xnnpack": "dense\nXNNPACK",
        "subp_xnnpack": "SUBP\nXNNPACK",
        "subp_delegate": "SUBP\ndelegate",
    }
    for batch, colour in ((1, "tab:blue"), (64, "tab:orange")):
        medians = speed["trained"][f"batch{batch}"]["median_ms"]
        baseline = medians["dense_xnnpack"]
        offset = -0.2 if batch == 1 else 0.2
        values = [baseline / medians[name] for name in labels]
        axes[0][0].bar(
            np.arange(3) + offset, values, width=0.4, color=colour, label=f"batch {batch}"
        )
    axes[0][0].set_xticks(np.arange(3), list(labels.values()), fontsize=8)
    axes[0][0].set_ylabel("speed relative to dense XNNPACK")
    axes[0][0].set_title(f"Trained network, {FLAGS.threads} thread(s)")
    axes[0][0].axhline(1, color="black", linewidth=0.8)
    axes[0][0].legend(fontsize=8)
    if "resnet50" in speed:
        medians = speed["resnet50"]["median_ms"]
        axes[0][1].bar(["XNNPACK", "delegate"], [medians["xnnpack"], medians["delegate"]])
        axes[0][1].set_ylabel("batch-1 latency (ms)")
        axes[0][1].set_title("ResNet-50 1x16, 224x224")
    save(figure, "latency.png")

    compression = report.get("compression", {})
    rows = [row for row in compression.get("rows", []) if row.get("status") == "ok"]
    if rows:
        figure, axis = plt.subplots(figsize=(7, 4.2))
        for row in rows:
            marker = "o" if row["source_model"] == "dense" else "s"
            axis.scatter(row["size_mb_at_bits"], row["test_accuracy"], marker=marker, s=50)
            axis.annotate(
                row["name"],
                (row["size_mb_at_bits"], row["test_accuracy"]),
                fontsize=7,
                xytext=(4, 4) if row["source_model"] == "dense" else (4, -11),
                textcoords="offset points",
            )
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_xlabel("model size at its weight bits (MiB, log scale)")
        axis.set_ylabel("test accuracy")
        axis.set_title("Accuracy against model size (no fine-tuning after compression)")
        axis.grid(alpha=0.3)
        save(figure, "accuracy_vs_size.png")
    return written


def acceptance_note(report: dict) -> str:
    """The issue's accuracy target, stated where it applies (1x16, p=0.5, the full data set)."""
    subp = report["training"]["subp"]
    if subp["block_n"] != 16 or subp["sparsity"] != 0.5 or not report["data"]["is_full"]:
        return ""
    met = report["training"]["accuracy_gap_points"] <= 1.0
    return f" (target at 1x16, p=0.5: within 1.0 point of dense: {'met' if met else 'NOT met'})"


def summary_lines(report: dict) -> list[str]:
    """The short results table, shared by the terminal and summary.md."""
    training, conversion, speed = report["training"], report["conversion"], report["speed"]
    dense, subp = training["dense"], training["subp"]
    gap = training["accuracy_gap_points"]
    lines = [
        "| model | test accuracy | TFLite XNNPACK | TFLite delegate | MACs/image |",
        "|---|---:|---:|---:|---:|",
        f"| dense | {dense['test_accuracy']:.4f} | "
        f"{conversion['dense']['xnnpack']['test_accuracy']:.4f} | - | "
        f"{training['network']['macs_per_image'] / 1e6:.1f} M |",
        f"| SUBP 1x{subp['block_n']} p={subp['sparsity']:g} | {subp['test_accuracy']:.4f} | "
        f"{conversion['subp']['xnnpack']['test_accuracy']:.4f} | "
        f"{conversion['subp']['delegate']['test_accuracy']:.4f} | "
        f"{subp['macs_per_image_actual'] / 1e6:.1f} M |",
        *(
            f"| SUBP 1x{subp['block_n']} p={row['sparsity']:g} | {row['test_accuracy']:.4f} | "
            f"- | - | {row['macs_per_image_actual'] / 1e6:.1f} M |"
            for row in training["gap_models"]
        ),
        "",
        f"SUBP - dense test accuracy: {-gap:+.2f} points{acceptance_note(report)}",
        *(
            f"SUBP at p={row['sparsity']:g} - dense: {-row['accuracy_gap_points']:+.2f} points "
            "(stated, no target)"
            for row in training["gap_models"]
        ),
        "",
        "| speed | dense XNNPACK | SUBP XNNPACK | SUBP delegate | delegate speedup |",
        "|---|---:|---:|---:|---:|",
    ]
    trained = speed["trained"]
    for key, batch, unit in (
        ("batch1", 1, "ms"),
        ("batch64", 64, "img/s"),
        ("batch1_threads1", 1, "ms"),
    ):
        if key not in trained:
            continue
        entry = trained[key]
        values = entry["median_ms"] if batch == 1 else entry["images_per_second"]
        lines.append(
            f"| batch {batch}, {entry['threads']} thr ({unit}) | {values['dense_xnnpack']:.4g} | "
            f"{values['subp_xnnpack']:.4g} | {values['subp_delegate']:.4g} | "
            f"{entry['delegate_speedup']:.2f}x |"
        )
    if "resnet50" in speed:
        r50 = speed["resnet50"]
        lines.append(
            f"| ResNet-50 1x16 {r50['gmacs_sparse']:.2f}G batch 1 (ms) | - | "
            f"{r50['median_ms']['xnnpack']:.1f} | {r50['median_ms']['delegate']:.1f} | "
            f"{r50['delegate_speedup']:.2f}x |"
        )
    compression = report.get("compression", {})
    if compression.get("status") == "ok":
        lines += [
            "",
            "| compressed (no data, no fine-tuning) | test accuracy | MiB at bits | "
            ".tflite float32 KiB | .tflite int8 KiB |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in compression["rows"]:
            if row["status"] == "ok":
                lines.append(
                    f"| {row['name']} | {row['test_accuracy']:.4f} | "
                    f"{row['size_mb_at_bits']:.3f} | {row['tflite_float32_bytes'] / 1024:.0f} | "
                    f"{row['tflite_int8_bytes'] / 1024:.0f} |"
                )
            else:
                lines.append(f"| {row['name']} | failed: {row['error']} | | | |")
    elif compression:
        lines += ["", f"compression: {compression.get('reason')}"]
    return lines


def write_summary(report: dict, plots: list[str], work: Path) -> None:
    data = report["data"]
    training = report["training"]
    lines = [
        "# Pipeline report",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Data: {data['name']} ({data['train_images']:,} train / {data['test_images']:,} test), "
        f"from {data['source']}.",
    ]
    if data["fell_back_to_sample"]:
        lines.append(
            f"**The full Fashion-MNIST was not found ({data['why_not_full']}); this run used the "
            "small committed sample, so its accuracies are not comparable to full-data results.**"
        )
    elif not data["is_full"]:
        lines.append(
            "**Not the full 60,000/10,000 Fashion-MNIST: accuracies are not comparable to "
            "full-data results.**"
        )
    schedule = training["subp"]["schedule"]
    lines += [
        "",
        f"Network: vgg_small widths {training['network']['widths']}, "
        f"{training['network']['parameters']:,} parameters; recipe: "
        + ", ".join(f"{key} {value}" for key, value in training["recipe"].items())
        + ". "
        f"SUBP mask final after epoch {schedule['final_from_epoch']}, then "
        f"{schedule['recovery_epochs']} epochs of recovery.",
        f"Machine: {report['machine']['cpus']} CPUs, load average {report['machine']['load_start']} "
        f"at start and {report['speed']['trained']['load_average_after']} after timing; the "
        "machine may be shared, so timings are noisy (interleaved medians make ratios fairer).",
        f"Total wall time: {report['seconds_total'] / 60:.1f} min.",
        "",
        *summary_lines(report),
        "",
    ]
    lines += [f"![{name}]({name})" for name in plots]
    if report.get("plots_note"):
        lines.append(report["plots_note"])
    (work / "summary.md").write_text("\n".join(lines) + "\n")


def finish_output_folder(work: Path, out_dir: Path, overwrite: bool) -> None:
    """Rename the finished temporary folder to `out_dir`; an old report is replaced only with
    --overwrite, and only now that the new one is complete."""
    if out_dir.exists():
        if not overwrite and any(out_dir.iterdir()):
            raise FlagError(f"--out_dir={out_dir} appeared during the run; report left in {work}")
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
        work.rename(out_dir)
        shutil.rmtree(old)
    else:
        work.rename(out_dir)


def run(console: Console, work: Path) -> dict:
    """Steps 1-5 in `work`; returns the report dictionary."""
    start = time.perf_counter()
    keras = import_tensorflow_quietly()

    data, facts = prepare_data()
    console.step(
        f"data: {facts['name']}, {facts['train_images']:,} train / {facts['test_images']:,} test "
        "images"
    )
    if facts["fell_back_to_sample"]:
        console.note("NOTE: the full Fashion-MNIST was not found; using the small committed")
        console.note(f"sample ({facts['why_not_full']}).")
        console.note("Install it: apt-get install dataset-fashion-mnist")
    elif not facts["is_full"]:
        console.note("NOTE: not the full 60,000/10,000 Fashion-MNIST: accuracies are not")
        console.note("comparable to full-data results.")
    report: dict[str, Any] = {
        "command": command_line(),
        "machine": {"cpus": os.cpu_count(), "load_start": round(os.getloadavg()[0], 2)},
        "data": facts,
    }
    dense, stripped, report["training"], keras_logits = train_models(keras, data, work, console)
    report["conversion"] = convert_and_check(dense, stripped, keras_logits, data, work, console)
    report["speed"] = {"trained": measure_speed(data, work, console)}
    if FLAGS.resnet50:
        report["speed"]["resnet50"] = measure_resnet50(keras, console)
    if FLAGS.compress:
        report["compression"] = compress_models(
            dense, stripped, keras_logits, data, report["training"], work, console
        )
    console.step("5/5 report")
    report["seconds_total"] = round(time.perf_counter() - start, 1)
    plots = write_plots(report, work)
    report["plots"] = plots
    (work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    write_summary(report, plots, work)
    return report


def parse_flags(argv: list[str]) -> list[str]:
    """absl parsing with a one-line error naming the flag (exit status 2, nothing written)."""
    try:
        remaining = FLAGS(argv)
        apply_tiny_settings()
        check_flags()
    except (flags.Error, FlagError) as error:
        print(f"pipeline: error: {error}", file=sys.stderr)
        sys.exit(2)
    if len(remaining) > 1:
        print(f"pipeline: error: unexpected arguments {remaining[1:]}", file=sys.stderr)
        sys.exit(2)
    return remaining


def main(argv: list[str]) -> None:
    del argv
    console = Console()
    out_dir = Path(FLAGS.out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    work.chmod(0o755)  # mkdtemp makes it private; the report is an ordinary folder
    (work / "models").mkdir()
    (work / "logs").mkdir()
    console.step(f"pipeline: {command_line()}")
    try:
        with (
            redirect_native_stderr(work / "logs" / "native_stderr.log"),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            report = run(console, work)
            counts: dict[str, int] = {}
            for warning in caught:
                text = f"{warning.category.__name__}: {warning.message}"
                counts[text] = counts.get(text, 0) + 1
            (work / "logs" / "warnings.log").write_text(
                "".join(f"{count} x {text}\n" for text, count in counts.items())
            )
        finish_output_folder(work, out_dir, FLAGS.overwrite)
    except FlagError as error:
        print(f"pipeline: error: {error}", file=sys.stderr)
        sys.exit(2)
    except BaseException:
        console.end_progress()
        print(f"pipeline: failed; the incomplete run is in {work}", file=sys.stderr)
        raise
    console.step(f"report: {out_dir}/summary.md (JSON, plots, models, logs in {out_dir})")
    print()
    print("\n".join(summary_lines(report)))


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
