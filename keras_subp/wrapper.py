"""`SUBPWrapper`: a Conv2D trained with a soft, uniform 1xN block mask (SUBP)."""

from __future__ import annotations

import math
import secrets
import warnings
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from keras_subp import schedules as schedules_module
from keras_subp.block_geometry import expand_block_mask, kernel_mask_to_blocks
from keras_subp.block_mask_wrapper import BlockMaskWrapper, convolve_with_kernel
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


@dataclass(frozen=True)
class MaskUpdate:
    """What one mask update did to one layer.

    Counts are in blocks (N output channels x one input channel x the whole kernel window) and
    are the same for every one of the layer's `groups` output groups, each of which has
    `input_channels` blocks.
    """

    layer_name: str
    epoch: int
    schedule_value: float
    groups: int
    input_channels: int
    pruned_blocks_per_group: int  # P - R_e
    regrown_blocks_per_group: int  # R_e: candidates for pruning that were kept by sampling
    changed_blocks: int  # blocks of the layer whose kept/pruned state changed in this update

    @property
    def kept_blocks_per_group(self) -> int:
        """Blocks every output group keeps after this update: Cin - (P - R_e)."""
        return self.input_channels - self.pruned_blocks_per_group

    @property
    def block_sparsity(self) -> float:
        """Fraction of the layer's blocks that are pruned after this update."""
        return self.pruned_blocks_per_group / self.input_channels

    @property
    def pruned_per_group(self) -> int:
        """Deprecated name of `pruned_blocks_per_group`."""
        warnings.warn(
            "MaskUpdate.pruned_per_group is deprecated; use pruned_blocks_per_group.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.pruned_blocks_per_group

    @property
    def regrown_per_group(self) -> int:
        """Deprecated name of `regrown_blocks_per_group`."""
        warnings.warn(
            "MaskUpdate.regrown_per_group is deprecated; use regrown_blocks_per_group.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.regrown_blocks_per_group


@keras.saving.register_keras_serializable(package="keras_subp")
class SUBPWrapper(BlockMaskWrapper):
    """Wraps a `keras.layers.Conv2D` and trains it with SUBP's soft uniform 1xN block mask.

    The mask M is the base class's non-trainable, kernel-shaped variable (constant on every
    block; see `keras_subp.BlockMaskWrapper`), with the same number of kept blocks in every
    output group. The
    forward pass convolves with W*M; the gradient reaches every weight (straight-through,
    ``w + stop_gradient(w * m - w)``), and during training the layer adds the loss
    ``pruned_decay / 2 * sum(((1 - M) * W) ** 2)``, whose gradient is SUBP's extra
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
            the criterion of the SUBP paper; the SUBP authors' released training scripts use "l1".
        temperature: softmax temperature of the regrowth sampling (> 0).
        pruned_decay: lambda of the pruned-weight decay (>= 0).
        seed: integer seed of the regrowth sampling; None draws one (then stored in the config).
        alpha: weight of BPAR's angular-redundancy term (1 in the SUBP authors' code; >= 0).
    """

    name_prefix = "subp"

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
        super().__init__(layer, n=n, sparsity=sparsity, **kwargs)
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

    def build_state(self) -> None:
        # Created after the mask, in this order (saved files index variables by creation order).
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

    @property
    def target_pruned_blocks_per_group(self) -> int:
        """P = int(p * Cin): blocks every output group has pruned once the schedule is over."""
        return num_pruned_blocks(self.sparsity, self.input_channels)

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
        num_pruned = self.target_pruned_blocks_per_group
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
            pruned_blocks_per_group=num_pruned - num_regrown,
            regrown_blocks_per_group=num_regrown,
            groups=int(new_block_mask.shape[0]),
            input_channels=self.input_channels,
            changed_blocks=changed,
        )
        return self.last_update

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "schedule": keras.saving.serialize_keras_object(self.schedule),
                "criterion": self.criterion,
                "temperature": self.temperature,
                "pruned_decay": self.pruned_decay,
                "seed": self.seed,
                "alpha": self.alpha,
            }
        )
        return config


def sampling_seed(seed: int, update_count: int) -> int:
    """Seed of the `update_count`-th regrowth draw of a layer whose RNG seed is `seed`.

    Stateless and deterministic, so a reloaded model continues the exact random sequence.
    """
    return (int(seed) * 1_000_003 + int(update_count) * 7_919 + 1) % SEED_LIMIT
