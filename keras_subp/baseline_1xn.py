"""The 1xN baseline of Lin et al. (TPAMI 2022): one-shot layer-global L1 block pruning.

Differences from SUBP: blocks are chosen once, by L1 norm, over the whole layer (so output
groups keep different numbers of blocks), the mask is then fixed, and pruned weights get no
gradient (hard masking) during fine-tuning. Optionally, output filters are first rearranged by
ascending L1 norm so that filters of similar norm share a block.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_subp.block_geometry import expand_block_mask, validate_block_n
from keras_subp.block_mask_wrapper import BlockMaskWrapper, convolve_with_kernel, validate_sparsity
from keras_subp.criteria import block_scores
from keras_subp.keras_compat import call_count, outbound_nodes
from keras_subp.model_walk import (
    clone_with_weights,
    copy_layer,
    iter_leaf_layers,
    require_graph_model,
)
from keras_subp.prune import eligible_layers

# Layers that act on every channel independently, so a channel permutation passes through them.
_CHANNELWISE_LAYERS = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.Identity,
)


@keras.saving.register_keras_serializable(package="keras_subp")
class FixedBlockMaskWrapper(BlockMaskWrapper):
    """A Conv2D with a fixed 1xN block mask M: forward W*M, gradient of pruned weights 0.

    `mask` (the base class's kernel-shaped, non-trainable variable) is set by `prune_1xn` and
    saved with the model; no callback is needed. `sparsity` is the nominal layer-global fraction
    of pruned blocks (output groups may keep different numbers of blocks).
    """

    name_prefix = "one_by_n"

    def call(self, inputs):
        kernel = self.layer.kernel
        return convolve_with_kernel(self.layer, inputs, kernel * ops.cast(self.mask, kernel.dtype))


def global_l1_block_mask(kernel, n: int, sparsity: float) -> np.ndarray:
    """Lin et al.'s mask: prune the int(G*Cin*p) lowest-L1 blocks of the whole layer.

    Args:
        kernel: Conv2D kernel (Kh, Kw, Cin, Cout).
        n: block length; sparsity: fraction p of the layer's blocks to prune.

    Returns:
        float32 (G, Cin) block mask; ties go to the lower flat index (g * Cin + c) first.
    """
    sparsity = validate_sparsity(sparsity)
    scores = ops.convert_to_numpy(block_scores(kernel, n, "l1"))
    num_pruned = int(scores.size * float(sparsity))
    pruned = np.argsort(scores.reshape(-1), kind="stable")[:num_pruned]
    mask = np.ones(scores.size, dtype=np.float32)
    mask[pruned] = 0.0
    return mask.reshape(scores.shape)


def _single_consumer(layer, output_ids: set[int]):
    """The one layer that consumes `layer`'s output, or None (model output, fan-out, shared)."""
    if id(layer.output) in output_ids:
        return None
    consumers = outbound_nodes(layer)
    if len(consumers) != 1:
        return None
    node = consumers[0]
    consumer = node.operation
    if len(node.input_tensors) != 1 or call_count(consumer) != 1:
        return None
    return consumer


def channel_chain(conv, model) -> list[tuple[str, keras.layers.Layer]] | None:
    """The layers a permutation of `conv`'s output channels must follow, or None if unsafe.

    Follows single-consumer, channel-wise layers (BN, activations, pooling, dropout, depthwise
    convs with depth_multiplier 1) up to the next Conv2D or Dense, which gets its input channels
    permuted. Residual adds, concatenations, Flatten, model outputs and shared layers stop the
    search (None): such outputs are not rearranged, as in the 1xN authors' code.
    """
    output_ids = {id(tensor) for tensor in model.outputs}
    steps: list[tuple[str, keras.layers.Layer]] = []
    current = conv
    while True:
        consumer = _single_consumer(current, output_ids)
        if consumer is None or getattr(consumer, "data_format", "channels_last") != (
            "channels_last"
        ):
            return None
        if isinstance(consumer, keras.layers.BatchNormalization):
            if consumer.axis not in (-1, 3):
                return None
            steps.append(("channels", consumer))
        elif isinstance(consumer, keras.layers.DepthwiseConv2D):
            if consumer.depth_multiplier != 1:
                return None
            steps.append(("depthwise", consumer))
        elif isinstance(consumer, keras.layers.Conv2D):
            if consumer.groups != 1:
                return None
            steps.append(("input_channels", consumer))
            return steps
        elif isinstance(consumer, keras.layers.Dense):
            steps.append(("input_rows", consumer))
            return steps
        elif not isinstance(consumer, _CHANNELWISE_LAYERS):
            return None
        current = consumer


def _permute_channels(conv, steps, permutation: np.ndarray) -> None:
    """Reorder conv's output channels by `permutation` and every dependent weight to match."""
    weights = conv.get_weights()
    weights[0] = weights[0][..., permutation]
    if conv.use_bias:
        weights[1] = weights[1][permutation]
    conv.set_weights(weights)
    for kind, layer in steps:
        weights = layer.get_weights()
        if kind == "channels":
            weights = [w[permutation] for w in weights]
        elif kind == "depthwise":
            weights[0] = weights[0][:, :, permutation, :]
            if layer.use_bias:
                weights[1] = weights[1][permutation]
        elif kind == "input_channels":
            weights[0] = weights[0][:, :, permutation, :]
        else:  # Dense input rows
            weights[0] = weights[0][permutation, :]
        layer.set_weights(weights)


def prune_1xn(model, n: int, sparsity: float, rearrange: bool = True, exclude=None) -> keras.Model:
    """Apply the 1xN baseline to a (trained) model; fine-tune the result, no callback needed.

    Eligible layers are chosen as for `prune_subp` (first conv and non-1xN-able layers dense).
    With `rearrange=True`, each eligible conv whose output reaches the next Conv2D/Dense only
    through channel-wise layers (`channel_chain`) first has its output filters sorted by
    ascending L1 norm; the permutation is applied to the weights of the conv, the following
    BN/depthwise layers and the consumer's input channels, so the network computes the same
    function and the blocks are contiguous in the new order (ready for export). Outputs that
    feed residual adds are left in place, as in the 1xN authors' code. Then each eligible conv is
    wrapped in `FixedBlockMaskWrapper` with the layer-global L1 mask.

    Args:
        model: a built Sequential or Functional model (usually trained dense).
        n: block length N. sparsity: fraction p of each layer's blocks to prune, in [0, 1).
        rearrange: sort filters by L1 norm before forming blocks.
        exclude: layer name(s) or predicate, as in `prune_subp`.

    Returns:
        A new, uncompiled model. `model.rearranged_layers` lists the rearranged layer names.
    """
    validate_block_n(n)
    sparsity = validate_sparsity(sparsity)
    require_graph_model(model)
    eligible = set(eligible_layers(model, n, exclude, caller="prune_1xn"))

    working = clone_with_weights(model, copy_layer)
    rearranged = []
    if rearrange:
        for layer in iter_leaf_layers(working):
            if layer.name not in eligible:
                continue
            steps = channel_chain(layer, working)
            if steps is None:
                continue
            filter_norms = np.abs(layer.kernel.numpy()).sum(axis=(0, 1, 2))
            _permute_channels(layer, steps, np.argsort(filter_norms, kind="stable"))
            rearranged.append(layer.name)

    block_masks = {
        layer.name: global_l1_block_mask(layer.kernel, n, sparsity)
        for layer in iter_leaf_layers(working)
        if layer.name in eligible
    }

    def clone_layer(layer):
        if layer.name in eligible:
            return FixedBlockMaskWrapper(copy_layer(layer), n=n, sparsity=sparsity)
        return copy_layer(layer)

    pruned = clone_with_weights(working, clone_layer)
    for layer in iter_leaf_layers(pruned):
        if isinstance(layer, FixedBlockMaskWrapper):
            block_mask = block_masks[layer.layer.name]
            layer.mask.assign(expand_block_mask(block_mask, layer.layer.kernel.shape))
    pruned.rearranged_layers = tuple(rearranged)
    return pruned
