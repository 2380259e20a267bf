"""Closed forms against numpy least squares on the papers' objectives, written out independently."""

import numpy as np
import pytest

from dfcompress.closed_forms import (
    combination_coefficients,
    merge_partners,
    mixed_precision_coefficients,
    quantization_scale,
)


def _random_layer(rng, depth, channels):
    w = rng.normal(size=(depth, channels))
    gamma = rng.uniform(0.3, 2.0, channels)
    sigma = rng.uniform(0.5, 2.0, channels)
    bias = rng.normal(size=channels)
    return w, gamma, sigma, bias


@pytest.mark.parametrize(
    ("depth", "kept", "pruned"),
    [
        (27, 10, 5),
        (288, 44, 20),
        (16, 40, 17),
        (64, 64, 3),
    ],  # tall, tall, wide (1x1: n > D), square
)
@pytest.mark.parametrize("alpha1", [0.0, 0.01, 0.5])
def test_udfc_coefficients_equal_lstsq_of_the_paper_objective(depth, kept, pruned, alpha1):
    rng = np.random.default_rng(depth + kept)
    w, gamma, sigma, k = _random_layer(rng, depth, kept + pruned)
    keep, drop = np.arange(kept), np.arange(kept, kept + pruned)
    folded = w * gamma / sigma
    solution = combination_coefficients(
        folded[:, keep],
        k[keep],
        folded[:, drop],
        k[drop],
        alpha1 * (gamma[drop] / sigma[drop]) ** 2,
    )
    for column, j in enumerate(drop):
        # ||W_j - sum_i s_i (g_i sd_j)/(sd_i g_j) W_i||^2 + alpha1 (K_j - sum_i s_i K_i)^2
        g = w[:, keep] * (gamma[keep] * sigma[j]) / (sigma[keep] * gamma[j])
        a = np.vstack([g, np.sqrt(alpha1) * k[keep][None, :]])
        b = np.concatenate([w[:, j], [np.sqrt(alpha1) * k[j]]])
        reference = np.linalg.lstsq(a, b, rcond=None)[0]
        np.testing.assert_allclose(solution[:, column], reference, rtol=1e-7, atol=1e-9)


def test_udfc_coefficients_with_singular_gram_match_minimum_norm_lstsq():
    rng = np.random.default_rng(7)
    base = rng.normal(size=(20, 6))
    kept = np.hstack([base, base[:, :3] * 2.0])  # rank 6 with 9 columns: singular Gram matrix
    kept_bias = rng.normal(size=9)
    pruned = rng.normal(size=(20, 4))
    pruned_bias = rng.normal(size=4)
    weight = np.full(4, 0.3)
    solution = combination_coefficients(kept, kept_bias, pruned, pruned_bias, weight)
    for j in range(4):
        a = np.vstack([kept, np.sqrt(weight[j]) * kept_bias[None, :]])
        b = np.concatenate([pruned[:, j], [np.sqrt(weight[j]) * pruned_bias[j]]])
        np.testing.assert_allclose(solution[:, j], np.linalg.lstsq(a, b, rcond=None)[0], atol=1e-8)


def test_udfc_coefficients_recover_an_exact_combination():
    rng = np.random.default_rng(3)
    kept = rng.normal(size=(30, 5))
    kept_bias = rng.normal(size=5)
    s = np.array([0.5, 0.0, -1.0, 0.0, 2.0])
    solution = combination_coefficients(kept, kept_bias, kept @ s[:, None], [kept_bias @ s], [0.01])
    np.testing.assert_allclose(solution[:, 0], s, atol=1e-10)


@pytest.mark.parametrize("alpha2", [0.0, 0.008, 1.0])
def test_quantization_scale_equals_lstsq(alpha2):
    rng = np.random.default_rng(11)
    r = rng.normal(size=(50, 8))
    r_q = r + 0.1 * rng.normal(size=r.shape)
    k = rng.normal(size=8)
    scale = quantization_scale(r, r_q, k, alpha2)
    for m in range(8):
        # min_s ||r_m - s r~_m||^2 + alpha2 (K_m - s K_m)^2
        a = np.concatenate([r_q[:, m], [np.sqrt(alpha2) * k[m]]])[:, None]
        b = np.concatenate([r[:, m], [np.sqrt(alpha2) * k[m]]])
        assert scale[m] == pytest.approx(np.linalg.lstsq(a, b, rcond=None)[0][0], rel=1e-10)


@pytest.mark.parametrize(("lambda1", "lambda2"), [(0.5, 0.0), (0.1, 0.01), (0.0, 0.0)])
def test_dfmpc_coefficient_equals_lstsq(lambda1, lambda2):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 6))
    x_low = np.sign(x) * 0.8 + 0.05 * rng.normal(size=x.shape)
    y, y_low = rng.normal(size=6), rng.normal(size=6)
    c = mixed_precision_coefficients(x_low, x, y_low, y, lambda1, lambda2)
    for j in range(6):
        # min_c ||c x^_j - x_j||^2 + lambda1 (c y^_j - y_j)^2 + lambda2 c^2
        a = np.concatenate([x_low[:, j], [np.sqrt(lambda1) * y_low[j], np.sqrt(lambda2)]])[:, None]
        b = np.concatenate([x[:, j], [np.sqrt(lambda1) * y[j], 0.0]])
        expected = max(np.linalg.lstsq(a, b, rcond=None)[0][0], 0.0)
        assert c[j] == pytest.approx(expected, rel=1e-10)


def test_dfmpc_coefficient_is_clamped_at_zero():
    x = np.ones((4, 1))
    c = mixed_precision_coefficients(-x, x, np.zeros(1), np.zeros(1), 0.5, 0.0)
    assert c[0] == 0.0


def test_neuron_merging_finds_the_exact_multiple_and_its_bn_scale():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(27, 6))
    gamma = rng.uniform(0.5, 1.5, 6)
    sigma = rng.uniform(0.5, 2.0, 6)
    mean = rng.normal(size=6)
    beta = rng.normal(size=6)
    # channel 5 = 0.4 * channel 2 with BN stats making its BN output 0.7 x channel 2's
    w[:, 5] = 0.4 * w[:, 2]
    mean[5], sigma[5] = 0.4 * mean[2], 0.4 * sigma[2]
    gamma[5], beta[5] = 0.7 * gamma[2], 0.7 * beta[2]
    partner, scale, similarity = merge_partners(
        w, gamma, sigma, mean, beta, np.zeros(6), np.arange(5), np.array([5]), 0.85, 0.1
    )
    assert partner[0] == 2
    assert similarity[0] == pytest.approx(1.0)
    assert scale[0] == pytest.approx(0.7)
