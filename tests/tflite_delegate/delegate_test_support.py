"""Shared helpers of the delegate tests: 1xN masks, a pairwise grid, interpreters and comparisons."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from tflite_delegate.flatbuffer_models import ConvSpec, conv_output_size

RELATIVE_TOLERANCE = 1e-5
BLOCK_SIZES = (1, 2, 4, 8, 16, 32)


# --------------------------------------------------------------------------------------- masks


def block_mask(
    out_channels: int,
    kernel: tuple[int, int],
    in_channels: int,
    block_n: int,
    sparsity: float,
    uniform: bool,
    whole_kernel: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    """Boolean OHWI keep-mask with 1xN structure: all N channels of a block share one value.

    `sparsity` is the fraction of dropped blocks. Uniform: every group keeps the same count.
    Non-uniform: counts vary between groups and, when there are two or more groups and
    sparsity > 0, the first group keeps nothing at all. `whole_kernel` drops whole KH x KW
    kernels per (group, input channel), as SUBP does; otherwise single taps.
    """
    kernel_h, kernel_w = kernel
    groups = -(-out_channels // block_n)
    unit_count = in_channels if whole_kernel else kernel_h * kernel_w * in_channels
    target = unit_count * (1.0 - sparsity)
    keep_units = np.zeros((groups, unit_count), dtype=bool)
    for group in range(groups):
        if uniform or sparsity in (0.0, 1.0):
            kept = round(target)
        elif group == 0 and groups > 1:
            kept = 0
        else:
            kept = int(np.clip(round(target * rng.uniform(0.3, 1.7)), 0, unit_count))
        if 0.0 < sparsity < 1.0 and (uniform or group > 0):
            kept = int(np.clip(kept, 1, unit_count - 1 if unit_count > 1 else 1))
        keep_units[group, rng.choice(unit_count, size=kept, replace=False)] = True
    if whole_kernel:
        per_tap = np.repeat(keep_units[:, None, :], kernel_h * kernel_w, axis=1)
    else:
        per_tap = keep_units.reshape(groups, kernel_h * kernel_w, in_channels)
    per_channel = np.repeat(per_tap, block_n, axis=0)[:out_channels]
    return per_channel.reshape(out_channels, kernel_h, kernel_w, in_channels)


def masked_filter(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random float32 OHWI weights, scaled by 1/sqrt(fan-in), exactly zero where `mask` is False."""
    fan_in = int(np.prod(mask.shape[1:]))
    weights = rng.normal(0.0, 1.5 / np.sqrt(max(fan_in, 1)), size=mask.shape).astype(np.float32)
    # Keep kept weights away from zero so a kept tap vector never vanishes by accident.
    weights = np.where(np.abs(weights) < 1e-3, np.float32(1e-3), weights)
    return np.where(mask, weights, np.float32(0.0)).astype(np.float32)


# ---------------------------------------------------------------------------------- the grid

GRID_AXES: dict[str, tuple] = {
    "kernel": (1, 3, 5, 7),
    "stride": (1, 2),
    "dilation": (1, 2),
    "padding": ("SAME", "VALID"),
    "activation": ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"),
    "bias": (True, False),
    "block_n": BLOCK_SIZES,
    "sparsity": (0.0, 0.5, 0.9, 1.0),
    "uniform": (True, False),
    "whole_kernel": (False, True),
    "partial_group": (True, False),
}


def pairwise_rows(axes: dict[str, tuple], seed: int = 0) -> list[dict]:
    """A covering design: rows in which every pair of values of every two axes appears.

    Greedy construction (AETG-like): each new row is the best of a few random candidates at
    covering still-uncovered pairs. Deterministic for a seed; much smaller than the product.
    """
    names = list(axes)
    uncovered = {
        (a, va, b, vb)
        for a, b in itertools.combinations(names, 2)
        for va in axes[a]
        for vb in axes[b]
    }
    generator = random.Random(seed)
    rows = []
    while uncovered:
        best_row, best_gain = None, -1
        for _ in range(40):
            a, va, b, vb = generator.choice(sorted(uncovered, key=repr))
            row = {name: generator.choice(axes[name]) for name in names}
            row[a], row[b] = va, vb
            gain = sum(
                (x, row[x], y, row[y]) in uncovered for x, y in itertools.combinations(names, 2)
            )
            if gain > best_gain:
                best_row, best_gain = row, gain
        rows.append(best_row)
        uncovered -= {(x, best_row[x], y, best_row[y]) for x, y in itertools.combinations(names, 2)}
    return rows


