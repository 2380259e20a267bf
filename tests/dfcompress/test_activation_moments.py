"""The Gaussian activation moments behind UDFC's default objective, against independent references:
Monte-Carlo samples, math.erf, an explicit input covariance matrix, and numpy's lstsq."""

import math

import numpy as np
import pytest

from dfcompress.activation_moments import (
    activation_mean,
    activation_second_moments,
    filter_correlation,
    least_squares_from_moments,
    normal_cdf,
)

FUNCTIONS = {
    "identity": lambda y: y,
    "relu": lambda y: np.maximum(y, 0.0),
    "relu6": lambda y: np.clip(y, 0.0, 6.0),
}


def test_normal_cdf_matches_math_erf():
    x = np.linspace(-9, 9, 2001)
    reference = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(normal_cdf(x), reference, atol=2e-7)


@pytest.mark.parametrize("activation", sorted(FUNCTIONS))
def test_second_moments_match_monte_carlo(activation):
    rng = np.random.default_rng(7)
    channels = 6
    factors = rng.standard_normal((channels, channels))
    factors[1] = factors[0] + 1e-3 * factors[1]  # a near-duplicate pair (correlation ~ 1)
    covariance = factors @ factors.T
    scale = np.sqrt(np.diag(covariance))
    correlation = covariance / np.outer(scale, scale)
    mean = rng.normal(0.0, 2.0, channels)
    mean[3] = 7.0  # mostly in ReLU6's flat top
    std = rng.uniform(0.2, 3.0, channels)
    std[2] = 0.0  # a constant channel
    moments = activation_second_moments(mean, std, correlation, activation)

    samples = 1_000_000
    y = mean + std * (rng.standard_normal((samples, channels)) @ np.linalg.cholesky(correlation).T)
    f = FUNCTIONS[activation](y)
    products = f[:, :, None] * f[:, None, :]
    empirical = products.mean(axis=0)
    standard_error = products.std(axis=0) / np.sqrt(samples)
    assert np.all(np.abs(moments - empirical) < 5 * standard_error + 1e-9)
    np.testing.assert_allclose(
        activation_mean(mean, std, activation), f.mean(axis=0), atol=5 * f.std(axis=0).max() / 1e3
    )


def test_identical_channels_up_to_a_positive_scale_give_exact_moments():
    # x_1 = 2 x_0 exactly after ReLU when the BN outputs are proportional: M[1, 1] = 4 M[0, 0].
    moments = activation_second_moments(
        np.array([0.3, 0.6]), np.array([1.2, 2.4]), np.ones((2, 2)), "relu"
    )
    np.testing.assert_allclose(moments[0, 1], 2 * moments[0, 0], rtol=1e-9)
    np.testing.assert_allclose(moments[1, 1], 4 * moments[0, 0], rtol=1e-9)


def test_filter_correlation_matches_an_explicit_input_covariance():
    rng = np.random.default_rng(3)
    kernel_shape = (3, 3, 4, 5)
    filters = rng.standard_normal((36, 5))
    filters[:, 4] = 0.0  # an all-zero filter
    rho_spatial = 0.7
    # Explicit (36, 36) covariance of the flattened patch: index (ky * 3 + kx) * 4 + c.
    index = np.arange(36)
    tap, channel = index // 4, index % 4
    ky, kx = tap // 3, tap % 3
    distance = np.hypot(ky[:, None] - ky[None, :], kx[:, None] - kx[None, :])
    covariance = np.where(channel[:, None] == channel[None, :], rho_spatial**distance, 0.0)
    output_covariance = filters.T @ covariance @ filters
    live = slice(0, 4)
    scale = np.sqrt(np.diag(output_covariance)[live])
    expected = output_covariance[live, live] / np.outer(scale, scale)
    rho = filter_correlation(filters, kernel_shape, rho_spatial)
    np.testing.assert_allclose(rho[live, live], expected, atol=1e-12)
    np.testing.assert_array_equal(rho[4, :4], 0.0)
    assert rho[4, 4] == 1.0
    # A 1x1 or Dense filter: plain cosine similarity, whatever the spatial correlation.
    dense = filter_correlation(filters[:4], (4, 5), 0.7)
    cosine = filters[:4, :4].T @ filters[:4, :4]
    norms = np.sqrt(np.diag(cosine))
    np.testing.assert_allclose(dense[:4, :4], cosine / np.outer(norms, norms), atol=1e-12)


@pytest.mark.parametrize("duplicate", [False, True])
def test_least_squares_from_moments_equals_lstsq_on_samples(duplicate):
    rng = np.random.default_rng(11)
    x = np.maximum(rng.standard_normal((400, 9)) @ rng.standard_normal((9, 9)), 0.0)
    if duplicate:
        x[:, 1] = x[:, 0]  # a singular Gram matrix: the minimum-norm solution is expected
    kept, pruned = np.array([0, 1, 2, 4, 5, 7]), np.array([3, 6, 8])
    moments = x.T @ x / len(x)
    coefficients = least_squares_from_moments(moments, kept, pruned)
    expected = np.linalg.lstsq(x[:, kept], x[:, pruned], rcond=None)[0]
    np.testing.assert_allclose(coefficients, expected, atol=1e-8)


def test_bad_activation_is_named():
    with pytest.raises(ValueError, match="activation must be one of"):
        activation_second_moments(np.zeros(2), np.ones(2), np.eye(2), "gelu")
