"""Train a zoo CNN with SUBP (1xN block sparsity from scratch), the 1xN baseline, or dense.

The SUBP paper's recipe by default: SGD with momentum 0.9 in the reference's form, a cosine
learning rate stepped once per epoch (lr_e = lr / 2 * (1 + cos(pi * e / E))), cross-entropy with
label smoothing 0.1, and *coupled* weight decay 1e-4: wd * w is added to the gradient of every
variable with two or more dimensions (conv kernels, dense weights) before the momentum update,
as PyTorch's SGD(weight_decay=...) does, while BatchNorm parameters and biases get none
(Keras's own `weight_decay` is decoupled, so it is left unset).

Methods (`--method`):
* `subp`: `keras_subp.prune_subp` on the freshly initialised model, the sparsity ramped by
  `--schedule` from `--start_epoch` to `--end_epoch`, masks updated once per epoch.
* `1xn`: the baseline of Lin et al. in the same number of epochs: dense training for
  `--pretrain_epochs` (default: half of `--epochs`) with its own cosine, then
  `keras_subp.prune_1xn` (layer-global L1 blocks, fixed mask, filters rearranged) and
  fine-tuning for the remaining epochs with a fresh cosine from `--finetune_lr` (default
  `--lr` / 10, the ratio of the baseline's own fine-tuning rate to SUBP's).
* `dense`: the same network and recipe without pruning.

Everything goes to `--out_dir`: `run.json` (the settings), `train.log`, `state.json` (last
finished epoch, phase, history), `checkpoints/epoch_NNNN.keras` after every epoch (full model:
masks, schedule position, sampling RNG state and optimizer state; the last two are kept), and
at the end `final/model.keras` (stripped: plain Conv2D layers holding exact zeros),
`final/metrics.json` and `final/sparsity_report.txt`. `--resume` continues an interrupted run
from its last checkpoint with the same masks, schedule position and data order. An out_dir
holding a run is never overwritten: without `--resume` the script refuses it.

Multi-worker (`--strategy=multiworker`, TF_CONFIG set on every worker): the chief writes to
`--out_dir`, worker i to `--out_dir/workers/worker_i`.

Examples:
  python -m scripts.train_subp --model=vgg_small --dataset=fashion_mnist --epochs=12 \\
      --n=16 --sparsity=0.5 --out_dir=results/subp_vgg
  python -m scripts.train_subp --model=resnet18 --dataset=imagenet2012 --data_dir=~/tfds \\
      --epochs=120 --batch_size=512 --n=16 --sparsity=0.46875 --criterion=l1 \\
      --strategy=mirrored --out_dir=results/subp_resnet18
"""

from __future__ import annotations

import json
import logging as std_logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 pointed at /dev/null.

    TensorFlow's C++ start-up lines (oneDNN and CUDA notices, written before its logging is
    initialised) ignore TF_CPP_MIN_LOG_LEVEL; they would bury a one-line flag error. Python
    exceptions raised by the import still reach stderr: the descriptor is restored first.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


import_tensorflow_quietly()

import keras  # noqa: E402
from absl import app, flags  # noqa: E402
from keras import ops  # noqa: E402

from cnn_zoo import models as zoo  # noqa: E402

