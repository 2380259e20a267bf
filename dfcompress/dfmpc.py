"""DF-MPC: data-free mixed-precision quantization with closed-form compensation."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from dfcompress.closed_forms import mixed_precision_coefficients
from dfcompress.graph import ModelGraph
from dfcompress.quantizers import get_quantizer
from dfcompress.report import CompressionReport, summary
from dfcompress.session import CompressionSession
from dfcompress.validation import check_bits_argument, check_non_negative

PATTERNS = ("auto", "alternate")


def low_precision_pairs(
    graph: ModelGraph, pattern: str | Sequence[str] = "auto"
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(low layer, compensating high layer) pairs, and (layer, reason) for eligible-looking misses.

    A layer can be low when it is a Conv2D followed by BatchNormalization, a ReLU-type or no
    activation and, through channel-preserving layers only, exactly one consumer that is a dense
    Conv2D (the high layer), and it is not a first layer (fed by the model input without an
    earlier weight layer). Walking forward, a layer already chosen as high is never low, so plain
    stacks alternate low/high. "auto" additionally requires a kernel larger than 1x1: ResNet basic
    blocks get conv1 low / conv2 high, bottlenecks 3x3 low / the following 1x1 high, VGG stacks
    alternate, MobileNet pointwise convs (consumed by depthwise convs) get no pair. "alternate"
    accepts 1x1 kernels too. A sequence of layer names chooses the low layers explicitly.
    """
    explicit = None
    if not isinstance(pattern, str):
        explicit = list(pattern)
        if not explicit or not all(isinstance(name, str) for name in explicit):
            raise ValueError(
                "pattern must be 'auto', 'alternate' or a non-empty list of layer names"
            )
    elif pattern not in PATTERNS:
        raise ValueError(
            f"pattern must be one of {PATTERNS} or a list of layer names, got {pattern!r}"
        )

    def why_not(name: str) -> str:
        site = graph.sites[name]
        layer = graph.layer(name)
        if not isinstance(layer, keras.layers.Conv2D):
            return "not a Conv2D"
        if name in graph.first_layers:
            return "first layer: kept at the high bit width"
        if site.bn is None:
            return "no BatchNormalization to fold the coefficient into"
        if not site.prunable:
            return site.reason or "no consumer"
        if len(site.consumers) != 1 or site.consumers[0].kind != "conv":
            return "needs exactly one consuming Conv2D"
        return ""

    pairs: list[tuple[str, str]] = []
    misses: list[tuple[str, str]] = []
    high: set[str] = set()
    low: set[str] = set()
    if explicit is not None:
        unknown = [name for name in explicit if name not in graph.sites]
        if unknown:
            raise ValueError(f"pattern names layers that are not conv/dense layers: {unknown}")
    for name in graph.weight_layers:
        if explicit is not None and name not in explicit:
            continue
        reason = why_not(name)
        if not reason and name in high:
            reason = "already the high layer of the previous pair"
        if not reason and explicit is None and pattern == "auto":
            if graph.layer(name).kernel.shape[0] * graph.layer(name).kernel.shape[1] == 1:
                reason = "1x1 kernel (pattern 'auto' keeps 1x1 convs high)"
        consumer = graph.sites[name].consumers[0].layer if not reason else ""
        if not reason and consumer in low:
            reason = f"its consumer {consumer} is already low"
        if reason:
            if explicit is not None:
                raise ValueError(f"pattern: {name} cannot be a low-precision layer: {reason}")
            continue
        pairs.append((name, consumer))
        low.add(name)
        high.add(consumer)
    if not pairs:
        misses = [(name, why_not(name) or "no pair") for name in graph.weight_layers]
    return pairs, misses


def dfmpc(
    model: keras.Model,
    low_bits: int = 2,
    high_bits: int = 6,
    lambda1: float = 0.5,
    lambda2: float = 0.0,
    pattern: str | Sequence[str] = "auto",
) -> tuple[keras.Model, CompressionReport]:
    """Quantize paired layers to `low_bits` and every other conv/dense kernel to `high_bits`, and
    compensate each low layer's error with a closed-form per-channel coefficient c >= 0.

    Pairs: see `low_precision_pairs` (`pattern`). Low layers use TWN ternary weights for
    `low_bits=2` (the paper's "2-bit"), DoReFa otherwise; all other layers (first conv, downsample
    convs, unpaired convs, depthwise convs, the classifier) use DoReFa at `high_bits`, per tensor with
    max|W| restored. For each channel j of a low layer,
    c_j = (x^_j . x_j + lambda1 y^_j y_j) / (x^_j . x^_j + lambda1 y^_j^2 + lambda2), clamped at 0, with
    x^ and x the BN-folded low-bit and float filters and y^, y the BN effective biases.

    BN re-calibration: the ternary scale a is kept in the low layer's weights (a * {-1, 0, 1}) and the
    BN statistics are left unchanged, which equals re-calibrating mean and sigma to mean/a and sigma/a
    for unscaled ternary weights; hence y^ = y. c is folded into the low layer's BatchNormalization
    (gamma, beta *= c), the same as multiplying the high layer's input channel j by c for ReLU
    networks, and the high layer keeps its plain DoReFa grid.

    Returns:
      (compressed model, report). Raises ValueError when the model has no low/high pair.
    """
    low_bits = check_bits_argument(low_bits, "low_bits", 2, 8)
    high_bits = check_bits_argument(high_bits, "high_bits", 2, 16)
    if low_bits >= high_bits:
        raise ValueError(f"low_bits ({low_bits}) must be below high_bits ({high_bits})")
    lambda1 = check_non_negative(lambda1, "lambda1")
    lambda2 = check_non_negative(lambda2, "lambda2")
    low_quantizer = get_quantizer("twn" if low_bits == 2 else "dorefa")
    high_quantizer = get_quantizer("dorefa")
    settings = {
        "low_bits": low_bits,
        "high_bits": high_bits,
        "lambda1": lambda1,
        "lambda2": lambda2,
        "pattern": pattern if isinstance(pattern, str) else list(pattern),
    }
    session = CompressionSession("dfmpc", model, settings)
    pairs, misses = low_precision_pairs(session.graph, pattern)
    if not pairs:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in misses)
        raise ValueError(f"no low/high-precision layer pair found in the model ({reasons})")
    low_to_high = dict(pairs)
    high_to_low = {high: low for low, high in pairs}
    editor = session.editor
    for name in session.graph.weight_layers:
        if name not in low_to_high:
            editor.quantize(name, high_quantizer, high_bits)
            session.set_bits(name, high_bits, high_quantizer.name)
            session.mark(name, f"high<-{high_to_low[name]}" if name in high_to_low else "quantized")
            continue
        site = session.graph.sites[name]
        float_filters = editor.filters(name)
        editor.quantize(name, low_quantizer, low_bits)
        session.set_bits(name, low_bits, low_quantizer.name)
        terms = editor.bn_terms(site)
        ratio = terms.gamma / terms.sigma
        coefficients = mixed_precision_coefficients(
            editor.filters(name) * ratio,
            float_filters * ratio,
            terms.effective_bias,
            terms.effective_bias,
            lambda1,
            lambda2,
        )
        editor.fold_scale(site, coefficients)
        stats = summary(coefficients)
        stats["zero"] = float(np.mean(coefficients == 0))
        session.mark(name, f"low->{low_to_high[name]}", **{f"c_{k}": v for k, v in stats.items()})
    return session.finish()
