"""Keras model -> `.tflite` file, with float32 weights or with conv/dense weights stored as int8.

`weights="int8"` is meant for models whose weights already lie on a quantization grid of at most
8 bits (the output of `dfcompress.udfc`, `dfmpc` or `quantize_weights`): every filter of a CONV_2D,
DEPTHWISE_CONV_2D or FULLY_CONNECTED node is stored as int8 with one float32 scale per output
channel and zero point 0, chosen so that `scale * int8` gives back the float32 weight the Keras
model computes with (to float rounding). A DEQUANTIZE node in front of each filter turns it back
into float32 once, when the interpreter prepares the graph; the convolution itself runs in float32,
so the `.tflite` computes what the Keras model computes, from a file about 4x smaller.
See docs/compression.md for the kernels that run it and measured latencies.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

WEIGHT_FORMATS = ("float32", "int8")
INT8_KERNELS = ("float", "dynamic")

# Largest integer magnitude of a symmetric int8 grid (-127..127; -128 unused, as in TFLite's own
# per-channel weight quantization, so the grid is symmetric around the exact zero).
INT8_LEVELS = 127
# A channel counts as lying on a grid s * {-n..n} when every weight is within this many grid steps
# of a grid point. Grid weights produced in float32 (quantizer, compensation scale, BatchNorm
# folding by the converter) sit within ~1e-5 steps of their grid point; random float weights of
# a channel with more than a handful of entries are never all this close for some n <= 127.
GRID_TOLERANCE = 1e-3
# Number of leading entries of a channel used to pre-screen candidate grids before the full check.
_SCREEN_ENTRIES = 32


@dataclass(frozen=True)
class Int8Filter:
    """One filter tensor stored as int8: `values * scales` (broadcast along `axis`) ~ the float filter.

    `values`: int8 array with the filter's shape. `scales`: float32 `[channels]`, one per index
    along `axis` (the output-channel axis). `exact`: True when every channel lay on a grid
    `scale * {-127..127}` (dequantization reproduces the float filter to float rounding); False
    when at least one channel was rounded to its nearest int8 grid point (a float, or an over-8-bit
    grid). `max_error`: largest |dequantized - float| over the tensor, in weight units.
    """

    values: np.ndarray
    scales: np.ndarray
    axis: int
    exact: bool
    max_error: float


def quantize_filter_int8(weights: np.ndarray, axis: int) -> Int8Filter:
    """Store a float filter as int8 with one symmetric scale per index of `axis`.

    For every channel (the slice at one index of `axis`) this finds the coarsest grid
    `s * {-n, ..., n}` with `n <= 127` and `s = max|w| / n` that every weight of the channel lies
    on (within GRID_TOLERANCE steps), then refits `s` by least squares over the channel so the
    dequantized weights match to float rounding. Grids of at most 8 bits that contain zero
    (symmetric, ternary) and DoReFa grids of at most 7 bits (odd multiples of a step) always
    qualify; an exact zero always stays an exact zero. Channels on no such grid are rounded to
    `max|w| / 127 * round(127 w / max|w|)`, the usual symmetric per-channel int8 quantization.
    """
    array = np.asarray(weights, dtype=np.float64)
    if array.ndim == 0 or not -array.ndim <= axis < array.ndim:
        raise ValueError(f"axis {axis} out of range for a filter of shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("filter has NaN or infinite weights; they have no int8 representation")
    axis %= array.ndim
    channels = np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1)
    peak = np.abs(channels).max(axis=1)
    levels = np.full(len(channels), INT8_LEVELS, dtype=np.int64)
    on_grid = peak == 0  # an all-zero channel is on every grid
    screen = channels[:, :_SCREEN_ENTRIES]
    for n in range(1, INT8_LEVELS + 1):
        pending = np.flatnonzero(~on_grid)
        if pending.size == 0:
            break
        step = peak[pending, None] / n
        ratio = screen[pending] / step
        candidates = pending[np.abs(ratio - np.rint(ratio)).max(axis=1) <= GRID_TOLERANCE]
        if candidates.size:
            ratio = channels[candidates] / (peak[candidates, None] / n)
            fits = candidates[np.abs(ratio - np.rint(ratio)).max(axis=1) <= GRID_TOLERANCE]
            levels[fits] = n
            on_grid[fits] = True
    safe_peak = np.where(peak > 0, peak, 1.0)
    integers = np.rint(channels * (levels / safe_peak)[:, None])
    # On a grid, refit the step by least squares over the channel (exact grid values give back
    # their own step to float rounding); off the grid keep max|w| / 127, which bounds every
    # weight's error by half a step.
    norms = np.einsum("ij,ij->i", integers, integers)
    fitted = np.einsum("ij,ij->i", integers, channels) / np.where(norms > 0, norms, 1)
    scales = np.where(on_grid & (norms > 0), fitted, safe_peak / levels).astype(np.float32)
    dequantized = integers * scales[:, None].astype(np.float64)
    max_error = float(np.abs(dequantized - channels).max()) if channels.size else 0.0
    values = np.moveaxis(integers.reshape(np.moveaxis(array, axis, 0).shape), 0, axis)
    return Int8Filter(
        values=values.astype(np.int8),
        scales=scales,
        axis=axis,
        exact=bool(on_grid.all()),
        max_error=max_error,
    )


_OPS = schema.BuiltinOperator
# Output-channel axis of the filter (input 1) of each op whose weights are stored as int8:
# CONV_2D [O, KH, KW, I], FULLY_CONNECTED [O, I], DEPTHWISE_CONV_2D [1, KH, KW, I * multiplier].
_OUTPUT_CHANNEL_AXIS = {_OPS.CONV_2D: 0, _OPS.FULLY_CONNECTED: 0, _OPS.DEPTHWISE_CONV_2D: 3}
# Op versions that read per-channel int8 weights directly (as TFLite's own converter writes them),
# and the DEQUANTIZE version that reads per-channel int8 input.
_DYNAMIC_VERSIONS = {_OPS.CONV_2D: 5, _OPS.DEPTHWISE_CONV_2D: 6, _OPS.FULLY_CONNECTED: 12}
_DEQUANTIZE_PER_CHANNEL_VERSION = 5


def _builtin_code(code: schema.OperatorCodeT) -> int:
    # Opcodes above 127 only fit the newer `builtinCode` field; older files fill only the
    # deprecated one.
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _opcode_index(model: schema.ModelT, builtin: int) -> int:
    for index, code in enumerate(model.operatorCodes):
        if _builtin_code(code) == builtin:
            return index
    model.operatorCodes.append(
        schema.OperatorCodeT(deprecatedBuiltinCode=builtin, builtinCode=builtin, version=1)
    )
    return len(model.operatorCodes) - 1


def int8_weight_flatbuffer(
    flatbuffer: bytes, kernels: str = "float"
) -> tuple[bytes, dict[str, Int8Filter]]:
    """Rewrite a float32 `.tflite` flatbuffer so conv and dense filters are stored as int8.

    Every constant float32 filter (input 1) of a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED
    node becomes an int8 constant with per-output-channel scales (`quantize_filter_int8`) and
    zero point 0. `kernels="float"` puts a DEQUANTIZE node in front of the filter, so the node
    still computes in float32 with the dequantized weights; `kernels="dynamic"` lets the node read
    the int8 filter itself, which selects the runtime's dynamic-range ("hybrid") kernels: they
    quantize the float input to int8 on the fly at every inference and multiply int8 by int8
    (fully connected layers with asymmetric input quantization). Everything else is unchanged.
    Returns the new flatbuffer and the int8 filters by tensor name.
    """
    if kernels not in INT8_KERNELS:
        raise ValueError(f"int8_kernels must be one of {INT8_KERNELS}, got {kernels!r}")
    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    dequantize_index = None
    if kernels == "float":
        dequantize_index = _opcode_index(model, _OPS.DEQUANTIZE)
        code = model.operatorCodes[dequantize_index]
        code.version = max(code.version, _DEQUANTIZE_PER_CHANNEL_VERSION)

    filters: dict[str, Int8Filter] = {}
    for subgraph in model.subgraphs:
        converted: dict[int, int] = {}  # float filter tensor -> its int8 tensor
        dequantize_nodes = []
        for operator in subgraph.operators or []:
            code = model.operatorCodes[operator.opcodeIndex]
            axis = _OUTPUT_CHANNEL_AXIS.get(_builtin_code(code))
            if axis is None or operator.inputs is None or len(operator.inputs) < 2:
                continue
            tensor_index = int(operator.inputs[1])
            if tensor_index in converted:
                if kernels == "dynamic":
                    operator.inputs[1] = converted[tensor_index]
                continue
            if tensor_index < 0:
                continue
            tensor = subgraph.tensors[tensor_index]
            buffer = model.buffers[tensor.buffer]
            if tensor.type != schema.TensorType.FLOAT32 or buffer.data is None:
                continue  # computed at run time, or already quantized
            if len(buffer.data) == 0:
                continue
            shape = tuple(int(d) for d in tensor.shape)
            weights = np.frombuffer(bytes(bytearray(buffer.data)), dtype="<f4").reshape(shape)
            stored = quantize_filter_int8(weights, axis)
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
            filters[name] = stored

            model.buffers.append(schema.BufferT(data=stored.values.tobytes()))
            subgraph.tensors.append(
                schema.TensorT(
                    shape=list(shape),
                    type=schema.TensorType.INT8,
                    buffer=len(model.buffers) - 1,
                    name=f"{name}/int8",
                    quantization=schema.QuantizationParametersT(
                        scale=[float(s) for s in stored.scales],
                        zeroPoint=[0] * len(stored.scales),
                        quantizedDimension=axis,
                    ),
                )
            )
            int8_index = converted[tensor_index] = len(subgraph.tensors) - 1
            # Buffer 0 is the format's empty sentinel: the float tensor holds no data any more
            # (computed by DEQUANTIZE, or read by nobody).
            tensor.buffer = 0
            if kernels == "float":
                dequantize_nodes.append(
                    schema.OperatorT(
                        opcodeIndex=dequantize_index, inputs=[int8_index], outputs=[tensor_index]
                    )
                )
            else:
                operator.inputs[1] = int8_index
                code.version = max(code.version, _DYNAMIC_VERSIONS[_builtin_code(code)])
                options = operator.builtinOptions
                if hasattr(options, "asymmetricQuantizeInputs"):
                    # Per-row asymmetric input quantization: no range wasted after a ReLU.
                    options.asymmetricQuantizeInputs = True
        # Constant inputs only: running every DEQUANTIZE first keeps the node order topological.
        subgraph.operators = dequantize_nodes + list(subgraph.operators or [])

    used = {tensor.buffer for subgraph in model.subgraphs for tensor in subgraph.tensors}
    for index, buffer in enumerate(model.buffers):
        if index not in used and index != 0:
            buffer.data = None  # float32 filters nobody reads any more
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), filters


def _check_destination(path: str | os.PathLike) -> Path:
    destination = Path(path)
    directory = destination.parent if str(destination.parent) else Path(".")
    if destination.is_dir():
        raise IsADirectoryError(f"to_tflite() output path is a directory: {destination}")
    if not directory.is_dir():
        raise FileNotFoundError(f"to_tflite() output directory does not exist: {directory}")
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"to_tflite() output directory is not writable: {directory}")
    return destination


def _write_atomically(data: bytes, destination: Path) -> None:
    handle, temporary = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates 0600
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def to_tflite(
    model, path: str | os.PathLike, weights: str = "float32", *, int8_kernels: str = "float"
) -> Path:
    """Convert a (compressed) Keras model to a `.tflite` file; return its path.

    `weights="float32"`: a plain float32 conversion (BatchNorm folded into the convolutions by the
    converter) that keeps exact zeros, so 1xN-sparse models stay claimable by the project's
    sparse delegate. `weights="int8"`: the same graph with every conv, depthwise and dense filter
    stored as int8 plus one float32 scale per output channel (about 4x smaller). For weights on a
    grid of at most 8 bits with an exact zero, or a DoReFa grid of at most 7 bits, the stored
    int8 values times their scale equal the float32 weights to float rounding; other weights are
    rounded to 127 levels per channel (see `quantize_filter_int8`).

    `int8_kernels` (only with `weights="int8"`) chooses how the runtime executes those layers:
    `"float"` (default) puts a DEQUANTIZE node in front of each filter; the interpreter (XNNPACK)
    dequantizes once when it prepares the graph and runs the usual float32 kernels, so outputs
    equal the Keras model's to float rounding and speed equals float32's. `"dynamic"` lets the
    layers read int8 weights directly: the runtime's dynamic-range kernels quantize each input to
    int8 on the fly and use int8 dot products (2-3x faster than float32 on the project's AVX-512
    machine, outputs off by that activation rounding). Measurements: docs/compression.md.

    The file is written to a temporary name in the destination directory and renamed into
    place, so a failure never leaves a partial file. Raises TypeError for a non-Keras model,
    ValueError for an unknown `weights` / `int8_kernels` or a model the converter rejects, and
    FileNotFoundError / PermissionError / IsADirectoryError for an unusable `path`.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"to_tflite() needs a keras.Model, got {type(model).__name__}")
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"weights must be one of {WEIGHT_FORMATS}, got {weights!r}")
    if int8_kernels not in INT8_KERNELS:
        raise ValueError(f"int8_kernels must be one of {INT8_KERNELS}, got {int8_kernels!r}")
    destination = _check_destination(path)

    from tflite_delegate import convert  # lazy: the one place that converts quietly

    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".to_tflite.") as scratch:
        float_path = convert(model, Path(scratch) / "float32.tflite", weights="float32")
        flatbuffer = float_path.read_bytes()
    if weights == "int8":
        flatbuffer, filters = int8_weight_flatbuffer(flatbuffer, kernels=int8_kernels)
        rounded = {name: f for name, f in filters.items() if not f.exact}
        if rounded:
            worst = max(f.max_error for f in rounded.values())
            warnings.warn(
                f"to_tflite: {len(rounded)} of {len(filters)} filters are on no int8-representable "
                f"grid (float weights, or a DoReFa grid of 8 bits) and were rounded to 127 levels "
                f"per output channel (largest weight error {worst:.3g}): {', '.join(rounded)}",
                UserWarning,
                stacklevel=2,
            )
    _write_atomically(flatbuffer, destination)
    return destination
