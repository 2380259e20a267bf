"""Neuron Merging baseline: each pruned channel merged into its single most similar kept channel."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from dfcompress.closed_forms import merge_partners
from dfcompress.editing import ModelEditor
from dfcompress.graph import Site
from dfcompress.report import CompressionReport
from dfcompress.selection import CRITERIA
from dfcompress.session import CompressionSession
from dfcompress.validation import check_choice, check_non_negative, check_ratio

CONVENTIONS = ("algebraic", "reference")


def neuron_merging(
    model: keras.Model,
    prune_ratio: float = 0.3,
    criterion: str = "l2",
    lamda: float = 0.85,
    threshold: float = 0.1,
    convention: str = "algebraic",
    layers: Sequence[str] | None = None,
) -> tuple[keras.Model, CompressionReport]:
    """Prune the same channels as `udfc`/`prune_channels` and merge each into one kept channel.

    For each pruned channel p the partner k minimises lamda * (1 - cos(W_p, W_k)) +
    (1 - lamda) * (min-max normalised BN bias mismatch); the consumers add scale * (rows of p) to
    the rows of k, with scale = (||W_p|| / ||W_k||) (gamma_p / gamma_k)(sigma_k / sigma_p) for
    `convention="algebraic"` (sigma = sqrt(var + eps), the factor that matches the BN outputs) or the
    released code's reciprocal BN ratio on the raw variance for "reference". A channel whose best
    partner has cosine similarity below `threshold` is dropped without merging. Weights stay float32.
    `layers` restricts pruning to those weight layers.
    """
    prune_ratio = check_ratio(prune_ratio, "prune_ratio")
    check_choice(criterion, "criterion", CRITERIA)
    lamda = check_non_negative(lamda, "lamda")
    if lamda > 1:
        raise ValueError(f"lamda must be in [0, 1], got {lamda}")
    threshold = float(threshold) if isinstance(threshold, (int, float)) else threshold
    if not isinstance(threshold, float) or not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {threshold!r}")
    check_choice(convention, "convention", CONVENTIONS)
    if prune_ratio == 0:
        raise ValueError("prune_ratio is 0: nothing to prune")
    settings = {
        "prune_ratio": prune_ratio,
        "criterion": criterion,
        "lamda": lamda,
        "threshold": threshold,
        "convention": convention,
        "layers": None if layers is None else list(layers),
    }
    session = CompressionSession("neuron_merging", model, settings)
    editor = session.editor
    for name, (site, kept, pruned) in session.plan_pruning(prune_ratio, criterion, layers).items():
        coefficients, merged, similarity = merge_coefficients(
            editor, site, kept, pruned, lamda, threshold, convention
        )
        editor.remove_channels(site, kept, pruned, coefficients)
        session.mark(
            name,
            "pruned",
            merged_fraction=float(merged.mean()),
            cos_mean=float(similarity.mean()),
        )
    return session.finish()


def merge_coefficients(
    editor: ModelEditor,
    site: Site,
    kept: np.ndarray,
    pruned: np.ndarray,
    lamda: float,
    threshold: float,
    convention: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neuron Merging's coefficients for pruning `pruned` channels of `site` (see `neuron_merging`).

    Returns (coefficients (len(kept), len(pruned)) with at most one non-zero per column, merged
    (len(pruned),) bool, cosine similarity of each pruned channel's partner (len(pruned),)).
    """
    terms = editor.bn_terms(site)
    partner, scale, similarity = merge_partners(
        editor.filters(site.producer),
        terms.gamma,
        terms.sigma,
        terms.mean,
        terms.beta,
        terms.conv_bias,
        kept,
        pruned,
        lamda,
        threshold,
        convention,
        terms.variance,
    )
    coefficients = np.zeros((len(kept), len(pruned)))
    merged = partner >= 0
    coefficients[partner[merged], np.flatnonzero(merged)] = scale[merged]
    return coefficients, merged, similarity
