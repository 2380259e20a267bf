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
from pathlib import Path
from typing import Any

LIBRARY_NAME = "libtflite_sparse_delegate.so"
LIBRARY_ENVIRONMENT_VARIABLE = "TFLITE_SPARSE_DELEGATE_LIBRARY"
ISA_ENVIRONMENT_VARIABLE = "TFLITE_SPARSE_DELEGATE_ISA"
OPTION_NAMES = ("num_threads", "min_sparsity", "block_n", "isa", "verbose")
REPORT_FUNCTION = "tflite_sparse_delegate_report"
_BUILD_HINT = (
    "build it with `pip install -e .` or "
    "`python tflite_delegate/build_library.py --output tflite_delegate/libtflite_sparse_delegate.so`"
)


@dataclass(frozen=True)
class NodeDecision:
    """The delegate's decision about one CONV_2D node of the most recent delegate Prepare.

    `block_n`, `block_sparsity` (fraction of all-zero 1xN blocks, in [0, 1]) and the per-group
    block counts are None when the node was rejected before its filter was analysed.
    `filter_shape` is (O, KH, KW, I); `isa` is the kernel variant the delegate runs.
    """

    node_index: int
    claimed: bool
    reason: str
    block_n: int | None
    block_sparsity: float | None
    filter_shape: tuple[int, int, int, int]
    blocks_per_group_min: int | None
    blocks_per_group_max: int | None
    uniform: bool | None
    isa: str


@dataclass(frozen=True)
class DelegateSummary:
    """Delegate-wide facts: kernel variant, threads (0 before the first Prepare when the option
    was not given), kernels created so far (one per claimed node per delegation), and the nodes."""

    isa: str
    num_threads: int
    kernels_created: int
    nodes: list[NodeDecision]


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
    in [0, 1]; default 0.5, provisional until measured), block_n ("auto" or 1/2/4/8/16/32),
    isa ("auto"/"avx512"/"avx2"/"generic"; default $TFLITE_SPARSE_DELEGATE_ISA or auto),
    verbose (bool). Raises ValueError naming an unknown option or a bad value, or an ISA this
    CPU lacks. The same library also loads with `tf.lite.experimental.load_delegate(
    library_path(), options)`; pass string values there.
    """
    from ai_edge_litert.interpreter import load_delegate as litert_load_delegate

    return litert_load_delegate(library_path(), options=delegate_options(**options))


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
    library = getattr(candidate, "_library", None)
    return (
        library is not None
        and getattr(candidate, "_delegate_ptr", None) is not None
        and hasattr(library, REPORT_FUNCTION)
    )


def _find_delegate(delegate_or_interpreter: Any):
    if _is_sparse_delegate(delegate_or_interpreter):
        return delegate_or_interpreter
    for delegate in getattr(delegate_or_interpreter, "_delegates", None) or ():
        if _is_sparse_delegate(delegate):
            return delegate
    raise ValueError(
        f"{type(delegate_or_interpreter).__name__} is neither a tflite_delegate delegate nor an "
        "interpreter built with one"
    )


def _report_json(delegate: Any) -> dict:
    report = getattr(delegate._library, REPORT_FUNCTION)
    report.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    report.restype = ctypes.c_size_t
    capacity = 4096
    while True:
        buffer = ctypes.create_string_buffer(capacity)
        needed = report(delegate._delegate_ptr, buffer, capacity)
        if needed < capacity:
            return json.loads(buffer.value.decode("utf-8"))
        capacity = needed + 1


def delegate_summary(delegate_or_interpreter: Any) -> DelegateSummary:
    """Delegate-wide report of a delegate (from `load_delegate`) or of an interpreter using one."""
    data = _report_json(_find_delegate(delegate_or_interpreter))
    if "error" in data:
        raise ValueError(f"delegate report failed: {data['error']}")
    nodes = [
        NodeDecision(
            node_index=node["node_index"],
            claimed=node["claimed"],
            reason=node["reason"],
            block_n=node["block_n"],
            block_sparsity=node["block_sparsity"],
            filter_shape=tuple(node["filter_shape"]),
            blocks_per_group_min=node["blocks_per_group_min"],
            blocks_per_group_max=node["blocks_per_group_max"],
            uniform=node["uniform"],
            isa=data["isa"],
        )
        for node in data["nodes"]
    ]
    return DelegateSummary(
        isa=data["isa"],
        num_threads=data["num_threads"],
        kernels_created=data["kernels_created"],
        nodes=nodes,
    )


def delegation_report(delegate_or_interpreter: Any) -> list[NodeDecision]:
    """Every CONV_2D node of the most recent delegate Prepare: claimed or not, and why.

    Accepts the delegate returned by `load_delegate` (either loader) or an interpreter created
    with it (e.g. by `Interpreter`).
    """
    return delegate_summary(delegate_or_interpreter).nodes
