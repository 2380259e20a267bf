"""Sparsity and FLOPs reports in the SUBP paper's accounting (plus actual counts).

Vocabulary (shared with the rest of the project): a block is N consecutive output channels x
one input channel x the whole Kh x Kw window; a layer's Cout channels form G = Cout / N output
groups of Cin blocks each. Per layer, `kept_blocks_per_group` lists the kept (non-zero) blocks
of every group, `kept_blocks_min` / `kept_blocks_max` are its extremes, `balance_ratio` is
max / mean of it (1.0 when every group keeps as many blocks, as SUBP guarantees) and
`block_sparsity` is the fraction of the layer's G x Cin blocks that are pruned.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from keras_subp.block_geometry import kernel_to_blocks, validate_block_n
from keras_subp.block_mask_wrapper import BlockMaskWrapper
from keras_subp.keras_compat import call_output_tensors
from keras_subp.model_walk import iter_leaf_layers


@dataclass(frozen=True)
class LayerFlops:
    """Multiply-accumulates per image of one layer (SUBP counts them as "FLOPs").

    `dense`: (Kh*Kw*Cin/groups + 1) * Cout * Hout * Wout for convolutions (the +1 is the bias
    of a BN-folded conv), in*out + out for Dense. `subp`: dense * (1 - p) for sparse layers with
    the nominal p, as the SUBP paper counts. `actual`: Kh*Kw*N*(kept blocks) * Hout*Wout +
    Cout*Hout*Wout with the layer's current mask (equal to `dense` for dense layers).
    """

    name: str
    dense: int
    subp: float
    actual: int


@dataclass(frozen=True)
class FlopsCount:
    """Model totals (per image) and the per-layer breakdown; see `LayerFlops`."""

    dense: int
    subp: float
    actual: int
    layers: tuple[LayerFlops, ...]


@dataclass(frozen=True)
class LayerSparsity:
    """One row of `sparsity_report`: one block-sparse layer (see the module docstring for the
    meaning of block, output group and the per-group statistics)."""

    name: str
    kernel_shape: tuple[int, int, int, int]  # (Kh, Kw, Cin, Cout)
    n: int  # block length N
    nominal_sparsity: float | None  # p given at pruning time (None for a plain, stripped conv)
    kept_blocks_per_group: tuple[int, ...]  # G entries: kept blocks of output group g, <= Cin
    block_sparsity: float  # pruned blocks / (G * Cin)
    kept_blocks_min: int  # min over groups of kept_blocks_per_group
    kept_blocks_max: int  # max over groups of kept_blocks_per_group
    balance_ratio: float  # kept_blocks_max / mean(kept_blocks_per_group); exactly 1.0 for SUBP
    dense_flops: int
    sparse_flops: float  # SUBP accounting: dense_flops * (1 - nominal p)
    actual_flops: int


def _spatial_output_size(layer) -> int:
    """Output positions per image, summed over every call of the layer in the model (a layer
    shared between several call sites computes once per call)."""
    shapes = [tensor.shape for tensor in call_output_tensors(layer)]
    if not shapes:
        try:
            shapes = [layer.output.shape]
        except (AttributeError, ValueError) as error:
            raise ValueError(
                f"Cannot count FLOPs of layer {layer.name!r}: its output shape is unknown. Build "
                "the model from a keras.Input (or call it once) first."
            ) from error
    data_format = getattr(getattr(layer, "layer", layer), "data_format", "channels_last")
    positions = 0
    for shape in shapes:
        spatial = shape[1:-1] if data_format == "channels_last" else shape[2:]
        if any(d is None for d in spatial):
            raise ValueError(
                f"Layer {layer.name!r} has unknown spatial output size {tuple(shape)}."
            )
        positions += int(np.prod(spatial)) if spatial else 1
    return positions


def _unwrapped(layer):
    """The Conv2D inside a block-mask wrapper, or the layer itself."""
    return layer.layer if isinstance(layer, BlockMaskWrapper) else layer


def _block_n(layer, n: int | None) -> int | None:
    """The block length to count `layer` in: a wrapper's own N, else the caller's `n`."""
    return layer.n if isinstance(layer, BlockMaskWrapper) else n


def _kept_blocks_per_group(layer, n: int | None) -> np.ndarray | None:
    """(G,) kept blocks per output group, from a wrapper's mask or a plain kernel's zeros
    (None when the layer is not counted in blocks of `n`)."""
    if isinstance(layer, BlockMaskWrapper):
        return layer.kept_blocks_per_group()
    if n is not None and isinstance(layer, keras.layers.Conv2D) and layer.filters % n == 0:
        if getattr(layer, "groups", 1) != 1:
            return None
        blocks = ops.convert_to_numpy(kernel_to_blocks(layer.kernel, n))
        return np.any(blocks != 0, axis=-1).sum(axis=1).astype(np.int64)
    return None


def _layer_flops(layer, n: int | None) -> tuple[LayerFlops, np.ndarray | None] | None:
    """The layer's FLOPs and its kept blocks per group (None for a layer not in blocks), or None
    for a layer that does no multiply-accumulates."""
    inner = _unwrapped(layer)
    if isinstance(inner, keras.layers.SeparableConv2D):
        depthwise = inner.depthwise_kernel.numpy().shape
        pointwise = inner.pointwise_kernel.numpy().shape
        positions = _spatial_output_size(layer)
        # Depthwise part counted on the output grid too (same size for stride 1 / "same").
        dense = (depthwise[0] * depthwise[1] + 1) * depthwise[2] * depthwise[3] * positions
        dense += (pointwise[2] + 1) * pointwise[3] * positions
        return LayerFlops(layer.name, dense, float(dense), dense), None
    if isinstance(inner, keras.layers.DepthwiseConv2D):
        kh, kw, channels, multiplier = (int(d) for d in inner.kernel.shape)
        dense = (kh * kw + 1) * channels * multiplier * _spatial_output_size(layer)
        return LayerFlops(layer.name, dense, float(dense), dense), None
    if isinstance(inner, keras.layers.Conv2D):
        kh, kw, input_channels, output_channels = (int(d) for d in inner.kernel.shape)
        positions = _spatial_output_size(layer)
        dense = (kh * kw * input_channels + 1) * output_channels * positions
        block_n = _block_n(layer, n)
        kept = _kept_blocks_per_group(layer, block_n)
        if kept is None:
            return LayerFlops(layer.name, dense, float(dense), dense), None
        actual = (kh * kw * block_n * int(kept.sum()) + output_channels) * positions
        subp = (
            dense * (1.0 - layer.sparsity) if isinstance(layer, BlockMaskWrapper) else float(actual)
        )
        return LayerFlops(layer.name, dense, subp, actual), kept
    if isinstance(inner, keras.layers.Dense):
        input_units, units = (int(d) for d in inner.kernel.shape)
        shape = layer.output.shape
        repeats = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
        dense = (input_units * units + units) * repeats
        return LayerFlops(layer.name, dense, float(dense), dense), None
    return None


def _check_model_and_n(model, n: int | None) -> None:
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Expected a Keras model, got {type(model).__name__}; pass the model holding the layer."
        )
    if n is not None:
        validate_block_n(n)


def count_flops(model, n: int | None = None) -> FlopsCount:
    """Count per-image multiply-accumulates of convolutions and Dense layers (SUBP accounting).

    Only Conv2D, DepthwiseConv2D, SeparableConv2D and Dense are counted (BN, activations and
    pooling are free, as in SUBP's `compute_flops.py`). SUBP/1xN wrappers count
    dense * (1 - p) in `subp` and their real kept blocks in `actual`. For a stripped model pass
    `n` to count plain Conv2D layers' non-zero 1xN blocks in `actual` (and `subp`).

    Args:
        model: a built Sequential or Functional model.
        n: block length for plain Conv2D layers, or None to count them dense.

    Returns:
        `FlopsCount` with model totals and per-layer `LayerFlops`.
    """
    _check_model_and_n(model, n)
    rows = []
    for layer in iter_leaf_layers(model):
        counted = _layer_flops(layer, n)
        if counted is not None:
            rows.append(counted[0])
    return FlopsCount(
        dense=sum(row.dense for row in rows),
        subp=float(sum(row.subp for row in rows)),
        actual=sum(row.actual for row in rows),
        layers=tuple(rows),
    )


@dataclass(frozen=True)
class ParameterCount:
    """Model parameters in SUBP's accounting (`print_model_param_nums`).

    `dense`: all weights as PyTorch's `parameters()` counts them (BatchNorm moving statistics,
    masks and SUBP state excluded). `subp`: the kernels of 1xN layers count dense * (1 - p), everything else in
    full. `actual`: those kernels count their real non-zero 1xN blocks (K*K*N weights each).
    """

    dense: int
    subp: float
    actual: int

    @property
    def sparse_ratio(self) -> float:
        """1 - subp / dense, SUBP's "sparse ratio"."""
        return 1.0 - self.subp / self.dense if self.dense else 0.0


