"""The numpy 1xN block-pattern analysis on hand-built filters (it is the reference for the C++)."""

import numpy as np
import pytest

from tflite_delegate.block_pattern import (
    analyze_filter,
    block_pattern,
    detect_block_n,
    is_block_sparse_1xn,
)


def _filter(out_channels, kernel, in_channels, seed=0):
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.5, 1.5, size=(out_channels, kernel, kernel, in_channels))
    return weights.astype(np.float32)


def test_hand_counted_pattern_with_partial_last_group():
    # O=6, N=4: groups are channels 0-3 and 4-5; 1x1 kernel, 3 input channels -> 3 taps.
    weights = _filter(6, 1, 3)
    weights[0:4, 0, 0, 1] = 0.0  # group 0 drops tap 1
    weights[4:6, 0, 0, 0] = 0.0  # group 1 drops tap 0
    weights[4:6, 0, 0, 2] = -0.0  # and tap 2 (negative zero is a zero)
    pattern = block_pattern(weights, 4)
    assert pattern.has_structure and pattern.exact_structure
    # Group 0 keeps taps 0 and 2 (8 weights), group 1 keeps tap 1 (2 weights).
    assert (pattern.stored_weights, pattern.stray_zeros, pattern.zero_weights) == (10, 0, 8)
    assert pattern.num_groups == 2
    assert pattern.kept_tap_vectors_per_group.tolist() == [2, 1]
    assert pattern.total_tap_vectors == 6
    assert pattern.tap_vector_sparsity == pytest.approx(0.5)
    assert (pattern.kept_tap_vectors_min, pattern.kept_tap_vectors_max) == (1, 2)
    # With a 1x1 window every tap is its own block: the two units coincide.
    assert pattern.kept_blocks_per_group.tolist() == [2, 1]
    assert pattern.total_blocks == 6
    assert pattern.block_sparsity == pytest.approx(0.5)
    assert (pattern.kept_blocks_min, pattern.kept_blocks_max) == (1, 2)
    assert pattern.balance_ratio == pytest.approx(2 / 1.5)
    # N=8 would put channels 0-5 in one block whose channels disagree at taps 0, 1 and 2:
    # every zero is stray there.
    wide = block_pattern(weights, 8)
    assert (wide.stored_weights, wide.stray_zeros, wide.zero_weights) == (18, 8, 8)
    assert not wide.has_structure
    assert detect_block_n(weights) == 4


def test_detected_n_is_largest_holding_width():
    weights = _filter(64, 3, 5)
    weights[0:16, 1, 2, 3] = 0.0
    weights[16:32, 0, 0, 0] = 0.0
    assert detect_block_n(weights) == 16
    assert is_block_sparse_1xn(weights, 16)
    assert is_block_sparse_1xn(weights, 8)  # structure at N implies structure at divisors
    assert not is_block_sparse_1xn(weights, 32)
    # A lone zero inside a kept tap vector is one stray zero in 33: tolerated (at most 1 in 32).
    weights[5, 0, 0, 4] = 0.0
    pattern = analyze_filter(weights)
    assert (pattern.block_n, pattern.stray_zeros, pattern.zero_weights) == (16, 1, 33)
    assert pattern.has_structure and not pattern.exact_structure
    assert is_block_sparse_1xn(weights, 16) and not is_block_sparse_1xn(weights, 16, exact=True)
    # A second one is 2 in 34: more than 1 in 32 at every N > 1.
    weights[40, 2, 1, 0] = 0.0
    assert detect_block_n(weights) == 1
    assert analyze_filter(weights).block_n == 1


def test_dense_and_empty_filters_take_widest_useful_width():
    assert detect_block_n(_filter(64, 3, 2)) == 32
    assert detect_block_n(_filter(6, 3, 2)) == 8  # 6 channels round up to 8
    assert detect_block_n(_filter(1, 1, 1)) == 1
    zeros = np.zeros((40, 3, 3, 4), np.float32)
    pattern = analyze_filter(zeros)
    assert pattern.block_n == 32
    assert pattern.block_sparsity == 1.0 and pattern.tap_vector_sparsity == 1.0
    assert pattern.kept_blocks_per_group.tolist() == [0, 0]
    assert pattern.kept_tap_vectors_per_group.tolist() == [0, 0]
    assert pattern.balance_ratio == 1.0


def test_uniform_subp_style_pattern_and_forced_width():
    # SUBP drops whole KxK kernels: group g keeps the same number of input channels.
    weights = _filter(32, 3, 8)
    for group in range(4):
        dropped = [(group + k) % 8 for k in range(3)]
        weights[group * 8 : (group + 1) * 8, :, :, dropped] = 0.0
    pattern = analyze_filter(weights)
    assert pattern.block_n == 8
    assert pattern.kept_tap_vectors_per_group.tolist() == [45] * 4
    assert pattern.tap_vector_sparsity == pytest.approx(3 / 8)
    # Whole windows dropped: 5 of 8 blocks kept per group, the same sparsity in both units.
    assert pattern.kept_blocks_per_group.tolist() == [5] * 4
    assert pattern.block_sparsity == pytest.approx(3 / 8)
    assert pattern.balance_ratio == 1.0
    forced = analyze_filter(weights, block_n=16)
    assert not forced.has_structure  # a forced width need not hold; counts still defined
    # Group pairs (0, 1) and (2, 3) both drop two shared input channels: 2 x 9 taps.
    assert forced.kept_tap_vectors_per_group.tolist() == [72 - 18, 72 - 18]
    assert forced.kept_blocks_per_group.tolist() == [6, 6]


def test_tap_sparse_filter_has_lower_block_sparsity():
    """Single zero taps make tap vectors sparse but leave every KxK block kept unless all nine
    taps of its window are zero (hand-counted on a 3x3 filter with 2 groups of 4)."""
    weights = _filter(8, 3, 2)
    weights[0:4, 0, 0, 0] = 0.0  # group 0: one tap of block (ci=0)
    weights[0:4, :, :, 1] = 0.0  # group 0: the whole block (ci=1)
    weights[4:8, 1, 2, 1] = 0.0  # group 1: one tap of block (ci=1)
    pattern = block_pattern(weights, 4)
    assert pattern.kept_tap_vectors_per_group.tolist() == [18 - 1 - 9, 18 - 1]
    assert pattern.kept_blocks_per_group.tolist() == [1, 2]
    assert pattern.block_sparsity == pytest.approx(1 / 4)
    assert pattern.tap_vector_sparsity == pytest.approx(11 / 36)
    assert pattern.balance_ratio == pytest.approx(2 / 1.5)


def test_nan_counts_as_nonzero():
    weights = np.zeros((2, 1, 1, 2), np.float32)
    weights[0, 0, 0, 0] = np.nan
    assert block_pattern(weights, 2).kept_tap_vectors == 1
    assert block_pattern(weights, 2).kept_blocks == 1
    assert not is_block_sparse_1xn(weights, 2)


@pytest.mark.parametrize("bad", [np.zeros((3, 3)), np.zeros((1, 2, 3, 4, 5))])
def test_rejects_non_ohwi_arrays(bad):
    with pytest.raises(ValueError, match="OHWI"):
        analyze_filter(bad)


def test_rejects_bad_block_width():
    with pytest.raises(ValueError, match="block_n"):
        block_pattern(_filter(4, 1, 1), 0)
    with pytest.raises(ValueError, match="block_n"):
        analyze_filter(_filter(4, 1, 1), "wide")
