"""`BlockMaskWrapper`: the base of every Conv2D wrapper that multiplies its kernel by a block mask.

A block is N consecutive output channels x one input channel x the whole Kh x Kw window (see
`keras_subp.block_geometry`). A block-mask wrapper holds a kernel-shaped 0/1 `mask` that is
constant on every block and convolves with W*M. The base class owns what every such wrapper
shares: argument validation, `build` (the inner layer and the mask), the output shape, the
(G, Cin) view of the mask, the stripped weights (W*M baked into the kernel) and the config.
Subclasses decide how the mask is chosen and how gradients flow (`call`):

* `keras_subp.SUBPWrapper`: SUBP's soft mask, recomputed every epoch, straight-through gradient.
* `keras_subp.FixedBlockMaskWrapper`: the 1xN baseline's fixed mask, no gradient to pruned weights.

Code that needs to know whether a layer is such a wrapper tests
`isinstance(layer, BlockMaskWrapper)`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_subp.block_geometry import kernel_mask_to_blocks, validate_block_n, validate_block_size


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


class BlockMaskWrapper(keras.layers.Wrapper):
    """Base class: a `keras.layers.Conv2D` whose kernel is multiplied by a 1xN block mask.

    Not used directly; subclasses implement `call` (and may add state in `build_state`). The
    mask is a non-trainable, kernel-shaped variable named "mask", created first in `build`,
    initialised to ones (every block kept) and saved with the model.

    Args:
        layer: the Conv2D to wrap (groups == 1, Cout divisible by n).
        n: block length N (output channels per block).
        sparsity: the target fraction of pruned blocks, in [0, 1); its exact meaning (per output
            group or per layer) is the subclass's.
        **kwargs: `keras.layers.Layer` arguments; the name defaults to
            `f"{name_prefix}_{layer.name}"` and the dtype policy to the wrapped layer's.
    """

    #: Prefix of the default layer name; subclasses set their own.
    name_prefix = "block_mask"

    def __init__(self, layer, n: int = 16, sparsity: float = 0.5, **kwargs):
        validate_block_n(n)
        check_conv2d_can_take_blocks(layer, n)
        kwargs.setdefault("name", f"{self.name_prefix}_{layer.name}")
        kwargs.setdefault("dtype", layer.dtype_policy)
        super().__init__(layer, **kwargs)
        self.n = n
        self.sparsity = validate_sparsity(sparsity)

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        kernel_shape = self.kernel_shape
        validate_block_size(self.n, kernel_shape)
        # Saved files store a layer's variables by creation index: the mask must stay first and
        # `build_state` must keep creating its variables in the same order.
        self.mask = self.add_weight(
            name="mask",
            shape=kernel_shape,
            initializer="ones",
            dtype=self.layer.kernel.dtype,
            trainable=False,
        )
        self.build_state()
        self.built = True

    def build_state(self) -> None:
        """Create the subclass's own variables (after the mask); nothing in the base class."""

    def call(self, inputs, training=None):
        raise NotImplementedError(
            f"{type(self).__name__} is a BlockMaskWrapper without a forward pass; use "
            "keras_subp.SUBPWrapper or keras_subp.FixedBlockMaskWrapper."
        )

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        """The wrapped kernel's shape (Kh, Kw, Cin, Cout)."""
        return tuple(int(d) for d in self.layer.kernel.shape)

    @property
    def input_channels(self) -> int:
        """Cin: the number of blocks in every output group."""
        return self.kernel_shape[2]

    def block_mask(self) -> np.ndarray:
        """The current (G, Cin) block mask as a float32 numpy array (1 = kept), G = Cout / N."""
        return ops.convert_to_numpy(kernel_mask_to_blocks(self.mask, self.n)).astype(np.float32)

    def kept_blocks_per_group(self) -> np.ndarray:
        """(G,) int64: kept blocks in each output group under the current mask."""
        return self.block_mask().sum(axis=1).astype(np.int64)

    def stripped_weights(self) -> list[np.ndarray]:
        """The inner layer's weights with W*M baked into the kernel (pruned blocks exactly 0).

        Pruned entries of negative weights would be -0.0; they are stored as +0.0 so that every
        pruned weight is a plain zero.
        """
        weights = self.layer.get_weights()
        weights[0] = weights[0] * ops.convert_to_numpy(self.mask).astype(weights[0].dtype)
        weights[0][weights[0] == 0] = 0
        return weights

    def get_config(self) -> dict:
        return {**super().get_config(), "n": self.n, "sparsity": self.sparsity}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(
            config.pop("layer"), custom_objects=custom_objects
        )
        return cls(layer, **config)
