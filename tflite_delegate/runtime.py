"""Python face of the 1xN sparse CONV_2D delegate: find the library, load it, build interpreters,
and ask which nodes it claimed.

Imports only the standard library at module level; `ai_edge_litert` is imported when an
interpreter or delegate is actually created, so `import tflite_delegate` stays cheap and never
pulls in TensorFlow.
"""

from __future__ import annotations

import ctypes
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tflite_delegate import litert_compat

LIBRARY_NAME = "libtflite_sparse_delegate.so"
LIBRARY_ENVIRONMENT_VARIABLE = "TFLITE_SPARSE_DELEGATE_LIBRARY"
ISA_ENVIRONMENT_VARIABLE = "TFLITE_SPARSE_DELEGATE_ISA"
OPTION_NAMES = (
    "num_threads",
    "min_sparsity",
    "block_n",
    "isa",
    "pixel_pairs",
    "fuse_add",
    "fold_pad",
    "fuse_pool",
    "verbose",
    "per_image_bytes",
    "profile",
)
REPORT_FUNCTION = "tflite_sparse_delegate_report"
LAST_ERROR_FUNCTION = "tflite_sparse_delegate_last_error"
MICROKERNELS_FUNCTION = "tflite_sparse_delegate_microkernels"
_BUILD_HINT = (
    "build it with `pip install -e .` or "
    "`python tools/build_delegate.py --output tflite_delegate/libtflite_sparse_delegate.so`"
)


@dataclass(frozen=True)
class NodeDecision:
    """The delegate's decision about one CONV_2D node of the most recent delegate Prepare.

    `reason_code` is a stable snake_case code ("claimed", "grouped_convolution",
    "below_min_sparsity", ...) and `reason` the human-readable message ("claimed", or for a dense
    conv over few input channels claimed below the default threshold, such as an RGB stem,
    "claimed: a dense conv over few input channels, ..."). A *block* is N output
    channels x one input channel x the whole KH x KW window; a *tap vector* is the N weights of
    one group at one filter tap, the unit the delegate stores and skips. `block_sparsity` and
    `tap_vector_sparsity` are fractions in [0, 1]; `kept_blocks_min`/`max` and
    `kept_tap_vectors_min`/`max` count kept units per group of N output channels;
    `balance_ratio` is max/mean kept blocks per group (1.0 = balanced). These are None when the
    node was refused before its filter was analysed. `filter_shape` is (O, KH, KW, I); `isa` is
    the ISA the delegate runs and `microkernel` the registry name of the variant that runs a
    claimed node: once the interpreter has allocated its tensors, the one the node's operator
    chose for the prepared input shape (a pixel-pair or channel-major variant gives some layers
    to the pixel-major one, docs/architecture.md), before that the one chosen at claim time.
    `fused_add_node` is the ADD node that a claimed conv runs in its epilogue (option fuse_add:
    a residual ADD whose operand is this conv's output and nothing else's; the result is bitwise
    that of the two nodes), else None. `folded_pad_node` is the PAD node folded into a claimed
    conv's padding (option fold_pad: a zero PAD of height and width whose output only this conv
    reads; bitwise the same result), else None. `fused_pool_node` is the MAX_POOL_2D node run
    right after a claimed conv in its partition (option fuse_pool: a max pool that alone reads
    this conv's output, directly or through a zero PAD, which is then `fused_pool_pad_node`;
    bitwise the same result), else None. With the delegate option `profile`, `runs` is
    the number of invokes that ran a claimed node and `run_ms` its mean time per invoke in
    milliseconds (the node's convolution, folded PAD, fused ADD and fused pool, all images of the
    batch), else None.
    """

    node_index: int
    claimed: bool
    reason_code: str
    reason: str
    block_n: int | None
    filter_shape: tuple[int, int, int, int]
    block_sparsity: float | None
    kept_blocks_min: int | None
    kept_blocks_max: int | None
    balance_ratio: float | None
    tap_vector_sparsity: float | None
    kept_tap_vectors_min: int | None
    kept_tap_vectors_max: int | None
    microkernel: str | None
    isa: str
    fused_add_node: int | None = None
    folded_pad_node: int | None = None
    fused_pool_node: int | None = None
    fused_pool_pad_node: int | None = None
    runs: int | None = None
    run_ms: float | None = None

    # Names from before the block / tap-vector vocabulary; scripts/benchmark_delegate.py still
    # reads them. They count tap vectors, as they always did.
    @property
    def blocks_per_group_min(self) -> int | None:
        """Deprecated: `kept_tap_vectors_min`."""
        return self.kept_tap_vectors_min

    @property
    def blocks_per_group_max(self) -> int | None:
        """Deprecated: `kept_tap_vectors_max`."""
        return self.kept_tap_vectors_max

    @property
    def uniform(self) -> bool | None:
        """True when every group keeps the same number of tap vectors (None if not analysed)."""
        if self.kept_tap_vectors_min is None:
            return None
        return self.kept_tap_vectors_min == self.kept_tap_vectors_max


