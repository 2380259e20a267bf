"""How well do the pruning compensations rebuild each layer's removed channels, on real images?

The methods are data-free; this check is not. Given a few input images it measures, for every
prunable layer, how far each removed channel's activation is from its reconstruction by the kept
channels, *after* the activation (what the next layer actually reads), for:

- plain pruning (no reconstruction: relative error 1 by definition),
- Neuron Merging (one kept partner with a positive scale),
- UDFC (a least-squares combination of every kept channel, fitted on the weights),
- the best linear combination of the kept channels fitted on these images' activations (a
  data-dependent bound: no coefficients computed from the weights alone can do better on them).

A method whose error is above 1 on a layer is worse there than dropping the channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np

from dfcompress.graph import Site, relu_kind
from dfcompress.neuron_merging import merge_coefficients
from dfcompress.selection import CRITERIA
from dfcompress.session import CompressionSession
from dfcompress.udfc import OBJECTIVES, pruning_coefficients
from dfcompress.validation import check_choice, check_non_negative, check_ratio


@dataclass
class LayerDiagnosis:
    """One prunable layer: sizes, and median relative errors over its pruned channels.

    `weights_per_filter` is D, the length of a filter; with `kept >= D` UDFC's weight-level fit is
    exact and its coefficients are the minimum-norm solution. Errors are
    ||x_j - sum_i c_ij x_i|| / ||x_j|| over the images' pixels, x after the activation (or before,
    for the `_before_activation` field), median over the pruned channels j.
    """

    layer: str
    channels: int
    kept: int
    weights_per_filter: int
    activation: str | None
    udfc_error: float
    udfc_error_before_activation: float
    neuron_merging_error: float
    fitted_error: float
    udfc_negative_fraction: float  # share of UDFC's coefficients that are negative


def reconstruction_errors(
    model: keras.Model,
    images: np.ndarray,
    prune_ratio: float = 0.3,
    criterion: str = "l2",
    alpha1: float = 0.01,
    lamda: float = 0.85,
    threshold: float = 0.1,
    layers: Sequence[str] | None = None,
    objective: str = "activation",
    spatial_correlation: float = 0.9,
) -> list[LayerDiagnosis]:
    """Per prunable layer of `model` (or of `layers`), the errors described in the module docstring.

    Args:
      model: a float Keras model that `udfc` accepts.
      images: a batch of model inputs (N, H, W, C); a few hundred are enough.
      prune_ratio, criterion: which channels are pruned (the same as every pruning method).
      alpha1: UDFC's bias weight; lamda, threshold: Neuron Merging's partner choice.
      layers: restrict to these weight layers (names), as in `udfc`.
      objective, spatial_correlation: where UDFC fits its combinations, as in `udfc`.

    Each layer is analysed on the original model (the layers before it unpruned), so a row shows
    that layer's own reconstruction quality.
    """
    prune_ratio = check_ratio(prune_ratio, "prune_ratio")
    check_choice(criterion, "criterion", CRITERIA)
    alpha1 = check_non_negative(alpha1, "alpha1")
    check_choice(objective, "objective", OBJECTIVES)
    spatial_correlation = check_ratio(spatial_correlation, "spatial_correlation", closed=True)
    if prune_ratio == 0:
        raise ValueError("prune_ratio is 0: nothing to diagnose")
    images = np.asarray(images)
    if images.ndim < 2 or len(images) == 0:
        raise ValueError(f"images must be a non-empty batch of model inputs, got {images.shape}")
    session = CompressionSession("diagnosis", model, {})
    plan = session.plan_pruning(prune_ratio, criterion, layers)
    probes = []
    for site, _, _ in plan.values():
        probes.append(session.graph.layer(site.bn).output)
        probes.append(session.graph.layer(site.activation or site.bn).output)
    outputs = keras.Model(model.inputs, probes).predict(images, batch_size=250, verbose=0)
    rows = []
    for index, (name, (site, kept, pruned)) in enumerate(plan.items()):
        before = _pixels(outputs[2 * index])
        after = _pixels(outputs[2 * index + 1])
        udfc = pruning_coefficients(
            session.editor, site, kept, pruned, alpha1, objective, spatial_correlation
        )
        merged, _, _ = merge_coefficients(
            session.editor, site, kept, pruned, lamda, threshold, "algebraic"
        )
        fitted = np.linalg.lstsq(after[:, kept], after[:, pruned], rcond=None)[0]
        rows.append(
            LayerDiagnosis(
                layer=name,
                channels=site.channels,
                kept=len(kept),
                weights_per_filter=session.editor.filters(name).shape[0],
                activation=None if site.activation is None else _activation_kind(session, site),
                udfc_error=_relative_error(after, kept, pruned, udfc),
                udfc_error_before_activation=_relative_error(before, kept, pruned, udfc),
                neuron_merging_error=_relative_error(after, kept, pruned, merged),
                fitted_error=_relative_error(after, kept, pruned, fitted),
                udfc_negative_fraction=float(np.mean(udfc < 0)),
            )
        )
    return rows


def _pixels(activations: np.ndarray) -> np.ndarray:
    return np.asarray(activations, dtype=np.float64).reshape(-1, activations.shape[-1])


def _relative_error(
    values: np.ndarray, kept: np.ndarray, pruned: np.ndarray, coefficients: np.ndarray
) -> float:
    target = values[:, pruned]
    error = np.linalg.norm(target - values[:, kept] @ coefficients, axis=0)
    norm = np.linalg.norm(target, axis=0)
    live = norm > 0  # a channel that is never active has nothing to rebuild
    if not np.any(live):
        return 0.0
    return float(np.median(error[live] / norm[live]))


def _activation_kind(session: CompressionSession, site: Site) -> str:
    return relu_kind(session.graph.layer(site.activation)) or "relu"
