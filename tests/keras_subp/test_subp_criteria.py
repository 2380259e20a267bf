"""Block geometry and importance criteria against hand-computed numpy references."""

import numpy as np
import pytest
from keras import ops

import keras_subp
from keras_subp.block_geometry import kernel_mask_to_blocks


def numpy_block(kernel, n, group, channel):
    return kernel[:, :, channel, group * n : (group + 1) * n].ravel()


def numpy_scores(kernel, n, criterion):
    """Direct transcription of the formulas in `keras_subp.block_scores`' docstring, block by block."""
    groups, input_channels = kernel.shape[3] // n, kernel.shape[2]
    scores = np.zeros((groups, input_channels))
    for g in range(groups):
        blocks = [numpy_block(kernel, n, g, c).astype(np.float64) for c in range(input_channels)]
        l1 = np.array([np.abs(b).sum() for b in blocks])
        l2 = np.array([np.sqrt((b**2).sum()) for b in blocks])
        if criterion == "l1":
            scores[g] = l1
        elif criterion == "l2":
            scores[g] = l2
        else:
            units = [b / max(norm, 1e-12) for b, norm in zip(blocks, l2, strict=True)]
            redundancy = np.array(
                [sum(abs(float(u @ v)) for v in units) for u in units], dtype=np.float64
            )
            l1_share = l1 / l1.sum() if l1.sum() > 0 else np.zeros_like(l1)
            a_share = redundancy / redundancy.sum() if redundancy.sum() > 0 else redundancy * 0
            a_share[a_share == 0] = 1.0
            scores[g] = l1_share - a_share
    return scores


def test_kernel_to_blocks_follows_keras_layout():
    kernel = np.arange(2 * 3 * 4 * 6, dtype=np.float32).reshape(2, 3, 4, 6)
    blocks = ops.convert_to_numpy(keras_subp.kernel_to_blocks(kernel, 3))
    assert blocks.shape == (2, 4, 2 * 3 * 3)
    for g in range(2):
        for c in range(4):
            # Same elements as the block; order inside the block is (Kh, Kw, N).
            np.testing.assert_array_equal(blocks[g, c], numpy_block(kernel, 3, g, c))


def test_expand_block_mask_round_trip():
    block_mask = np.array([[1, 0, 1], [0, 0, 1]], dtype=np.float32)
    mask = ops.convert_to_numpy(keras_subp.expand_block_mask(block_mask, (3, 3, 3, 8)))
    assert mask.shape == (3, 3, 3, 8)
    for g in range(2):
        for c in range(3):
            assert np.all(mask[:, :, c, g * 4 : (g + 1) * 4] == block_mask[g, c])
    np.testing.assert_array_equal(ops.convert_to_numpy(kernel_mask_to_blocks(mask, 4)), block_mask)


@pytest.mark.parametrize("criterion", ["l1", "l2", "bpar"])
def test_scores_match_numpy_reference_with_zero_blocks(criterion):
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 6, 8)).astype(np.float32)
    kernel[:, :, 2, 0:4] = 0.0  # an all-zero block in group 0
    kernel[:, :, 5, 4:8] = 0.0  # and one in group 1
    scores = ops.convert_to_numpy(keras_subp.block_scores(kernel, 4, criterion))
    np.testing.assert_allclose(scores, numpy_scores(kernel, 4, criterion), rtol=1e-5, atol=1e-6)
    if criterion == "bpar":
        assert scores[0, 2] == pytest.approx(-1.0)  # zero block: L1 share 0, A share -> 1
    else:
        assert scores[0, 2] == 0.0


def test_bpar_all_zero_group_has_no_nan():
    kernel = np.zeros((1, 1, 4, 4), dtype=np.float32)
    kernel[0, 0, :, 2:4] = [[1, 2], [3, 4], [0, 1], [1, 0]]
    scores = ops.convert_to_numpy(keras_subp.block_scores(kernel, 2, "bpar"))
    np.testing.assert_array_equal(scores[0], [-1.0, -1.0, -1.0, -1.0])
    np.testing.assert_allclose(scores, numpy_scores(kernel, 2, "bpar"), rtol=1e-6)


def test_bpar_chunking_gives_identical_scores():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(1, 1, 37, 16)).astype(np.float32)
    whole = ops.convert_to_numpy(keras_subp.block_scores(kernel, 4, "bpar"))
    # 4 groups x 37 channels: 300 elements allow 2 channels per chunk, 19 chunks.
    chunked = ops.convert_to_numpy(keras_subp.block_scores(kernel, 4, "bpar", chunk_elements=300))
    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-7)


def test_scores_use_masked_weights():
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(3, 3, 4, 4)).astype(np.float32)
    block_mask = np.array([[1, 0, 1, 1], [0, 1, 1, 1]], dtype=np.float32)
    masked = kernel * ops.convert_to_numpy(keras_subp.expand_block_mask(block_mask, kernel.shape))
    for criterion in ("l1", "l2", "bpar"):
        with_mask = keras_subp.block_scores(kernel, 2, criterion, mask=block_mask)
        np.testing.assert_allclose(
            ops.convert_to_numpy(with_mask),
            numpy_scores(masked, 2, criterion),
            rtol=1e-5,
            atol=1e-6,
        )


def test_validation_errors():
    kernel = np.ones((3, 3, 4, 6), dtype=np.float32)
    with pytest.raises(ValueError, match="Unknown criterion 'l3'"):
        keras_subp.block_scores(kernel, 2, "l3")
    with pytest.raises(ValueError, match="not divisible by the block size n=4"):
        keras_subp.block_scores(kernel, 4, "l1")
    with pytest.raises(ValueError, match="positive integer"):
        keras_subp.block_scores(kernel, 0, "l1")
    with pytest.raises(ValueError, match="Mask shape"):
        keras_subp.block_scores(kernel, 2, "l1", mask=np.ones((3, 3, 4, 5)))
