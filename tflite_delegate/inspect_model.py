"""Inspector CLI: which CONV_2D layers of a `.tflite` model are 1xN sparse, and which the delegate claims.

    python -m tflite_delegate.inspect_model model.tflite [--threads N] [--min-sparsity X]
        [--block-n auto|1|2|4|8|16|32] [--isa auto|avx512|avx2|generic] [--no-delegate]
        [--check-block-n N]

For every CONV_2D node it prints the filter shape (O, KH, KW, I), the detected block width N (numpy
analysis of the filter, independent of the delegate), the block sparsity at that N (a block is N
output channels x one input channel x the whole KH x KW window), the kept blocks per group
(fewest-most) and their balance ratio (max/mean), the tap-vector sparsity and kept tap vectors per
group (a tap vector is the N weights of one group at one filter tap: what the delegate stores and
skips), and the delegate's decision with its reason code. `--check-block-n N` turns it into a checker like tfmot's `check_sparsity_m_by_n`: the exit
status is 1 when a layer that has zero weights lacks 1xN structure at N. Exit status 2 means the model
could not be read or the delegate rejected the options.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from tflite_delegate.block_pattern import BlockPattern, analyze_filter, block_pattern
from tflite_delegate.tflite_model import (
    FLOAT16_CONSTANT,
    ConvLayer,
    ModelReadError,
    read_conv_layers,
)

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class LayerRow:
    """One line of the table: the conv layer, its numpy block analysis and the delegate's view."""

    layer: ConvLayer
    pattern: BlockPattern | None
    decision: object | None


def _delegate_decisions(model_path: str, options: dict) -> dict[int, object]:
    """Map node index -> NodeDecision, from an interpreter that applies the delegate."""
    import tflite_delegate

    interpreter = tflite_delegate.Interpreter(model_path=model_path, **options)
    return {d.node_index: d for d in tflite_delegate.delegation_report(interpreter)}


def _format_decision(decision) -> str:
    if decision is None:
        return "not seen by the delegate"
    if decision.claimed:
        note = (
            "; dense, few input channels" if decision.reason.startswith("claimed: a dense") else ""
        )
        return f"claimed (N={decision.block_n}, {decision.isa}, {decision.microkernel}{note})"
    return f"no [{decision.reason_code}]: {decision.reason}"


def format_table(rows: Sequence[LayerRow]) -> str:
    """Render the rows as a fixed-width text table (sparsity in percent)."""
    header = (
        "node",
        "layer",
        "filter OHWI",
        "weights",
        "N",
        "block_sparsity",
        "kept_blocks",
        "balance_ratio",
        "tap_vector_sparsity",
        "kept_tap_vectors",
    )
    lines = [(*header, "delegate")]
    for row in rows:
        layer, pattern = row.layer, row.pattern
        shape = "x".join(str(d) for d in layer.filter_shape)
        weights = "fp16" if layer.filter_source == FLOAT16_CONSTANT else layer.filter_dtype
        if pattern is None:
            stats = ("-",) * 6
            weights = layer.filter_source
        else:
            stats = (
                str(pattern.block_n),
                f"{100 * pattern.block_sparsity:.1f}%",
                f"{pattern.kept_blocks_min}-{pattern.kept_blocks_max}",
                f"{pattern.balance_ratio:.3f}",
                f"{100 * pattern.tap_vector_sparsity:.1f}%",
                f"{pattern.kept_tap_vectors_min}-{pattern.kept_tap_vectors_max}",
            )
        cells = (str(layer.node_index), layer.name, shape, weights, *stats)
        lines.append((*cells, _format_decision(row.decision)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  "
        + line[-1]
        for line in lines
    )


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tflite_delegate.inspect_model",
        description="Table of the CONV_2D layers of a .tflite model: 1xN block structure, "
        "block and tap-vector sparsity, balance, and whether the sparse delegate claims them.",
    )
    parser.add_argument("model", help="path to a .tflite file")
    parser.add_argument("--threads", type=int, default=1, help="delegate num_threads (default 1)")
    parser.add_argument("--min-sparsity", type=float, default=None, help="delegate min_sparsity")
    parser.add_argument("--block-n", default=None, help="delegate block_n: auto or 1/2/4/8/16/32")
    parser.add_argument("--isa", default=None, help="delegate isa: auto/avx512/avx2/generic")
    parser.add_argument(
        "--no-delegate",
        action="store_true",
        help="only the numpy analysis; do not load the delegate",
    )
    parser.add_argument(
        "--check-block-n",
        type=int,
        default=None,
        metavar="N",
        help="exit with status 1 unless every layer with zero weights has 1xN structure at N",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the inspector; returns the process exit status (0 ok, 1 check failed, 2 bad input)."""
    args = _parse_args(argv)
    try:
        layers = read_conv_layers(model_path=args.model)
    except ModelReadError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT

    decisions: dict[int, object] = {}
    if not args.no_delegate:
        options: dict = {"num_threads": args.threads}
        for key, value in (("min_sparsity", args.min_sparsity), ("block_n", args.block_n)):
            if value is not None:
                options[key] = value
        if args.isa is not None:
            options["isa"] = args.isa
        try:
            decisions = _delegate_decisions(args.model, options)
        except (ValueError, OSError, RuntimeError) as error:
            print(f"error: the delegate could not inspect the model: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT

    rows = []
    for layer in layers:
        pattern = analyze_filter(layer.filter) if layer.filter is not None else None
        rows.append(LayerRow(layer, pattern, decisions.get(layer.node_index)))
    print(f"{args.model}: {len(layers)} CONV_2D layer(s)")
    if rows:
        print(format_table(rows))

    if args.check_block_n is None:
        return 0
    failures = []
    for row in rows:
        if row.pattern is None:
            continue
        has_zeros = bool((row.layer.filter == 0).any())
        if has_zeros and not block_pattern(row.layer.filter, args.check_block_n).has_structure:
            failures.append(row.layer.name)
    if failures:
        print(
            f"check failed: {len(failures)} layer(s) with zeros lack 1x{args.check_block_n} "
            f"structure: {', '.join(failures)}"
        )
        return EXIT_CHECK_FAILED
    print(f"check passed: every sparse layer has 1x{args.check_block_n} block structure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