def out_channels_for(block_n: int, partial_group: bool) -> int:
    """Output channels for a block size: never a multiple of 16 when `partial_group`, and then
    the last group of N > 1 is partial (e.g. N=16 -> 40 channels, groups 16+16+8)."""
    if not partial_group:
        return {1: 5, 2: 6, 4: 12, 8: 24, 16: 32, 32: 64}[block_n]
    return {1: 7, 2: 9, 4: 10, 8: 20, 16: 40, 32: 40}[block_n]


@dataclass(frozen=True)
class GridModel:
    """One test model: an input shape and several parallel convs built from grid rows."""

    name: str
    input_shape: tuple[int, int, int, int]
    rows: tuple[dict, ...]
    seed: int


GRID_INPUTS = ((1, 17, 15, 13), (1, 16, 19, 20), (1, 15, 16, 37), (1, 19, 17, 5))


def grid_models(layers_per_model: int = 8) -> list[GridModel]:
    """The pairwise grid split into a few multi-conv models over different input shapes."""
    rows = pairwise_rows(GRID_AXES)
    models = []
    for number, start in enumerate(range(0, len(rows), layers_per_model)):
        shape = GRID_INPUTS[number % len(GRID_INPUTS)]
        chunk = tuple(rows[start : start + layers_per_model])
        models.append(GridModel(f"grid{number}", shape, chunk, seed=1000 + number))
    return models


def conv_spec_from_row(row: dict, in_channels: int, rng: np.random.Generator) -> ConvSpec:
    """ConvSpec (weights drawn from `rng`) for one grid row."""
    kernel = row["kernel"]
    out_channels = out_channels_for(row["block_n"], row["partial_group"])
    mask = block_mask(
        out_channels,
        (kernel, kernel),
        in_channels,
        row["block_n"],
        row["sparsity"],
        row["uniform"],
        row["whole_kernel"],
        rng,
    )
    bias = rng.uniform(-0.5, 0.5, out_channels).astype(np.float32) if row["bias"] else None
    return ConvSpec(
        filter_ohwi=masked_filter(mask, rng),
        bias=bias,
        stride=(row["stride"], row["stride"]),
        dilation=(row["dilation"], row["dilation"]),
        padding=row["padding"],
        activation=row["activation"],
    )


def grid_conv_specs(model: GridModel, filter_type: str = "float32") -> list[ConvSpec]:
    """The model's convs; VALID rows whose effective kernel exceeds the input fall back to SAME."""
    rng = np.random.default_rng(model.seed)
    _, height, width, channels = model.input_shape
    specs = []
    for row in model.rows:
        spec = conv_spec_from_row(row, channels, rng)
        spec.filter_type = filter_type
        if conv_output_size(min(height, width), row["kernel"], 1, row["dilation"], "VALID") < 1:
            spec.padding = "SAME"
        specs.append(spec)
    return specs


# ----------------------------------------------------------------------------- interpreters


def available_isas() -> tuple[str, ...]:
    """ISAs the delegate library has microkernels for and this CPU runs (the library's own
    registry and CPU check; generic always)."""
    import tflite_delegate

    return tflite_delegate.supported_isas()


@cache
def _default_summary():
    """The summary of a delegate with default options (what it found in this CPU)."""
    import tflite_delegate

    return tflite_delegate.delegate_summary(tflite_delegate.load_delegate())


def default_pixel_pairs() -> bool:
    """The delegate option pixel_pairs as "auto" (its default) resolves on this CPU."""
    return _default_summary().pixel_pairs


def cpu_splits_avx512() -> bool:
    """Whether the delegate found that this CPU runs 512-bit operations as two 256-bit halves
    (AMD Zen 4), which selects its AVX-512 default min_sparsity table."""
    return _default_summary().split_avx512


