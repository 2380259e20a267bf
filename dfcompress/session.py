"""The scaffolding every method shares: validate, analyse, edit, rebuild, report, time."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from dfcompress.accounting import count_flops, count_params, model_size_mb
from dfcompress.editing import ModelEditor
from dfcompress.graph import Site, analyse
from dfcompress.report import CompressionReport, LayerReport
from dfcompress.selection import select_channels
from dfcompress.validation import check_model


class CompressionSession:
    """One run of a method on one model: its graph, editor, per-layer records and clock."""

    def __init__(self, method: str, model: keras.Model, settings: dict[str, Any]):
        check_model(model)
        self.started = time.perf_counter()
        self.method = method
        self.settings = settings
        self.model = model
        self.graph = analyse(model)
        self.editor = ModelEditor(self.graph)
        self.layers: dict[str, LayerReport] = {}
        for name in self.graph.weight_layers:
            layer = self.graph.layer(name)
            channels = int(layer.output.shape[-1])
            self.layers[name] = LayerReport(
                name, type(layer).__name__, None, None, channels, channels, "unchanged"
            )
        self.skipped: list[tuple[str, str]] = list(self.graph.skipped)

    def plan_pruning(
        self, prune_ratio: float, criterion: str, layers: Sequence[str] | None = None
    ) -> dict[str, tuple[Site, np.ndarray, np.ndarray]]:
        """(site, kept, pruned) for every prunable site with at least one channel to prune.

        Channels are ranked on the original model's filters, so every pruning method (plain,
        Neuron Merging, UDFC) removes exactly the same channels. `layers` (names of weight layers)
        restricts pruning to those layers; a name that is not a weight layer of the model, or a
        layer that cannot be pruned, raises ValueError with the reason.
        """
        sites = self.graph.prunable_sites()
        if layers is not None:
            sites = self._restrict(sites, layers)
        plan = {}
        for site in sites:
            kept, pruned = select_channels(
                self.editor.filters(site.producer), prune_ratio, criterion
            )
            if len(pruned):
                plan[site.producer] = (site, kept, pruned)
        if not plan:
            reasons = "; ".join(f"{place}: {reason}" for place, reason in self.skipped) or "none"
            raise ValueError(
                f"nothing to prune at prune_ratio={prune_ratio}: no Conv2D/Dense -> "
                f"BatchNormalization -> (ReLU) -> Conv2D/Dense chain with a channel to remove. "
                f"Skipped places: {reasons}"
            )
        return plan

    def _restrict(self, sites: list[Site], layers: Sequence[str]) -> list[Site]:
        if isinstance(layers, str) or not all(isinstance(name, str) for name in layers):
            raise ValueError(f"layers must be a sequence of layer names, got {layers!r}")
        wanted = list(dict.fromkeys(layers))
        if not wanted:
            raise ValueError("layers is empty: name at least one layer to prune")
        unknown = [name for name in wanted if name not in self.graph.sites]
        if unknown:
            raise ValueError(
                f"layers: {unknown} are not Conv2D/Dense layers of the model "
                f"(its weight layers: {list(self.graph.weight_layers)})"
            )
        refused = [
            f"{name} ({self.graph.sites[name].reason or 'not prunable'})"
            for name in wanted
            if not self.graph.sites[name].prunable
        ]
        if refused:
            raise ValueError(f"layers: cannot prune {'; '.join(refused)}")
        return [site for site in sites if site.producer in wanted]

    def set_bits(self, name: str, bits: int | None, quantizer: str | None) -> None:
        self.layers[name].bits = bits
        self.layers[name].quantizer = quantizer if bits is not None else None

    def mark(self, name: str, role: str, **statistics: float) -> None:
        record = self.layers[name]
        record.role = role if record.role == "unchanged" else f"{record.role}+{role}"
        record.compensation.update(statistics)

    def finish(self) -> tuple[keras.Model, CompressionReport]:
        compressed = self.editor.build()
        for name, count in self.editor.channel_counts.items():
            self.layers[name].channels_after = count
        layer_bits = {name: record.bits for name, record in self.layers.items()}
        layer_quantizers = {name: record.quantizer for name, record in self.layers.items()}
        report = CompressionReport(
            method=self.method,
            settings=self.settings,
            layers=list(self.layers.values()),
            skipped=self.skipped,
            layer_bits=layer_bits,
            layer_quantizers=layer_quantizers,
            params_before=count_params(self.model),
            params_after=count_params(compressed),
            flops_before=count_flops(self.model),
            flops_after=count_flops(compressed),
            size_mb_before=model_size_mb(self.model),
            size_mb_after=model_size_mb(compressed, layer_bits),
            seconds=0.0,
        )
        report.seconds = time.perf_counter() - self.started
        return compressed, report
