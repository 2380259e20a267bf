"""Uniform per-group block selection and SUBP's regrowth by importance sampling.

Per output group g (one row of the (G, Cin) score matrix) SUBP sorts the scores ascending;
the lowest P = int(p * Cin) blocks are the candidate set. At epoch e, R_e of the candidates
regrow, drawn without replacement with probabilities softmax(normalise(S_candidates) / tau),
where normalise divides by the candidates' Euclidean norm. Every group therefore has exactly
P - R_e pruned blocks, and exactly P once the schedule is over (R_e = 0).

Ties between equal scores are broken towards the lower input-channel index (it is pruned
first): the sort is stable on the TensorFlow and JAX backends.
"""

from __future__ import annotations

import operator

import keras
from keras import ops

_NORM_EPSILON = 1e-12
# Smallest uniform draw, so that -log(-log(u)) stays finite in float32.
_UNIFORM_FLOOR = 1e-12


def _whole_number(name: str, value) -> int:
    """`value` as an int; floats (an easy slip: passing p instead of a count) and bools raise."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number of blocks, got {value!r}.")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(
            f"{name} must be a whole number of blocks, got {value!r} (a count, not a fraction)."
        ) from None


def num_pruned_blocks(sparsity: float, input_channels: int) -> int:
    """P = int(p * Cin): blocks pruned per output group at the end of the schedule.

    Computed in float64 with truncation toward zero, as the SUBP authors' code does; for decimal p this
    can be one below the intended count (int(0.29 * 100) == 28).
    """
    return int(float(sparsity) * int(input_channels))


def num_regrown_blocks(sparsity: float, schedule_value: float, input_channels: int) -> int:
    """R_e = int((p - p * r(e)) * Cin): candidates that regrow at an epoch with schedule value r."""
    sparsity = float(sparsity)
    return int((sparsity - sparsity * float(schedule_value)) * int(input_channels))


def uniform_block_mask(scores, num_pruned: int):
    """Prune the `num_pruned` lowest-scoring blocks of every output group.

    Args:
        scores: block scores, shape (G, Cin) (from `block_scores`).
        num_pruned: blocks to prune per group, 0 <= num_pruned <= Cin.

    Returns:
        float32 mask of shape (G, Cin): 0 for pruned blocks, 1 for kept ones. Every row has
        exactly Cin - num_pruned ones; among equal scores the lower channel index is pruned.
    """
    return subp_block_mask(scores, num_pruned, num_regrown=0)


def subp_block_mask(
    scores,
    num_pruned: int,
    num_regrown: int,
    temperature: float = 1.0,
    seed: int | None = None,
):
    """SUBP's mask for one epoch: prune the lowest `num_pruned` per group, regrow `num_regrown`.

    Regrowth samples `num_regrown` distinct candidates per group from
    softmax(candidate_scores / ||candidate_scores||_2 / temperature) without replacement
    (successive draws renormalised over the remaining candidates), using the Gumbel-top-k
    trick, which has exactly that distribution.

    Args:
        scores: block scores, shape (G, Cin).
        num_pruned: P, candidates per group (0 <= P <= Cin).
        num_regrown: R, candidates that come back (0 <= R <= P).
        temperature: softmax temperature tau > 0.
        seed: integer seed of the sampling (stateless: the same seed gives the same draw).

    Returns:
        float32 mask of shape (G, Cin) with exactly P - R zeros per row.
    """
    scores = ops.convert_to_tensor(scores)
    if len(scores.shape) != 2:
        raise ValueError(f"Scores must have shape (G, Cin), got {tuple(scores.shape)}.")
    groups, input_channels = int(scores.shape[0]), int(scores.shape[1])
    num_pruned = _whole_number("num_pruned", num_pruned)
    num_regrown = _whole_number("num_regrown", num_regrown)
    if not 0 <= num_pruned <= input_channels:
        raise ValueError(f"num_pruned must be in [0, {input_channels}], got {num_pruned}.")
    if not 0 <= num_regrown <= num_pruned:
        raise ValueError(f"num_regrown must be in [0, num_pruned={num_pruned}], got {num_regrown}.")
    if not temperature > 0:
        raise ValueError(f"Temperature must be positive, got {temperature!r}.")
    if keras.backend.standardize_dtype(scores.dtype) != "float32":
        scores = ops.cast(scores, "float32")

    order = ops.argsort(scores, axis=1)  # ascending, stable: position -> channel
    positions = ops.arange(input_channels)[None, :]
    pruned_sorted = ops.broadcast_to(positions < num_pruned, (groups, input_channels))
    if num_regrown > 0:
        if seed is None:
            raise ValueError("Regrowth needs an integer seed.")
        candidate_scores = ops.take_along_axis(scores, order[:, :num_pruned], axis=1)
        candidate_norms = ops.sqrt(ops.sum(ops.square(candidate_scores), axis=1, keepdims=True))
        logits = candidate_scores / ops.maximum(candidate_norms, _NORM_EPSILON) / temperature
        uniform = keras.random.uniform(
            (groups, num_pruned), minval=_UNIFORM_FLOOR, maxval=1.0, seed=int(seed)
        )
        perturbed = logits - ops.log(-ops.log(uniform))  # logits + standard Gumbel noise
        rank_by_key = ops.argsort(ops.argsort(-perturbed, axis=1), axis=1)
        regrown = rank_by_key < num_regrown  # the num_regrown largest keys
        pruned_sorted = ops.concatenate(
            [
                ops.logical_not(regrown),
                ops.zeros((groups, input_channels - num_pruned), dtype="bool"),
            ],
            axis=1,
        )
    mask_sorted = ops.cast(ops.logical_not(pruned_sorted), "float32")
    inverse_order = ops.argsort(order, axis=1)  # channel -> position
    return ops.take_along_axis(mask_sorted, inverse_order, axis=1)
