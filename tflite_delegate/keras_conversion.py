"""Keras 3 model -> float32 (or fp16-weight) `.tflite` that keeps the pruned zeros in place."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

WEIGHT_TYPES = ("float32", "float16")


def convert(model, path: str | os.PathLike, weights: str = "float32") -> Path:
    """Convert a Keras 3 model to a `.tflite` file for the sparse delegate; return the path.

    `model` is a `keras.Model` (for example the output of `keras_subp.strip_subp`). Convolution
    weights are written as plain dense tensors with their explicit zeros; the delegate rediscovers
    the 1xN block pattern from them when it loads the model.

    `weights="float32"` keeps every weight in float32. `weights="float16"` stores weights as float16
    constants behind DEQUANTIZE ops (half the file size; zeros stay exact zeros because +-0.0 is
    representable in float16); activations and arithmetic stay float32 and the delegate claims
    these convolutions too.

    Why not `tf.lite.Optimize.EXPERIMENTAL_SPARSITY`: the converter has no block encoding for
    CONV_2D, so it would store each sparse conv filter in a random-sparsity CSR format and insert a
    DENSIFY op in front of it. No builtin CONV_2D kernel consumes that format, XNNPACK only
    densifies it again (its sparse path never runs on AVX x86 CPUs), and tools that read filters
    (this package's inspector among them) would see DENSIFY outputs instead of constants. The file
    gets smaller, but inference gets no faster and the 1xN structure becomes harder to see.

    The file is written atomically: a temporary file in the destination directory is renamed over
    `path` only after conversion succeeded, so a failure never leaves a partial file behind.
    Raises TypeError for a non-Keras model, ValueError for a bad `weights` value or a model the
    converter rejects, and OSError when the destination directory does not exist or is not
    writable.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"convert() needs a keras.Model, got {type(model).__name__}")
    if weights not in WEIGHT_TYPES:
        raise ValueError(f"weights must be one of {WEIGHT_TYPES}, got {weights!r}")
    destination = Path(path)
    directory = destination.parent if str(destination.parent) else Path(".")
    if destination.is_dir():
        raise IsADirectoryError(f"convert() output path is a directory: {destination}")
    if not directory.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {directory}")
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"output directory is not writable: {directory}")

    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if weights == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    try:
        # Keras prints the exported SavedModel's whole signature (one line per variable) to
        # stdout; failures still surface as exceptions.
        with contextlib.redirect_stdout(io.StringIO()):
            flatbuffer = converter.convert()
    except Exception as error:  # the converter raises many unrelated types (ConverterError, ...)
        raise ValueError(f"TFLite conversion of {model.name!r} failed: {error}") from error

    handle, temporary = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(flatbuffer)
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp creates the file 0600; give it the usual permissions of a written model.
        os.chmod(temporary, 0o644)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return destination
