"""Compress a trained Keras model without its training data, and check what it cost on real test data.

Loads a saved `.keras` model, evaluates it on the test split of Fashion-MNIST or MNIST, compresses it
with one of dfcompress's methods, prints the method's per-layer report, evaluates again, and writes
the compressed `.keras` model (and, with --tflite, a `.tflite` file). The training data is never
used: the test split only measures the result.

Methods (--method):
  udfc   channel pruning (--prune_ratio, --criterion) + quantization (--weight_bits, --quantizer;
         --weight_bits=0 prunes only), both compensated in closed form; --objective=bn fits the
         pruning compensation at the BN output as the paper does (default: after the activation)
  dfmpc  mixed precision: low-bit layers (--low_bits) compensated by the next high-bit layer
         (--high_bits)
  nm     Neuron Merging baseline: pruning with one merge partner per pruned channel
  prune  plain channel pruning, no compensation (--prune_ratio, --criterion)
  quant  direct quantization of every conv/dense kernel, no compensation (--bits, --quantizer)

Data (--dataset, --data_dir): the first local copy `cnn_zoo.datasets` finds. When --data_dir is not
given and no full copy exists, Fashion-MNIST falls back to the committed 1,000-image test sample in
tests/fixtures, and the output says so.

Nothing is overwritten unless --overwrite is given; outputs are written under temporary names and
renamed into place only when everything succeeded. A bad flag value stops the program with one line
naming the flag, before anything is loaded or written.

Example:
  python -m scripts.compress --model_path vgg.keras --method udfc --prune_ratio 0.3 \\
      --weight_bits 6 --output vgg_udfc.keras --tflite vgg_udfc.tflite --tflite_weights int8
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from scripts.compression_evaluation import (  # noqa: E402
    DATASETS,
    CommandError,
    accuracy,
    load_test_data,
)

METHODS = ("udfc", "dfmpc", "nm", "prune", "quant")

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Saved Keras model to compress (.keras).")
flags.DEFINE_enum("method", "udfc", METHODS, "Compression method (see the module docstring).")
flags.DEFINE_float("prune_ratio", 0.3, "udfc/nm/prune: fraction of channels pruned per layer.")
flags.DEFINE_integer("weight_bits", 6, "udfc: weight bits; 0 = pruning only (float32 weights).")
flags.DEFINE_integer("low_bits", 2, "dfmpc: bits of the low-precision layers (2 = ternary).")
flags.DEFINE_integer("high_bits", 6, "dfmpc: bits of the compensating high-precision layers.")
flags.DEFINE_integer("bits", 6, "quant: bits of every conv/dense kernel.")
flags.DEFINE_enum("criterion", "l2", ("l1", "l2"), "udfc/nm/prune: filter norm ranking channels.")
flags.DEFINE_enum(
    "objective",
    "activation",
    ("activation", "bn"),
    "udfc: fit each pruned channel's combination after the activation, or at the BN output (paper).",
)
flags.DEFINE_string(
    "quantizer", "dorefa", "udfc/quant: weight quantizer (a name of dfcompress.QUANTIZER_NAMES)."
)
flags.DEFINE_enum("dataset", "fashion_mnist", tuple(DATASETS), "Test data for the evaluation.")
flags.DEFINE_string("data_dir", None, "Directory with the dataset's four IDX files.")
flags.DEFINE_string("output", None, "Where the compressed model goes (.keras).")
flags.DEFINE_string("tflite", None, "Also write a .tflite file here.")
flags.DEFINE_enum("tflite_weights", "float32", ("float32", "int8"), "Weights of the .tflite file.")
flags.DEFINE_bool("overwrite", False, "Replace existing output files.")
flags.DEFINE_integer("seed", 0, "Seed of every random choice (the methods themselves are exact).")
flags.DEFINE_integer("eval_images", 0, "Evaluate on the first N test images (0 = all).")

flags.mark_flag_as_required("model_path")
flags.mark_flag_as_required("output")


def _check_range(name: str, low: float, high: float, high_inclusive: bool = False) -> None:
    def check(value) -> bool:
        above = value <= high if high_inclusive else value < high
        if not (low <= value and above):
            closing = "]" if high_inclusive else ")"
            raise flags.ValidationError(f"must be in [{low}, {high}{closing}, got {value}")
        return True

    flags.register_validator(name, check)


_check_range("prune_ratio", 0.0, 1.0)
_check_range("weight_bits", 0, 16, high_inclusive=True)
_check_range("low_bits", 1, 16, high_inclusive=True)
_check_range("high_bits", 1, 16, high_inclusive=True)
_check_range("bits", 1, 16, high_inclusive=True)
_check_range("eval_images", 0, sys.maxsize)


@flags.validator("quantizer", "unknown quantizer (see dfcompress.QUANTIZER_NAMES)")
def _known_quantizer(value: str) -> bool:
    from dfcompress.quantizers import QUANTIZER_NAMES  # the library's list; imports Keras

    if value not in QUANTIZER_NAMES:
        raise flags.ValidationError(f"must be one of {', '.join(QUANTIZER_NAMES)}, got {value!r}")
    return True


def _check_bits_for_quantizer(name: str) -> None:
    def check(values: dict) -> bool:
        from dfcompress.quantizers import QUANTIZER_NAMES, get_quantizer

        bits, quantizer = values[name], values["quantizer"]
        if (name == "weight_bits" and bits == 0) or quantizer not in QUANTIZER_NAMES:
            return True  # pruning only; an unknown name is reported by its own validator
        try:
            get_quantizer(quantizer).check_bits(bits)
        except ValueError as error:
            raise flags.ValidationError(
                f"--{name}={bits} is not available with --quantizer={quantizer}: {error}"
            ) from None
        return True

    flags.register_multi_flags_validator([name, "quantizer"], check)


_check_bits_for_quantizer("weight_bits")
_check_bits_for_quantizer("bits")


@flags.multi_flags_validator(["low_bits", "high_bits"], "--low_bits must be at most --high_bits")
def _low_at_most_high(values: dict) -> bool:
    return values["low_bits"] <= values["high_bits"]


@flags.validator("model_path", "must be an existing .keras file")
def _model_exists(value: str | None) -> bool:
    return value is None or (value.endswith(".keras") and Path(value).is_file())


@flags.validator("data_dir", "must be an existing directory")
def _data_dir_exists(value: str | None) -> bool:
    return value is None or Path(value).is_dir()


def _check_output(name: str, suffix: str) -> None:
    def check(values: dict) -> bool:
        value = values[name]
        if value is None:
            return True
        path = Path(value)
        if path.suffix != suffix:
            raise flags.ValidationError(f"--{name} must end with {suffix}, got {value}")
        directory = path.parent if str(path.parent) else Path(".")
        if not directory.is_dir():
            raise flags.ValidationError(f"--{name}: directory {directory} does not exist")
        if not os.access(directory, os.W_OK):
            raise flags.ValidationError(f"--{name}: directory {directory} is not writable")
        if path.is_dir():
            raise flags.ValidationError(f"--{name}: {value} is a directory")
        if values["model_path"] and path.resolve() == Path(values["model_path"]).resolve():
            raise flags.ValidationError(f"--{name} must not be the input --model_path")
        if path.exists() and not values["overwrite"]:
            raise flags.ValidationError(
                f"--{name}: {value} exists (pass --overwrite to replace it)"
            )
        return True

    flags.register_multi_flags_validator([name, "overwrite", "model_path"], check)


_check_output("output", ".keras")
_check_output("tflite", ".tflite")


@flags.multi_flags_validator(["output", "tflite"], "--output and --tflite must differ")
def _distinct_outputs(values: dict) -> bool:
    return values["tflite"] is None or Path(values["tflite"]) != Path(values["output"] or "")


def compress(model):
    """Run the chosen method with the flags' settings; returns (model, report)."""
    import dfcompress

    method = FLAGS.method
    if method == "udfc":
        return dfcompress.udfc(
            model,
            prune_ratio=FLAGS.prune_ratio,
            weight_bits=FLAGS.weight_bits or None,
            criterion=FLAGS.criterion,
            quantizer=FLAGS.quantizer,
            objective=FLAGS.objective,
        )
    if method == "dfmpc":
        return dfcompress.dfmpc(model, low_bits=FLAGS.low_bits, high_bits=FLAGS.high_bits)
    if method == "nm":
        return dfcompress.neuron_merging(
            model, prune_ratio=FLAGS.prune_ratio, criterion=FLAGS.criterion
        )
    if method == "prune":
        return dfcompress.prune_channels(
            model, prune_ratio=FLAGS.prune_ratio, criterion=FLAGS.criterion
        )
    return dfcompress.quantize_weights(model, bits=FLAGS.bits, quantizer=FLAGS.quantizer)