@dataclass(frozen=True)
class Microkernel:
    """One row of the library's microkernel registry."""

    name: str
    isa: str
    weight_type: str
    block_n: int
    tile_pixels: int
    supported_by_cpu: bool
    # "pixel_major" (NHWC through the indirection), "channel_major" (a transposed panel) or
    # "pixel_pair" (a pair image: two neighbouring pixels per FMA); libraries older than the
    # layout field only had pixel-major variants.
    layout: str = "pixel_major"


@dataclass(frozen=True)
class DelegateSummary:
    """Delegate-wide facts: kernel variant, threads (0 before the first Prepare when the option
    was not given), kernels created so far (one per claimed conv per delegation), partitions
    created so far (one delegate node per connected run of claimed convs; 0 from libraries
    older than the field), the nodes, whether pixel-pair microkernels may run (the option
    pixel_pairs as resolved: "auto" gives this CPU's answer), and whether this CPU runs 512-bit
    operations as two 256-bit halves (AMD Zen 4), which selects the default min_sparsity table
    with AVX-512 (the last two None from libraries older than the fields)."""

    isa: str
    num_threads: int
    kernels_created: int
    nodes: list[NodeDecision]
    partitions_created: int = 0
    pixel_pairs: bool | None = None
    split_avx512: bool | None = None


def library_path() -> str:
    """Path of the delegate's shared library.

    `$TFLITE_SPARSE_DELEGATE_LIBRARY` overrides the packaged library next to this module.
    Raises FileNotFoundError (saying how to build it) if the file does not exist.
    """
    override = os.environ.get(LIBRARY_ENVIRONMENT_VARIABLE)
    path = Path(override) if override else Path(__file__).resolve().parent / LIBRARY_NAME
    if not path.is_file():
        source = f"${LIBRARY_ENVIRONMENT_VARIABLE}" if override else "the package"
        raise FileNotFoundError(f"delegate library {path} (from {source}) not found; {_BUILD_HINT}")
    return str(path)


@cache
def _library(path: str) -> ctypes.CDLL:
    """The delegate library opened with ctypes (the same handle LiteRT's loader gets)."""
    library = ctypes.CDLL(path)
    for name in (LAST_ERROR_FUNCTION, MICROKERNELS_FUNCTION):
        function = getattr(library, name)
        function.argtypes = []
        function.restype = ctypes.c_char_p
    return library


def microkernels() -> list[Microkernel]:
    """Every microkernel variant of the library's registry, in preference order, and whether
    this CPU can run it."""
    text = getattr(_library(library_path()), MICROKERNELS_FUNCTION)()
    if text is None:
        raise MemoryError("the delegate library could not describe its microkernels")
    return [Microkernel(**row) for row in json.loads(text.decode("utf-8"))]


def supported_isas() -> tuple[str, ...]:
    """ISAs that the library has microkernels for and this CPU runs, fastest first."""
    isas: list[str] = []
    for kernel in microkernels():
        if kernel.supported_by_cpu and kernel.isa not in isas:
            isas.append(kernel.isa)
    return tuple(isas)


def delegate_options(**options: Any) -> dict[str, str]:
    """The options as the strings the plugin receives; None values are dropped (= default).

    Booleans become "1"/"0". Names and values are validated by the library itself, which
    rejects unknown names and bad values with a message naming them (ValueError on load).
    """
    strings = {}
    for name, value in options.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        strings[str(name)] = str(value)
    return strings


