"""Uniform per-group selection and regrowth sampling against numpy references."""

import itertools

import numpy as np
import pytest
from keras import ops

import keras_subp
from keras_subp.selection import num_pruned_blocks, num_regrown_blocks, subp_block_mask

# Chi-square critical values at significance 0.001 (tables): 3 and 5 degrees of freedom.
CHI2_CRITICAL_0_001 = {3: 16.266, 5: 20.515}


def numpy_uniform_mask(scores, num_pruned):
    mask = np.ones_like(scores, dtype=np.float32)
    for g, row in enumerate(scores):
        mask[g, np.argsort(row, kind="stable")[:num_pruned]] = 0.0
    return mask


def test_uniform_block_mask_matches_numpy():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(6, 13)).astype(np.float32)
    mask = ops.convert_to_numpy(keras_subp.uniform_block_mask(scores, 5))
    np.testing.assert_array_equal(mask, numpy_uniform_mask(scores, 5))
    assert np.all((mask == 0).sum(axis=1) == 5)


def test_ties_prune_the_lower_channel_first():
    scores = np.array([[0.0, 1.0, 0.0, 0.0, 2.0]], dtype=np.float32)
    mask = ops.convert_to_numpy(keras_subp.uniform_block_mask(scores, 2))
    np.testing.assert_array_equal(mask, [[0, 1, 0, 1, 1]])


def test_edge_counts():
    scores = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_array_equal(ops.convert_to_numpy(keras_subp.uniform_block_mask(scores, 0)), 1)
    np.testing.assert_array_equal(ops.convert_to_numpy(keras_subp.uniform_block_mask(scores, 4)), 0)
    with pytest.raises(ValueError, match="num_pruned must be in"):
        keras_subp.uniform_block_mask(scores, 5)
    with pytest.raises(ValueError, match="num_regrown must be in"):
        subp_block_mask(scores, 2, 3, seed=1)
    with pytest.raises(ValueError, match="Temperature must be positive"):
        subp_block_mask(scores, 2, 1, temperature=0.0, seed=1)


def test_target_counts_truncate_like_the_subp_authors_code():
    assert num_pruned_blocks(0.29, 100) == 28  # float64 0.29 * 100 = 28.999999999999996
    assert num_pruned_blocks(0.5, 7) == 3
    assert num_pruned_blocks(66 / 128, 256) == 132
    # R_e = int((p - p * r) * Cin), with p * r computed first, as in the SUBP authors' code.
    assert num_regrown_blocks(0.5, 0.0, 64) == 32
    assert num_regrown_blocks(0.5, 1.0, 64) == 0
    assert num_regrown_blocks(0.5, 0.125, 64) == int((0.5 - 0.5 * 0.125) * 64)


def test_regrowth_keeps_exactly_p_minus_r_zeros_inside_the_candidate_set():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(7, 20)).astype(np.float32)
    num_pruned, num_regrown = 10, 3
    mask = ops.convert_to_numpy(subp_block_mask(scores, num_pruned, num_regrown, seed=11))
    candidates = numpy_uniform_mask(scores, num_pruned) == 0
    assert np.all((mask == 0).sum(axis=1) == num_pruned - num_regrown)
    assert np.all(mask[~candidates] == 1)  # only candidates can be pruned
    assert np.all(((mask == 1) & candidates).sum(axis=1) == num_regrown)
    again = ops.convert_to_numpy(subp_block_mask(scores, num_pruned, num_regrown, seed=11))
    np.testing.assert_array_equal(mask, again)
    other = ops.convert_to_numpy(subp_block_mask(scores, num_pruned, num_regrown, seed=12))
    assert not np.array_equal(mask, other)


# Unsorted row; ascending order is channels 1, 5, 3, 0, 2, 4; the 4 candidates are 1, 5, 3, 0.
ROW = np.array([0.5, -1.0, 2.0, 0.1, 3.0, -0.3], dtype=np.float32)
CANDIDATES = [1, 5, 3, 0]


def softmax_probabilities(temperature):
    candidate_scores = ROW[CANDIDATES].astype(np.float64)
    logits = candidate_scores / np.linalg.norm(candidate_scores) / temperature
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def test_single_regrowth_follows_the_softmax():
    draws = 20000
    temperature = 0.5
    scores = np.tile(ROW, (draws, 1))  # every row is an independent draw
    mask = ops.convert_to_numpy(subp_block_mask(scores, 4, 1, temperature=temperature, seed=5))
    regrown = mask[:, CANDIDATES] == 1
    assert np.all(regrown.sum(axis=1) == 1)
    observed = regrown.sum(axis=0)
    expected = softmax_probabilities(temperature) * draws
    chi_square = float(((observed - expected) ** 2 / expected).sum())
    assert chi_square < CHI2_CRITICAL_0_001[3], (observed, expected)


def test_two_regrowths_are_drawn_without_replacement():
    draws = 20000
    temperature = 0.5
    q = softmax_probabilities(temperature)
    scores = np.tile(ROW, (draws, 1))
    mask = ops.convert_to_numpy(subp_block_mask(scores, 4, 2, temperature=temperature, seed=9))
    pairs = list(itertools.combinations(range(4), 2))
    observed = np.zeros(len(pairs))
    regrown = mask[:, CANDIDATES] == 1
    for row in regrown:
        observed[pairs.index(tuple(np.flatnonzero(row)))] += 1
    # Successive draws renormalised over the rest: P({i, j}) = q_i q_j/(1-q_i) + q_j q_i/(1-q_j).
    expected = np.array([q[i] * q[j] / (1 - q[i]) + q[j] * q[i] / (1 - q[j]) for i, j in pairs])
    assert expected.sum() == pytest.approx(1.0)
    expected *= draws
    chi_square = float(((observed - expected) ** 2 / expected).sum())
    assert chi_square < CHI2_CRITICAL_0_001[5], (observed, expected)
