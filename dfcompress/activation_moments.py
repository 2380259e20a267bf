"""Data-free second moments of a layer's channels after its BatchNormalization and activation.

UDFC rebuilds a pruned channel j as a linear combination sum_i s_i x_i of the kept channels. What the
next layer reads is the *activated* channel x = f(BN output); the paper's objective compares channels
before f, and a combination that is exact there can be far off after a ReLU (ReLU(a - b) is not
ReLU(a) - ReLU(b)). This module gives the expected products E[x_i x_k] of the activated channels,
without data, so that the combination can be fitted where the next layer reads it:

    min_s E[(x_j - sum_i s_i x_i)^2]  <=>  M_KK s = M_Kj,  M = E[x x^T].

The model (every quantity comes from the layer's weights and BN statistics):

- The BN output of channel i is Gaussian with mean beta_i and standard deviation |gamma_i|: what
  BN's normalisation makes of its input when the running statistics describe it (the exact factor
  sqrt(var_i / (var_i + epsilon)) is left out, so that two channels whose BN outputs are exact
  multiples of each other, as the paper's error terms define them, stay exact multiples here).
- The correlation of channels i and k is that of their (BN-folded) filters R applied to an input with
  correlation C: rho_ik = R_i^T C R_k / sqrt(R_i^T C R_i R_k^T C R_k). Input channels are taken as
  independent, and the taps of a KxK filter as correlated by `spatial_correlation ** d`, d the
  distance between the taps in pixels: neighbouring pixels of images and of CNN feature maps are
  strongly correlated, and that matters (measured on Fashion-MNIST models, docs/compression.md).
  A Dense or 1x1 filter has C = I.
- f is the identity, ReLU or ReLU6. E[f(U) f(V)] for jointly Gaussian U, V is an integral over U's
  standard score z of f(u(z)) E[f(V) | z]; the inner expectation has a closed form (a rectified
  Gaussian), the outer one is computed by Gauss-Legendre quadrature on each piece where f is linear
  or constant (48 nodes each, on [-8, 8] standard deviations). The tests check it against
  Monte-Carlo estimates from 10^6 samples (agreement within their sampling error). A layer of 512
  channels takes about 0.3 s.
"""

from __future__ import annotations

import numpy as np

# Outer integration range in standard deviations, and Gauss-Legendre nodes per linear piece.
_RANGE = 8.0
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(48)
_SQRT2 = np.sqrt(2.0)
ACTIVATIONS = ("identity", "relu", "relu6")


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7): numpy has no erf, and SciPy is not a
    # dependency of the project.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, elementwise (absolute error < 1e-7)."""
    return 0.5 * (1.0 + _erf(np.asarray(x, dtype=np.float64) / _SQRT2))