MODEL_NAMES = tuple(zoo.__all__)
DATASET_NAMES = ("fashion_mnist", "mnist", "cifar10", "imagenette", "imagenet2012")
CRITERIA = ("bpar", "l1", "l2")
SCHEDULES = ("cubic", "linear", "cosine", "exponential", "constant")
METHODS = ("subp", "1xn", "dense")
STRATEGIES = ("default", "mirrored", "multiworker")


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> flags.FlagValues:
    """Define the script's flags on `flag_values` (absl's global FLAGS by default).

    Tests define them on a fresh `flags.FlagValues()`, so that importing this module never
    defines flags that other scripts in the same process might also define.
    """
    flags.DEFINE_string(
        "model", "vgg_small", f"Zoo model: {', '.join(MODEL_NAMES)}.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "dataset", "fashion_mnist", f"Dataset: {', '.join(DATASET_NAMES)}.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "data_dir",
        None,
        "Fashion-MNIST/MNIST: a directory of IDX files (else the usual local places); "
        "CIFAR-10/Imagenette/ImageNet: the prepared tensorflow-datasets data_dir.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "image_size", 224, "Crop size of ImageNet-style datasets (pixels).", flag_values=flag_values
    )
    flags.DEFINE_string(
        "method", "subp", f"Training method: {', '.join(METHODS)}.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "n",
        16,
        "Block length N of the 1xN blocks (output channels per block).",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "sparsity",
        0.5,
        "Fraction of blocks pruned per sparse layer, in [0, 1).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "criterion",
        "bpar",
        f"SUBP block importance: {', '.join(CRITERIA)}.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "schedule",
        "cubic",
        f"SUBP sparsity schedule: {', '.join(SCHEDULES)}.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "start_epoch",
        None,
        "Epoch the sparsity ramp starts (default: round(epochs / 12), 10 of 120).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "end_epoch",
        None,
        "Epoch the mask reaches the target and stays fixed (default: round(0.72 * epochs)).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "epochs",
        12,
        "Total training epochs (1xn: pre-training + fine-tuning).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "pretrain_epochs",
        None,
        "1xn only: dense epochs before pruning (default: half).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "batch_size", 256, "Global batch size (split over replicas).", flag_values=flag_values
    )
    flags.DEFINE_float(
        "lr", 0.1, "Initial learning rate of the per-epoch cosine.", flag_values=flag_values
    )
    flags.DEFINE_float(
        "finetune_lr",
        None,
        "1xn only: initial fine-tuning learning rate (default lr/10).",
        flag_values=flag_values,
    )
    flags.DEFINE_float("momentum", 0.9, "SGD momentum.", flag_values=flag_values)
    flags.DEFINE_float(
        "label_smoothing",
        0.1,
        "Label smoothing of the cross-entropy, in [0, 1).",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "weight_decay",
        1e-4,
        "Coupled L2 weight decay of >= 2-D variables.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "seed",
        42,
        "Seed of weights, data order, augmentation and mask sampling.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "steps_per_epoch",
        0,
        "Training steps per epoch; 0 = one pass over the data.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "eval_steps",
        0,
        "Evaluation batches per epoch; 0 = the whole split.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "strategy",
        "default",
        f"tf.distribute strategy: {', '.join(STRATEGIES)}.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "out_dir",
        None,
        "Directory for checkpoints, logs and results (required).",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "resume", False, "Continue the interrupted run in --out_dir.", flag_values=flag_values
    )
    flags.DEFINE_bool(
        "tensorboard",
        False,
        "Write TensorBoard logs to --out_dir/tensorboard.",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "deterministic",
        False,
        "TensorFlow op determinism (bitwise-repeatable runs).",
        flag_values=flag_values,
    )
    return flag_values


# Settings that define a run; on --resume they come from run.json and may not be changed.
RUN_SETTINGS = (
    "model",
    "dataset",
    "image_size",
    "method",
    "n",
    "sparsity",
    "criterion",
    "schedule",
    "start_epoch",
    "end_epoch",
    "epochs",
    "pretrain_epochs",
    "batch_size",
    "lr",
    "finetune_lr",
    "momentum",
    "label_smoothing",
    "weight_decay",
    "seed",
    "steps_per_epoch",
    "eval_steps",
)

CHECKPOINTS_KEPT = 2
PROGRAM = "train_subp"


class FlagError(ValueError):
    """A bad flag value; the message names the flag and fits on one line."""


@dataclass
class RunConfig:
    """The settings of one training run (the flags of `RUN_SETTINGS`, defaults resolved)."""

    model: str
    dataset: str
    image_size: int
    method: str
    n: int
    sparsity: float
    criterion: str
    schedule: str
    start_epoch: int
    end_epoch: int
    epochs: int
    pretrain_epochs: int
    batch_size: int
    lr: float
    finetune_lr: float
    momentum: float
    label_smoothing: float
    weight_decay: float
    seed: int
    steps_per_epoch: int
    eval_steps: int


@dataclass
class RunState:
    """What `state.json` holds: progress of a run, rewritten atomically after each epoch."""

    epochs_done: int = 0
    phase: str = "train"  # "train", or for 1xn "pretrain" then "finetune"
    checkpoint: str | None = None  # relative to the run directory
    finished: bool = False
    history: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Flag validation (cheap checks first; nothing touches --out_dir before all of them pass)


def _choice(name: str, value: str, choices) -> str:
    if value not in choices:
        raise FlagError(f"--{name}={value!r} is not one of: {', '.join(choices)}")
    return value