def _parameters(layer) -> list:
    """The layer's weights that PyTorch would count as parameters (not BatchNorm buffers)."""
    if isinstance(layer, keras.layers.BatchNormalization):
        buffers = {id(layer.moving_mean), id(layer.moving_variance)}
        return [w for w in layer.weights if id(w) not in buffers]
    return list(layer.weights)


def count_parameters(model, n: int | None = None) -> ParameterCount:
    """Count parameters in SUBP's accounting; `n` as in `count_flops` (plain Conv2D layers of a
    stripped model count their non-zero 1xN blocks in `actual` and `subp`)."""
    _check_model_and_n(model, n)
    dense = subp = actual = 0
    for layer in iter_leaf_layers(model):
        inner = _unwrapped(layer)
        weights = sum(int(np.prod(w.shape)) for w in _parameters(inner))
        dense += weights
        block_n = _block_n(layer, n)
        kept = _kept_blocks_per_group(layer, block_n)
        if kept is None or not isinstance(inner, keras.layers.Conv2D):
            subp += weights
            actual += weights
            continue
        kh, kw, _, _ = (int(d) for d in inner.kernel.shape)
        kernel_weights = int(np.prod(inner.kernel.shape))
        kept_weights = kh * kw * block_n * int(kept.sum())
        others = weights - kernel_weights
        actual += others + kept_weights
        if isinstance(layer, BlockMaskWrapper):
            subp += others + kernel_weights * (1.0 - layer.sparsity)
        else:
            subp += others + kept_weights
    return ParameterCount(dense=dense, subp=float(subp), actual=actual)


