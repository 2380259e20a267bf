"""Read the CONV_2D layers of a `.tflite` model and their filters, without our delegate.

Uses LiteRT's own interpreter with the builtin op resolver (no delegates) purely as a flatbuffer
reader: `litert_compat.ops_details` gives the graph, `get_tensor()` gives constant tensors. Tensors
are never allocated, so models with huge declared shapes can be read too. fp16-weight models store
each filter as a float16 constant behind a DEQUANTIZE op; we follow it and return the weights as
float32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tflite_delegate import litert_compat

FLOAT32_CONSTANT = "float32 constant"
FLOAT16_CONSTANT = "float16 constant via DEQUANTIZE"


class ModelReadError(ValueError):
    """The file is missing, unreadable or not a valid `.tflite` flatbuffer."""


@dataclass(frozen=True)
class ConvLayer:
    """One CONV_2D node of a model's main subgraph.

    `filter` is the float32 OHWI weight array `[O, KH, KW, I]` when it is a compile-time constant
    (`filter_source` is FLOAT32_CONSTANT or FLOAT16_CONSTANT); otherwise `filter` is None and
    `filter_source` says why (computed at run time, int8, ...). Shapes are the declared ones
    (-1 entries of a dynamic batch appear as 1 in `input_shape`/`output_shape`).
    """

    node_index: int
    name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    filter_shape: tuple[int, ...]
    filter_dtype: str
    filter_source: str
    filter: np.ndarray | None
    has_bias: bool

    @property
    def groups(self) -> int:
        """Input channels / filter input channels (1 for a plain convolution; 0 if unknown)."""
        if len(self.input_shape) != 4 or len(self.filter_shape) != 4 or self.filter_shape[3] <= 0:
            return 0
        return self.input_shape[3] // self.filter_shape[3]


def _layer_name(filter_tensor_name: str, output_tensor_name: str) -> str:
    """Keras layer name when the converter kept it in the filter tensor's name ("model/conv1_1/
    convolution"), else the filter tensor's name, else the output tensor's name."""
    parts = filter_tensor_name.split("/")
    if len(parts) >= 3 and parts[-1].startswith(("convolution", "Conv2D")):
        layer = parts[-2]
        # Keras 3 suffixes "_1" to the layer scope when tracing.
        return layer[:-2] if layer.endswith("_1") else layer
    return filter_tensor_name or output_tensor_name


def _open_reader(model_path: str | os.PathLike | None, model_content: bytes | None):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if (model_path is None) == (model_content is None):
        raise ValueError("give exactly one of model_path and model_content")
    if model_path is not None:
        path = Path(model_path)
        if not path.is_file():
            raise ModelReadError(f"model file not found: {path}")
        try:
            model_content = path.read_bytes()
        except OSError as error:
            raise ModelReadError(f"cannot read model file {path}: {error}") from error
    if not isinstance(model_content, bytes | bytearray) or len(model_content) < 8:
        raise ModelReadError("model content is empty or not bytes")
    # A .tflite flatbuffer carries the file identifier "TFL3" at bytes 4..8; checking it first turns
    # a garbage file into a clear error instead of whatever the flatbuffer verifier reports.
    if bytes(model_content[4:8]) != b"TFL3":
        source = f"{model_path}" if model_path is not None else "model content"
        raise ModelReadError(f"{source} is not a TFLite flatbuffer (missing 'TFL3' identifier)")
    try:
        return Interpreter(
            model_content=bytes(model_content),
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
    except (ValueError, RuntimeError) as error:
        raise ModelReadError(f"cannot parse the TFLite model: {error}") from error


def read_conv_layers(
    model_path: str | os.PathLike | None = None, model_content: bytes | None = None
) -> list[ConvLayer]:
    """All CONV_2D nodes of the model's main subgraph, in execution order, with their filters.

    Raises ModelReadError (a ValueError) for a missing, unreadable or corrupt model.
    """
    reader = _open_reader(model_path, model_content)
    ops = litert_compat.ops_details(reader)
    details = {detail["index"]: detail for detail in reader.get_tensor_details()}
    producers = {int(out): op for op in ops for out in op["outputs"]}
    graph_inputs = {int(detail["index"]) for detail in reader.get_input_details()}

    def constant(index: int) -> np.ndarray | None:
        if index < 0 or index in producers or index in graph_inputs:
            return None
        try:
            return np.array(reader.get_tensor(index))
        except ValueError:
            return None

    def shape(index: int) -> tuple[int, ...]:
        return tuple(int(d) for d in details[index]["shape"]) if index in details else ()

    layers = []
    for op in ops:
        if op["op_name"] != "CONV_2D":
            continue
        inputs = [int(i) for i in op["inputs"]]
        input_index, filter_index = inputs[0], inputs[1]
        filter_dtype = np.dtype(details[filter_index]["dtype"]).name
        weights = constant(filter_index)
        source = FLOAT32_CONSTANT
        if weights is None:
            producer = producers.get(filter_index)
            weights, source = None, "computed at run time"
            if producer is not None and producer["op_name"] == "DEQUANTIZE":
                source_index = int(producer["inputs"][0])
                source_weights = constant(source_index)
                source_dtype = np.dtype(details[source_index]["dtype"]).name
                if source_weights is not None and source_dtype == "float16":
                    weights, source = source_weights.astype(np.float32), FLOAT16_CONSTANT
                else:
                    source = f"DEQUANTIZE of a {source_dtype} tensor"
        elif filter_dtype != "float32":
            weights, source = None, f"{filter_dtype} constant"
        output_index = int(op["outputs"][0])
        layers.append(
            ConvLayer(
                node_index=int(op["index"]),
                name=_layer_name(details[filter_index]["name"], details[output_index]["name"]),
                input_shape=shape(input_index),
                output_shape=shape(output_index),
                filter_shape=shape(filter_index),
                filter_dtype=filter_dtype,
                filter_source=source,
                filter=weights,
                has_bias=len(inputs) > 2 and inputs[2] >= 0,
            )
        )
    return layers
