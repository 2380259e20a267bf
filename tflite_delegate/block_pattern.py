"""1xN pattern analysis of a CONV_2D filter in numpy (independent of the C++ delegate).

TFLite stores a CONV_2D filter as OHWI `[O, KH, KW, I]`. Output channels form *groups* of N
consecutive channels `[g*N, (g+1)*N)`; when O is not a multiple of N the last group is partial and
holds the remaining `O mod N` channels (the delegate zero-pads it when packing). Two units:

- a *block* is one group x one input channel x the whole KH x KW window (the unit SUBP prunes, as
  in `keras_subp`); a block is kept when any of its weights is non-zero, and block sparsity is the
  fraction of all-zero blocks.
- a *tap vector* is the N weights of one group at one tap `(ky, kx, ci)`: the unit the delegate
  packs and skips. A tap vector is kept when any of its N weights is non-zero.

A filter pruned in whole blocks has equal block and tap-vector sparsity.

A kept tap vector stores all its N weights, zeros included. The zeros it stores are *stray
zeros*; exact 1xN structure has none. A filter "has 1xN structure" when at most 1 in
`STRAY_ZERO_LIMIT` (32) of its zero weights are stray, i.e. all-zero tap vectors hold at least
31/32 of its zeros. Results are correct at any N; the tolerance keeps an exact zero that training
or float16 rounding left inside a kept tap vector from pushing a 1x16 layer down to the 1x1
microkernel. A dense filter (no zeros) has structure at every N. The C++ delegate applies the same
rule (tflite_delegate/native/packing/block_pattern.h).

The detected N is the largest of 32, 16, 8, 4, 2, 1 that has structure and is not wider than O
rounded up to a power of two. A dense filter (no zeros at all) has the widest N.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK_SIZES: tuple[int, ...] = (32, 16, 8, 4, 2, 1)
STRAY_ZERO_LIMIT = 32


@dataclass(frozen=True)
class BlockPattern:
    """The 1xN pattern of one OHWI filter for a given N.

    `kept_blocks_per_group[g]` counts the kept blocks (whole KH x KW windows) of group g among its
    I input channels; `kept_tap_vectors_per_group[g]` its kept tap vectors among the
    `taps_per_group` = KH*KW*I taps. `stored_weights` counts the weights of the kept tap vectors
    (real channels only), `stray_zeros` the zeros among them and `zero_weights` all zeros of the
    filter.
    """

    block_n: int
    filter_shape: tuple[int, int, int, int]
    taps_per_group: int
    kept_tap_vectors_per_group: np.ndarray
    kept_blocks_per_group: np.ndarray
    stored_weights: int
    stray_zeros: int
    zero_weights: int

    @property
    def has_structure(self) -> bool:
        """True when at most 1 in `STRAY_ZERO_LIMIT` zero weights is a stray zero."""
        return self.stray_zeros * STRAY_ZERO_LIMIT <= self.zero_weights

    @property
    def exact_structure(self) -> bool:
        """True when every tap vector is all zero or all non-zero (no stray zeros)."""
        return self.stray_zeros == 0

    @property
    def num_groups(self) -> int:
        """Number of output-channel groups, ceil(O / N)."""
        return int(self.kept_tap_vectors_per_group.shape[0])

    # ------------------------------------------------------------------- blocks (KH x KW)

    @property
    def blocks_per_group(self) -> int:
        """Blocks of one group: I (one per input channel)."""
        return int(self.filter_shape[3])

    @property
    def total_blocks(self) -> int:
        """All blocks, ceil(O / N) * I."""
        return self.num_groups * self.blocks_per_group

    @property
    def kept_blocks(self) -> int:
        """Number of blocks holding at least one non-zero weight."""
        return int(self.kept_blocks_per_group.sum())

    @property
    def block_sparsity(self) -> float:
        """Fraction of all-zero blocks, in [0, 1] (0 for a filter without blocks)."""
        if self.total_blocks == 0:
            return 0.0
        return 1.0 - self.kept_blocks / self.total_blocks

    @property
    def kept_blocks_min(self) -> int:
        """Fewest kept blocks in one group (0 without groups)."""
        return int(self.kept_blocks_per_group.min()) if self.num_groups else 0

    @property
    def kept_blocks_max(self) -> int:
        """Most kept blocks in one group."""
        return int(self.kept_blocks_per_group.max()) if self.num_groups else 0

    @property
    def balance_ratio(self) -> float:
        """max_g(kept blocks_g) / mean_g(kept blocks_g): 1.0 = perfectly balanced, and 1.0 when
        nothing is kept."""
        if self.kept_blocks == 0:
            return 1.0
        return self.kept_blocks_max / float(self.kept_blocks_per_group.mean())

    # ------------------------------------------------------------ tap vectors (packing unit)

    @property
    def total_tap_vectors(self) -> int:
        """All tap vectors, ceil(O / N) * KH * KW * I."""
        return self.num_groups * self.taps_per_group

    @property
    def kept_tap_vectors(self) -> int:
        """Number of tap vectors holding at least one non-zero weight."""
        return int(self.kept_tap_vectors_per_group.sum())

    @property
    def tap_vector_sparsity(self) -> float:
        """Fraction of all-zero tap vectors, in [0, 1] (what the delegate skips; its
        min_sparsity option compares with this)."""
        if self.total_tap_vectors == 0:
            return 0.0
        return 1.0 - self.kept_tap_vectors / self.total_tap_vectors

    @property
    def kept_tap_vectors_min(self) -> int:
        """Fewest kept tap vectors in one group."""
        return int(self.kept_tap_vectors_per_group.min()) if self.num_groups else 0

    @property
    def kept_tap_vectors_max(self) -> int:
        """Most kept tap vectors in one group."""
        return int(self.kept_tap_vectors_per_group.max()) if self.num_groups else 0


def _as_ohwi(filter_ohwi: np.ndarray) -> np.ndarray:
    array = np.asarray(filter_ohwi)
    if array.ndim != 4:
        raise ValueError(f"expected an OHWI filter with 4 dimensions, got shape {array.shape}")
    return array


def block_pattern(filter_ohwi: np.ndarray, block_n: int) -> BlockPattern:
    """Pattern of an OHWI filter (any float dtype) for block width `block_n` >= 1.

    NaN and infinite weights count as non-zero; -0.0 counts as zero.
    """
    array = _as_ohwi(filter_ohwi)
    if int(block_n) != block_n or block_n < 1:
        raise ValueError(f"block_n must be a positive integer, got {block_n!r}")
    block_n = int(block_n)
    out_channels, kernel_h, kernel_w, in_channels = (int(d) for d in array.shape)
    taps = kernel_h * kernel_w * in_channels
    shape = (out_channels, kernel_h, kernel_w, in_channels)
    if out_channels == 0:
        empty = np.zeros(0, dtype=np.int64)
        return BlockPattern(block_n, shape, taps, empty, empty, 0, 0, 0)
    nonzero = (array != 0).reshape(out_channels, taps)
    group_starts = np.arange(0, out_channels, block_n)
    # Per (group, tap): non-zero weights among the group's real channels.
    nonzero_counts = np.add.reduceat(nonzero.astype(np.int64), group_starts, axis=0)
    channels_per_group = np.diff(np.append(group_starts, out_channels))
    kept = nonzero_counts > 0
    stored_weights = int((kept * channels_per_group[:, np.newaxis]).sum())
    stray_zeros = stored_weights - int(nonzero_counts.sum())
    zero_weights = out_channels * taps - int(nonzero_counts.sum())
    kept_tap_vectors = kept.sum(axis=1).astype(np.int64)
    # A block (group, ci) is kept when any of its KH x KW tap vectors is.
    kept_windows = kept.reshape(len(group_starts), kernel_h * kernel_w, in_channels).any(axis=1)
    kept_blocks = kept_windows.sum(axis=1).astype(np.int64)
    return BlockPattern(
        block_n,
        shape,
        taps,
        kept_tap_vectors,
        kept_blocks,
        stored_weights,
        stray_zeros,
        zero_weights,
    )


def detect_block_n(filter_ohwi: np.ndarray) -> int:
    """Largest N of 32, 16, 8, 4, 2, 1 that has structure (see the module docstring).

    N is never wider than O rounded up to a power of two (a 6-channel filter gets at most N = 8),
    since a wider block would only add padding channels.
    """
    array = _as_ohwi(filter_ohwi)
    widest_useful = 1 << max(int(array.shape[0]) - 1, 0).bit_length()
    for block_n in BLOCK_SIZES:
        if block_n <= widest_useful and block_pattern(array, block_n).has_structure:
            return block_n
    return 1


def analyze_filter(filter_ohwi: np.ndarray, block_n: int | str = "auto") -> BlockPattern:
    """Block pattern at the detected N (`block_n="auto"`) or at a forced N."""
    if block_n == "auto":
        return block_pattern(filter_ohwi, detect_block_n(filter_ohwi))
    if isinstance(block_n, str):
        raise ValueError(f"block_n must be 'auto' or an integer, got {block_n!r}")
    return block_pattern(filter_ohwi, block_n)


def is_block_sparse_1xn(filter_ohwi: np.ndarray, block_n: int, exact: bool = False) -> bool:
    """True when the filter has 1xN structure at `block_n` (every tap vector all zero or all
    non-zero with `exact=True`; otherwise up to 1 in 32 of its zeros may be stray, inside kept
    tap vectors).

    The 1xN counterpart of tfmot's `check_sparsity_m_by_n`: use it on the OHWI filters read by
    `tflite_delegate.tflite_model.read_conv_layers` (or on a Keras HWIO kernel transposed with
    `kernel.transpose(3, 0, 1, 2)`).
    """
    pattern = block_pattern(filter_ohwi, block_n)
    return pattern.exact_structure if exact else pattern.has_structure
