"""Closed-form compensation coefficients (numpy, float64), one function per formula.

Notation (per output channel i of a weight layer followed by BatchNormalization):
gamma_i, beta_i, mu_i, sigma_i = sqrt(moving_variance_i + epsilon); W_i the flattened filter (a column
of the (D, C) filter matrix); R_i = gamma_i * W_i / sigma_i the BN-folded filter; and the BN effective
bias K_i = beta_i - gamma_i * (mu_i - b_i) / sigma_i (b_i the layer's own bias, 0 without one), so that
the BN output is R_i applied to the input plus K_i.
"""

from __future__ import annotations

import numpy as np


def combination_coefficients(
    kept: np.ndarray,
    kept_bias: np.ndarray,
    pruned: np.ndarray,
    pruned_bias: np.ndarray,
    bias_weight: np.ndarray,
) -> np.ndarray:
    """UDFC's pruning compensation: for each pruned channel j, the coefficients s (n,) minimising

        ||R_j - kept @ s||^2 + bias_weight_j * (K_j - kept_bias @ s)^2,

    the minimum-norm solution when the system is rank deficient (as numpy's lstsq gives).

    Args:
      kept: (D, n) BN-folded filters R_i of the n kept channels.
      kept_bias: (n,) their effective biases K_i.
      pruned: (D, p) BN-folded filters R_j of the p pruned channels.
      pruned_bias: (p,) their effective biases K_j.
      bias_weight: (p,) weight of the bias term per pruned channel. UDFC's objective
        ||W_j - sum_i s_i (gamma_i sigma_j)/(sigma_i gamma_j) W_i||^2 + alpha1 (K_j - sum_i s_i K_i)^2
        is (sigma_j/gamma_j)^2 times this one with bias_weight_j = alpha1 * (gamma_j / sigma_j)^2.

    Returns:
      (n, p): column j holds channel j's coefficients.

    Method: one eigendecomposition of the Gram matrix kept^T kept = V diag(lam) V^T per layer serves
    every pruned channel (no D-sized factorisation, so ResNet-50's 3x3 layers take milliseconds).
    Along the span of the eigenvectors with non-negligible lam the normal equations are
    diag(lam) + t^2 q q^T (q = V^T kept_bias), solved by Sherman-Morrison; when kept_bias has a
    component k_N outside that span (typical when n > D, e.g. 1x1 convs), the bias term is met
    exactly along k_N and the weight term by the plain least-squares fit, which is the minimum-norm
    minimiser. Eigenvalues below n * 1e-13 * max(lam) count as zero.
    """
    kept = np.asarray(kept, dtype=np.float64)
    kept_bias = np.asarray(kept_bias, dtype=np.float64)
    pruned = np.asarray(pruned, dtype=np.float64)
    pruned_bias = np.asarray(pruned_bias, dtype=np.float64)
    t2 = np.asarray(bias_weight, dtype=np.float64)
    n = kept.shape[1]
    if pruned.shape[1] == 0 or n == 0:
        return np.zeros((n, pruned.shape[1]))
    eigenvalues, vectors = np.linalg.eigh(kept.T @ kept)
    top = max(float(eigenvalues[-1]), float(t2.max()) * float(kept_bias @ kept_bias), 1e-300)
    keep = eigenvalues > n * 1e-13 * top
    lam, v = eigenvalues[keep], vectors[:, keep]
    projected = v.T @ (kept.T @ pruned)  # (r, p): V^T kept^T R_j
    q = v.T @ kept_bias  # (r,)
    k_null = kept_bias - v @ q  # component outside the span
    null_norm2 = float(k_null @ k_null)
    fit = projected / lam[:, None]  # (r, p) plain least-squares fit in V coordinates
    # Span case, Sherman-Morrison on diag(lam) + t^2 q q^T.
    d_inv_rhs = fit + (t2 * pruned_bias)[None, :] * (q / lam)[:, None]
    d_inv_q = q / lam
    correction = (t2 * (q @ d_inv_rhs) / (1.0 + t2 * (q @ d_inv_q)))[None, :] * d_inv_q[:, None]
    solution = v @ (d_inv_rhs - correction)
    # Null-space case: exact bias match along k_null.
    has_null = t2 * null_norm2 > n * 1e-13 * top
    if np.any(has_null):
        residual = (pruned_bias - q @ fit) / max(null_norm2, 1e-300)
        null_solution = v @ fit + k_null[:, None] * residual[None, :]
        solution[:, has_null] = null_solution[:, has_null]
    return solution


def quantization_scale(
    folded: np.ndarray, folded_quantized: np.ndarray, bias: np.ndarray, alpha2: float
) -> np.ndarray:
    """UDFC's quantization scale per channel m (corrected closed form):

        s_m = (r~_m . r_m + alpha2 K_m^2) / (r~_m . r~_m + alpha2 K_m^2),

    the minimiser of ||r_m - s r~_m||^2 + alpha2 (K_m - s K_m)^2, where r = BN-folded float filter and
    r~ = BN-folded quantized filter (columns of the (D, C) inputs), K the (C,) effective biases.
    A channel whose denominator is 0 (all-zero filter and bias) gets 1.
    """
    folded = np.asarray(folded, dtype=np.float64)
    folded_quantized = np.asarray(folded_quantized, dtype=np.float64)
    bias2 = alpha2 * np.asarray(bias, dtype=np.float64) ** 2
    numerator = np.sum(folded_quantized * folded, axis=0) + bias2
    denominator = np.sum(folded_quantized**2, axis=0) + bias2
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 1.0)


