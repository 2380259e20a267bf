"""Training callbacks: `UpdateSUBP` (mandatory mask updates) and `SUBPSummaries` (TensorBoard)."""

from __future__ import annotations

import warnings

import keras

from keras_subp.model_walk import iter_leaf_layers
from keras_subp.wrapper import MaskUpdate, SUBPWrapper


def subp_wrappers(model) -> list[SUBPWrapper]:
    """All `SUBPWrapper` layers of a model, nested models included, in model order."""
    return [layer for layer in iter_leaf_layers(model) if isinstance(layer, SUBPWrapper)]


def update_masks(model) -> list[MaskUpdate]:
    """Advance every SUBP layer of `model` by one epoch: recompute and assign its mask.

    This is what `UpdateSUBP` does at the start of each epoch; call it yourself at the start of
    every epoch of a custom training loop (outside `tf.function` and outside replica context).

    Raises:
        ValueError: the model has no `SUBPWrapper` layer.
    """
    wrappers = subp_wrappers(model)
    if not wrappers:
        raise ValueError(
            f"Model {model.name!r} has no SUBPWrapper layers; wrap it with keras_subp.prune_subp."
        )
    return [wrapper.update_mask() for wrapper in wrappers]


@keras.saving.register_keras_serializable(package="keras_subp")
class UpdateSUBP(keras.callbacks.Callback):
    """Updates every SUBP mask at the start of every epoch; required when training.

    The schedule position is each layer's own `schedule_epoch` counter (saved with the model),
    advanced by one per epoch trained, not Keras's epoch index: a model reloaded from a
    `.keras` file continues its schedule whether or not `fit(initial_epoch=...)` is used, and
    successive `fit` calls continue where the previous one stopped.

    Under `tf.distribute` strategies the callback runs in cross-replica context, so each mask
    is computed once and written identically to every replica.

    After each update, `last_updates` holds one `MaskUpdate` per layer. If the `fit` call ends
    before a layer's schedule does (its last update has r(e) < 1), a `UserWarning` at the first
    epoch says so: the masks would stop short of the target sparsity.
    """

    def __init__(self):
        super().__init__()
        self.last_updates: list[MaskUpdate] = []
        self._checked_schedule_end = False

    def on_train_begin(self, logs=None):
        if not subp_wrappers(self.model):
            raise ValueError(
                f"UpdateSUBP: model {self.model.name!r} has no SUBPWrapper layers; "
                "wrap it with keras_subp.prune_subp first."
            )

        self._checked_schedule_end = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._checked_schedule_end:
            self._checked_schedule_end = True
            self._warn_if_training_ends_before_the_schedule(epoch)
        self.last_updates = update_masks(self.model)

    def _warn_if_training_ends_before_the_schedule(self, epoch: int) -> None:
        epochs = (self.params or {}).get("epochs")
        if not epochs:
            return
        short = []
        for wrapper in subp_wrappers(self.model):
            # Updates at this epoch and each later one advance the layer's own schedule epoch.
            last_schedule_epoch = int(wrapper.schedule_epoch.numpy()) + (epochs - epoch)
            if wrapper.schedule(last_schedule_epoch) < 1.0:
                short.append(
                    f"{wrapper.name} (ends at schedule epoch {last_schedule_epoch}, "
                    f"end_epoch {wrapper.schedule.end_epoch})"
                )
        if short:
            warnings.warn(
                "UpdateSUBP: this fit ends before the sparsity schedule does, so the masks will "
                f"not reach their target sparsity: {'; '.join(short)}. Train for more epochs, "
                "continue with another fit, or use a schedule with an earlier end_epoch.",
                UserWarning,
                stacklevel=2,
            )

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> UpdateSUBP:
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_subp")
class SUBPSummaries(keras.callbacks.Callback):
    """Writes TensorBoard scalars after every epoch (TensorFlow's `tf.summary`).

    Per SUBP layer, under `subp/<layer name>/`: `block_sparsity` (fraction of blocks pruned
    this epoch), `blocks_regrown` (R_e x G, blocks of the candidate set that regrew),
    `mask_churn` (blocks whose kept/pruned state changed at this epoch's update); and
    model-wide `subp/flops_ratio` (actual FLOPs with the current masks over dense FLOPs, in the
    SUBP accounting of `keras_subp.count_flops`). The step is the layer's schedule epoch.
    Place it after `UpdateSUBP` in the callbacks list.

    Args:
        log_dir: directory for the event files (created if missing).
    """

    def __init__(self, log_dir: str):
        super().__init__()
        self.log_dir = str(log_dir)
        self._writer = None
        self._warned_about_flops = False

    def on_train_begin(self, logs=None):
        import tensorflow as tf  # TensorBoard event files need TensorFlow's summary writer

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        from keras_subp.report import count_flops

        if self._writer is None:
            self.on_train_begin()
        wrappers = subp_wrappers(self.model)
        updates = [wrapper.last_update for wrapper in wrappers if wrapper.last_update is not None]
        if not updates:
            return
        step = updates[0].epoch
        scalars = {}
        for update in updates:
            prefix = f"subp/{update.layer_name}"
            scalars[f"{prefix}/block_sparsity"] = update.block_sparsity
            scalars[f"{prefix}/blocks_regrown"] = update.regrown_blocks_per_group * update.groups
            scalars[f"{prefix}/mask_churn"] = update.changed_blocks
        try:
            flops = count_flops(self.model)
            scalars["subp/flops_ratio"] = flops.actual / flops.dense
        except ValueError as error:  # e.g. inputs of unknown height/width: no FLOPs to count
            if not self._warned_about_flops:
                self._warned_about_flops = True
                warnings.warn(f"SUBPSummaries: subp/flops_ratio not logged: {error}", stacklevel=2)
        # tf.summary.write with the "scalars" plugin tag is what tf.summary.scalar writes, but it
        # does not need the tensorboard package installed.
        metadata = summary_pb2.SummaryMetadata()
        metadata.plugin_data.plugin_name = "scalars"
        with self._writer.as_default():
            for tag, value in scalars.items():
                tf.summary.write(
                    tag, tf.constant(float(value), tf.float32), step, metadata=metadata
                )
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def get_config(self) -> dict:
        return {"log_dir": self.log_dir}

    @classmethod
    def from_config(cls, config: dict) -> SUBPSummaries:
        return cls(**config)