def load_delegate(**options: Any):
    """Load the delegate with `ai_edge_litert.interpreter.load_delegate`.

    Options: num_threads (int >= 1; default: the interpreter's num_threads), min_sparsity (float
    in [0, 1]: a conv is claimed when at least this fraction of its tap vectors is all zero, which
    equals its block sparsity when whole blocks were pruned, as SUBP does; default per ISA and
    block width N, from where each microkernel width was measured to beat XNNPACK: with AVX-512
    0.3 for N >= 32, 0.45 for N = 16, 0.75 for N = 8 (0.6 for a layer that runs the pixel-pair
    1x8 microkernel), 0.88 for N = 4, except on a CPU that runs 512-bit operations as two
    256-bit halves (AMD Zen 4, `DelegateSummary.split_avx512`) 0.2 for N >= 16, 0.4 for N = 8
    and 4 where the layer runs the channel-major 1x8 or 1x4 microkernel, 0.5 and 0.75 elsewhere;
    with AVX2 and generic 0.3 for N >= 16, 0.55 for N = 8, 0.8 for N = 4 (0.75 channel-major);
    with any ISA 0.98 for N = 2 and 1.0 for N = 1,
    i.e. never unless the filter is all zero),
    block_n ("auto" or a width of the microkernel registry:
    1/2/4/8/16/32), isa ("auto"/"avx512"/"avx2"/"generic"; default $TFLITE_SPARSE_DELEGATE_ISA or
    auto), pixel_pairs ("auto" or bool, default "auto": whether KxK and 1x1 layers at N = 16 and
    8 may run the AVX-512 pixel-pair microkernels, which compute two output pixels per FMA; "auto"
    allows them where they run faster than the pixel-major ones, i.e. on every CPU but AMD's
    family 19h (Zen 4), where they ran 0.81-0.97x as fast; bitwise the same result either
    way), fuse_add (bool, default True: an ADD of two same-shape float tensors, one of them a
    claimed conv's output read by nothing else, e.g. a ResNet block's shortcut ADD with its ReLU,
    runs in that conv's epilogue instead of as its own XNNPACK node; bitwise the same result),
    fold_pad (bool, default True: a zero PAD node whose output only a claimed conv reads, such as
    Keras's ZeroPadding2D before ResNet's 7x7 stem, becomes part of that conv's padding instead of
    an XNNPACK copy of the whole tensor; bitwise the same result), fuse_pool (bool, default True:
    a MAX_POOL_2D that alone reads a claimed conv's output, directly or through such a zero PAD,
    e.g. the pool after ResNet's stem, runs in that conv's partition instead of as XNNPACK nodes;
    bitwise the same result), verbose (bool),
    per_image_bytes ("auto", "off" or an int >= 0; default "auto", a quarter of the L3 cache: at
    batch > 1 a run of claimed convs goes image by image, up to the last
    reader of its last intermediate tensor of at least this many bytes over the batch, so that
    each image's activations stay cached between convs; bitwise the same result), profile
    (bool, default False: time each claimed conv per invoke, reported by `delegation_report` as
    `runs` and `run_ms`; two clock reads per conv and invoke). Raises
    ValueError with the delegate's own reason (naming an unknown option, a bad value, or an ISA
    this CPU lacks). The same library also loads with
    `tf.lite.experimental.load_delegate(library_path(), options)`; pass string values there.
    """
    from ai_edge_litert.interpreter import load_delegate as litert_load_delegate

    path = library_path()
    strings = delegate_options(**options)
    try:
        return litert_load_delegate(path, options=strings)
    except ValueError as error:
        # The loader's message names only the library; the plugin keeps its own reason.
        reason = getattr(_library(path), LAST_ERROR_FUNCTION)()
        if not reason:
            raise
        raise ValueError(f"tflite_sparse_delegate: {reason.decode('utf-8', 'replace')}") from error


def Interpreter(
    model_path: str | os.PathLike | None = None,
    model_content: bytes | None = None,
    num_threads: int = 1,
    sparse: bool = True,
    **options: Any,
):
    """A LiteRT interpreter running our delegate first and XNNPACK for the remaining nodes.

    `num_threads` is the interpreter's thread count; XNNPACK and the delegate both use it.
    `options` are the delegate options of `load_delegate` except num_threads (to give the
    delegate its own count, pass `load_delegate(num_threads=...)` to a LiteRT Interpreter).
    `sparse=False` gives plain LiteRT (XNNPACK only) and accepts no delegate options. Tensors are
    not allocated yet (call `allocate_tensors()`).

    Claimed convolutions skip their all-zero blocks instead of multiplying them, so a NaN or Inf
    input value that meets only pruned weights does not make outputs NaN, unlike the reference
    kernels (0 * NaN = NaN); non-finite inputs of kept channels propagate as usual.
    """
    from ai_edge_litert.interpreter import Interpreter as LiteRtInterpreter

    if model_path is not None:
        model_path = os.fspath(model_path)
    if not sparse:
        if options:
            raise ValueError(f"delegate options {sorted(options)} need sparse=True")
        return LiteRtInterpreter(
            model_path=model_path, model_content=model_content, num_threads=num_threads
        )
    delegate = load_delegate(**options)
    return LiteRtInterpreter(
        model_path=model_path,
        model_content=model_content,
        num_threads=num_threads,
        experimental_delegates=[delegate],
    )


