"""Baselines without compensation: plain channel pruning and direct weight quantization."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras

from dfcompress.accounting import BitsArgument, resolve_bits
from dfcompress.quantizers import Quantizer, get_quantizer
from dfcompress.report import CompressionReport
from dfcompress.selection import CRITERIA
from dfcompress.session import CompressionSession
from dfcompress.validation import check_choice, check_model, check_ratio


def prune_channels(
    model: keras.Model,
    prune_ratio: float = 0.3,
    criterion: str = "l2",
    layers: Sequence[str] | None = None,
) -> tuple[keras.Model, CompressionReport]:
    """Remove the same channels `udfc` and `neuron_merging` would remove, without compensation.

    Every prunable layer (see `udfc`) keeps its int(C * (1 - prune_ratio)) filters of largest
    `criterion` norm; the pruned channels are deleted from the producer, its BatchNormalization and
    every consumer. Weights stay float32. `layers` restricts pruning to those weight layers.
    """
    prune_ratio = check_ratio(prune_ratio, "prune_ratio")
    check_choice(criterion, "criterion", CRITERIA)
    if prune_ratio == 0:
        raise ValueError("prune_ratio is 0: nothing to prune")
    settings = {
        "prune_ratio": prune_ratio,
        "criterion": criterion,
        "layers": None if layers is None else list(layers),
    }
    session = CompressionSession("prune_channels", model, settings)
    for name, (site, kept, pruned) in session.plan_pruning(prune_ratio, criterion, layers).items():
        session.editor.remove_channels(site, kept, pruned, None)
        session.mark(name, "pruned")
    return session.finish()


def quantize_weights(
    model: keras.Model,
    bits: BitsArgument,
    quantizer: str | Quantizer | Mapping[str, str | Quantizer] = "dorefa",
) -> tuple[keras.Model, CompressionReport]:
    """Quantize conv/dense kernels directly, without compensation.

    `bits`: an int for every Conv/DepthwiseConv/Dense kernel, or a dict layer name -> bits (None or
    absent = left float32), e.g. another method's `report.layer_bits`. `quantizer`: a name from
    `QUANTIZER_NAMES`, a `Quantizer`, or a dict layer name -> quantizer (e.g. `report.layer_quantizers`;
    absent layers use "dorefa"). Biases and BatchNormalization stay float32.
    """
    check_model(model)
    layer_bits = resolve_bits(model, bits)
    if all(value is None for value in layer_bits.values()):
        raise ValueError("bits gives no layer a bit width: nothing to quantize")
    if isinstance(quantizer, Mapping):
        unknown = sorted(set(quantizer) - set(layer_bits))
        if unknown:
            raise ValueError(f"quantizer names layers that are not weight layers: {unknown}")
        chosen = {
            name: get_quantizer(quantizer.get(name) or "dorefa", f"quantizer[{name!r}]")
            for name in layer_bits
        }
    else:
        single = get_quantizer(quantizer)
        chosen = dict.fromkeys(layer_bits, single)
    for name, value in layer_bits.items():
        if value is not None:
            try:
                chosen[name].check_bits(value)
            except (TypeError, ValueError) as error:
                raise ValueError(f"bits for layer {name!r}: {error}") from None
    settings = {"bits": bits if not isinstance(bits, Mapping) else "per layer"}
    session = CompressionSession("quantize_weights", model, settings)
    for name, value in layer_bits.items():
        if value is None:
            continue
        session.editor.quantize(name, chosen[name], value)
        session.set_bits(name, value, chosen[name].name)
        session.mark(name, "quantized")
    return session.finish()
