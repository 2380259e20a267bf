"""Weight quantizers, selected by name. Each returns float weights that lie exactly on its grid.

Grids (m = max|W| over the tensor, or over one output channel with per_channel=True; the output
channel is the last kernel axis):

* ``"dorefa"`` (k bits, k >= 1), the uniform quantizer of the UDFC and DF-MPC papers, with the scale
  restored: Q(W) = m * (2 / (2^k - 1) * round((2^k - 1) * (W / (2m) + 1/2)) - 1). Levels
  m * (2i / (2^k - 1) - 1), i = 0 .. 2^k - 1: 2^k evenly spaced values from -m to m, symmetric, and
  **no exact zero** (2 bits: -m, -m/3, m/3, m). Zero weights become +-m/(2^k - 1).
* ``"twn"``, ternary weight networks (DF-MPC's "2-bit"): threshold D = 0.7 * mean|W|, scale
  a = mean of |W| over the weights with |W| > D, levels {-a, 0, a} (|W| <= D goes to 0). Only
  ``bits=2``. The scale is kept in the weights (equivalently absorbed by the next BatchNormalization).
* ``"symmetric"`` (k bits, k >= 2), zero-preserving: step s = m / (2^(k-1) - 1), levels
  s * j for integer j in [-(2^(k-1) - 1), 2^(k-1) - 1] (2^k - 1 levels). Zero maps to exactly zero,
  so block-sparse kernels stay block-sparse, and for k <= 8 the levels are int8 values times s.

An all-zero tensor (or channel) quantizes to zeros under every quantizer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Quantizer:
    """Base class: `quantize(weights, bits)` returns an array of the same shape on `grid(...)`."""

    name: str = ""
    per_channel: bool = False

    def check_bits(self, bits: int) -> None:
        raise NotImplementedError

    def quantize(self, weights: np.ndarray, bits: int) -> np.ndarray:
        """Quantize a kernel (any shape; output channels on the last axis when per_channel)."""
        self.check_bits(bits)
        weights = np.asarray(weights, dtype=np.float64)
        if not self.per_channel:
            return self._quantize(weights.reshape(-1, 1), bits).reshape(weights.shape)
        columns = weights.reshape(-1, weights.shape[-1])
        return self._quantize(columns, bits).reshape(weights.shape)

    def _quantize(self, columns: np.ndarray, bits: int) -> np.ndarray:
        """Quantize each column of a (D, C) matrix with its own scale."""
        raise NotImplementedError

    def grid(self, weights: np.ndarray, bits: int) -> np.ndarray:
        """The sorted levels available to `weights` (per-tensor quantizers only)."""
        raise NotImplementedError


def _max_abs(columns: np.ndarray) -> np.ndarray:
    return np.max(np.abs(columns), axis=0, keepdims=True) if columns.size else np.zeros((1, 1))


@dataclass(frozen=True)
class DoReFaQuantizer(Quantizer):
    """k-bit DoReFa uniform quantizer with the max|W| scale restored (grid without zero)."""

    name: str = "dorefa"

    def check_bits(self, bits: int) -> None:
        _check_int_bits(bits, 1, 16, self.name)

    def _quantize(self, columns: np.ndarray, bits: int) -> np.ndarray:
        scale = _max_abs(columns)
        levels = 2.0**bits - 1.0
        safe = np.where(scale > 0, scale, 1.0)
        unit = 2.0 / levels * np.round(levels * (columns / (2.0 * safe) + 0.5)) - 1.0
        return np.where(scale > 0, unit * scale, 0.0)

    def grid(self, weights: np.ndarray, bits: int) -> np.ndarray:
        self.check_bits(bits)
        scale = float(np.max(np.abs(weights)))
        levels = 2**bits - 1
        return scale * (2.0 * np.arange(levels + 1) / levels - 1.0)


@dataclass(frozen=True)
class TernaryQuantizer(Quantizer):
    """TWN ternary quantizer: {-a, 0, a} with threshold 0.7 * mean|W|."""

    name: str = "twn"

    def check_bits(self, bits: int) -> None:
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits != 2:
            raise ValueError(f"bits: the 'twn' ternary quantizer is 2-bit only, got {bits!r}")

    def thresholds(self, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(threshold D, scale a) per column."""
        magnitude = np.abs(columns)
        threshold = 0.7 * np.mean(magnitude, axis=0, keepdims=True)
        above = magnitude > threshold
        count = np.maximum(above.sum(axis=0, keepdims=True), 1)
        scale = np.where(above, magnitude, 0.0).sum(axis=0, keepdims=True) / count
        return threshold, scale

    def _quantize(self, columns: np.ndarray, bits: int) -> np.ndarray:
        threshold, scale = self.thresholds(columns)
        return np.where(np.abs(columns) > threshold, np.sign(columns) * scale, 0.0)

    def grid(self, weights: np.ndarray, bits: int) -> np.ndarray:
        self.check_bits(bits)
        _, scale = self.thresholds(np.asarray(weights, dtype=np.float64).reshape(-1, 1))
        a = float(scale[0, 0])
        return np.array([-a, 0.0, a])


@dataclass(frozen=True)
class SymmetricQuantizer(Quantizer):
    """Zero-preserving symmetric uniform quantizer: step max|W| / (2^(k-1) - 1), zero kept."""

    name: str = "symmetric"

    def check_bits(self, bits: int) -> None:
        _check_int_bits(bits, 2, 16, self.name)

    def _quantize(self, columns: np.ndarray, bits: int) -> np.ndarray:
        top = 2.0 ** (bits - 1) - 1.0
        scale = _max_abs(columns)
        step = np.where(scale > 0, scale / top, 1.0)
        return np.clip(np.round(columns / step), -top, top) * step * (scale > 0)

    def grid(self, weights: np.ndarray, bits: int) -> np.ndarray:
        self.check_bits(bits)
        top = 2 ** (bits - 1) - 1
        return float(np.max(np.abs(weights))) / top * np.arange(-top, top + 1)


def _check_int_bits(bits: int, low: int, high: int, name: str) -> None:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"bits must be an int, got {type(bits).__name__}")
    if not low <= bits <= high:
        raise ValueError(f"bits: the {name!r} quantizer takes {low}..{high} bits, got {bits}")


_BY_NAME = {
    "dorefa": DoReFaQuantizer(),
    "dorefa_per_channel": DoReFaQuantizer(name="dorefa_per_channel", per_channel=True),
    "twn": TernaryQuantizer(),
    "symmetric": SymmetricQuantizer(),
    "symmetric_per_channel": SymmetricQuantizer(name="symmetric_per_channel", per_channel=True),
}
QUANTIZER_NAMES = tuple(_BY_NAME)


def get_quantizer(quantizer: str | Quantizer, argument: str = "quantizer") -> Quantizer:
    """The quantizer called `quantizer` (one of `QUANTIZER_NAMES`), or `quantizer` itself."""
    if isinstance(quantizer, Quantizer):
        return quantizer
    if not isinstance(quantizer, str):
        raise TypeError(f"{argument} must be a quantizer name, got {type(quantizer).__name__}")
    if quantizer not in _BY_NAME:
        raise ValueError(f"{argument} must be one of {QUANTIZER_NAMES}, got {quantizer!r}")
    return _BY_NAME[quantizer]
