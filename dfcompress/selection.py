"""Which output channels to prune: the smallest filters by l1 or l2 norm, per layer."""

from __future__ import annotations

import numpy as np

CRITERIA = ("l1", "l2")


def keep_count(channels: int, prune_ratio: float) -> int:
    """int(channels * (1 - prune_ratio)), at least 1 (Neuron Merging's convention)."""
    return max(1, int(channels * (1.0 - prune_ratio)))


def select_channels(
    filters: np.ndarray, prune_ratio: float, criterion: str
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, pruned) channel indices, each ascending, for a (D, C) filter matrix.

    The `keep_count` filters with the largest l1 or l2 norm are kept; ties go to the lower index.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    order = 1 if criterion == "l1" else 2
    norms = np.linalg.norm(filters, ord=order, axis=0)
    ranking = np.argsort(-norms, kind="stable")
    count = keep_count(filters.shape[1], prune_ratio)
    return np.sort(ranking[:count]), np.sort(ranking[count:])
