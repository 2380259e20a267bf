"""Graph analysis: where in a Keras model a layer's output channels can be removed or rescaled.

A *site* is a weight layer (Conv2D, Dense or DepthwiseConv2D) followed by a BatchNormalization, an
optional ReLU-type activation and then, through channel-preserving layers (pooling, padding, dropout,
Flatten), one or more *consumers*: dense Conv2D or Dense layers that read the channels. A consumer can
absorb compensation for a removed or rescaled channel because it mixes channels: its input-channel slice
of channel j can be moved onto other input channels.

A site is *prunable* when every path from its BatchNormalization ends in such a consumer. Anything
else on the way (a residual Add, a Concatenate, a depthwise conv, a model output, an unknown layer)
makes it unprunable, and the reason is recorded. Only Sequential and Functional models are analysed,
channels-last throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import keras
import numpy as np

from dfcompress import _keras_compat

# Layers a channel passes through unchanged in meaning (per-channel or spatial-only operations).
_PASS_THROUGH = (
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.ZeroPadding2D,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
)
# Activations treated as ReLU-type: positively homogeneous or, for ReLU6, the spec's accepted exception.
_RELU_ACTIVATIONS = ("relu", "relu6")


def is_weight_layer(layer: keras.layers.Layer) -> bool:
    """True for the layers whose kernel the package quantizes: Conv1D/2D/3D, DepthwiseConv2D, Dense."""
    return isinstance(
        layer,
        (
            keras.layers.Conv1D,
            keras.layers.Conv2D,
            keras.layers.Conv3D,
            keras.layers.DepthwiseConv2D,
            keras.layers.Dense,
        ),
    ) and not isinstance(layer, (keras.layers.Conv2DTranspose, keras.layers.Conv1DTranspose))


def relu_kind(layer: keras.layers.Layer) -> str | None:
    """'relu' or 'relu6' when `layer` is a plain ReLU/ReLU6 activation layer, else None."""
    if isinstance(layer, keras.layers.ReLU):
        config = layer.get_config()
        if config.get("negative_slope", 0.0) or config.get("threshold", 0.0):
            return None
        max_value = config.get("max_value")
        if max_value is None:
            return "relu"
        return "relu6" if float(max_value) == 6.0 else None
    if isinstance(layer, keras.layers.Activation):
        name = keras.activations.serialize(layer.activation)
        name = name if isinstance(name, str) else getattr(layer.activation, "__name__", "")
        return name if name in _RELU_ACTIVATIONS else None
    return None


def _is_dense_conv(layer: keras.layers.Layer) -> bool:
    """A Conv2D that mixes all input channels (groups == 1), channels-last."""
    if not isinstance(layer, keras.layers.Conv2D):
        return False
    config = layer.get_config()
    return config.get("groups", 1) == 1 and config.get("data_format") == "channels_last"


def _fused_activation(layer: keras.layers.Layer) -> str:
    activation = layer.get_config().get("activation", "linear")
    return activation if isinstance(activation, str) else "custom"


@dataclass(frozen=True)
class ConsumerSlot:
    """A layer that reads a site's channels, and how its kernel rows map to those channels.

    `kind` is "conv" (Conv2D kernel (K, K, C, Cout): input channel c is `kernel[:, :, c, :]`), "dense"
    (Dense kernel (C, units): row c) or "flatten" (a Dense after Flatten of an (H, W, C) tensor: rows
    p * C + c for the `positions` = H * W spatial positions p).
    """

    layer: str
    kind: str
    positions: int = 1

    def channel_major(self, kernel: np.ndarray, channels: int) -> np.ndarray:
        """The kernel as a (channels, M) matrix whose row c holds every weight reading channel c."""
        if self.kind == "conv":
            return np.moveaxis(kernel, 2, 0).reshape(channels, -1)
        if self.kind == "dense":
            return kernel.reshape(channels, -1)
        rows = kernel.reshape(self.positions, channels, kernel.shape[-1])
        return np.moveaxis(rows, 1, 0).reshape(channels, -1)

    def from_channel_major(self, matrix: np.ndarray, kernel_shape: tuple[int, ...]) -> np.ndarray:
        """Inverse of `channel_major` for a matrix with any number of channel rows."""
        channels = matrix.shape[0]
        if self.kind == "conv":
            kh, kw, _, cout = kernel_shape
            return np.moveaxis(matrix.reshape(channels, kh, kw, cout), 0, 2)
        if self.kind == "dense":
            return matrix.reshape(channels, kernel_shape[-1])
        rows = np.moveaxis(matrix.reshape(channels, self.positions, kernel_shape[-1]), 0, 1)
        return rows.reshape(self.positions * channels, kernel_shape[-1])


@dataclass(frozen=True)
class Site:
    """A weight layer with its BatchNormalization, activation and channel consumers."""

    producer: str
    bn: str | None
    activation: str | None
    consumers: tuple[ConsumerSlot, ...]
    channels: int
    prunable: bool
    reason: str = ""


@dataclass
class ModelGraph:
    """The result of `analyse`: weight layers in topological order, their sites, skipped places."""

    model: keras.Model
    weight_layers: list[str]
    sites: dict[str, Site]
    first_layers: set[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def layer(self, name: str) -> keras.layers.Layer:
        return self.model.get_layer(name)

    def prunable_sites(self) -> list[Site]:
        return [self.sites[name] for name in self.weight_layers if self.sites[name].prunable]


def _as_list(tensors) -> list:
    if tensors is None:
        return []
    if isinstance(tensors, (list, tuple)):
        return [t for t in tensors if t is not None]
    if isinstance(tensors, dict):
        return list(tensors.values())
    return [tensors]


def analyse(model: keras.Model) -> ModelGraph:
    """Find every site of `model` (validated Sequential or Functional, built) and why others fail.

    Returns a `ModelGraph`; `skipped` lists (place, reason) pairs for unprunable sites and shared
    layers (nested models are refused earlier, by `validation.check_model`).
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    producer_of: dict[int, str] = {}
    inputs_of: dict[str, list[int]] = {}
    skipped: list[tuple[str, str]] = []
    shared: set[str] = set()
    for layer in layers:
        if _keras_compat.call_count(layer) > 1:
            shared.add(layer.name)
            skipped.append((layer.name, "layer is called more than once (shared weights)"))
        for tensor in _as_list(layer.output):
            producer_of[id(tensor)] = layer.name
        inputs_of[layer.name] = [id(t) for t in _as_list(layer.input)]
    consumers_of: dict[str, list[str]] = {layer.name: [] for layer in layers}
    parents_of: dict[str, list[str]] = {layer.name: [] for layer in layers}
    for layer in layers:
        for tensor_id in inputs_of[layer.name]:
            parent = producer_of.get(tensor_id)
            if parent is not None:
                consumers_of[parent].append(layer.name)
                parents_of[layer.name].append(parent)
    output_layers = {producer_of.get(id(t)) for t in _as_list(model.outputs)}
    by_name = {layer.name: layer for layer in layers}

    # Topological order (Kahn), ties broken by position in model.layers.
    position = {layer.name: index for index, layer in enumerate(layers)}
    indegree = {name: len(set(parents_of[name])) for name in by_name}
    ready = sorted((n for n, d in indegree.items() if d == 0), key=position.get)
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for child in sorted(set(consumers_of[name]), key=position.get):
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
                ready.sort(key=position.get)

    has_weight_ancestor: dict[str, bool] = {}
    for name in order:
        has_weight_ancestor[name] = any(
            is_weight_layer(by_name[p]) or has_weight_ancestor[p] for p in parents_of[name]
        )

    weight_layers = [name for name in order if is_weight_layer(by_name[name])]
    first_layers = {name for name in weight_layers if not has_weight_ancestor[name]}

    def channels_of(name: str) -> int:
        return int(by_name[name].output.shape[-1])

    def trace(start: str, flatten_positions: int | None) -> tuple[list[ConsumerSlot], str]:
        """Follow the output of layer `start` to absorbing consumers; return (slots, failure)."""
        slots: list[ConsumerSlot] = []
        if start in output_layers:
            return [], f"{start} is a model output"
        children = consumers_of[start]
        if not children:
            return [], f"{start} has no consumer"
        for child_name in children:
            child = by_name[child_name]
            if child_name in shared:
                return [], f"{child_name} is a shared layer"
            if flatten_positions is not None:
                if isinstance(child, keras.layers.Dense):
                    slots.append(ConsumerSlot(child_name, "flatten", flatten_positions))
                    continue
                if isinstance(child, keras.layers.Dropout):
                    found, failure = trace(child_name, flatten_positions)
                    if failure:
                        return [], failure
                    slots.extend(found)
                    continue
                return [], f"{child_name} ({type(child).__name__}) after Flatten cannot absorb"
            if _is_dense_conv(child):
                slots.append(ConsumerSlot(child_name, "conv"))
            elif isinstance(child, keras.layers.Dense):
                slots.append(ConsumerSlot(child_name, "dense"))
            elif isinstance(child, keras.layers.Flatten):
                if child.get_config().get("data_format", "channels_last") != "channels_last":
                    return [], f"{child_name} flattens channels-first"
                positions = math.prod(int(d) for d in child.input.shape[1:-1])
                found, failure = trace(child_name, positions)
                if failure:
                    return [], failure
                slots.extend(found)
            elif isinstance(child, _PASS_THROUGH) or relu_kind(child) is not None:
                if child.get_config().get("data_format", "channels_last") != "channels_last":
                    return [], f"{child_name} is channels-first"
                found, failure = trace(child_name, None)
                if failure:
                    return [], failure
                slots.extend(found)
            else:
                kind = type(child).__name__
                return [], f"feeds {child_name} ({kind}), which cannot absorb compensation"
        return slots, ""

    sites: dict[str, Site] = {}
    for name in weight_layers:
        layer = by_name[name]
        channels = channels_of(name)
        bn_name: str | None = None
        activation: str | None = None
        reason = ""
        slots: list[ConsumerSlot] = []
        children = consumers_of[name]
        if name in output_layers:
            reason = "model output"
        elif name in shared:
            reason = "shared layer"
        elif isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv3D)):
            reason = f"{type(layer).__name__} is not supported for pruning"
        elif _fused_activation(layer) != "linear":
            reason = f"activation {_fused_activation(layer)!r} fused into the layer before any BN"
        elif (
            len(children) == 1
            and isinstance(by_name[children[0]], keras.layers.BatchNormalization)
            and children[0] not in shared
            and _bn_axis_is_last(by_name[children[0]])
            and name not in output_layers
        ):
            bn_name = children[0]
            after = bn_name
            bn_children = consumers_of[bn_name]
            if (
                len(bn_children) == 1
                and bn_name not in output_layers
                and relu_kind(by_name[bn_children[0]]) is not None
            ):
                activation = bn_children[0]
                after = activation
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                reason = "depthwise convolution: its channels are tied to its input channels"
            elif not _is_dense_conv(layer) and not isinstance(layer, keras.layers.Dense):
                reason = f"{type(layer).__name__} is not supported for pruning"
            else:
                slots, reason = trace(after, None)
        else:
            reason = "not followed by exactly one channels-last BatchNormalization"
        prunable = not reason and bool(slots)
        sites[name] = Site(name, bn_name, activation, tuple(slots), channels, prunable, reason)
        if not prunable:
            skipped.append((name, reason or "no consumer"))
    return ModelGraph(model, weight_layers, sites, first_layers, skipped)


def _bn_axis_is_last(layer: keras.layers.BatchNormalization) -> bool:
    axis = layer.get_config().get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    rank = len(layer.input.shape)
    return isinstance(axis, int) and axis in (-1, rank - 1)