def _temporary_path(destination: Path) -> Path:
    handle, name = tempfile.mkstemp(
        prefix=f".{destination.stem}.", suffix=destination.suffix, dir=destination.parent
    )
    os.close(handle)
    return Path(name)


def write_outputs(model, output: Path, tflite: Path | None, tflite_weights: str) -> None:
    """Write the `.keras` (and `.tflite`) under temporary names, then rename both into place."""
    import dfcompress

    temporaries: list[Path] = []
    try:
        keras_temporary = _temporary_path(output)
        temporaries.append(keras_temporary)
        model.save(keras_temporary)
        pending = [(keras_temporary, output)]
        if tflite is not None:
            tflite_temporary = _temporary_path(tflite)
            temporaries.append(tflite_temporary)
            dfcompress.to_tflite(model, tflite_temporary, weights=tflite_weights)
            pending.append((tflite_temporary, tflite))
        for destination in (output, tflite):
            if destination is not None and destination.exists() and not FLAGS.overwrite:
                raise CommandError(f"{destination} appeared meanwhile; not overwritten")
        for temporary, destination in pending:
            os.chmod(temporary, 0o644)
            os.replace(temporary, destination)
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)


def run() -> None:
    import keras
    from absl import logging

    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # the converter logs every step at INFO

    import keras_subp  # noqa: F401  (registers its layers so wrapped models load; dfcompress refuses them)

    keras.utils.set_random_seed(FLAGS.seed)
    try:
        model = keras.models.load_model(FLAGS.model_path, compile=False)
    except Exception as error:  # Keras raises many types for unreadable files
        raise CommandError(f"--model_path: cannot load {FLAGS.model_path}: {error}") from error
    images, labels, source = load_test_data(FLAGS.dataset, FLAGS.data_dir)
    if FLAGS.eval_images:
        images, labels = images[: FLAGS.eval_images], labels[: FLAGS.eval_images]
    expected = tuple(model.inputs[0].shape[1:])
    if expected != images.shape[1:]:
        raise CommandError(
            f"--model_path: the model takes inputs {expected}, the {FLAGS.dataset} test images "
            f"are {images.shape[1:]}"
        )
    print(f"data: {FLAGS.dataset} test split from {source}")
    before = accuracy(model, images, labels)
    print(
        f"before: accuracy {before:.4f} on {len(labels)} test images, {model.count_params():,} parameters"
    )

    start = time.perf_counter()
    try:
        compressed, report = compress(model)
    except (ValueError, TypeError) as error:
        raise CommandError(f"--method={FLAGS.method}: {error}") from error
    seconds = time.perf_counter() - start
    print(report.format_table())
    after = accuracy(compressed, images, labels)
    print(
        f"after:  accuracy {after:.4f} ({100 * (after - before):+.2f} points), "
        f"{compressed.count_params():,} parameters, {report.size_mb_after:.3f} MiB at the stated "
        f"bits (from {report.size_mb_before:.3f} MiB), compressed in {seconds:.1f} s"
    )
    output = Path(FLAGS.output)
    tflite = Path(FLAGS.tflite) if FLAGS.tflite else None
    write_outputs(compressed, output, tflite, FLAGS.tflite_weights)
    print(f"wrote {output} ({output.stat().st_size / 2**20:.3f} MiB)")
    if tflite is not None:
        print(
            f"wrote {tflite} ({tflite.stat().st_size / 2**20:.3f} MiB, {FLAGS.tflite_weights} weights)"
        )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        run()
    except CommandError as error:
        message = " ".join(str(error).split())
        sys.exit(f"compress.py: error: {message}")


if __name__ == "__main__":
    app.run(main)