def _is_sparse_delegate(candidate: Any) -> bool:
    library = litert_compat.delegate_library(candidate)
    return (
        library is not None
        and litert_compat.delegate_pointer(candidate) is not None
        and hasattr(library, REPORT_FUNCTION)
    )


def _find_delegate(delegate_or_interpreter: Any):
    if _is_sparse_delegate(delegate_or_interpreter):
        return delegate_or_interpreter
    for delegate in litert_compat.interpreter_delegates(delegate_or_interpreter):
        if _is_sparse_delegate(delegate):
            return delegate
    raise ValueError(
        f"{type(delegate_or_interpreter).__name__} is neither a tflite_delegate delegate nor an "
        "interpreter built with one"
    )


def report_text(delegate: Any, capacity: int = 4096) -> tuple[bytes, int]:
    """One call of the library's report function with a `capacity`-byte buffer: the
    (possibly truncated) text and the full length the report needs, without the NUL."""
    report = getattr(litert_compat.delegate_library(delegate), REPORT_FUNCTION)
    report.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    report.restype = ctypes.c_size_t
    buffer = ctypes.create_string_buffer(capacity)
    needed = report(litert_compat.delegate_pointer(delegate), buffer, capacity)
    return buffer.value, needed


def _report_json(delegate: Any) -> dict:
    capacity = 4096
    while True:
        text, needed = report_text(delegate, capacity)
        if needed < capacity:
            return json.loads(text.decode("utf-8"))
        capacity = needed + 1


def _mean_ms(seconds: float | None, runs: int | None) -> float | None:
    """Mean milliseconds per run, or None without a profile (or before the first run)."""
    if seconds is None or not runs:
        return None
    return 1e3 * seconds / runs


def delegate_summary(delegate_or_interpreter: Any) -> DelegateSummary:
    """Delegate-wide report of a delegate (from `load_delegate`) or of an interpreter using one."""
    data = _report_json(_find_delegate(delegate_or_interpreter))
    if "error" in data:
        raise ValueError(f"delegate report failed: {data['error']}")
    nodes = [
        NodeDecision(
            node_index=node["node_index"],
            claimed=node["claimed"],
            reason_code=node["reason_code"],
            reason=node["reason"],
            block_n=node["block_n"],
            filter_shape=tuple(node["filter_shape"]),
            block_sparsity=node["block_sparsity"],
            kept_blocks_min=node["kept_blocks_min"],
            kept_blocks_max=node["kept_blocks_max"],
            balance_ratio=node["balance_ratio"],
            tap_vector_sparsity=node["tap_vector_sparsity"],
            kept_tap_vectors_min=node["kept_tap_vectors_min"],
            kept_tap_vectors_max=node["kept_tap_vectors_max"],
            microkernel=node["microkernel"],
            isa=data["isa"],
            fused_add_node=node.get("fused_add_node"),
            folded_pad_node=node.get("folded_pad_node"),
            fused_pool_node=node.get("fused_pool_node"),
            fused_pool_pad_node=node.get("fused_pool_pad_node"),
            runs=node.get("runs"),
            run_ms=_mean_ms(node.get("run_seconds"), node.get("runs")),
        )
        for node in data["nodes"]
    ]
    return DelegateSummary(
        isa=data["isa"],
        num_threads=data["num_threads"],
        kernels_created=data["kernels_created"],
        nodes=nodes,
        partitions_created=data.get("partitions_created", 0),
        pixel_pairs=data.get("pixel_pairs"),
        split_avx512=data.get("split_avx512"),
    )


def delegation_report(delegate_or_interpreter: Any) -> list[NodeDecision]:
    """Every CONV_2D node of the most recent delegate Prepare: claimed or not, and why.

    Accepts the delegate returned by `load_delegate` (either loader) or an interpreter created
    with it (e.g. by `Interpreter`).
    """
    return delegate_summary(delegate_or_interpreter).nodes
