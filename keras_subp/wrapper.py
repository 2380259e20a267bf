"""`SUBPWrapper`: a Conv2D trained with a soft, uniform 1xN block mask (SUBP)."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from keras_subp import schedules as schedules_module
from keras_subp.block_geometry import (
    expand_block_mask,
    kernel_mask_to_blocks,
    validate_block_n,
    validate_block_size,
)
from keras_subp.criteria import block_scores, normalize_criterion
from keras_subp.selection import num_pruned_blocks, num_regrown_blocks, subp_block_mask

SEED_LIMIT = 2**31 - 1


def resolve_seed(seed: int | None) -> int:
    """`seed` checked to be an integer in [0, 2**31 - 1), or a fresh random one for None."""
    if seed is None:
        return secrets.randbelow(SEED_LIMIT)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"seed must be an integer in [0, 2**31 - 1), got {seed!r}.")
    return seed


def validate_sparsity(sparsity: float) -> float:
    """Return `sparsity` as a float, or raise `ValueError` unless it lies in [0, 1)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float | np.floating):
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}.")
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}.")
    return float(sparsity)


def check_conv2d_can_take_blocks(layer, n: int) -> None:
    """Raise `ValueError` explaining why `layer` cannot be pruned in 1xN blocks, if it cannot."""
    if not isinstance(layer, keras.layers.Conv2D):
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}) cannot take 1xN blocks: only "
            "keras.layers.Conv2D is supported (depthwise, transposed and dense layers are not)."
        )
    if getattr(layer, "groups", 1) != 1:
        raise ValueError(
            f"Layer {layer.name!r} is a grouped convolution (groups={layer.groups}); "
            "1xN blocks need groups == 1."
        )
    if layer.filters % n != 0:
        raise ValueError(
            f"Layer {layer.name!r} has {layer.filters} output channels, not divisible by the "
            f"block size n={n}; 1xN blocks need Cout % n == 0."
        )


def masked_layer_weights(layer, mask) -> list[np.ndarray]:
    """`layer.get_weights()` with the kernel multiplied by `mask` (kernel-shaped, 0/1).

    Pruned entries of negative weights would be -0.0; they are stored as +0.0 so that every
    pruned weight is a plain zero.
    """
    weights = layer.get_weights()
    weights[0] = weights[0] * ops.convert_to_numpy(mask).astype(weights[0].dtype)
    weights[0][weights[0] == 0] = 0
    return weights


@dataclass(frozen=True)
class MaskUpdate:
    """What one mask update did to one layer (counts are in 1xN blocks)."""

    layer_name: str
    epoch: int
    schedule_value: float
    groups: int
    input_channels: int
    pruned_per_group: int  # P - R_e, identical in every output group
    regrown_per_group: int  # R_e
    changed_blocks: int  # blocks whose kept/pruned state differs from before the update

    @property
    def block_sparsity(self) -> float:
        """Fraction of the layer's blocks that are pruned after this update."""
        return self.pruned_per_group / self.input_channels


