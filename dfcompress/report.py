"""What a compression method did: per-layer bits, channels and compensation, skipped places, totals."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class LayerReport:
    """One weight layer after compression.

    `bits` None means float32. `role` says what the method did to the layer (e.g. "pruned",
    "quantized", "low", "high"). `compensation` holds summary statistics of the coefficients the
    method computed for this layer (e.g. mean/min/max of UDFC's scale, DF-MPC's c).
    """

    name: str
    kind: str
    bits: int | None
    quantizer: str | None
    channels_before: int
    channels_after: int
    role: str
    compensation: dict[str, float] = field(default_factory=dict)


@dataclass
class CompressionReport:
    """Returned with every compressed model.

    `layer_bits` maps every conv/dense layer name to its bit width (None = float32), and
    `layer_quantizers` to the quantizer name used, so that
    `quantize_weights(model, bits=report.layer_bits, quantizer=report.layer_quantizers)` applies the
    same assignment without compensation. Sizes are MiB (2^20 bytes) with kernels at their bits and
    all other numbers at 32 bits; FLOPs are multiply-accumulates per image; `seconds` is wall time.
    """

    method: str
    settings: dict[str, Any]
    layers: list[LayerReport]
    skipped: list[tuple[str, str]]
    layer_bits: dict[str, int | None]
    layer_quantizers: dict[str, str | None]
    params_before: int
    params_after: int
    flops_before: int
    flops_after: int
    size_mb_before: float
    size_mb_after: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary of the whole report."""
        data = asdict(self)
        data["skipped"] = [list(item) for item in self.skipped]
        return data

    def format_table(self) -> str:
        """The per-layer table, skipped places with reasons, and model totals, as text."""
        settings = ", ".join(f"{key}={value!r}" for key, value in self.settings.items())
        lines = [f"{self.method}({settings})"]
        header = (
            f"{'layer':<30} {'kind':<16} {'bits':>4} {'channels':>9}  {'role':<30} compensation"
        )
        lines += [header, "-" * len(header)]
        for layer in self.layers:
            bits = "fp32" if layer.bits is None else str(layer.bits)
            channels = f"{layer.channels_after}/{layer.channels_before}"
            stats = " ".join(f"{k}={v:.4g}" for k, v in layer.compensation.items())
            lines.append(
                f"{layer.name:<30} {layer.kind:<16} {bits:>4} {channels:>9}  {layer.role:<30} {stats}"
            )
        if self.skipped:
            lines.append("skipped:")
            lines += [f"  {place}: {reason}" for place, reason in self.skipped]
        lines.append(
            f"parameters {self.params_before:,} -> {self.params_after:,} "
            f"({_ratio(self.params_after, self.params_before)}); "
            f"FLOPs (MACs/image) {self.flops_before:,} -> {self.flops_after:,} "
            f"({_ratio(self.flops_after, self.flops_before)})"
        )
        lines.append(
            f"size {self.size_mb_before:.3f} MiB (float32) -> {self.size_mb_after:.3f} MiB at the "
            f"stated bits ({_ratio(self.size_mb_after, self.size_mb_before)}); "
            f"time {self.seconds:.2f} s"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


def _ratio(after: float, before: float) -> str:
    return f"{100.0 * after / before:.1f} %" if before else "n/a"


def summary(values) -> dict[str, float]:
    """mean/min/max of a coefficient array (empty dict for no values)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return {}
    return {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}