def mixed_precision_coefficients(
    low_folded: np.ndarray,
    folded: np.ndarray,
    low_bias: np.ndarray,
    bias: np.ndarray,
    lambda1: float,
    lambda2: float,
) -> np.ndarray:
    """DF-MPC's per-channel coefficient c_j >= 0:

        c_j = (x^_j . x_j + lambda1 y^_j y_j) / (x^_j . x^_j + lambda1 y^_j^2 + lambda2), clamped at 0,

    the minimiser of ||c x^_j - x_j||^2 + lambda1 (c y^_j - y_j)^2 + lambda2 c^2, with x^ (D, C) the
    BN-folded low-bit filters, x (D, C) the BN-folded float filters, y^ and y (C,) the BN effective
    biases of the low-bit and float layer. A channel whose denominator is 0 gets 1.
    """
    low_folded = np.asarray(low_folded, dtype=np.float64)
    folded = np.asarray(folded, dtype=np.float64)
    low_bias = np.asarray(low_bias, dtype=np.float64)
    bias = np.asarray(bias, dtype=np.float64)
    numerator = np.sum(low_folded * folded, axis=0) + lambda1 * low_bias * bias
    denominator = np.sum(low_folded**2, axis=0) + lambda1 * low_bias**2 + lambda2
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.maximum(np.where(denominator > 0, numerator / safe, 1.0), 0.0)


def merge_partners(
    filters: np.ndarray,
    gamma: np.ndarray,
    sigma: np.ndarray,
    mean: np.ndarray,
    beta: np.ndarray,
    bias: np.ndarray,
    kept: np.ndarray,
    pruned: np.ndarray,
    lamda: float,
    threshold: float,
    convention: str = "algebraic",
    variance: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neuron Merging's one-to-one partner choice for each pruned channel (conv/dense layers with BN).

    For pruned p and kept candidate k: cosine distance d = 1 - cos(W_p, W_k) of the raw filters,
    norm ratio r = ||W_p|| / ||W_k||; scale = r (gamma_p / gamma_k)(sigma_k / sigma_p) with
    "algebraic" (the factor that matches the BN outputs when z_p = r z_k, sigma = sqrt(var + eps)), or
    r (gamma_k / gamma_p)(sigma_p / sigma_k) with sigma = the raw moving variance for "reference"
    (the released code's convention, `variance` required). Bias mismatch: "algebraic" uses
    |K_p - scale K_k|; "reference" the released code's |(gamma_k/sigma_k)(r (mu_p - sigma_p beta_p /
    gamma_p) - mu_k) + beta_k| / scale. The mismatch is min-max normalised over the candidates,
    score = lamda d + (1 - lamda) mismatch, partner = argmin. A pruned channel whose best partner has
    cosine similarity below `threshold` is dropped without merging (partner -1, scale 0).

    Args:
      filters: (D, C) raw filters; gamma, sigma, mean, beta, bias: (C,) BN terms and conv bias.
      kept, pruned: index arrays into the C channels.

    Returns:
      (partner (p,) positions into `kept` or -1, scale (p,), cosine similarity (p,) of the partner).
    """
    filters = np.asarray(filters, dtype=np.float64)
    norms = np.linalg.norm(filters, axis=0)
    safe_norms = np.where(norms > 0, norms, 1.0)
    unit = filters / safe_norms
    cosine = unit[:, pruned].T @ unit[:, kept]  # (p, n)
    distance = 1.0 - cosine
    ratio = norms[pruned][:, None] / safe_norms[kept][None, :]
    gp, gk = gamma[pruned][:, None], gamma[kept][None, :]
    mu_p, mu_k = (mean - bias)[pruned][:, None], (mean - bias)[kept][None, :]
    bp, bk = beta[pruned][:, None], beta[kept][None, :]
    if convention == "algebraic":
        sp, sk = sigma[pruned][:, None], sigma[kept][None, :]
        scale = ratio * (gp / _nonzero(gk)) * (sk / _nonzero(sp))
        k_p = bp - gp * mu_p / sp
        k_k = bk - gk * mu_k / sk
        mismatch = np.abs(k_p - scale * k_k)
    elif convention == "reference":
        if variance is None:
            raise ValueError("convention='reference' needs the raw moving variance")
        sp, sk = variance[pruned][:, None], variance[kept][None, :]
        scale = ratio * (gk / _nonzero(gp)) * (sp / _nonzero(sk))
        mismatch = np.abs((gk / sk) * (ratio * (mu_p - sp * bp / _nonzero(gp)) - mu_k) + bk)
        mismatch = mismatch / np.where(scale != 0, np.abs(scale), 1.0)
    else:
        raise ValueError(f"convention must be 'algebraic' or 'reference', got {convention!r}")
    low = mismatch.min(axis=1, keepdims=True)
    span = mismatch.max(axis=1, keepdims=True) - low
    normalised = (mismatch - low) / np.where(span > 0, span, 1.0)
    score = lamda * distance + (1.0 - lamda) * normalised
    partner = np.argmin(score, axis=1)
    rows = np.arange(len(pruned))
    similarity = cosine[rows, partner]
    chosen_scale = scale[rows, partner]
    merged = similarity >= threshold
    return np.where(merged, partner, -1), np.where(merged, chosen_scale, 0.0), similarity


def _nonzero(values: np.ndarray) -> np.ndarray:
    return np.where(values != 0, values, np.finfo(np.float64).tiny)