@keras.saving.register_keras_serializable(package="keras_subp")
class SUBPWrapper(keras.layers.Wrapper):
    """Wraps a `keras.layers.Conv2D` and trains it with SUBP's soft uniform 1xN block mask.

    The mask M is a non-trainable variable (kernel-shaped, constant on every 1xN block). The
    forward pass convolves with W*M; the gradient reaches every weight (straight-through,
    ``w + stop_gradient(w * m - w)``), and during training the layer adds the loss
    ``pruned_decay / 2 * sum(((1 - M) * W) ** 2)``, whose gradient is the reference's extra
    decay ``pruned_decay * (1 - M) * W`` of pruned weights. The decay loss is not added in
    inference or evaluation calls.

    Masks change only in `update_mask`, which `keras_subp.UpdateSUBP` calls at the start of
    every epoch. Training a wrapper whose mask was never updated in this Python session raises
    `RuntimeError` at the first training call, so forgetting the callback cannot go unnoticed.

    State saved with the model: the mask, `schedule_epoch` (the epoch index of the last mask
    update, -1 before the first; the schedule continues from it after reloading) and
    `rng_state` = [seed, number of updates], from which each update's sampling seed derives.

    Distributed training: create (or load) the model under `strategy.scope()` of a
    `tf.distribute.MirroredStrategy` (multi-GPU) or `MultiWorkerMirroredStrategy`. The callback
    computes each mask once, outside the replicas, and assigns it to the mirrored variable, so
    every replica holds the same mask; with several workers every worker computes the same
    mask from the same synchronised weights and RNG state.

    Args:
        layer: the Conv2D to wrap (groups == 1, Cout divisible by n).
        n: block length N (output channels per block).
        sparsity: target fraction p of blocks pruned per output group, in [0, 1).
        schedule: a `keras_subp.schedules.Schedule`; None means `Cubic(0, 10)`.
        criterion: "l1", "l2" or "bpar" (see `keras_subp.block_scores`). The default is BPAR,
            the criterion of the SUBP paper; the reference's released scripts use "l1".
        temperature: softmax temperature of the regrowth sampling (> 0).
        pruned_decay: lambda of the pruned-weight decay (>= 0).
        seed: integer seed of the regrowth sampling; None draws one (then stored in the config).
        alpha: weight of BPAR's angular-redundancy term (1 in the reference code; >= 0).
    """

    def __init__(
        self,
        layer,
        n: int = 16,
        sparsity: float = 0.5,
        schedule=None,
        criterion: str = "bpar",
        temperature: float = 1.0,
        pruned_decay: float = 2e-4,
        seed: int | None = None,
        alpha: float = 1.0,
        **kwargs,
    ):
        validate_block_n(n)
        check_conv2d_can_take_blocks(layer, n)
        kwargs.setdefault("name", f"subp_{layer.name}")
        kwargs.setdefault("dtype", layer.dtype_policy)
        super().__init__(layer, **kwargs)
        self.n = n
        self.sparsity = validate_sparsity(sparsity)
        self.schedule = schedules_module.get(schedule)
        self.criterion = normalize_criterion(criterion)
        if not math.isfinite(float(temperature)) or not float(temperature) > 0:
            raise ValueError(f"temperature must be positive and finite, got {temperature!r}.")
        self.temperature = float(temperature)
        if not math.isfinite(float(pruned_decay)) or not float(pruned_decay) >= 0:
            raise ValueError(f"pruned_decay must be non-negative and finite, got {pruned_decay!r}.")
        self.pruned_decay = float(pruned_decay)
        if not math.isfinite(float(alpha)) or not float(alpha) >= 0:
            raise ValueError(f"alpha must be non-negative and finite, got {alpha!r}.")
        self.alpha = float(alpha)
        self.seed = resolve_seed(seed)
        # Python-side flag: set once `update_mask` ran on this object (see the class docstring).
        self._mask_initialised_in_session = False
        self.last_update: MaskUpdate | None = None

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        kernel_shape = tuple(int(d) for d in self.layer.kernel.shape)
        validate_block_size(self.n, kernel_shape)
        self.mask = self.add_weight(
            name="mask",
            shape=kernel_shape,
            initializer="ones",
            dtype=self.layer.kernel.dtype,
            trainable=False,
        )
        self.schedule_epoch = self.add_weight(
            name="schedule_epoch",
            shape=(),
            initializer=keras.initializers.Constant(-1),
            dtype="int32",
            trainable=False,
        )
        self.rng_state = self.add_weight(
            name="rng_state",
            shape=(2,),
            initializer=keras.initializers.Constant([self.seed, 0]),
            dtype="int32",
            trainable=False,
        )
        self.built = True

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        return tuple(int(d) for d in self.layer.kernel.shape)

    @property
    def input_channels(self) -> int:
        return self.kernel_shape[2]

    @property
    def num_pruned_per_group(self) -> int:
        """P = int(p * Cin): blocks every output group has pruned once the schedule is over."""
        return num_pruned_blocks(self.sparsity, self.input_channels)

    def block_mask(self) -> np.ndarray:
        """The current (G, Cin) block mask as a float32 numpy array (1 = kept)."""
        return ops.convert_to_numpy(kernel_mask_to_blocks(self.mask, self.n)).astype(np.float32)

    def call(self, inputs, training=None):
        if training is True and not self._mask_initialised_in_session:
            raise RuntimeError(
                f"SUBPWrapper {self.name!r} is being trained but its mask was never updated: "
                "pass keras_subp.UpdateSUBP() in the callbacks of model.fit (in a custom loop, "
                "call keras_subp.update_masks(model) at the start of every epoch)."
            )
        kernel = self.layer.kernel
        mask = ops.cast(self.mask, kernel.dtype)
        # Forward W*M, gradient identity to W: pruned weights keep learning and can regrow.
        effective_kernel = kernel + ops.stop_gradient(kernel * mask - kernel)
        if training is True and self.pruned_decay > 0:
            # In float32 even under mixed precision: Keras sums layer losses in float32, and a
            # float16 sum of squares over a large kernel could overflow.
            pruned_weights = (1.0 - ops.cast(mask, "float32")) * ops.cast(kernel, "float32")
            self.add_loss(self.pruned_decay / 2.0 * ops.sum(ops.square(pruned_weights)))
        return convolve_with_kernel(self.layer, inputs, effective_kernel)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def update_mask(self) -> MaskUpdate:
        """Advance the schedule by one epoch and recompute the mask (SUBP, once per epoch).

        Scores are taken on W*M; per output group the lowest P = int(p * Cin) blocks are the
        candidates, and R_e = int((p - p * r(e)) * Cin) of them regrow by sampling. Runs eagerly
        (from a callback), outside any replica context.
        """
        if not self.built:
            raise RuntimeError(f"SUBPWrapper {self.name!r} must be built before updating masks.")
        epoch = int(self.schedule_epoch.numpy()) + 1
        schedule_value = self.schedule(epoch)
        num_pruned = self.num_pruned_per_group
        num_regrown = num_regrown_blocks(self.sparsity, schedule_value, self.input_channels)
        previous_block_mask = kernel_mask_to_blocks(self.mask, self.n)
        scores = block_scores(
            self.layer.kernel, self.n, self.criterion, mask=previous_block_mask, alpha=self.alpha
        )
        seed, update_count = (int(v) for v in self.rng_state.numpy())
        new_block_mask = subp_block_mask(
            scores,
            num_pruned,
            num_regrown,
            temperature=self.temperature,
            seed=sampling_seed(seed, update_count),
        )
        self.mask.assign(
            ops.cast(expand_block_mask(new_block_mask, self.kernel_shape), self.mask.dtype)
        )
        self.schedule_epoch.assign(epoch)
        self.rng_state.assign(np.array([seed, update_count + 1], dtype=np.int32))
        self._mask_initialised_in_session = True
        changed = int(
            np.sum(
                ops.convert_to_numpy(new_block_mask)
                != ops.convert_to_numpy(ops.cast(previous_block_mask, "float32"))
            )
        )
        self.last_update = MaskUpdate(
            layer_name=self.name,
            epoch=epoch,
            schedule_value=schedule_value,
            pruned_per_group=num_pruned - num_regrown,
            regrown_per_group=num_regrown,
            groups=int(new_block_mask.shape[0]),
            input_channels=self.input_channels,
            changed_blocks=changed,
        )
        return self.last_update

    def stripped_weights(self) -> list[np.ndarray]:
        """The inner layer's weights with W*M baked into the kernel (pruned blocks exactly 0)."""
        return masked_layer_weights(self.layer, self.mask)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n": self.n,
                "sparsity": self.sparsity,
                "schedule": keras.saving.serialize_keras_object(self.schedule),
                "criterion": self.criterion,
                "temperature": self.temperature,
                "pruned_decay": self.pruned_decay,
                "seed": self.seed,
                "alpha": self.alpha,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(
            config.pop("layer"), custom_objects=custom_objects
        )
        schedule = config.pop("schedule", None)
        if isinstance(schedule, dict):
            schedule = keras.saving.deserialize_keras_object(schedule)
        return cls(layer, schedule=schedule, **config)


def sampling_seed(seed: int, update_count: int) -> int:
    """Seed of the `update_count`-th regrowth draw of a layer whose RNG seed is `seed`.

    Stateless and deterministic, so a reloaded model continues the exact random sequence.
    """
    return (int(seed) * 1_000_003 + int(update_count) * 7_919 + 1) % SEED_LIMIT


def convolve_with_kernel(layer, inputs, kernel):
    """Run Conv2D `layer` (bias and activation included) with `kernel` in place of its own."""
    outputs = layer.convolution_op(inputs, kernel)
    if layer.use_bias:
        bias_shape = (
            (1, 1, 1, layer.filters)
            if layer.data_format == "channels_last"
            else (1, layer.filters, 1, 1)
        )
        outputs = ops.add(outputs, ops.reshape(layer.bias, bias_shape))
    if layer.activation is not None:
        outputs = layer.activation(outputs)
    return outputs
