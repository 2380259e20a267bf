"""1xN block-sparse CONV_2D delegate for LiteRT/TFLite (x86-64 AVX-512/AVX2, portable fallback).

Runtime face (imports only the standard library here; LiteRT when used): `library_path`,
`load_delegate`, `Interpreter`, `delegation_report`, `delegate_summary`, and the library's
microkernel registry (`microkernels`, `supported_isas`). `convert` (Keras model
to a float32 `.tflite` that keeps its zeros) needs TensorFlow and is imported on first use.
"""

from tflite_delegate.runtime import (
    ISA_ENVIRONMENT_VARIABLE,
    LIBRARY_ENVIRONMENT_VARIABLE,
    OPTION_NAMES,
    DelegateSummary,
    Interpreter,
    Microkernel,
    NodeDecision,
    delegate_options,
    delegate_summary,
    delegation_report,
    library_path,
    load_delegate,
    microkernels,
    supported_isas,
)

__all__ = [
    "ISA_ENVIRONMENT_VARIABLE",
    "LIBRARY_ENVIRONMENT_VARIABLE",
    "OPTION_NAMES",
    "DelegateSummary",
    "Interpreter",
    "Microkernel",
    "NodeDecision",
    "convert",
    "delegate_options",
    "delegate_summary",
    "delegation_report",
    "library_path",
    "load_delegate",
    "microkernels",
    "supported_isas",
]


def __getattr__(name: str):
    # Lazy so that `import tflite_delegate` never imports TensorFlow.
    if name == "convert":
        from tflite_delegate.keras_conversion import convert

        return convert
    raise AttributeError(f"module 'tflite_delegate' has no attribute {name!r}")
