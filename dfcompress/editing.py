"""Editing a model's weights as numpy arrays, then rebuilding a (smaller) Keras model from them.

`ModelEditor` keeps every layer's weights in float64, offers the operations the methods share
(BN terms of a site, removing channels with or without compensation in the consumers, folding a
per-channel scale into a BatchNormalization, quantizing a kernel) and finally clones the model with
the new channel counts and sets the edited weights. The input model is never modified.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from dfcompress.graph import ModelGraph, Site
from dfcompress.quantizers import Quantizer


@dataclass
class BNTerms:
    """Per-channel BatchNormalization terms of a site, all (C,), float64.

    sigma = sqrt(moving_variance + epsilon); effective_bias K = beta - gamma (mean - b) / sigma with b
    the producer's own bias (0 without one), so BN(conv(x)) = (gamma / sigma) * (W x) + K.
    """

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    sigma: np.ndarray
    conv_bias: np.ndarray
    effective_bias: np.ndarray


class ModelEditor:
    """Numpy copies of a model's weights, edited in place, and `build()` for the resulting model."""

    def __init__(self, graph: ModelGraph):
        self.graph = graph
        self.model = graph.model
        self.weights: dict[str, dict[str, np.ndarray]] = {}
        for layer in self.model.layers:
            names = [variable.name for variable in layer.weights]
            if len(set(names)) != len(names):
                continue  # cannot address by name; such layers are never edited and keep their weights
            self.weights[layer.name] = {
                variable.name: np.asarray(variable.numpy(), dtype=np.float64)
                for variable in layer.weights
            }
        self.channel_counts: dict[str, int] = {}

    # -- reading ---------------------------------------------------------------------------------
    def kernel(self, name: str) -> np.ndarray:
        return self.weights[name]["kernel"]

    def filters(self, name: str) -> np.ndarray:
        """The (D, C) filter matrix: column c holds every weight producing output channel c.

        Conv2D (K, K, Cin, C) -> (K*K*Cin, C); Dense (Cin, C); DepthwiseConv2D (K, K, Cin, m) ->
        (K*K, Cin*m) with output channel index cin * m + j, as Keras orders them.
        """
        kernel = self.kernel(name)
        layer = self.graph.layer(name)
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            return kernel.reshape(kernel.shape[0] * kernel.shape[1], -1)
        return kernel.reshape(-1, kernel.shape[-1])

    def set_filters(self, name: str, filters: np.ndarray) -> None:
        self.weights[name]["kernel"] = filters.reshape(self.kernel(name).shape)

    def bn_terms(self, site: Site) -> BNTerms:
        """BN terms of `site` (which must have a BatchNormalization)."""
        bn_layer = self.graph.layer(site.bn)
        bn = self.weights[site.bn]
        channels = bn["moving_mean"].shape[0]
        gamma = bn.get("gamma", np.ones(channels))
        beta = bn.get("beta", np.zeros(channels))
        mean, variance = bn["moving_mean"], bn["moving_variance"]
        sigma = np.sqrt(variance + float(bn_layer.epsilon))
        conv_bias = self.weights[site.producer].get("bias", np.zeros(channels))
        effective = beta - gamma * (mean - conv_bias) / sigma
        return BNTerms(gamma, beta, mean, variance, sigma, conv_bias, effective)

    def folded_filters(self, site: Site, filters: np.ndarray | None = None) -> np.ndarray:
        """gamma * W / sigma per output channel: the (D, C) filters as seen at the BN output."""
        terms = self.bn_terms(site)
        filters = self.filters(site.producer) if filters is None else filters
        return filters * (terms.gamma / terms.sigma)[None, :]

    # -- editing ---------------------------------------------------------------------------------
    def remove_channels(
        self, site: Site, kept: np.ndarray, pruned: np.ndarray, coefficients: np.ndarray | None
    ) -> None:
        """Delete output channels `pruned` of `site` (producer, BN and every consumer's input rows).

        With `coefficients` (len(kept), len(pruned)), each consumer first absorbs the pruned channels:
        its input rows for kept channel i gain sum_j coefficients[i, j] * rows of pruned channel j.
        """
        channels = self.kernel(site.producer).shape[-1]
        for slot in site.consumers:
            kernel = self.kernel(slot.layer)
            rows = slot.channel_major(kernel, channels)
            if coefficients is not None and len(pruned):
                rows[kept] += coefficients @ rows[pruned]
            new_shape = list(kernel.shape)
            self.weights[slot.layer]["kernel"] = slot.from_channel_major(
                rows[kept], tuple(new_shape)
            )
        producer = self.weights[site.producer]
        producer["kernel"] = producer["kernel"][..., kept]
        if "bias" in producer:
            producer["bias"] = producer["bias"][kept]
        for key, value in self.weights[site.bn].items():
            self.weights[site.bn][key] = value[kept]
        self.channel_counts[site.producer] = len(kept)

    def fold_scale(self, site: Site, scale: np.ndarray) -> None:
        """Multiply the BN output of `site` by `scale` (C,): gamma <- scale gamma, beta <- scale beta."""
        bn = self.weights[site.bn]
        if "gamma" not in bn:
            raise ValueError(f"{site.bn} has no gamma (scale=False); cannot fold a channel scale")
        bn["gamma"] = bn["gamma"] * scale
        if "beta" in bn:
            bn["beta"] = bn["beta"] * scale

    def quantize(self, name: str, quantizer: Quantizer, bits: int) -> None:
        """Replace layer `name`'s kernel by its quantized version (per output channel if chosen)."""
        self.set_filters(name, quantizer.quantize(self.filters(name), bits))

    # -- rebuilding ------------------------------------------------------------------------------
    def build(self) -> keras.Model:
        """A new model with the edited channel counts and weights (names and topology preserved)."""

        def clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
            config = layer.get_config()
            count = self.channel_counts.get(layer.name)
            if count is not None:
                config["units" if isinstance(layer, keras.layers.Dense) else "filters"] = count
            return layer.__class__.from_config(config)

        input_tensors = None
        if not isinstance(self.model, keras.Sequential):
            # Fresh inputs named as the originals (clone_model would rename them).
            names = {
                id(layer.output): layer.name
                for layer in self.model.layers
                if isinstance(layer, keras.layers.InputLayer)
            }
            input_tensors = [
                keras.Input(batch_shape=t.shape, dtype=t.dtype, name=names.get(id(t)))
                for t in self.model.inputs
            ]
            if len(input_tensors) == 1:
                input_tensors = input_tensors[0]
        clone = keras.models.clone_model(
            self.model, input_tensors=input_tensors, clone_function=clone_layer
        )
        for layer in clone.layers:
            if not layer.weights:
                continue
            original = self.model.get_layer(layer.name)
            store = self.weights.get(layer.name)
            if store is None:
                layer.set_weights(original.get_weights())
                continue
            for variable in layer.weights:
                value = store[variable.name]
                if tuple(value.shape) != tuple(variable.shape):
                    raise RuntimeError(
                        f"internal error: {layer.name}/{variable.name} has shape {value.shape}, "
                        f"the rebuilt layer expects {tuple(variable.shape)}"
                    )
                variable.assign(value.astype(variable.dtype))
        return clone
