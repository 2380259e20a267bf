"""Write small `.tflite` models of CONV_2D layers directly with the TFLite flatbuffer schema.

Building the flatbuffer ourselves (LiteRT's generated object API) takes milliseconds instead of a
second per Keras conversion, and reaches cases the converter never emits: stride and dilation
together, any fused activation code, huge or zero-sized declared shapes, int8 filters, and filters
computed at run time. Used by the delegate's tests and by scripts/check_bazel_delegate.py; needs
`ai_edge_litert` (imported here, not by `import tflite_delegate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

ACTIVATIONS = {
    "NONE": schema.ActivationFunctionType.NONE,
    "RELU": schema.ActivationFunctionType.RELU,
    "RELU_N1_TO_1": schema.ActivationFunctionType.RELU_N1_TO_1,
    "RELU6": schema.ActivationFunctionType.RELU6,
    "TANH": schema.ActivationFunctionType.TANH,
}
PADDINGS = {"SAME": schema.Padding.SAME, "VALID": schema.Padding.VALID}
_NUMPY_TYPES = {
    schema.TensorType.FLOAT32: np.float32,
    schema.TensorType.FLOAT16: np.float16,
    schema.TensorType.INT8: np.int8,
    schema.TensorType.INT32: np.int32,
}


@dataclass
class ConvSpec:
    """One CONV_2D: OHWI filter, bias [O] (None: zeros), geometry and fused activation.

    `source` is -1 to read the model input, else the index of an earlier conv whose output this
    conv consumes (sequential layers). `filter_from_input` makes the filter a second model input
    (computed at run time, never constant).
    """

    filter_ohwi: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: str = "SAME"
    activation: str = "NONE"
    source: int = -1
    filter_from_input: bool = False
    filter_type: str = "float32"  # float32, float16 (behind DEQUANTIZE) or int8 (raw)
    declared_filter_shape: tuple[int, ...] | None = None


@dataclass
class _Graph:
    tensors: list = field(default_factory=list)
    buffers: list = field(default_factory=lambda: [schema.BufferT()])
    operators: list = field(default_factory=list)
    opcodes: dict = field(default_factory=dict)

    def opcode(self, builtin: int) -> int:
        if builtin not in self.opcodes:
            self.opcodes[builtin] = len(self.opcodes)
        return self.opcodes[builtin]

    def tensor(self, name, shape, tensor_type, data: np.ndarray | None = None) -> int:
        tensor = schema.TensorT()
        tensor.name = name
        tensor.shape = np.asarray(shape, dtype=np.int32)
        tensor.type = tensor_type
        tensor.buffer = 0
        if data is not None:
            buffer = schema.BufferT()
            raw = np.ascontiguousarray(data.astype(_NUMPY_TYPES[tensor_type]))
            buffer.data = np.frombuffer(raw.tobytes(), dtype=np.uint8)
            tensor.buffer = len(self.buffers)
            self.buffers.append(buffer)
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def operator(self, builtin: int, inputs, outputs, options_type=0, options=None) -> None:
        op = schema.OperatorT()
        op.opcodeIndex = self.opcode(builtin)
        op.inputs = np.asarray(inputs, dtype=np.int32)
        op.outputs = np.asarray(outputs, dtype=np.int32)
        op.builtinOptionsType = options_type
        op.builtinOptions = options
        self.operators.append(op)


def conv_output_size(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """TFLite output size along one axis (SAME: ceil(size / stride); VALID: no padding)."""
    effective = (kernel - 1) * dilation + 1
    if padding == "SAME":
        return -(-size // stride)
    return max(-(-(size - effective + 1) // stride), 0)


def _constant_weights(graph: _Graph, name: str, values: np.ndarray, spec: ConvSpec) -> int:
    """Filter/bias tensor in the requested storage type; float16 goes behind a DEQUANTIZE."""
    shape = values.shape
    if spec.filter_type == "float16":
        half = graph.tensor(f"{name}_fp16", shape, schema.TensorType.FLOAT16, values)
        full = graph.tensor(name, shape, schema.TensorType.FLOAT32)
        graph.operator(schema.BuiltinOperator.DEQUANTIZE, [half], [full])
        return full
    if spec.filter_type == "int8" and name.endswith("filter"):
        quantized = np.clip(np.round(values * 64), -127, 127)
        index = graph.tensor(name, shape, schema.TensorType.INT8, quantized)
        parameters = schema.QuantizationParametersT()
        parameters.scale = np.full(shape[0], 1 / 64, dtype=np.float32)
        parameters.zeroPoint = np.zeros(shape[0], dtype=np.int64)
        parameters.quantizedDimension = 0
        graph.tensors[index].quantization = parameters
        return index
    return graph.tensor(name, shape, schema.TensorType.FLOAT32, values)


def build_conv_model(input_shape: tuple[int, int, int, int], convs: list[ConvSpec]) -> bytes:
    """A model with one NHWC float32 input and one output per conv, in `convs` order.

    Every conv output is a model output. Returns the flatbuffer bytes (file identifier TFL3).
    """
    graph = _Graph()
    model_inputs = [graph.tensor("input", input_shape, schema.TensorType.FLOAT32)]
    outputs, shapes = [], []
    for number, spec in enumerate(convs):
        source = model_inputs[0] if spec.source < 0 else outputs[spec.source]
        batch, height, width, _ = input_shape if spec.source < 0 else shapes[spec.source]
        out_channels, kernel_h, kernel_w, _ = spec.filter_ohwi.shape
        name = f"conv{number}"
        filter_shape = spec.declared_filter_shape or spec.filter_ohwi.shape
        if spec.filter_from_input:
            filter_index = graph.tensor(f"{name}_filter", filter_shape, schema.TensorType.FLOAT32)
            model_inputs.append(filter_index)
        elif spec.declared_filter_shape is not None:
            # Declared shape without matching data: only for "never allocate" robustness models.
            filter_index = graph.tensor(
                f"{name}_filter", filter_shape, schema.TensorType.FLOAT32, spec.filter_ohwi
            )
        else:
            filter_index = _constant_weights(graph, f"{name}_filter", spec.filter_ohwi, spec)
        # The builtin float CONV_2D insists on a bias input (conv.cc: "has_bias was not true"),
        # so "no bias" is a zero bias tensor, as the converter writes for use_bias=False.
        bias = spec.bias if spec.bias is not None else np.zeros(out_channels, np.float32)
        op_inputs = [source, filter_index, _constant_weights(graph, f"{name}_bias", bias, spec)]
        output_shape = (
            batch,
            conv_output_size(height, kernel_h, spec.stride[0], spec.dilation[0], spec.padding),
            conv_output_size(width, kernel_w, spec.stride[1], spec.dilation[1], spec.padding),
            out_channels,
        )
        output_index = graph.tensor(f"{name}_output", output_shape, schema.TensorType.FLOAT32)
        options = schema.Conv2DOptionsT(
            padding=PADDINGS[spec.padding],
            strideH=spec.stride[0],
            strideW=spec.stride[1],
            fusedActivationFunction=ACTIVATIONS[spec.activation],
            dilationHFactor=spec.dilation[0],
            dilationWFactor=spec.dilation[1],
        )
        graph.operator(
            schema.BuiltinOperator.CONV_2D,
            op_inputs,
            [output_index],
            schema.BuiltinOptions.Conv2DOptions,
            options,
        )
        outputs.append(output_index)
        shapes.append(output_shape)
    return _finish(graph, model_inputs, outputs)


def _finish(graph: _Graph, inputs: list[int], outputs: list[int]) -> bytes:
    subgraph = schema.SubGraphT()
    subgraph.tensors = graph.tensors
    subgraph.inputs = np.asarray(inputs, dtype=np.int32)
    subgraph.outputs = np.asarray(outputs, dtype=np.int32)
    subgraph.operators = graph.operators
    subgraph.name = "main"
    model = schema.ModelT()
    model.version = 3
    model.description = "tflite_delegate test model"
    model.subgraphs = [subgraph]
    model.buffers = graph.buffers
    model.operatorCodes = []
    for builtin, _ in sorted(graph.opcodes.items(), key=lambda item: item[1]):
        code = schema.OperatorCodeT()
        code.builtinCode = builtin
        code.deprecatedBuiltinCode = min(builtin, 127)
        code.version = 1
        model.operatorCodes.append(code)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
