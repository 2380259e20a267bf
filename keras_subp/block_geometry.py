"""Geometry of 1xN blocks on Keras `Conv2D` kernels.

A 1xN block is N consecutive output channels x 1 input channel x the whole Kh x Kw window:
block (g, c) of a kernel of shape (Kh, Kw, Cin, Cout) is ``kernel[:, :, c, g*N:(g+1)*N]``.
Output channels are split into G = Cout / N fixed, contiguous groups ("block rows"); every
group has Cin blocks. Block-level quantities (scores, masks) are (G, Cin) matrices.
"""

from __future__ import annotations

from collections.abc import Sequence

from keras import ops


def validate_block_n(n: int) -> int:
    """Return `n`, or raise `ValueError` unless it is a positive integer (not a bool)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"Block size n must be a positive integer, got {n!r}.")
    return n


def validate_block_size(n: int, kernel_shape: Sequence[int]) -> None:
    """Raise `ValueError` unless `n` is a positive integer dividing the kernel's Cout.

    Args:
        n: block length N (number of output channels per block).
        kernel_shape: Keras Conv2D kernel shape (Kh, Kw, Cin, Cout).
    """
    validate_block_n(n)
    if len(kernel_shape) != 4:
        raise ValueError(
            f"Expected a Conv2D kernel of shape (Kh, Kw, Cin, Cout), got shape {tuple(kernel_shape)}."
        )
    output_channels = int(kernel_shape[3])
    if output_channels % n != 0:
        raise ValueError(
            f"Output channels ({output_channels}) are not divisible by the block size n={n}; "
            "1xN blocks need Cout % n == 0."
        )


def kernel_to_blocks(kernel, n: int):
    """Rearrange a kernel into its block matrix.

    Args:
        kernel: tensor of shape (Kh, Kw, Cin, Cout).
        n: block length N; must divide Cout.

    Returns:
        Tensor of shape (G, Cin, Kh*Kw*N) with G = Cout / n; entry [g, c] is block (g, c)
        flattened in (Kh, Kw, N) order.
    """
    kernel = ops.convert_to_tensor(kernel)
    validate_block_size(n, kernel.shape)
    kernel_height, kernel_width, input_channels, output_channels = kernel.shape
    groups = output_channels // n
    blocks = ops.reshape(kernel, (kernel_height, kernel_width, input_channels, groups, n))
    blocks = ops.transpose(blocks, (3, 2, 0, 1, 4))
    return ops.reshape(blocks, (groups, input_channels, kernel_height * kernel_width * n))


def expand_block_mask(block_mask, kernel_shape: Sequence[int]):
    """Expand a (G, Cin) block mask to a full kernel mask.

    Args:
        block_mask: tensor of shape (G, Cin), 1 = keep the block, 0 = prune it.
        kernel_shape: target kernel shape (Kh, Kw, Cin, Cout) with Cout = G * N.

    Returns:
        Tensor of shape `kernel_shape` with ``mask[:, :, c, g*N + j] = block_mask[g, c]``.
    """
    block_mask = ops.convert_to_tensor(block_mask)
    kernel_height, kernel_width, input_channels, output_channels = (int(d) for d in kernel_shape)
    groups = int(block_mask.shape[0])
    if groups == 0 or output_channels % groups != 0 or block_mask.shape[1] != input_channels:
        raise ValueError(
            f"Block mask of shape {tuple(block_mask.shape)} does not fit kernel shape "
            f"{tuple(kernel_shape)}: expected (Cout / n, Cin)."
        )
    n = output_channels // groups
    per_channel = ops.repeat(ops.transpose(block_mask), n, axis=1)  # (Cin, Cout)
    return ops.broadcast_to(
        per_channel[None, None], (kernel_height, kernel_width, input_channels, output_channels)
    )


def kernel_mask_to_blocks(kernel_mask, n: int):
    """Collapse a full kernel mask (constant on each block) back to its (G, Cin) block mask."""
    kernel_mask = ops.convert_to_tensor(kernel_mask)
    groups = int(kernel_mask.shape[3]) // n
    # Every entry of a block holds the same value, so one representative per block suffices.
    representative = kernel_mask[0, 0]  # (Cin, Cout)
    representative = ops.reshape(representative, (representative.shape[0], groups, n))[:, :, 0]
    return ops.transpose(representative)
