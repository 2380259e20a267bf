"""Unstructured magnitude pruning with tfmot on a zoo CNN: the baseline most users know.

`tensorflow_model_optimization.sparsity.keras.prune_low_magnitude` with its `PolynomialDecay`
schedule (power 3, the cubic ramp of Zhu & Gupta, which SUBP's default schedule also follows) on
the same architecture as `cnn_zoo.models.<--model>`, rebuilt layer by layer in tf_keras (tfmot
does not support Keras 3) and initialised with the Keras 3 model's own weights for the same seed,
so the run starts where the dense and SUBP runs start. The layers pruned are the ones SUBP prunes
(every Conv2D but the first, `keras_subp.block_eligibility`), each to `--sparsity` of its weights,
so the model keeps the same number of weights and multiply-accumulates as a 1xN model of the same
sparsity; the first conv, BatchNorm and the classifier stay dense.

The recipe is `scripts/train_subp.py`'s: the same seeded data stream (`cnn_zoo.input_pipeline`),
SGD with momentum 0.9, the per-epoch cosine learning rate, label smoothing and coupled weight
decay on >= 2-D weights (as an L2 loss of wd / 2 * |w|^2, whose gradient is wd * w, added before
the momentum, as in the reference). One difference: tf_keras's SGD keeps Keras's momentum form
(v <- m v - lr g), which equals PyTorch's (v <- m v + g, w <- w - lr v) while the rate is
constant, i.e. everywhere but the first step of each epoch. The sparsity ramps from 0 at
`--start_epoch` to `--sparsity` at `--end_epoch` (same defaults as train_subp), masks updated
once per epoch (tfmot's `frequency` = steps per epoch), then the mask is fixed.

Outputs in `--out_dir`, in the layout of train_subp: `run.json`, `train.log`, `state.json`,
`checkpoints/` (a tf.train.Checkpoint of the model, its masks, the pruning step and the optimizer
after every epoch; `--resume` continues from the last one with the same data order), and at the
end `final/model.keras` (a plain Keras 3 model of the zoo architecture holding the stripped
weights, its outputs checked against the tf_keras model's) and `final/metrics.json`.

Needs tfmot, which has no extra: tfmot 0.8 declares `absl-py~=1.2`, which conflicts with this
project's `absl-py>=2` in pip's resolver, so `make install-tfmot` installs it without its
dependency pins (it runs fine with absl 2), plus dm-tree and six. Importing tfmot sets TF_USE_LEGACY_KERAS=1 for the whole process, which makes
`tf.keras` tf_keras; that is why this runs as its own program (scripts.reproduce starts it as a
subprocess) and why the Keras 3 work here touches only `keras`, never `tf.keras`.

Example:
  python -m scripts.tfmot_baseline --sparsity=0.5 --epochs=12 --seed=0 --out_dir=results/tfmot
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from scripts.train_subp import import_tensorflow_quietly, write_json_atomically

import_tensorflow_quietly()

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from cnn_zoo import models as zoo  # noqa: E402

PROGRAM = "tfmot_baseline"
DATASET_NAMES = ("fashion_mnist", "mnist")
MODEL_NAMES = ("vgg_small", "resnet_small", "mobilenet_v1_small")
# Settings that define a run (stored in run.json; --resume takes them from there).
RUN_SETTINGS = (
    "model",
    "dataset",
    "sparsity",
    "start_epoch",
    "end_epoch",
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "label_smoothing",
    "weight_decay",
    "seed",
    "steps_per_epoch",
    "eval_steps",
)


class FlagError(ValueError):
    """A bad flag value; the message names the flag and fits on one line."""


class TfmotMissingError(ImportError):
    """tensorflow-model-optimization or tf_keras is not installed."""


@dataclass
class TfmotConfig:
    """The settings of one tfmot run (defaults resolved as in train_subp)."""

    model: str
    dataset: str
    sparsity: float
    start_epoch: int
    end_epoch: int
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    label_smoothing: float
    weight_decay: float
    seed: int
    steps_per_epoch: int
    eval_steps: int


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> flags.FlagValues:
    """Define the program's flags on `flag_values` (absl's global FLAGS by default)."""
    define = {
        "string": flags.DEFINE_string,
        "float": flags.DEFINE_float,
        "integer": flags.DEFINE_integer,
        "bool": flags.DEFINE_bool,
    }
    for kind, name, default, help_text in (
        ("string", "model", "vgg_small", f"Zoo model: {', '.join(MODEL_NAMES)}."),
        ("string", "dataset", "fashion_mnist", f"Dataset: {', '.join(DATASET_NAMES)}."),
        ("string", "data_dir", None, "Directory of the IDX files (else the usual local places)."),
        ("float", "sparsity", 0.5, "Fraction of each pruned layer's weights set to zero, [0, 1)."),
        ("integer", "start_epoch", None, "Epoch the ramp starts (default round(epochs / 12))."),
        ("integer", "end_epoch", None, "Epoch the target is reached (default round(0.72 E))."),
        ("integer", "epochs", 12, "Training epochs."),
        ("integer", "batch_size", 256, "Batch size."),
        ("float", "lr", 0.1, "Initial learning rate of the per-epoch cosine."),
        ("float", "momentum", 0.9, "SGD momentum."),
        ("float", "label_smoothing", 0.1, "Label smoothing of the cross-entropy."),
        ("float", "weight_decay", 1e-4, "Coupled L2 weight decay of >= 2-D weights."),
        ("integer", "seed", 42, "Seed of weights and data order."),
        ("integer", "steps_per_epoch", 0, "Training steps per epoch; 0 = one pass."),
        ("integer", "eval_steps", 0, "Evaluation batches; 0 = the whole test split."),
        ("string", "out_dir", None, "Run directory (required)."),
        ("bool", "resume", False, "Continue the interrupted run in --out_dir."),
    ):
        define[kind](name, default, help_text, flag_values=flag_values)
    return flag_values


def config_from_flags(values: flags.FlagValues) -> TfmotConfig:
    """The run settings from parsed flags; FlagError (naming the flag) for a bad value."""
    if values.model not in MODEL_NAMES:
        raise FlagError(f"--model={values.model!r} is not one of: {', '.join(MODEL_NAMES)}")
    if values.dataset not in DATASET_NAMES:
        raise FlagError(f"--dataset={values.dataset!r} is not one of: {', '.join(DATASET_NAMES)}")
    epochs = values.epochs
    if epochs < 1:
        raise FlagError(f"--epochs={epochs} must be at least 1")
    if not 0.0 <= values.sparsity < 1.0:
        raise FlagError(f"--sparsity={values.sparsity} must be in [0, 1)")
    start = values.start_epoch if values.start_epoch is not None else round(epochs / 12)
    end = values.end_epoch if values.end_epoch is not None else max(start, round(0.72 * epochs))
    if not 0 <= start <= end < epochs:
        raise FlagError(
            f"--end_epoch={end}: need 0 <= --start_epoch={start} <= end < --epochs={epochs}"
        )
    for name in ("batch_size",):
        if values[name].value < 1:
            raise FlagError(f"--{name}={values[name].value} must be positive")
    for name in ("steps_per_epoch", "eval_steps"):
        if values[name].value < 0:
            raise FlagError(f"--{name}={values[name].value} must be >= 0")
    if not values.lr > 0 or not math.isfinite(values.lr):
        raise FlagError(f"--lr={values.lr} must be positive")
    return TfmotConfig(
        model=values.model,
        dataset=values.dataset,
        sparsity=values.sparsity,
        start_epoch=start,
        end_epoch=end,
        epochs=epochs,
        batch_size=values.batch_size,
        lr=values.lr,
        momentum=values.momentum,
        label_smoothing=values.label_smoothing,
        weight_decay=values.weight_decay,
        seed=values.seed,
        steps_per_epoch=values.steps_per_epoch,
        eval_steps=values.eval_steps,
    )


def import_tfmot():
    """(tfmot, tf_keras); TfmotMissingError saying how to install them when they are absent."""
    try:
        import tensorflow_model_optimization as tfmot
        import tf_keras
    except ImportError as error:
        raise TfmotMissingError(
            f"tfmot not installed ({error}); run `make install-tfmot` (or pip install --no-deps "
            "'tensorflow-model-optimization>=0.8,<0.9' 'tf_keras>=2.16,<2.22', then dm-tree six)"
        ) from error
    return tfmot, tf_keras


# ---------------------------------------------------------------------------------------------
# The same architecture in tf_keras


def tf_keras_twin(model: keras.Model, weight_decay: float):
    """A tf_keras Sequential with the layers of the Keras 3 chain `model` and its weights.

    Supports the layer types of the zoo's plain chains (Conv2D, BatchNormalization, ReLU,
    MaxPooling2D, GlobalAveragePooling2D, Dense, Activation, Flatten); raises ValueError for
    others or for a graph that is not a chain (residual models). Conv2D and Dense kernels get an
    L2 regulariser of weight_decay / 2 (gradient weight_decay * w: the coupled decay).
    """
    _, tf_keras = import_tfmot()
    layers = tf_keras.layers
    regularizer = tf_keras.regularizers.L2(weight_decay / 2) if weight_decay > 0 else None
    twin_layers = [layers.InputLayer(input_shape=model.input_shape[1:], name="image")]
    previous = model.inputs[0]
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer.input is not previous:
            raise ValueError(f"{model.name} is not a chain of layers (at {layer.name})")
        previous = layer.output
        config = layer.get_config()
        name = layer.name
        if isinstance(layer, keras.layers.Conv2D):
            twin = layers.Conv2D(
                config["filters"],
                config["kernel_size"],
                strides=config["strides"],
                padding=config["padding"],
                dilation_rate=config["dilation_rate"],
                groups=config["groups"],
                use_bias=config["use_bias"],
                activation=config["activation"],
                kernel_regularizer=regularizer,
                name=name,
            )
        elif isinstance(layer, keras.layers.BatchNormalization):
            twin = layers.BatchNormalization(
                momentum=config["momentum"],
                epsilon=config["epsilon"],
                center=config["center"],
                scale=config["scale"],
                name=name,
            )
        elif isinstance(layer, keras.layers.ReLU):
            twin = layers.ReLU(
                max_value=config["max_value"],
                negative_slope=config["negative_slope"],
                threshold=config["threshold"],
                name=name,
            )
        elif isinstance(layer, keras.layers.MaxPooling2D):
            twin = layers.MaxPooling2D(
                config["pool_size"], strides=config["strides"], padding=config["padding"], name=name
            )
        elif isinstance(layer, keras.layers.GlobalAveragePooling2D):
            twin = layers.GlobalAveragePooling2D(name=name)
        elif isinstance(layer, keras.layers.Dense):
            twin = layers.Dense(
                config["units"],
                activation=config["activation"],
                use_bias=config["use_bias"],
                kernel_regularizer=regularizer,
                name=name,
            )
        elif isinstance(layer, keras.layers.Activation):
            twin = layers.Activation(config["activation"], name=name)
        elif isinstance(layer, keras.layers.Flatten):
            twin = layers.Flatten(name=name)
        else:
            raise ValueError(f"no tf_keras twin for layer {name} ({type(layer).__name__})")
        twin_layers.append(twin)
    twin_model = tf_keras.Sequential(twin_layers, name=model.name)
    copy_weights(model, twin_model)
    return twin_model


def copy_weights(source, destination) -> None:
    """Copy every layer's weights from `source` to the layer of the same name in `destination`
    (Keras 3 and tf_keras keep the same weight order per layer type)."""
    for layer in destination.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())


def pruned_layer_names(model: keras.Model) -> list[str]:
    """The layers SUBP would prune: Conv2D layers eligible for 1x1 blocks (all but the first)."""
    import keras_subp

    decisions = keras_subp.block_eligibility(model, 1)
    return [name for name, decision in decisions.items() if decision == "eligible"]


def make_epoch_cosine(tf_keras, initial: float, epochs: int, steps_per_epoch: int):
    """train_subp's EpochCosineDecay as a tf_keras schedule (rate set once per epoch)."""
    import tensorflow as tf

    class EpochCosine(tf_keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            epoch = tf.math.floordiv(tf.cast(step, tf.int64), steps_per_epoch)
            progress = tf.cast(epoch, tf.float32) / float(epochs)
            return 0.5 * initial * (1.0 + tf.cos(math.pi * progress))

        def get_config(self):
            return {}

    return EpochCosine()


def pruned_twin(config: TfmotConfig, input_shape, num_classes: int, steps_per_epoch: int):
    """(Keras 3 zoo model, compiled tf_keras model with tfmot wrappers on the pruned layers)."""
    tfmot, tf_keras = import_tfmot()
    keras.utils.set_random_seed(config.seed)
    model = getattr(zoo, config.model)(
        input_shape=input_shape, num_classes=num_classes, seed=config.seed
    )
    twin = tf_keras_twin(model, config.weight_decay)
    names = set(pruned_layer_names(model))
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=config.sparsity,
        begin_step=config.start_epoch * steps_per_epoch,
        end_step=config.end_epoch * steps_per_epoch,
        power=3,
        # Once per epoch, like SUBP's masks; end - begin is a multiple of it, so the last update
        # lands on end_step and reaches the target exactly.
        frequency=steps_per_epoch,
    )

    def wrap(layer):
        if layer.name in names:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    # clone_function returns the twin's own layers (wrapped or not): the weights carry over.
    pruned = tf_keras.models.clone_model(twin, clone_function=wrap)
    optimizer = tf_keras.optimizers.SGD(
        learning_rate=make_epoch_cosine(tf_keras, config.lr, config.epochs, steps_per_epoch),
        momentum=config.momentum,
    )
    pruned.compile(
        optimizer=optimizer,
        loss=tf_keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=config.label_smoothing
        ),
        metrics=[tf_keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    optimizer.build(pruned.trainable_variables)
    return model, pruned, sorted(names)


# ---------------------------------------------------------------------------------------------
# Training


def log(run_dir: Path, message: str) -> None:
    """Append a time-stamped line to run_dir/train.log and print it."""
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
    with open(run_dir / "train.log", "a") as stream:
        stream.write(line + "\n")
    print(f"[{PROGRAM}] {message}", flush=True)


def train(config: TfmotConfig, run_dir: Path, data_dir: str | None, resume: bool) -> dict:
    """Train (or continue) the tfmot run in run_dir; returns the final metrics."""
    import tensorflow as tf

    from cnn_zoo.input_pipeline import load_input_data

    tfmot, tf_keras = import_tfmot()
    data = load_input_data(config.dataset, data_dir)
    steps = config.steps_per_epoch or data.train_examples // config.batch_size
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "state.json"
    state = (
        json.loads(state_path.read_text())
        if resume
        else {"epochs_done": 0, "checkpoint": None, "finished": False, "history": []}
    )
    if not resume:
        write_json_atomically(
            run_dir / "run.json",
            {"config": asdict(config), "runtime": {"data_dir": data_dir}, "argv": sys.argv},
        )
        write_json_atomically(state_path, state)
    tf_keras.utils.set_random_seed(config.seed)
    model, pruned, names = pruned_twin(config, data.input_shape, data.spec.num_classes, steps)
    checkpoint = tf.train.Checkpoint(model=pruned, optimizer=pruned.optimizer)
    first_epoch = state["epochs_done"]
    if state["checkpoint"]:
        checkpoint.read(str(run_dir / state["checkpoint"])).assert_existing_objects_matched()
        log(run_dir, f"resumed from {state['checkpoint']}: {first_epoch} of {config.epochs} epochs")
    else:
        log(
            run_dir, f"new run: tfmot {config.sparsity:g} on {config.model}, {config.epochs} epochs"
        )
    log(run_dir, f"data: {data.source}; pruned layers: {', '.join(names)}")
    evaluation = data.eval_dataset(config.batch_size, config.eval_steps or None)

    class Record(tf_keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
            state["history"].append(row)
            prefix = f"checkpoints/epoch_{epoch + 1:04d}"
            checkpoint.write(str(run_dir / prefix))
            state["epochs_done"], state["checkpoint"] = epoch + 1, prefix
            write_json_atomically(state_path, state)
            shown = " ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "epoch")
            log(run_dir, f"epoch {epoch + 1} done: {shown}")
            for old in (run_dir / "checkpoints").glob("epoch_*"):
                if not old.name.startswith((f"epoch_{epoch + 1:04d}", f"epoch_{epoch:04d}")):
                    old.unlink()

    if first_epoch < config.epochs:
        train_stream = data.train_dataset(
            config.batch_size, steps, first_epoch, config.epochs, config.seed
        )
        pruned.fit(
            train_stream,
            epochs=config.epochs,
            initial_epoch=first_epoch,
            steps_per_epoch=steps,
            validation_data=evaluation,
            callbacks=[tfmot.sparsity.keras.UpdatePruningStep(), Record()],
            verbose=2,
        )
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    copy_weights(stripped, model)
    images, _ = next(iter(data.eval_dataset(64, 1)))
    difference = float(
        np.max(np.abs(np.asarray(model(images, training=False)) - stripped(images).numpy()))
    )
    final_dir = run_dir / "final"
    final_dir.mkdir(exist_ok=True)
    model.save(final_dir / "model.keras")
    layers = []
    for name in names:
        kernel = model.get_layer(name).get_weights()[0]
        layers.append({"name": name, "weight_sparsity": float(np.mean(kernel == 0))})
    last = state["history"][-1]
    metrics = {
        "config": asdict(config),
        "data_source": data.source,
        "steps_per_epoch": steps,
        "final_epoch": last["epoch"],
        "final_val_accuracy": last.get("val_accuracy"),
        "tf_keras_keras3_max_abs_output_difference": difference,
        "parameters": int(model.count_params()),
        "layers": layers,
        "tfmot_version": _tfmot_version(tfmot),
    }
    write_json_atomically(final_dir / "metrics.json", metrics)
    state["finished"] = True
    write_json_atomically(state_path, state)
    log(run_dir, f"final test accuracy {metrics['final_val_accuracy']:.4f}; results in {final_dir}")
    return metrics


def _tfmot_version(tfmot) -> str:
    from importlib.metadata import version

    try:
        return version("tensorflow-model-optimization")
    except Exception:  # noqa: BLE001  (only a label in the metrics)
        return getattr(tfmot, "__version__", "?")


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, then exit with `code`."""
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)
    sys.exit(code)


def run(values: flags.FlagValues) -> dict:
    """Check the flags and train; a bad flag or a missing tfmot exits with one line (status 2)."""
    try:
        if not values.out_dir:
            raise FlagError("--out_dir is required")
        run_dir = Path(values.out_dir)
        state_path = run_dir / "state.json"
        if values.resume:
            if not state_path.exists():
                raise FlagError(f"--resume: no run in --out_dir={run_dir}")
            if json.loads(state_path.read_text()).get("finished"):
                raise FlagError(f"--resume: the run in --out_dir={run_dir} is already finished")
            saved = json.loads((run_dir / "run.json").read_text())
            config = TfmotConfig(**saved["config"])
            data_dir = (
                values.data_dir if values["data_dir"].present else saved["runtime"]["data_dir"]
            )
        else:
            if state_path.exists() or (run_dir / "run.json").exists():
                raise FlagError(f"--out_dir={run_dir} already holds a run; nothing was changed")
            config = config_from_flags(values)
            data_dir = values.data_dir
        import_tfmot()
    except (FlagError, TfmotMissingError) as error:
        fail(str(error))
    return train(config, run_dir, data_dir, values.resume)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}")
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # tf.train.Checkpoint logs every save at INFO
    run(flags.FLAGS)


if __name__ == "__main__":
    define_flags()
    app.run(main)