def config_from_flags(values: flags.FlagValues) -> RunConfig:
    """The run settings from the parsed flags, checked; raises FlagError naming the flag."""
    _choice("model", values.model, MODEL_NAMES)
    _choice("dataset", values.dataset, DATASET_NAMES)
    _choice("method", values.method, METHODS)
    _choice("criterion", values.criterion, CRITERIA)
    _choice("schedule", values.schedule, SCHEDULES)
    epochs = values.epochs
    if epochs < 1:
        raise FlagError(f"--epochs={epochs} must be at least 1")
    if not 0.0 <= values.sparsity < 1.0 or not math.isfinite(values.sparsity):
        raise FlagError(f"--sparsity={values.sparsity} must be in [0, 1)")
    if values.n < 1:
        raise FlagError(f"--n={values.n} must be a positive integer")
    start = values.start_epoch if values.start_epoch is not None else round(epochs / 12)
    end = values.end_epoch if values.end_epoch is not None else max(start, round(0.72 * epochs))
    if start < 0:
        raise FlagError(f"--start_epoch={start} must be >= 0")
    if end < start:
        raise FlagError(f"--end_epoch={end} must not be before --start_epoch={start}")
    if values.method == "subp" and end >= epochs:
        raise FlagError(
            f"--end_epoch={end} must be below --epochs={epochs}: the mask must be final before "
            "the last epoch"
        )
    if values.method == "subp" and values.schedule == "exponential" and 0 < end - start < 2:
        raise FlagError(f"--end_epoch={end}: the exponential schedule needs end - start >= 2")
    pretrain = values.pretrain_epochs if values.pretrain_epochs is not None else epochs // 2
    if values.method == "1xn" and not 1 <= pretrain < epochs:
        raise FlagError(f"--pretrain_epochs={pretrain} must be in [1, --epochs={epochs})")
    for name in ("batch_size", "image_size"):
        if values[name].value < 1:
            raise FlagError(f"--{name}={values[name].value} must be positive")
    for name in ("steps_per_epoch", "eval_steps"):
        if values[name].value < 0:
            raise FlagError(f"--{name}={values[name].value} must be >= 0 (0: the whole split)")
    finetune_lr = values.finetune_lr if values.finetune_lr is not None else values.lr / 10
    for name, value in (("lr", values.lr), ("finetune_lr", finetune_lr)):
        if not value > 0 or not math.isfinite(value):
            raise FlagError(f"--{name}={value} must be positive")
    if not 0.0 <= values.momentum < 1.0:
        raise FlagError(f"--momentum={values.momentum} must be in [0, 1)")
    if not 0.0 <= values.label_smoothing < 1.0:
        raise FlagError(f"--label_smoothing={values.label_smoothing} must be in [0, 1)")
    if not values.weight_decay >= 0 or not math.isfinite(values.weight_decay):
        raise FlagError(f"--weight_decay={values.weight_decay} must be >= 0")
    if not 0 <= values.seed < 2**31 - 1:
        raise FlagError(f"--seed={values.seed} must be in [0, 2**31 - 1)")
    return RunConfig(
        model=values.model,
        dataset=values.dataset,
        image_size=values.image_size,
        method=values.method,
        n=values.n,
        sparsity=values.sparsity,
        criterion=values.criterion,
        schedule=values.schedule,
        start_epoch=start,
        end_epoch=end,
        epochs=epochs,
        pretrain_epochs=pretrain,
        batch_size=values.batch_size,
        lr=values.lr,
        finetune_lr=finetune_lr,
        momentum=values.momentum,
        label_smoothing=values.label_smoothing,
        weight_decay=values.weight_decay,
        seed=values.seed,
        steps_per_epoch=values.steps_per_epoch,
        eval_steps=values.eval_steps,
    )


def resumed_config(run_dir: Path, values: flags.FlagValues) -> RunConfig:
    """The settings stored in run_dir/run.json; flags given explicitly must agree with them."""
    saved = json.loads((run_dir / "run.json").read_text())["config"]
    for name in RUN_SETTINGS:
        if values[name].present and values[name].value != saved[name]:
            raise FlagError(
                f"--{name}={values[name].value!r} differs from the run being resumed in "
                f"{run_dir} ({saved[name]!r}); drop the flag or use another --out_dir"
            )
    return RunConfig(**saved)


def run_directory(out_dir: Path, task_index: int, is_chief: bool) -> Path:
    """Where this process writes: out_dir for the chief, out_dir/workers/worker_i otherwise."""
    return out_dir if is_chief else out_dir / "workers" / f"worker_{task_index}"


def check_run_directory(run_dir: Path, resume: bool) -> RunState | None:
    """The saved state to resume from (or None for a new run); refuses to reuse a run's folder."""
    state_path = run_dir / "state.json"
    has_run = state_path.exists() or (run_dir / "run.json").exists()
    if not resume:
        if has_run:
            saved = json.loads(state_path.read_text()) if state_path.exists() else {}
            if saved.get("finished"):
                what = "a finished run"
            elif saved.get("checkpoint"):
                what = "an interrupted run (pass --resume to continue it)"
            else:
                what = "a run stopped before its first checkpoint (remove it to start again)"
            raise FlagError(f"--out_dir={run_dir} already holds {what}; nothing was changed")
        return None
    if not state_path.exists():
        raise FlagError(f"--resume: no checkpoint in --out_dir={run_dir}")
    state = RunState(**json.loads(state_path.read_text()))
    if state.checkpoint is None:
        raise FlagError(
            f"--resume: the run in --out_dir={run_dir} stopped before its first checkpoint; "
            "remove the folder to start it again"
        )
    if not (run_dir / state.checkpoint).is_file():
        raise FlagError(f"--resume: the checkpoint listed in {state_path} is missing")
    return state


def check_block_size(model, config: RunConfig) -> None:
    """FlagError unless at least one layer of `model` can take 1xN blocks of length n."""
    import keras_subp

    decisions = keras_subp.block_eligibility(model, config.n)
    if "eligible" not in decisions.values():
        convs = [name for name, reason in decisions.items() if reason != "first convolution"]
        raise FlagError(
            f"--n={config.n} divides the output channels of no prunable layer of {config.model} "
            f"({len(convs)} candidate Conv2D layers)"
        )


# ---------------------------------------------------------------------------------------------
# The recipe: optimizer and learning rate