def normal_pdf(x: np.ndarray) -> np.ndarray:
    """Standard normal density, elementwise."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)


def _relu_mean(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """E[max(Y, 0)] for Y ~ N(mean, std^2), elementwise; std may be 0."""
    positive = std > 0
    safe = np.where(positive, std, 1.0)
    ratio = mean / safe
    smooth = mean * normal_cdf(ratio) + safe * normal_pdf(ratio)
    return np.where(positive, smooth, np.maximum(mean, 0.0))


def activation_mean(mean: np.ndarray, std: np.ndarray, activation: str) -> np.ndarray:
    """E[f(Y)] for Y ~ N(mean, std^2), f = `activation` ("identity", "relu" or "relu6")."""
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    if activation == "identity":
        return mean
    if activation == "relu":
        return _relu_mean(mean, std)
    if activation == "relu6":
        return _relu_mean(mean, std) - _relu_mean(mean - 6.0, std)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def _pieces(mean: float, std: float, activation: str) -> list[tuple[float, float, float, float]]:
    """(z_low, z_high, offset, slope) for each piece of z -> f(mean + std z) on [-R, R] that is not
    identically 0, f = ReLU or ReLU6: f = offset + slope * z there."""
    if std <= 0:
        value = float(activation_mean(np.array(mean), np.array(0.0), activation))
        return [(-_RANGE, _RANGE, value, 0.0)] if value != 0.0 else []
    top = (6.0 - mean) / std if activation == "relu6" else np.inf
    pieces = []
    low, high = max(-mean / std, -_RANGE), min(top, _RANGE)
    if low < high:
        pieces.append((low, high, mean, std))
    if activation == "relu6" and max(top, -_RANGE) < _RANGE:
        pieces.append((max(top, -_RANGE), _RANGE, 6.0, 0.0))
    return pieces


def activation_second_moments(
    mean: np.ndarray, std: np.ndarray, correlation: np.ndarray, activation: str
) -> np.ndarray:
    """M (C, C) with M[i, k] = E[f(Y_i) f(Y_k)] for jointly Gaussian Y (C,) with the given means,
    standard deviations and (C, C) correlation matrix, f = `activation`.

    Exact for the identity (mean_i mean_k + std_i std_k rho_ik); for ReLU and ReLU6 see the module
    docstring. The result is symmetrised ((M + M^T) / 2).
    """
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    rho = np.clip(np.asarray(correlation, dtype=np.float64), -1.0, 1.0)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if activation == "identity":
        return np.outer(mean, mean) + np.outer(std, std) * rho
    channels = len(mean)
    moments = np.zeros((channels, channels))
    for i in range(channels):
        for low, high, offset, slope in _pieces(float(mean[i]), float(std[i]), activation):
            z = 0.5 * (high - low) * _NODES + 0.5 * (high + low)  # (q,)
            w = 0.5 * (high - low) * _WEIGHTS * normal_pdf(z)
            outer = (offset + slope * z) * w  # (q,)
            # Y_k given z: N(mean_k + std_k rho_ik z, std_k^2 (1 - rho_ik^2)).
            conditional_mean = mean[:, None] + (std * rho[i])[:, None] * z[None, :]
            conditional_std = (std * np.sqrt(np.maximum(1.0 - rho[i] ** 2, 0.0)))[:, None]
            conditional_std = np.broadcast_to(conditional_std, conditional_mean.shape)
            inner = activation_mean(conditional_mean, conditional_std, activation)  # (C, q)
            moments[i] += inner @ outer
    return 0.5 * (moments + moments.T)


def filter_correlation(
    folded: np.ndarray, kernel_shape: tuple[int, ...], spatial_correlation: float
) -> np.ndarray:
    """rho (C, C): correlation of the outputs of the (D, C) BN-folded filters `folded` of a layer
    whose kernel has `kernel_shape`, for an input whose channels are independent with equal variance
    and whose pixels at distance d correlate by spatial_correlation ** d (Conv2D kernels
    (K, K, Cin, C); any other shape is taken as a Dense/1x1 filter over independent inputs).
    Channels with an all-zero filter get correlation 0 with every other channel (and 1 with
    themselves)."""
    folded = np.asarray(folded, dtype=np.float64)
    if len(kernel_shape) == 4 and kernel_shape[0] * kernel_shape[1] > 1:
        kh, kw, cin, channels = kernel_shape
        rows, cols = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")
        taps = np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float64)
        distance = np.sqrt(((taps[:, None, :] - taps[None, :, :]) ** 2).sum(axis=-1))
        tap_correlation = float(spatial_correlation) ** distance  # (K*K, K*K)
        per_tap = folded.reshape(kh * kw, cin, channels)
        mixed = np.einsum("pq,qcn->pcn", tap_correlation, per_tap)
        covariance = np.einsum("pcm,pcn->mn", per_tap, mixed)
    else:
        covariance = folded.T @ folded
    scale = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    nonzero = scale > 0
    safe = np.where(nonzero, scale, 1.0)
    rho = covariance / safe[:, None] / safe[None, :]
    rho[~nonzero, :] = 0.0
    rho[:, ~nonzero] = 0.0
    np.fill_diagonal(rho, 1.0)
    return np.clip(rho, -1.0, 1.0)


def least_squares_from_moments(
    moments: np.ndarray, kept: np.ndarray, pruned: np.ndarray
) -> np.ndarray:
    """(len(kept), len(pruned)): column j minimises E[(x_j - sum_i s_i x_i)^2] given the second
    moments M = E[x x^T]: the minimum-norm solution of M[kept, kept] s = M[kept, j] (eigenvalues below
    1e-10 of the largest count as zero, so redundant kept channels are fine)."""
    gram = moments[np.ix_(kept, kept)]
    rhs = moments[np.ix_(kept, pruned)]
    if gram.size == 0 or rhs.size == 0:
        return np.zeros((len(kept), len(pruned)))
    eigenvalues, vectors = np.linalg.eigh(gram)
    keep = eigenvalues > 1e-10 * max(float(eigenvalues[-1]), 1e-300)
    lam, v = eigenvalues[keep], vectors[:, keep]
    return v @ ((v.T @ rhs) / lam[:, None])