def sparsity_report(model, n: int | None = None) -> list[LayerSparsity]:
    """Per-layer 1xN sparsity of every block-sparse layer of `model`.

    Rows cover SUBP wrappers and 1xN baseline wrappers (with their current masks) and, when
    `n` is given, plain Conv2D layers with Cout % n == 0 (blocks that are entirely zero count
    as pruned), which is how a stripped model is checked.
    """
    _check_model_and_n(model, n)
    rows = []
    for layer in iter_leaf_layers(model):
        if not (
            isinstance(layer, BlockMaskWrapper)
            or (n is not None and isinstance(layer, keras.layers.Conv2D))
        ):
            continue
        counted = _layer_flops(layer, n)
        if counted is None or counted[1] is None:
            continue
        flops, kept = counted
        kernel_shape = tuple(int(d) for d in _unwrapped(layer).kernel.shape)
        input_channels = kernel_shape[2]
        mean_kept = float(kept.mean())
        rows.append(
            LayerSparsity(
                name=layer.name,
                kernel_shape=kernel_shape,
                n=_block_n(layer, n),
                nominal_sparsity=layer.sparsity if isinstance(layer, BlockMaskWrapper) else None,
                kept_blocks_per_group=tuple(int(k) for k in kept),
                block_sparsity=1.0 - float(kept.sum()) / (kept.size * input_channels),
                kept_blocks_min=int(kept.min()),
                kept_blocks_max=int(kept.max()),
                balance_ratio=float(kept.max()) / mean_kept if mean_kept > 0 else float("nan"),
                dense_flops=flops.dense,
                sparse_flops=flops.subp,
                actual_flops=flops.actual,
            )
        )
    if not rows and n is not None:
        warnings.warn(
            f"sparsity_report: no layer of model {model.name!r} has 1x{n} blocks to report "
            f"(no block wrapper, and no plain Conv2D with groups == 1 and Cout % {n} == 0).",
            UserWarning,
            stacklevel=2,
        )
    return rows


def format_sparsity_report(rows: list[LayerSparsity]) -> str:
    """Render `sparsity_report` rows as a fixed-width text table (FLOPs in millions)."""
    header = (
        f"{'layer':<28} {'kernel':<18} {'N':>3} {'p':>7} {'sparsity':>9} "
        f"{'kept min/max':>13} {'balance':>8} {'dense MFLOPs':>13} {'SUBP MFLOPs':>12}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        nominal = f"{row.nominal_sparsity:.4f}" if row.nominal_sparsity is not None else "-"
        lines.append(
            f"{row.name:<28} {'x'.join(map(str, row.kernel_shape)):<18} {row.n:>3} {nominal:>7} "
            f"{row.block_sparsity:>9.4f} {f'{row.kept_blocks_min}/{row.kept_blocks_max}':>13} "
            f"{row.balance_ratio:>8.4f} {row.dense_flops / 1e6:>13.3f} "
            f"{row.sparse_flops / 1e6:>12.3f}"
        )
    return "\n".join(lines)
