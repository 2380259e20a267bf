"""Model size, parameter and FLOPs accounting for compressed models.

Size counts each weight layer's kernel at its bit width and every other stored number (biases,
BatchNormalization gamma/beta/moving statistics, anything else) at 32 bits, in MiB (2^20 bytes).
FLOPs are multiply-accumulates of the convolution and dense layers per input image (bias, BN,
activations and pooling not counted).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import keras
import numpy as np

from dfcompress.graph import is_weight_layer
from dfcompress.validation import check_bits_argument, check_model

BitsArgument = int | None | Mapping[str, int | None]


def resolve_bits(
    model: keras.Model, bits: BitsArgument, min_bits: int = 1
) -> dict[str, int | None]:
    """Every weight layer's bit width (None = float32) from an int, None or a name -> bits dict."""
    names = [layer.name for layer in model.layers if is_weight_layer(layer)]
    if bits is None or (isinstance(bits, (int, np.integer)) and not isinstance(bits, bool)):
        if bits is not None:
            check_bits_argument(bits, "bits", min_bits)
        return {name: (None if bits is None else int(bits)) for name in names}
    if not isinstance(bits, Mapping):
        raise TypeError(f"bits must be an int, None or a dict of layer name -> bits, got {bits!r}")
    unknown = sorted(set(bits) - set(names))
    if unknown:
        raise ValueError(
            f"bits names layers that are not quantizable weight layers of the model: {unknown}"
        )
    resolved: dict[str, int | None] = {}
    for name in names:
        value = bits.get(name)
        if value is not None:
            check_bits_argument(value, f"bits[{name!r}]", min_bits)
            value = int(value)
        resolved[name] = value
    return resolved


def model_size_mb(model: keras.Model, bits: BitsArgument = None) -> float:
    """Size in MiB of `model` with conv/dense kernels stored at `bits` and everything else at 32 bits.

    `bits`: None (all float32), an int for every kernel, or a dict layer name -> bits (None or absent
    = float32), e.g. a report's `layer_bits`.
    """
    check_model(model)
    layer_bits = resolve_bits(model, bits)
    total_bits = 0
    for layer in model.layers:
        for variable in layer.weights:
            count = math.prod(int(d) for d in variable.shape)
            width = layer_bits.get(layer.name) if variable.name == "kernel" else None
            total_bits += count * (32 if width is None else width)
    return total_bits / 8 / 2**20


def count_flops(model: keras.Model) -> int:
    """Multiply-accumulates per image of every Conv/DepthwiseConv/Dense layer (kernel size x outputs)."""
    total = 0
    for layer in model.layers:
        if not is_weight_layer(layer):
            continue
        kernel = math.prod(int(d) for d in layer.kernel.shape)
        spatial = math.prod(int(d) for d in layer.output.shape[1:-1])
        total += kernel * spatial
    return total


def count_params(model: keras.Model) -> int:
    """Every stored number of the model (trainable and not, BN statistics included)."""
    return int(model.count_params())
