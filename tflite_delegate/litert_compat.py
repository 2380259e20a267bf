"""Every use of a private LiteRT / TF-Lite Python attribute, in one place.

The delegate's Python face needs three things that neither `ai_edge_litert` nor `tf.lite` offers
publicly; each accessor below names the public API that is missing. When one appears, only this
module changes.
"""

from __future__ import annotations

from typing import Any


def interpreter_delegates(interpreter: Any) -> tuple:
    """The delegate objects an interpreter was built with (`experimental_delegates`).

    Missing public API: `Interpreter.get_delegates()` (the interpreter keeps its delegates in
    the private `_delegates` list only).
    """
    return tuple(getattr(interpreter, "_delegates", None) or ())


def delegate_library(delegate: Any) -> Any | None:
    """The ctypes library handle behind a delegate from `load_delegate`, or None.

    Missing public API: `Delegate.library` (LiteRT's and TF's `Delegate` keep the ctypes handle
    in the private `_library`).
    """
    return getattr(delegate, "_library", None)


def delegate_pointer(delegate: Any) -> int | None:
    """The `TfLiteDelegate*` of a delegate from `load_delegate` (an integer address), or None.

    Missing public API: `Delegate.delegate_pointer()`; only the private `_get_native_delegate_
    pointer` method and the `_delegate_ptr` field exist (the field in both LiteRT and TF).
    """
    return getattr(delegate, "_delegate_ptr", None)


def ops_details(interpreter: Any) -> list[dict]:
    """Per-node details (index, op_name, inputs, outputs) of an interpreter's main subgraph.

    Missing public API: `Interpreter.get_ops_details()` (only the private `_get_ops_details`
    exists in LiteRT and TF).
    """
    return interpreter._get_ops_details()
