"""Quantizer grids, checked level by level against hand-written values."""

import numpy as np
import pytest

from dfcompress.quantizers import QUANTIZER_NAMES, get_quantizer


def _levels(values):
    return np.unique(np.round(np.asarray(values, dtype=np.float64), 12))


def test_dorefa_two_bit_grid_has_no_zero():
    w = np.array([-2.0, -1.0, -0.5, 0.0, 0.1, 0.5, 1.9, 2.0])
    q = get_quantizer("dorefa").quantize(w, 2)
    # levels m * {-1, -1/3, 1/3, 1} with m = 2
    np.testing.assert_allclose(q, [-2, -2 / 3, -2 / 3, 2 / 3, 2 / 3, 2 / 3, 2, 2])
    assert not np.any(q == 0)
    np.testing.assert_allclose(get_quantizer("dorefa").grid(w, 2), [-2, -2 / 3, 2 / 3, 2])


@pytest.mark.parametrize("bits", [1, 3, 4, 6, 8])
def test_dorefa_grid_is_2_to_k_even_levels(bits):
    w = np.random.default_rng(bits).normal(size=(3, 3, 8, 16))
    q = get_quantizer("dorefa").quantize(w, bits)
    m = np.max(np.abs(w))
    expected = m * (2 * np.arange(2**bits) / (2**bits - 1) - 1)
    assert set(_levels(q)) <= set(_levels(expected))
    # the formula, written out once more independently
    reference = m * (2 / (2**bits - 1) * np.round((2**bits - 1) * (w / (2 * m) + 0.5)) - 1)
    np.testing.assert_allclose(q, reference)


def test_dorefa_per_channel_uses_each_output_channels_max():
    w = np.stack([np.linspace(-1, 1, 9), np.linspace(-4, 4, 9)], axis=-1)  # (9, 2)
    q = get_quantizer("dorefa_per_channel").quantize(w, 3)
    for c, m in enumerate((1.0, 4.0)):
        assert set(_levels(q[:, c])) <= set(_levels(m * (2 * np.arange(8) / 7 - 1)))


def test_twn_ternary_grid():
    w = np.array([-1.0, -0.2, 0.05, 0.3, 0.9, 0.0])
    threshold = 0.7 * np.mean(np.abs(w))  # 0.28
    above = np.abs(w) > threshold
    alpha = np.mean(np.abs(w)[above])  # mean of 1.0, 0.3, 0.9
    q = get_quantizer("twn").quantize(w, 2)
    np.testing.assert_allclose(q, [-alpha, 0, 0, alpha, alpha, 0])
    np.testing.assert_allclose(get_quantizer("twn").grid(w, 2), [-alpha, 0, alpha])
    with pytest.raises(ValueError, match="2-bit only"):
        get_quantizer("twn").quantize(w, 3)


@pytest.mark.parametrize("name", ["symmetric", "symmetric_per_channel"])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_symmetric_keeps_every_zero(name, bits):
    rng = np.random.default_rng(bits)
    w = rng.normal(size=(3, 3, 16, 32))
    w[:, :, :4, :16] = 0.0  # a 1x16 block pattern of zeros, as keras_subp leaves
    w[rng.random(w.shape) < 0.3] = 0.0
    q = get_quantizer(name).quantize(w, bits)
    assert np.all(q[w == 0] == 0)
    top = 2 ** (bits - 1) - 1
    if name == "symmetric":
        step = np.max(np.abs(w)) / top
        np.testing.assert_allclose(q / step, np.round(q / step), atol=1e-9)
        assert np.max(np.abs(np.round(q / step))) <= top
        np.testing.assert_allclose(
            get_quantizer(name).grid(w, bits), step * np.arange(-top, top + 1)
        )
    else:
        step = np.max(np.abs(w.reshape(-1, 32)), axis=0) / top
        units = q.reshape(-1, 32) / step
        np.testing.assert_allclose(units, np.round(units), atol=1e-9)


def test_symmetric_two_bit_is_ternary_with_max_scale():
    w = np.array([-3.0, -1.4, 0.0, 1.6, 2.0])
    np.testing.assert_allclose(get_quantizer("symmetric").quantize(w, 2), [-3, 0, 0, 3, 3])


@pytest.mark.parametrize("name", QUANTIZER_NAMES)
def test_all_zero_tensor_stays_zero(name):
    q = get_quantizer(name).quantize(np.zeros((3, 3, 2, 4)), 2)
    assert np.all(q == 0)


def test_bad_names_and_bits_are_named():
    with pytest.raises(ValueError, match="quantizer must be one of"):
        get_quantizer("uniform")
    with pytest.raises(TypeError, match="quantizer"):
        get_quantizer(3)
    with pytest.raises(ValueError, match="bits"):
        get_quantizer("dorefa").quantize(np.ones(3), 0)
    with pytest.raises(ValueError, match="bits"):
        get_quantizer("symmetric").quantize(np.ones(3), 1)
    with pytest.raises(TypeError, match="bits"):
        get_quantizer("dorefa").quantize(np.ones(3), 2.5)