def reference_interpreter(model_content: bytes) -> Interpreter:
    """Builtin kernels, no XNNPACK, no delegate: the reference."""
    return Interpreter(
        model_content=model_content,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )


def delegate_interpreter(
    model_content: bytes | None = None,
    model_path: str | os.PathLike | None = None,
    interpreter_threads: int = 1,
    **options,
) -> tuple[Interpreter, object]:
    """Our delegate alone (XNNPACK off), so every claimed node runs on our kernels.

    `interpreter_threads` is the interpreter's num_threads (the delegate's default thread count);
    `options` go to `tflite_delegate.load_delegate` (num_threads there overrides it). The option
    pixel_pairs is True unless given, so that the pixel-pair microkernels run on every AVX-512 CPU
    (its default, "auto", leaves them out where they are slower: `default_pixel_pairs`).
    """
    import tflite_delegate

    options.setdefault("pixel_pairs", True)
    delegate = tflite_delegate.load_delegate(**options)
    interpreter = Interpreter(
        model_content=model_content,
        model_path=None if model_path is None else str(model_path),
        num_threads=interpreter_threads,
        experimental_delegates=[delegate],
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    return interpreter, delegate


def model_inputs(interpreter, batch: int, seed: int) -> list[np.ndarray]:
    """Seeded random float32 inputs for every model input; the first (the image) gets `batch`."""
    rng = np.random.default_rng(seed)
    arrays = []
    for number, detail in enumerate(interpreter.get_input_details()):
        shape = list(detail["shape"])
        if number == 0:
            shape[0] = batch
        arrays.append(rng.normal(0.0, 1.0, size=shape).astype(np.float32))
    return arrays


def run(interpreter, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Resize inputs if needed, allocate, set inputs, invoke; return copies of all outputs."""
    details = interpreter.get_input_details()
    resized = False
    for detail, array in zip(details, inputs, strict=True):
        if tuple(detail["shape"]) != array.shape:
            interpreter.resize_tensor_input(detail["index"], list(array.shape))
            resized = True
    if resized or not getattr(interpreter, "_test_allocated", False):
        interpreter.allocate_tensors()
        interpreter._test_allocated = True
    for detail, array in zip(details, inputs, strict=True):
        interpreter.set_tensor(detail["index"], array)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]


def assert_outputs_close(
    actual: Sequence[np.ndarray],
    expected: Sequence[np.ndarray],
    what="",
    scales: Sequence[float] | None = None,
):
    """Every output within RELATIVE_TOLERANCE of the reference, relative to the output's scale
    (max |reference|, at least 1), so near-zero entries do not demand exact rounding. `scales`
    overrides the scale per output (for chained layers, whose error comes from their inputs)."""
    assert len(actual) == len(expected), what
    for number, (got, want) in enumerate(zip(actual, expected, strict=True)):
        assert got.shape == want.shape, f"{what} output {number}: {got.shape} != {want.shape}"
        assert np.all(np.isfinite(got) == np.isfinite(want)), f"{what} output {number}: non-finite"
        scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1.0)
        if scales is not None:
            scale = scales[number]
        error = float(np.max(np.abs(got - want))) if want.size else 0.0
        assert error <= RELATIVE_TOLERANCE * scale, (
            f"{what} output {number}: max |diff| {error:.3g} > {RELATIVE_TOLERANCE} * {scale:.3g}"
        )


def assert_option_changes_no_bits(
    model_content: bytes, option: str, done, batches: Sequence[int] = (1, 3)
) -> tuple[dict, Interpreter]:
    """Our delegate alone with the boolean delegate option `option` on and off, at 1 and 2
    threads and each batch: outputs bitwise equal, and close to the reference kernels.
    `done(interpreter)` says what the option did (a dict, empty when it is off); it must be the
    same at both thread counts. Returns it and the last interpreter with the option on."""
    reference = reference_interpreter(model_content)
    done_per_thread_count = []
    for threads in (1, 2):
        on, _ = delegate_interpreter(model_content, num_threads=threads)
        off, _ = delegate_interpreter(model_content, num_threads=threads, **{option: False})
        assert done(off) == {}
        done_per_thread_count.append(done(on))
        for batch in batches:
            inputs = model_inputs(reference, batch, seed=batch)
            expected = run(reference, inputs)
            got = run(on, inputs)
            assert_bitwise_equal(
                got, run(off, inputs), f"{option} on != off, {threads} threads, batch {batch}"
            )
            scale = [max(float(np.abs(e).max()), 1.0) for e in expected]
            assert_outputs_close(got, expected, f"{option}, batch {batch}", scale)
    assert done_per_thread_count[0] == done_per_thread_count[1]
    return done_per_thread_count[0], on


def assert_close_with_xnnpack_over_resized_batches(
    interpreter, model_content: bytes, batches: Sequence[int] = (2, 1), seed: int = 0
):
    """`interpreter` (the way users run it: our delegate first, XNNPACK for the rest) within
    rounding of the reference kernels, the input resized to each batch in turn."""
    reference = reference_interpreter(model_content)
    for batch in batches:
        inputs = model_inputs(reference, batch, seed=seed + batch)
        expected = run(reference, inputs)
        scale = [max(float(np.abs(e).max()), 1.0) for e in expected]
        assert_outputs_close(run(interpreter, inputs), expected, f"batch {batch}", scale)


def assert_bitwise_equal(first: Sequence[np.ndarray], second: Sequence[np.ndarray], what=""):
    """Identical bytes (NaN patterns included), output by output."""
    for number, (a, b) in enumerate(zip(first, second, strict=True)):
        assert a.shape == b.shape and a.tobytes() == b.tobytes(), f"{what} output {number} differs"


def numpy_conv2d(inputs: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Direct float64 NHWC convolution with TFLite's padding rule (SAME puts the odd extra
    padding row or column at the end) and fused activation: an independent check that the test
    models mean what the tests assume."""
    batch, height, width, _ = inputs.shape
    weights = spec.filter_ohwi.astype(np.float64)
    out_channels, kernel_h, kernel_w, _ = weights.shape
    (stride_h, stride_w), (dilation_h, dilation_w) = spec.stride, spec.dilation
    out_h = conv_output_size(height, kernel_h, stride_h, dilation_h, spec.padding)
    out_w = conv_output_size(width, kernel_w, stride_w, dilation_w, spec.padding)

    def before(size, out, kernel, stride, dilation):
        if spec.padding == "VALID":
            return 0
        return max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0) // 2

    top = before(height, out_h, kernel_h, stride_h, dilation_h)
    left = before(width, out_w, kernel_w, stride_w, dilation_w)
    padded = np.zeros(
        (
            batch,
            height + 2 * kernel_h * dilation_h,
            width + 2 * kernel_w * dilation_w,
            inputs.shape[3],
        )
    )
    padded[:, :height, :width] = inputs
    padded = np.roll(padded, (top, left), axis=(1, 2))
    bias = np.zeros(out_channels) if spec.bias is None else spec.bias.astype(np.float64)
    result = np.broadcast_to(bias, (batch, out_h, out_w, out_channels)).copy()
    for ky in range(kernel_h):
        for kx in range(kernel_w):
            rows = slice(ky * dilation_h, ky * dilation_h + (out_h - 1) * stride_h + 1, stride_h)
            cols = slice(kx * dilation_w, kx * dilation_w + (out_w - 1) * stride_w + 1, stride_w)
            result += np.einsum("nhwc,oc->nhwo", padded[:, rows, cols, :], weights[:, ky, kx, :])
    low, high = {
        "NONE": (-np.inf, np.inf),
        "RELU": (0, np.inf),
        "RELU6": (0, 6),
        "RELU_N1_TO_1": (-1, 1),
    }[spec.activation]
    return np.clip(result, low, high)


def few_channel_stem_claimed(interpreter) -> bool:
    """Whether the delegate behind `interpreter` runs a dense RGB stem: the few-input-channel
    rule (`DenseFewChannelConvPays`, claiming_policy.h) is AVX-512 only."""
    import tflite_delegate

    return tflite_delegate.delegation_report(interpreter)[0].isa == "avx512"