@keras.saving.register_keras_serializable(package="subp_scripts")
class EpochCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = initial / 2 * (1 + cos(pi * e / epochs)) with e = step // steps_per_epoch.

    Constant within an epoch: the reference sets the rate once, at the start of each epoch.
    """

    def __init__(self, initial_learning_rate: float, epochs: int, steps_per_epoch: int):
        self.initial_learning_rate = float(initial_learning_rate)
        self.epochs = int(epochs)
        self.steps_per_epoch = int(steps_per_epoch)

    def __call__(self, step):
        epoch = ops.floor_divide(ops.cast(step, "int64"), self.steps_per_epoch)
        progress = ops.cast(epoch, "float32") / float(self.epochs)
        return 0.5 * self.initial_learning_rate * (1.0 + ops.cos(math.pi * progress))

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
        }


@keras.saving.register_keras_serializable(package="subp_scripts")
class CoupledDecaySGD(keras.optimizers.SGD):
    """SGD in PyTorch's form with coupled L2 weight decay on variables of >= 2 dimensions.

    Per variable w with gradient g (already summed over replicas): g' = g + decay * w when w
    has two or more dimensions (conv kernels, dense weights), g' = g otherwise (BatchNorm
    gamma and beta, biases); then v <- momentum * v + g' and w <- w - lr * v. This is the SUBP
    reference's torch SGD(momentum, weight_decay) with decay switched off for 1-D parameters.
    (Keras's SGD keeps m <- momentum * m - lr * g, which differs whenever the rate changes,
    and its `weight_decay` is decoupled: w <- w - lr * decay * w outside the momentum.)
    The decay is applied to the gradient after it has been summed over replicas, so it is
    counted once per step whatever the number of replicas.
    """

    def __init__(self, learning_rate=0.1, momentum=0.9, coupled_decay=1e-4, **kwargs):
        kwargs.pop("nesterov", None)
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)
        if not coupled_decay >= 0:
            raise ValueError(f"coupled_decay must be >= 0, got {coupled_decay!r}.")
        self.coupled_decay = float(coupled_decay)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.coupled_decay > 0 and len(variable.shape) >= 2:
            gradient = ops.add(gradient, ops.multiply(variable, self.coupled_decay))
        if self.momentum == 0:
            self.assign_sub(variable, ops.multiply(gradient, learning_rate))
            return
        velocity = self.momentums[self._get_variable_index(variable)]
        self.assign(velocity, ops.add(ops.multiply(velocity, self.momentum), gradient))
        self.assign_sub(variable, ops.multiply(velocity, learning_rate))

    def get_config(self) -> dict:
        return {**super().get_config(), "coupled_decay": self.coupled_decay}


def recipe_optimizer(initial_lr: float, epochs: int, steps_per_epoch: int, config: RunConfig):
    """The SUBP recipe's SGD for a phase of `epochs` epochs of `steps_per_epoch` steps."""
    return CoupledDecaySGD(
        learning_rate=EpochCosineDecay(initial_lr, epochs, steps_per_epoch),
        momentum=config.momentum,
        coupled_decay=config.weight_decay,
    )


def compile_model(model, optimizer, config: RunConfig) -> None:
    """Cross-entropy with label smoothing on one-hot labels; accuracy (and top-5 at 1000 classes)."""

    num_classes = model.output_shape[-1]
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    if num_classes >= 100:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(5, name="top5"))
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=not _ends_in_softmax(model), label_smoothing=config.label_smoothing
        ),
        metrics=metrics,
    )


def _ends_in_softmax(model) -> bool:
    # keras.applications models (resnet50, mobilenet_v1) end in a softmax layer or activation.

    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return isinstance(last, keras.layers.Softmax) or activation is keras.activations.softmax


# ---------------------------------------------------------------------------------------------
# Models


def build_model(config: RunConfig, input_shape: tuple[int, int, int], num_classes: int):
    """The zoo model `config.model` for this dataset, initialised from `config.seed`."""

    keras.utils.set_random_seed(config.seed)
    builder = getattr(zoo, config.model)
    return builder(input_shape=input_shape, num_classes=num_classes, seed=config.seed)


def make_schedule(config: RunConfig):
    import keras_subp

    classes = {
        "cubic": keras_subp.schedules.Cubic,
        "linear": keras_subp.schedules.Linear,
        "cosine": keras_subp.schedules.Cosine,
        "exponential": keras_subp.schedules.Exponential,
        "constant": keras_subp.schedules.Constant,
    }
    return classes[config.schedule](start_epoch=config.start_epoch, end_epoch=config.end_epoch)


def load_checkpoint(path: Path):
    """A checkpoint saved by this script (model, masks, optimizer state), compiled."""
    import keras_subp  # noqa: F401  (registers the wrappers and schedules)

    return keras.saving.load_model(path, compile=True)


# ---------------------------------------------------------------------------------------------
# Run directory bookkeeping


