"""UDFC: data-free channel pruning and weight quantization with closed-form compensation."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from dfcompress.activation_moments import (
    activation_second_moments,
    filter_correlation,
    least_squares_from_moments,
)
from dfcompress.closed_forms import combination_coefficients, quantization_scale
from dfcompress.editing import ModelEditor
from dfcompress.graph import Site, relu_kind
from dfcompress.quantizers import Quantizer, get_quantizer
from dfcompress.report import CompressionReport, summary
from dfcompress.selection import CRITERIA
from dfcompress.session import CompressionSession
from dfcompress.validation import (
    check_bits_argument,
    check_choice,
    check_non_negative,
    check_ratio,
)

# Where UDFC fits a pruned channel's combination: after the activation, or at the BN output (paper).
OBJECTIVES = ("activation", "bn")


def udfc(
    model: keras.Model,
    prune_ratio: float = 0.3,
    weight_bits: int | None = 6,
    criterion: str = "l2",
    alpha1: float = 0.01,
    alpha2: float = 0.008,
    quantizer: str | Quantizer = "dorefa",
    layers: Sequence[str] | None = None,
    objective: str = "activation",
    spatial_correlation: float = 0.9,
) -> tuple[keras.Model, CompressionReport]:
    """Prune `prune_ratio` of the channels of every prunable layer and quantize every conv/dense
    kernel to `weight_bits`, compensating both in closed form without data or fine-tuning.

    Pruning (where a layer's output goes Conv2D/Dense -> BatchNormalization -> ReLU/ReLU6/none ->
    only Conv2D/Dense consumers, through pooling, padding, dropout or Flatten): the
    int(C * (1 - prune_ratio)) filters with the largest `criterion` norm ("l1" or "l2") are kept,
    ranked on the original weights. Each pruned channel j is approximated by a linear combination
    sum_i s_i x_i of the kept channels, and every consumer adds s_i times its rows for channel j to
    its rows for channel i before the channel is physically removed (producer filter, BN entries,
    consumer rows). Where the combination is fitted is `objective`:

    - "activation" (default): after the BN *and the activation*, where the consumers read it:
      s = argmin E[(x_j - sum_i s_i x_i)^2] over a Gaussian model of the BN outputs built from the
      layer's own BN statistics (means beta, standard deviations |gamma|) and filters (the
      correlations of the filters' outputs for an input whose pixels at distance d correlate by
      `spatial_correlation ** d`); see `dfcompress.activation_moments`. No data; `alpha1` is not
      used.
    - "bn": the paper's objective (its Eq. 12), at the BN output before the activation:
      s = argmin ||W_j - sum_i s_i (g_i sd_j)/(sd_i g_j) W_i||^2 + alpha1 (K_j - sum_i s_i K_i)^2
      (minimum-norm least squares, so a singular Gram matrix is fine).

    Why "activation" is the default: with a ReLU between the layers, a combination that is exact at
    the BN output (mixed-sign coefficients are the rule) is not exact after it, and on the
    Fashion-MNIST models of docs/compression.md the paper's objective loses to Neuron Merging while
    the activation objective beats it (the measurements, and how `spatial_correlation` = 0.9 was
    chosen, are there).

    Quantization (`weight_bits` not None): every Conv/DepthwiseConv/Dense kernel, first conv and
    classifier included, is quantized with `quantizer` (default DoReFa, per tensor, max|W| restored).
    For each layer with a BatchNormalization the per-channel scale
    s~_m = (r~_m . r_m + alpha2 K_m^2) / (r~_m . r~_m + alpha2 K_m^2) (r, r~ the BN-folded float and
    quantized filters) is folded into that BN (gamma, beta *= s~), so the kernel stays on its grid and
    the correction holds whatever follows (residual add, ReLU6, depthwise conv). Layers without a BN
    (the classifier) are quantized without compensation.

    Order: layers are processed forward; a layer's pruning coefficients and quantization scale use
    its float weights after it has absorbed compensation from the layer before it, so the combined
    effect is W''_{k,i} = s~_i (W_{k,i} + sum_j s^(j)_i W_{k,j}) with s~_i held in BN_l.

    Other choices where the method leaves room: channels are ranked on the original weights (not
    after the previous layer's compensation) so that `prune_channels` and `neuron_merging` remove
    exactly the same channels; a layer is pruned when every consumer can absorb (a stem feeding
    both a block's first conv and its shortcut conv qualifies, a layer feeding a residual add does
    not); the classifier is never pruned (its outputs are the model's); BN sigma =
    sqrt(var + epsilon).

    `weight_bits=None` prunes only; `prune_ratio=0` quantizes only. `layers` (weight-layer names)
    restricts pruning to those layers (quantization still covers every layer); the default prunes
    every prunable layer.

    Runtime: keras.applications ResNet-50 (30 %, 6 bits) takes 5.5 s with the activation objective
    and 2.2 s with "bn" on an idle 2-core Zen 4 VM (OPENBLAS_NUM_THREADS=1); 7-20 s were measured
    with "bn" on a shared machine at load average 13, and numpy's threaded BLAS can be several
    times slower when the cores are oversubscribed.

    Returns:
      (compressed model, report); the report lists per-layer bits, channels kept, coefficient
      statistics and skipped places with reasons. Raises ValueError when prune_ratio > 0 and no layer
      can be pruned. A pruned layer's statistics: coef_abs_mean (mean |s_i|) and residual_rel, the
      mean over pruned channels of ||R_j - sum_i s_i R_i|| / ||R_j|| for the BN-folded filters R
      (what objective "bn" minimises; "activation" trades it for the error after the activation);
      a quantized layer's: the min / mean / max of its scales s~.
    """
    prune_ratio = check_ratio(prune_ratio, "prune_ratio")
    if weight_bits is not None:
        weight_bits = check_bits_argument(weight_bits, "weight_bits")
    check_choice(criterion, "criterion", CRITERIA)
    alpha1 = check_non_negative(alpha1, "alpha1")
    alpha2 = check_non_negative(alpha2, "alpha2")
    check_choice(objective, "objective", OBJECTIVES)
    spatial_correlation = check_ratio(spatial_correlation, "spatial_correlation", closed=True)
    quantizer = get_quantizer(quantizer)
    if weight_bits is not None:
        quantizer.check_bits(weight_bits)
    if prune_ratio == 0 and weight_bits is None:
        raise ValueError("prune_ratio is 0 and weight_bits is None: nothing to compress")
    settings = {
        "prune_ratio": prune_ratio,
        "weight_bits": weight_bits,
        "criterion": criterion,
        "alpha1": alpha1,
        "alpha2": alpha2,
        "quantizer": quantizer.name,
        "layers": None if layers is None else list(layers),
        "objective": objective,
        "spatial_correlation": spatial_correlation,
    }
    session = CompressionSession("udfc", model, settings)
    plan = session.plan_pruning(prune_ratio, criterion, layers) if prune_ratio > 0 else {}
    editor = session.editor
    for name in session.graph.weight_layers:
        site = session.graph.sites[name]
        if name in plan:
            _, kept, pruned = plan[name]
            coefficients = pruning_coefficients(
                editor, site, kept, pruned, alpha1, objective, spatial_correlation
            )
            folded = editor.folded_filters(site)
            residual = folded[:, pruned] - folded[:, kept] @ coefficients
            relative = np.linalg.norm(residual, axis=0) / np.maximum(
                np.linalg.norm(folded[:, pruned], axis=0), 1e-30
            )
            editor.remove_channels(site, kept, pruned, coefficients)
            session.mark(
                name,
                "pruned",
                coef_abs_mean=float(np.abs(coefficients).mean()),
                residual_rel=float(relative.mean()),
            )
        if weight_bits is None:
            continue
        float_filters = editor.filters(name)
        editor.quantize(name, quantizer, weight_bits)
        session.set_bits(name, weight_bits, quantizer.name)
        bn_weights = editor.weights.get(site.bn, {}) if site.bn else {}
        if site.bn is None or "gamma" not in bn_weights:
            session.mark(name, "quantized")
            continue
        terms = editor.bn_terms(site)
        ratio = terms.gamma / terms.sigma
        scale = quantization_scale(
            float_filters * ratio,
            editor.filters(name) * ratio,
            terms.effective_bias,
            alpha2,
        )
        editor.fold_scale(site, scale)
        stats = summary(scale)
        session.mark(name, "quantized", **{f"scale_{key}": value for key, value in stats.items()})
    return session.finish()


def pruning_coefficients(
    editor: ModelEditor,
    site: Site,
    kept: np.ndarray,
    pruned: np.ndarray,
    alpha1: float,
    objective: str = "activation",
    spatial_correlation: float = 0.9,
) -> np.ndarray:
    """UDFC's combination coefficients (len(kept), len(pruned)) for pruning `pruned` channels of
    `site` given its current (edited) filters and BN terms: column j rebuilds pruned channel j from
    the kept channels, after the activation (objective "activation") or at the BN output ("bn", the
    paper's Eq. 12); see `udfc`."""
    terms = editor.bn_terms(site)
    folded = editor.folded_filters(site)
    if objective == "activation":
        activation = "identity"
        if site.activation is not None:
            activation = relu_kind(editor.graph.layer(site.activation)) or "identity"
        kernel_shape = tuple(editor.kernel(site.producer).shape)
        correlation = filter_correlation(folded, kernel_shape, spatial_correlation)
        moments = activation_second_moments(
            terms.beta, np.abs(terms.gamma), correlation, activation
        )
        return least_squares_from_moments(moments, kept, pruned)
    return combination_coefficients(
        folded[:, kept],
        terms.effective_bias[kept],
        folded[:, pruned],
        terms.effective_bias[pruned],
        alpha1 * (terms.gamma[pruned] / terms.sigma[pruned]) ** 2,
    )
