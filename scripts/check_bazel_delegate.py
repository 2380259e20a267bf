"""Smoke-check a delegate library (e.g. the Bazel-built one) against LiteRT's builtin kernels.

Builds a small float32 model of two 1xN block-sparse CONV_2D layers, runs it through
`tflite_delegate.Interpreter` (our delegate, num_threads=1) once per microkernel ISA of the
library's registry that this CPU runs,
and compares with a reference interpreter (builtin kernels, no XNNPACK, no delegate). Fails
unless the delegate claims the convolutions and every output is within 1e-5 of the reference,
relative to the output's scale (max |reference|, at least 1). Run from the repository root:

    TFLITE_SPARSE_DELEGATE_LIBRARY=build/bazel/libtflite_sparse_delegate.so \
        .venv/bin/python -m scripts.check_bazel_delegate
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

RELATIVE_TOLERANCE = 1e-5


def sparse_filter(
    out_channels: int, kernel: int, in_channels: int, block_n: int, rng: np.random.Generator
) -> np.ndarray:
    """OHWI float32 filter in which 3 of every 4 tap vectors (N output channels at one tap) are
    zero."""
    groups = out_channels // block_n
    keep = rng.random((groups, kernel, kernel, in_channels)) < 0.25
    mask = np.repeat(keep, block_n, axis=0)
    weights = rng.normal(0.0, 1.0 / np.sqrt(kernel * kernel * in_channels), size=mask.shape)
    return np.where(mask, weights, 0.0).astype(np.float32)


def build_model(block_n: int, seed: int) -> bytes:
    """Input 1x12x12x16 -> 3x3 conv (32 channels, RELU) -> 1x1 conv (16 channels)."""
    from tflite_delegate.flatbuffer_models import ConvSpec, build_conv_model

    rng = np.random.default_rng(seed)
    convs = [
        ConvSpec(
            sparse_filter(32, 3, 16, block_n, rng),
            rng.normal(size=32).astype(np.float32),
            activation="RELU",
        ),
        ConvSpec(sparse_filter(16, 1, 32, block_n, rng), None, source=0),
    ]
    return build_conv_model((1, 12, 12, 16), convs)


def run(interpreter, image: np.ndarray) -> list[np.ndarray]:
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--library",
        help="delegate .so to check (default: $TFLITE_SPARSE_DELEGATE_LIBRARY, else the packaged one)",
    )
    parser.add_argument("--block-n", type=int, default=4, help="1xN block size of the model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    import tflite_delegate

    if args.library:
        os.environ[tflite_delegate.LIBRARY_ENVIRONMENT_VARIABLE] = os.path.abspath(args.library)
    library = tflite_delegate.library_path()
    print(f"delegate library: {library}")

    model = build_model(args.block_n, args.seed)
    image = np.random.default_rng(args.seed + 1).normal(size=(1, 12, 12, 16)).astype(np.float32)
    reference = run(
        Interpreter(
            model_content=model,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        ),
        image,
    )

    failures = 0
    isas: dict[str, bool] = {}
    for kernel in tflite_delegate.microkernels():
        isas[kernel.isa] = isas.get(kernel.isa, True) and kernel.supported_by_cpu
    for isa, runs in isas.items():
        if not runs:
            print(f"isa={isa}: skipped (this CPU cannot run it)")
            continue
        interpreter = tflite_delegate.Interpreter(model_content=model, num_threads=1, isa=isa)
        outputs = run(interpreter, image)
        summary = tflite_delegate.delegate_summary(interpreter)
        claimed = sum(node.claimed for node in summary.nodes)
        errors = [
            float(np.max(np.abs(got - want))) for got, want in zip(outputs, reference, strict=True)
        ]
        scales = [max(float(np.max(np.abs(want))), 1.0) for want in reference]
        relative = max(error / scale for error, scale in zip(errors, scales, strict=True))
        ok = claimed >= 1 and relative <= RELATIVE_TOLERANCE
        failures += not ok
        print(
            f"isa={summary.isa}: claimed {claimed}/{len(summary.nodes)} CONV_2D nodes, "
            f"max |diff| {max(errors):.3g}, relative {relative:.3g} "
            f"(limit {RELATIVE_TOLERANCE:g}) -> {'OK' if ok else 'FAIL'}"
        )
    print("delegate check:", "FAILED" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