def write_json_atomically(path: Path, payload) -> None:
    """Write JSON to a temporary file and rename it over `path`: never half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def make_logger(run_dir: Path, echo: bool) -> std_logging.Logger:
    """Logger writing to run_dir/train.log and, when `echo`, to stdout.

    Its child "file" writes to the log file only (per-epoch lines, which the progress bar
    already shows on the terminal).
    """
    logger = std_logging.getLogger(f"{PROGRAM}.{run_dir}")
    logger.setLevel(std_logging.INFO)
    logger.propagate = False
    file_handler = std_logging.FileHandler(run_dir / "train.log")
    file_handler.setFormatter(std_logging.Formatter("%(asctime)s %(message)s"))
    file_only = logger.getChild("file")
    file_only.setLevel(std_logging.INFO)
    file_only.propagate = False
    file_only.addHandler(file_handler)
    logger.addHandler(file_handler)
    if echo:
        stream_handler = std_logging.StreamHandler(sys.stdout)
        stream_handler.setFormatter(std_logging.Formatter(f"[{PROGRAM}] %(message)s"))
        logger.addHandler(stream_handler)
    return logger


class RunRecorder:
    """Checkpoints after every epoch: model file first, then `state.json` pointing at it."""

    def __init__(self, run_dir: Path, state: RunState, logger: std_logging.Logger):
        self.run_dir = run_dir
        self.state = state
        self.logger = logger.getChild("file")
        (run_dir / "checkpoints").mkdir(exist_ok=True)

    def epoch_finished(self, model, epoch: int, logs: dict, phase: str) -> None:
        """Record epoch `epoch` (0-based): history line, checkpoint, then the state file."""
        metrics = {key: float(value) for key, value in (logs or {}).items()}
        self.state.history.append({"epoch": epoch + 1, "phase": phase, **metrics})
        relative = f"checkpoints/epoch_{epoch + 1:04d}.keras"
        partial = self.run_dir / f"checkpoints/epoch_{epoch + 1:04d}.partial.keras"
        model.save(partial)
        os.replace(partial, self.run_dir / relative)
        self.state.epochs_done = epoch + 1
        self.state.phase = phase
        self.state.checkpoint = relative
        self.save_state()
        shown = " ".join(f"{key}={value:.4f}" for key, value in metrics.items())
        self.logger.info("epoch %d (%s) done: %s; checkpoint %s", epoch + 1, phase, shown, relative)
        self._remove_old_checkpoints()

    def save_state(self) -> None:
        write_json_atomically(self.run_dir / "state.json", asdict(self.state))

    def _remove_old_checkpoints(self) -> None:
        checkpoints = sorted((self.run_dir / "checkpoints").glob("epoch_*.keras"))
        keep = {self.run_dir / self.state.checkpoint}
        complete = [path for path in checkpoints if ".partial" not in path.name]
        keep.update(complete[-CHECKPOINTS_KEPT:])
        for path in checkpoints:
            if path not in keep:
                path.unlink()


class EpochScalars(keras.callbacks.Callback):
    """Writes every epoch's logs (loss, accuracy, val_*, learning rate) as TensorBoard scalars.

    Uses `tf.summary.write` with the scalars plugin tag, so it needs no tensorboard package
    (Keras's TensorBoard callback does). Step = epoch number (1-based, global across phases).
    """

    def __init__(self, log_dir: str):
        super().__init__()
        self.log_dir = log_dir

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        metadata = summary_pb2.SummaryMetadata()
        metadata.plugin_data.plugin_name = "scalars"
        scalars = dict(logs or {})
        scalars["learning_rate"] = self.model.optimizer.learning_rate
        writer = tf.summary.create_file_writer(self.log_dir)
        with writer.as_default():
            for tag, value in scalars.items():
                value = tf.constant(float(value), tf.float32)
                tf.summary.write(f"epoch/{tag}", value, epoch + 1, metadata=metadata)
        writer.close()


def recorder_callback(recorder: RunRecorder, phase: str):

    class _Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            recorder.epoch_finished(self.model, epoch, logs, phase)

    return _Record()


# ---------------------------------------------------------------------------------------------
# Training


def make_strategy(name: str):
    """The tf.distribute strategy: the default one, MirroredStrategy (all local devices) or
    MultiWorkerMirroredStrategy (workers from TF_CONFIG)."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def worker_identity(strategy_name: str) -> tuple[int, bool]:
    """(task index, is chief) from TF_CONFIG for multi-worker jobs; (0, True) otherwise."""
    if strategy_name != "multiworker":
        return 0, True
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG", ""))
        task = tf_config["task"]
        task_type, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise FlagError(
            f"--strategy=multiworker needs TF_CONFIG with cluster and task ({error!r})"
        ) from error
    has_chief = "chief" in tf_config.get("cluster", {})
    is_chief = task_type == "chief" or (not has_chief and task_type == "worker" and index == 0)
    return index, is_chief


@dataclass
class Plan:
    """A checked run, ready to train: made by `prepare`, which writes nothing."""

    config: RunConfig
    run_dir: Path
    state: RunState | None  # None for a new run
    strategy: object
    is_chief: bool
    data: object  # cnn_zoo.input_pipeline.InputData
    steps_per_epoch: int
    tensorboard: bool = False
    runtime: dict = field(default_factory=dict)  # data_dir and deterministic, for run.json
    model: object = None  # new runs: the compiled initial model
    logger: std_logging.Logger | None = None
    recorder: RunRecorder | None = None


def prepare(values: flags.FlagValues) -> Plan:
    """Every check a bad flag can fail, before anything is written; raises FlagError."""
    from cnn_zoo.datasets import DatasetNotFoundError
    from cnn_zoo.input_pipeline import load_input_data

    out_dir, strategy_name = values.out_dir, values.strategy
    if not out_dir:
        raise FlagError("--out_dir is required")
    _choice("strategy", strategy_name, STRATEGIES)
    task_index, is_chief = worker_identity(strategy_name)
    run_dir = run_directory(Path(out_dir).expanduser(), task_index, is_chief)
    state = check_run_directory(run_dir, values.resume)
    config = resumed_config(run_dir, values) if state is not None else config_from_flags(values)
    if state is not None and state.finished:
        raise FlagError(f"--resume: the run in --out_dir={run_dir} is already finished")
    # Where the data is and whether ops are deterministic are not run settings, but a resumed
    # run keeps what the interrupted one used unless the flag is given again.
    runtime = json.loads((run_dir / "run.json").read_text())["runtime"] if state else {}
    data_dir = values.data_dir if values["data_dir"].present else runtime.get("data_dir")
    deterministic = (
        values.deterministic
        if values["deterministic"].present
        else runtime.get("deterministic", False)
    )
    data_dir = data_dir or None
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    # Multi-worker strategies must exist before any other TensorFlow work (tf.data included).
    strategy = make_strategy(strategy_name)
    try:
        data = load_input_data(config.dataset, data_dir, config.image_size)
    except (DatasetNotFoundError, ImportError) as error:
        raise FlagError(f"--data_dir={data_dir}: {str(error).splitlines()[0]}") from error
    steps = config.steps_per_epoch
    if not steps:
        if data.train_examples is None:
            raise FlagError(
                f"--steps_per_epoch is required: {config.dataset} in {data_dir} does not record "
                "its split sizes"
            )
        steps = data.train_examples // config.batch_size
        if steps < 1:
            raise FlagError(
                f"--batch_size={config.batch_size} exceeds the {data.train_examples} training "
                "examples"
            )
    plan = Plan(config, run_dir, state, strategy, is_chief, data, steps, values.tensorboard)
    plan.runtime = {"data_dir": data_dir, "deterministic": deterministic}
    if state is None:
        plan.model = initial_model(plan)
    return plan


def initial_model(plan: Plan):
    """The compiled model of a new run (under the strategy's scope); FlagError for a bad --n."""
    import keras_subp

    config = plan.config
    with plan.strategy.scope():
        model = build_model(config, plan.data.input_shape, plan.data.spec.num_classes)
        if config.method != "dense":
            check_block_size(model, config)
        phase_epochs = config.epochs
        if config.method == "subp":
            model = keras_subp.prune_subp(
                model,
                n=config.n,
                sparsity=config.sparsity,
                schedule=make_schedule(config),
                criterion=config.criterion,
                seed=config.seed,
            )
        elif config.method == "1xn":
            phase_epochs = config.pretrain_epochs
        compile_model(
            model, recipe_optimizer(config.lr, phase_epochs, plan.steps_per_epoch, config), config
        )
    return model


def multi_worker_fit(
    plan: Plan, model, train, evaluation, first_epoch: int, last_epoch: int, callbacks
) -> None:
    """The training loop for MultiWorkerMirroredStrategy, where Keras 3's `fit` fails.

    Keras 3 (3.15 here) cannot `fit` under MultiWorkerMirroredStrategy: it averages the first
    distributed batch and every step's scalar logs with reductions that the strategy's
    collectives reject (keras-team/keras#20585). This loop does what `fit` does with the same
    model, compiled loss, optimizer and callbacks: per replica, loss = the compiled loss summed
    over the replica's examples / global batch + the model's extra losses / replicas (SUBP's
    pruned-weight decay), so that the optimizer's sum over replicas of the gradients is the
    gradient of the global-batch mean; accuracy and loss are summed over replicas and divided
    by the global example count.
    """
    import tensorflow as tf

    strategy = plan.strategy
    replicas = strategy.num_replicas_in_sync
    global_batch = plan.config.batch_size
    per_example_loss = keras.losses.CategoricalCrossentropy(
        from_logits=not _ends_in_softmax(model),
        label_smoothing=plan.config.label_smoothing,
        reduction=None,
    )
    distributed_train = strategy.experimental_distribute_dataset(train)

    def tallies(images, labels, training: bool):
        outputs = model(images, training=training)
        losses = per_example_loss(labels, outputs)
        correct = tf.cast(tf.equal(tf.argmax(outputs, -1), tf.argmax(labels, -1)), tf.float32)
        extra = tf.add_n([tf.cast(loss, tf.float32) for loss in model.losses] or [0.0])
        return losses, correct, extra

    def train_replica(images, labels):
        with tf.GradientTape() as tape:
            losses, correct, extra = tallies(images, labels, training=True)
            loss = tf.reduce_sum(losses) / global_batch + extra / replicas
        gradients = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        count = tf.cast(tf.shape(losses)[0], tf.float32)
        return tf.stack([tf.reduce_sum(losses) + extra * count, tf.reduce_sum(correct), count])

    def eval_replica(images, labels):
        losses, correct, _ = tallies(images, labels, training=False)
        return tf.stack(
            [
                tf.reduce_sum(losses),
                tf.reduce_sum(correct),
                tf.cast(tf.shape(losses)[0], tf.float32),
            ]
        )

    @tf.function
    def train_step(batch):
        sums = strategy.run(train_replica, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, sums, axis=None)

    @tf.function
    def eval_step(batch):
        sums = strategy.run(eval_replica, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, sums, axis=None)

    def metrics(sums) -> dict:
        loss, correct, count = (float(v) for v in sums)
        return {"accuracy": correct / max(count, 1.0), "loss": loss / max(count, 1.0)}

    callback_list = keras.callbacks.CallbackList(
        list(callbacks), model=model, epochs=last_epoch, steps=plan.steps_per_epoch, verbose=0
    )
    callback_list.on_train_begin()
    iterator = iter(distributed_train)
    for epoch in range(first_epoch, last_epoch):
        callback_list.on_epoch_begin(epoch)
        progress = keras.utils.Progbar(plan.steps_per_epoch, verbose=1 if plan.is_chief else 0)
        sums = tf.zeros(3)
        for step in range(plan.steps_per_epoch):
            sums += train_step(next(iterator))
            progress.update(step + 1, list(metrics(sums).items()))
        logs = metrics(sums)
        eval_sums = tf.zeros(3)
        for batch in strategy.experimental_distribute_dataset(evaluation):
            eval_sums += eval_step(batch)
        logs.update({f"val_{key}": value for key, value in metrics(eval_sums).items()})
        callback_list.on_epoch_end(epoch, logs)
    callback_list.on_train_end()


def fit_phase(plan: Plan, model, first_epoch: int, last_epoch: int, phase: str, callbacks=()):
    """model.fit over epochs [first_epoch, last_epoch), validating and checkpointing each."""
    config = plan.config
    if first_epoch >= last_epoch:
        return
    train = plan.data.train_dataset(
        config.batch_size, plan.steps_per_epoch, first_epoch, last_epoch, config.seed
    )
    evaluation = plan.data.eval_dataset(config.batch_size, config.eval_steps or None)
    callbacks = [*callbacks, recorder_callback(plan.recorder, phase)]
    if plan.tensorboard:
        callbacks.append(EpochScalars(str(plan.run_dir / "tensorboard")))
    plan.logger.info("%s: epochs %d-%d of %d", phase, first_epoch + 1, last_epoch, config.epochs)
    import tensorflow as tf

    if isinstance(plan.strategy, tf.distribute.MultiWorkerMirroredStrategy):
        multi_worker_fit(plan, model, train, evaluation, first_epoch, last_epoch, callbacks)
        return
    model.fit(
        train,
        epochs=last_epoch,
        initial_epoch=first_epoch,
        steps_per_epoch=plan.steps_per_epoch,
        validation_data=evaluation,
        shuffle=False,  # the stream is already shuffled, per epoch and reproducibly
        callbacks=callbacks,
        verbose=1 if plan.is_chief else 0,
    )


def train_1xn(plan: Plan, model, first_epoch: int, phase: str):
    """Lin et al.'s baseline: dense pre-training, one-shot 1xN pruning, fine-tuning."""
    import keras_subp

    config = plan.config
    if phase == "pretrain":
        fit_phase(plan, model, first_epoch, config.pretrain_epochs, "pretrain")
        with plan.strategy.scope():
            model = keras_subp.prune_1xn(model, config.n, config.sparsity)
            finetune_epochs = config.epochs - config.pretrain_epochs
            optimizer = recipe_optimizer(
                config.finetune_lr, finetune_epochs, plan.steps_per_epoch, config
            )
            compile_model(model, optimizer, config)
        plan.logger.info(
            "pruned by the 1xN baseline (layer-global L1 blocks, masks fixed); filters "
            "rearranged in: %s",
            ", ".join(model.rearranged_layers) or "no layer",
        )
        first_epoch = config.pretrain_epochs
    fit_phase(plan, model, first_epoch, config.epochs, "finetune")
    return model


def final_report(plan: Plan, model) -> dict:
    """Strip and save the model, write final/metrics.json and the sparsity report."""
    import numpy as np

    import keras_subp

    config = plan.config
    final_dir = plan.run_dir / "final"
    final_dir.mkdir(exist_ok=True)
    if config.method == "dense":
        try:
            rows = keras_subp.sparsity_report(model, n=config.n)
        except ValueError as error:
            rows = []
            report = f"no layer with Cout divisible by N={config.n}: {error}"
        stripped = model
    else:
        rows = keras_subp.sparsity_report(model)
        stripped = keras_subp.strip_subp(model)
    # A new, uncompiled Model over the same layers: the file then holds no optimizer or loss,
    # so it loads without this script's custom classes.
    stripped = keras.Model(stripped.inputs, stripped.outputs, name=stripped.name)
    if rows:
        report = keras_subp.format_sparsity_report(rows)
    images, _ = next(iter(plan.data.eval_dataset(min(config.batch_size, 64), 1)))
    difference = float(
        np.max(np.abs(model(images, training=False) - stripped(images, training=False)))
    )
    stripped.save(final_dir / "model.keras")
    (final_dir / "sparsity_report.txt").write_text(report + "\n")
    history = plan.recorder.state.history
    last = history[-1]
    best = max(history, key=lambda row: row.get("val_accuracy", float("-inf")))
    metrics = {
        "config": asdict(config),
        "data_source": plan.data.source,
        "steps_per_epoch": plan.steps_per_epoch,
        "final_epoch": last["epoch"],
        "final_val_accuracy": last.get("val_accuracy"),
        "final_val_top5": last.get("val_top5"),
        "best_epoch": best["epoch"],
        "best_val_accuracy": best.get("val_accuracy"),
        "stripped_max_abs_output_difference": difference,
        "parameters": int(stripped.count_params()),
        "layers": [
            {
                "name": row.name,
                "kernel_shape": list(row.kernel_shape),
                "block_sparsity": row.block_sparsity,
                "balance_ratio": row.balance_ratio,
            }
            for row in rows
        ],
    }
    if rows:
        flops = keras_subp.count_flops(model)
        metrics["flops_dense"] = int(flops.dense)
        metrics["flops_actual"] = int(flops.actual)
    write_json_atomically(final_dir / "metrics.json", metrics)
    return {"report": report, **metrics}


def train(plan: Plan) -> dict:
    """Run or continue the planned training in plan.run_dir; returns the final metrics."""
    config, run_dir = plan.config, plan.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    plan.logger = make_logger(run_dir, echo=plan.is_chief)
    state = plan.state
    if state is None:
        write_json_atomically(
            run_dir / "run.json",
            {"config": asdict(config), "runtime": plan.runtime, "argv": sys.argv},
        )
        state = RunState(phase="pretrain" if config.method == "1xn" else "train")
    plan.recorder = RunRecorder(run_dir, state, plan.logger)
    plan.recorder.save_state()
    for partial in (run_dir / "checkpoints").glob("*.partial.keras"):
        partial.unlink()  # an interrupted save; state.json never points at one
    plan.logger.info(
        "data: %s (%s training examples; %d steps of %d per epoch)",
        plan.data.source,
        plan.data.train_examples,
        plan.steps_per_epoch,
        config.batch_size,
    )
    keras.utils.set_random_seed(config.seed)
    if plan.model is None:
        with plan.strategy.scope():
            model = load_checkpoint(run_dir / state.checkpoint)
        first_epoch = state.epochs_done
        plan.logger.info(
            "resumed from %s: %d of %d epochs done (phase %s)",
            state.checkpoint,
            first_epoch,
            config.epochs,
            state.phase,
        )
    else:
        model, first_epoch = plan.model, 0
        plan.logger.info(
            "new run: %s, %s on %s, %d epochs",
            config.method,
            config.model,
            config.dataset,
            config.epochs,
        )
    started = time.perf_counter()
    if config.method == "1xn":
        model = train_1xn(plan, model, first_epoch, state.phase)
    else:
        callbacks = []
        if config.method == "subp":
            import keras_subp

            callbacks.append(keras_subp.UpdateSUBP())
            if plan.tensorboard:
                log_dir = run_dir / "tensorboard" / "subp"
                callbacks.append(keras_subp.SUBPSummaries(str(log_dir)))
        fit_phase(plan, model, first_epoch, config.epochs, "train", callbacks)
    plan.logger.info("training time in this session: %.1f s", time.perf_counter() - started)
    metrics = final_report(plan, model)
    plan.logger.info("sparsity report:\n%s", metrics.pop("report"))
    plan.logger.info(
        "validation accuracy: final %.4f (epoch %d), best %.4f (epoch %d); results in %s",
        metrics["final_val_accuracy"],
        metrics["final_epoch"],
        metrics["best_val_accuracy"],
        metrics["best_epoch"],
        run_dir / "final",
    )
    state.finished = True
    plan.recorder.save_state()
    return metrics


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, then exit with `code`."""
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)
    sys.exit(code)


def run(values: flags.FlagValues) -> dict:
    """Check the parsed flags and train; a bad flag exits with one line on stderr (status 2)."""
    try:
        plan = prepare(values)
    except FlagError as error:
        fail(str(error))
    return train(plan)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}")
    run(flags.FLAGS)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with its errors as one line on stderr (exit status 2)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        fail(str(error).splitlines()[0])


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
