"""Block importance criteria of SUBP: L1, L2 and BPAR (block pruning via angular redundancy).

All scores are computed on the masked kernel W*M (SUBP "V2" scoring), so blocks that are
already pruned get the minimum possible score (0 for L1/L2, -alpha for BPAR) and stay in the
candidate set unless they are regrown by sampling.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_subp.block_geometry import expand_block_mask, kernel_to_blocks, validate_block_size

CRITERIA = ("l1", "l2", "bpar")

# Upper bound on the elements of one chunk of BPAR's pairwise-cosine tensor (G x chunk x Cin):
# 2**24 float32 values are 64 MiB, so a 2048-input-channel layer never materialises its full
# (G, Cin, Cin) similarity tensor.
DEFAULT_BPAR_CHUNK_ELEMENTS = 2**24
_NORM_EPSILON = 1e-12


def normalize_criterion(criterion: str) -> str:
    """Return the canonical lower-case criterion name or raise `ValueError` naming the choices."""
    if not isinstance(criterion, str) or criterion.lower() not in CRITERIA:
        raise ValueError(f"Unknown criterion {criterion!r}; expected one of {', '.join(CRITERIA)}.")
    return criterion.lower()


def block_scores(
    kernel,
    n: int,
    criterion: str = "bpar",
    mask=None,
    *,
    alpha: float = 1.0,
    chunk_elements: int = DEFAULT_BPAR_CHUNK_ELEMENTS,
):
    """Score every 1xN block of a Conv2D kernel; low scores are pruned first.

    Args:
        kernel: Keras Conv2D kernel, shape (Kh, Kw, Cin, Cout).
        n: block length N (output channels per block); must divide Cout.
        criterion: "l1" (sum of |w| over the block), "l2" (Euclidean norm of the block) or
            "bpar": S = L1_share - alpha * A_share with, within each output group g,
            L1_share[g, c] = |b_gc|_1 / sum_c' |b_gc'|_1 and
            A_share[g, c] = A[g, c] / sum_c' A[g, c'], A[g, c] = sum_c' |cos(b_gc, b_gc')|
            (c' = c included); a zero A_share is replaced by 1, and a group whose blocks are all
            zero gets L1_share = 0 instead of dividing by zero.
        mask: optional block mask (G, Cin) or kernel-shaped mask; scores are taken on kernel*mask.
        alpha: weight of the angular-redundancy term of BPAR (1 in the SUBP authors' code).
        chunk_elements: memory bound for BPAR: the pairwise cosines are computed for as many
            input channels at a time as keep G x chunk x Cin below this many elements.

    Returns:
        Float tensor of shape (G, Cin), G = Cout / n.
    """
    criterion = normalize_criterion(criterion)
    kernel = ops.convert_to_tensor(kernel)
    if keras.backend.standardize_dtype(kernel.dtype) not in ("float32", "float64"):
        kernel = ops.cast(kernel, "float32")
    if mask is not None:
        mask = ops.cast(ops.convert_to_tensor(mask), kernel.dtype)
        if len(mask.shape) == 2:
            validate_block_size(n, kernel.shape)
            block_grid = (int(kernel.shape[3]) // n, int(kernel.shape[2]))
            if tuple(mask.shape) != block_grid:
                raise ValueError(
                    f"Block mask shape {tuple(mask.shape)} does not match the block grid "
                    f"(Cout / n, Cin) = {block_grid} of kernel {tuple(kernel.shape)} at n={n}."
                )
            mask = expand_block_mask(mask, kernel.shape)
        elif tuple(mask.shape) != tuple(kernel.shape):
            raise ValueError(
                f"Mask shape {tuple(mask.shape)} matches neither the kernel {tuple(kernel.shape)} "
                "nor the block grid (Cout / n, Cin)."
            )
        kernel = kernel * mask
    blocks = kernel_to_blocks(kernel, n)  # (G, Cin, Kh*Kw*N)
    if criterion == "l1":
        return ops.sum(ops.abs(blocks), axis=-1)
    if criterion == "l2":
        return ops.sqrt(ops.sum(ops.square(blocks), axis=-1))
    return _bpar_scores(blocks, alpha, chunk_elements)


def _bpar_scores(blocks, alpha: float, chunk_elements: int):
    groups, input_channels = int(blocks.shape[0]), int(blocks.shape[1])
    l2_norms = ops.sqrt(ops.sum(ops.square(blocks), axis=-1, keepdims=True))
    unit_blocks = blocks / ops.maximum(l2_norms, _NORM_EPSILON)  # zero blocks stay zero
    unit_blocks_transposed = ops.transpose(unit_blocks, (0, 2, 1))  # (G, D, Cin)
    chunk = max(1, int(chunk_elements) // max(1, groups * input_channels))
    redundancy_chunks = []
    for start in range(0, input_channels, chunk):
        cosines = ops.matmul(unit_blocks[:, start : start + chunk], unit_blocks_transposed)
        redundancy_chunks.append(ops.sum(ops.abs(cosines), axis=-1))
    redundancy = ops.concatenate(redundancy_chunks, axis=1)  # (G, Cin)

    l1_norms = ops.sum(ops.abs(blocks), axis=-1)
    l1_totals = ops.sum(l1_norms, axis=1, keepdims=True)
    l1_share = ops.where(l1_totals > 0, l1_norms / ops.maximum(l1_totals, _NORM_EPSILON), 0.0)
    redundancy_totals = ops.sum(redundancy, axis=1, keepdims=True)
    redundancy_share = ops.where(
        redundancy_totals > 0, redundancy / ops.maximum(redundancy_totals, _NORM_EPSILON), 0.0
    )
    redundancy_share = ops.where(redundancy_share == 0, 1.0, redundancy_share)
    return l1_share - alpha * redundancy_share
