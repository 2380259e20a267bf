#include "claiming_policy.h"

#include <cstdio>
#include <limits>

#include "float16.h"

namespace tflite_sparse {

namespace {

const char* TypeName(TfLiteType type) {
  switch (type) {
    case kTfLiteNoType:
      return "NOTYPE";
    case kTfLiteFloat32:
      return "FLOAT32";
    case kTfLiteInt32:
      return "INT32";
    case kTfLiteUInt8:
      return "UINT8";
    case kTfLiteInt64:
      return "INT64";
    case kTfLiteString:
      return "STRING";
    case kTfLiteBool:
      return "BOOL";
    case kTfLiteInt16:
      return "INT16";
    case kTfLiteInt8:
      return "INT8";
    case kTfLiteFloat16:
      return "FLOAT16";
    case kTfLiteFloat64:
      return "FLOAT64";
    case kTfLiteInt4:
      return "INT4";
    case kTfLiteBFloat16:
      return "BFLOAT16";
  }
  return "UNKNOWN";
}

const char* ActivationName(TfLiteFusedActivation activation) {
  switch (activation) {
    case kTfLiteActNone:
      return "NONE";
    case kTfLiteActRelu:
      return "RELU";
    case kTfLiteActReluN1To1:
      return "RELU_N1_TO_1";
    case kTfLiteActRelu6:
      return "RELU6";
    case kTfLiteActTanh:
      return "TANH";
    case kTfLiteActSignBit:
      return "SIGN_BIT";
    case kTfLiteActSigmoid:
      return "SIGMOID";
  }
  return "UNKNOWN";
}

bool ValidTensorIndex(const TfLiteContext* context, int index) {
  return index >= 0 && static_cast<size_t>(index) < context->tensors_size;
}

// Number of elements of a tensor, or -1 if its dims are missing or negative, or the count does
// not fit int64 (checked before multiplying: a crafted model must not cause signed overflow).
int64_t ElementCount(const TfLiteTensor& tensor) {
  if (tensor.dims == nullptr) return -1;
  int64_t count = 1;
  for (int axis = 0; axis < tensor.dims->size; ++axis) {
    const int64_t extent = tensor.dims->data[axis];
    if (extent < 0) return -1;
    if (extent != 0 && count > std::numeric_limits<int64_t>::max() / extent) return -1;
    count *= extent;
  }
  return count;
}

bool HasZeroDimension(const TfLiteTensor& tensor) {
  if (tensor.dims == nullptr) return false;
  for (int axis = 0; axis < tensor.dims->size; ++axis) {
    if (tensor.dims->data[axis] == 0) return true;
  }
  return false;
}

// Copies a constant weight tensor as float32: either a float32 read-only constant, or the output
// of DEQUANTIZE(float16 read-only constant). `role` names the tensor in reasons.
bool ReadConstantFloats(TfLiteContext* context, int tensor_index,
                        const DequantizeSources& dequantize_sources, const std::string& role,
                        std::vector<float>* values, std::string* reason) {
  const TfLiteTensor& tensor = context->tensors[tensor_index];
  const int64_t count = ElementCount(tensor);
  if (count < 0) {
    *reason = role + " has unknown shape";
    return false;
  }
  if (tensor.type != kTfLiteFloat32) {
    *reason = role + " type " + TypeName(tensor.type) +
              " unsupported (float32 or dequantized float16 constants only)";
    return false;
  }
  if (tensor.quantization.type != kTfLiteNoQuantization) {
    *reason = role + " is quantized";
    return false;
  }
  if (tensor.allocation_type == kTfLiteMmapRo) {
    if (tensor.data.raw_const == nullptr ||
        tensor.bytes < static_cast<size_t>(count) * sizeof(float)) {
      *reason = role + " constant has no data";
      return false;
    }
    values->assign(tensor.data.f, tensor.data.f + count);
    return true;
  }
  const auto source = dequantize_sources.find(tensor_index);
  if (source != dequantize_sources.end() && ValidTensorIndex(context, source->second)) {
    const TfLiteTensor& half = context->tensors[source->second];
    if (half.type == kTfLiteFloat16 && half.allocation_type == kTfLiteMmapRo &&
        half.data.raw_const != nullptr && ElementCount(half) == count &&
        half.bytes >= static_cast<size_t>(count) * sizeof(uint16_t) &&
        half.quantization.type == kTfLiteNoQuantization) {
      values->resize(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) (*values)[i] = HalfToFloat(half.data.f16[i]);
      return true;
    }
  }
  *reason = role + " is not a constant";
  return false;
}

bool ActivationRange(TfLiteFusedActivation activation, float* low, float* high) {
  constexpr float kLowest = std::numeric_limits<float>::lowest();
  constexpr float kHighest = std::numeric_limits<float>::max();
  switch (activation) {
    case kTfLiteActNone:
      *low = kLowest;
      *high = kHighest;
      return true;
    case kTfLiteActRelu:
      *low = 0.0f;
      *high = kHighest;
      return true;
    case kTfLiteActReluN1To1:
      *low = -1.0f;
      *high = 1.0f;
      return true;
    case kTfLiteActRelu6:
      *low = 0.0f;
      *high = 6.0f;
      return true;
    default:
      return false;
  }
}

std::string FormatTwoDecimals(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", value);
  return text;
}

// Checks the float32 activation tensor of role "input"/"output".
bool CheckActivationTensor(const TfLiteTensor& tensor, const char* role, std::string* reason) {
  if (tensor.type != kTfLiteFloat32) {
    *reason = std::string(role) + " type " + TypeName(tensor.type) + " unsupported (float32 only)";
    return false;
  }
  if (tensor.quantization.type != kTfLiteNoQuantization) {
    *reason = std::string(role) + " is quantized";
    return false;
  }
  if (tensor.dims == nullptr || tensor.dims->size != 4) {
    *reason = std::string(role) + " is not 4-D NHWC";
    return false;
  }
  if (HasZeroDimension(tensor)) {
    *reason = std::string("zero-sized ") + role + " tensor";
    return false;
  }
  return true;
}

// The body of AnalyzeConvNode; returns the reason for not claiming, or "" when claimable.
std::string Analyze(TfLiteContext* context, const TfLiteNode& node,
                    const DequantizeSources& dequantize_sources, const DelegateOptions& options,
                    NodeDecision* decision, ConvLayerPlan* plan) {
  if (node.inputs == nullptr || node.outputs == nullptr || node.inputs->size < 2 ||
      node.outputs->size != 1 || node.builtin_data == nullptr) {
    return "malformed CONV_2D node";
  }
  const int input_index = node.inputs->data[0];
  const int filter_index = node.inputs->data[1];
  const int bias_index = node.inputs->size >= 3 ? node.inputs->data[2] : -1;
  const int output_index = node.outputs->data[0];
  if (!ValidTensorIndex(context, input_index) || !ValidTensorIndex(context, filter_index) ||
      !ValidTensorIndex(context, output_index) ||
      (bias_index >= 0 && !ValidTensorIndex(context, bias_index))) {
    return "malformed CONV_2D node (tensor index out of range)";
  }
  const TfLiteTensor& input = context->tensors[input_index];
  const TfLiteTensor& filter = context->tensors[filter_index];
  const TfLiteTensor& output = context->tensors[output_index];
  std::string reason;
  if (!CheckActivationTensor(input, "input", &reason)) return reason;
  if (!CheckActivationTensor(output, "output", &reason)) return reason;
  if (filter.dims == nullptr || filter.dims->size != 4) return "filter is not 4-D OHWI";
  FilterShape shape;
  shape.out_channels = filter.dims->data[0];
  shape.kernel_h = filter.dims->data[1];
  shape.kernel_w = filter.dims->data[2];
  shape.in_channels = filter.dims->data[3];
  decision->filter = shape;
  if (HasZeroDimension(filter)) return "zero-sized filter tensor";
  const int channels = input.dims->data[3];
  if (channels != shape.in_channels) {
    if (shape.in_channels > 0 && channels % shape.in_channels == 0) {
      return "grouped convolution (groups=" + std::to_string(channels / shape.in_channels) + ")";
    }
    return "input channels " + std::to_string(channels) + " do not match filter channels " +
           std::to_string(shape.in_channels);
  }
  const auto* conv = static_cast<const TfLiteConvParams*>(node.builtin_data);
  if (!ActivationRange(conv->activation, &plan->activation_min, &plan->activation_max)) {
    return std::string("fused activation ") + ActivationName(conv->activation) + " unsupported";
  }
  if (conv->padding != kTfLitePaddingSame && conv->padding != kTfLitePaddingValid) {
    return "padding type " + std::to_string(static_cast<int>(conv->padding)) + " unsupported";
  }
  plan->params.padding = conv->padding == kTfLitePaddingSame ? Padding::kSame : Padding::kValid;
  plan->params.stride_h = conv->stride_height;
  plan->params.stride_w = conv->stride_width;
  plan->params.dilation_h = conv->dilation_height_factor;
  plan->params.dilation_w = conv->dilation_width_factor;
  ConvGeometry geometry;
  if (!ComputeConvGeometry(input.dims->data[0], input.dims->data[1], input.dims->data[2],
                           channels, shape, plan->params, &geometry, &reason)) {
    return reason;
  }
  if (output.dims->data[0] != geometry.batch || output.dims->data[1] != geometry.out_h ||
      output.dims->data[2] != geometry.out_w || output.dims->data[3] != geometry.out_channels) {
    return "output shape does not match the CONV_2D shape rule";
  }
  if (!ReadConstantFloats(context, filter_index, dequantize_sources, "filter", &plan->filter,
                          &reason)) {
    return reason;
  }
  if (bias_index >= 0) {
    if (!ReadConstantFloats(context, bias_index, dequantize_sources, "bias", &plan->bias,
                            &reason)) {
      return reason;
    }
    if (plan->bias.size() != static_cast<size_t>(shape.out_channels)) {
      return "bias has " + std::to_string(plan->bias.size()) + " elements, expected " +
             std::to_string(shape.out_channels);
    }
  }
  plan->pattern = AnalyzeBlockPattern(plan->filter.data(), shape, options.block_n);
  decision->has_pattern = true;
  decision->block_n = plan->pattern.block_n;
  decision->block_sparsity = plan->pattern.block_sparsity;
  decision->blocks_per_group_min = plan->pattern.blocks_per_group_min;
  decision->blocks_per_group_max = plan->pattern.blocks_per_group_max;
  decision->uniform = plan->pattern.uniform;
  // Tolerance: sparsities such as 1 - 64/128 are exact, but thresholds given in decimal are not.
  if (plan->pattern.block_sparsity < options.min_sparsity - 1e-9) {
    return "block sparsity " + FormatTwoDecimals(plan->pattern.block_sparsity) +
           " below min_sparsity " + FormatTwoDecimals(options.min_sparsity);
  }
  // Packed weights are indexed with 32 bits (see PackFilter).
  const int64_t packed_floats = plan->pattern.nonzero_blocks * plan->pattern.block_n;
  if (packed_floats > std::numeric_limits<int32_t>::max()) {
    return "packed indices would overflow 32-bit (" + std::to_string(packed_floats) +
           " packed weights)";
  }
  plan->input_tensor = input_index;
  plan->output_tensor = output_index;
  plan->filter_shape = shape;
  return "";
}

}  // namespace

DequantizeSources FindDequantizeSources(TfLiteContext* context,
                                        const std::vector<int>& execution_plan) {
  DequantizeSources sources;
  for (int node_index : execution_plan) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* registration = nullptr;
    if (context->GetNodeAndRegistration(context, node_index, &node, &registration) != kTfLiteOk ||
        node == nullptr || registration == nullptr) {
      continue;
    }
    if (registration->builtin_code != kTfLiteBuiltinDequantize || node->inputs == nullptr ||
        node->outputs == nullptr || node->inputs->size != 1 || node->outputs->size != 1) {
      continue;
    }
    sources[node->outputs->data[0]] = node->inputs->data[0];
  }
  return sources;
}

NodeDecision AnalyzeConvNode(TfLiteContext* context, int node_index, const TfLiteNode& node,
                             const DequantizeSources& dequantize_sources,
                             const DelegateOptions& options, ConvLayerPlan* plan) {
  NodeDecision decision;
  decision.node_index = node_index;
  *plan = ConvLayerPlan();
  const std::string reason =
      Analyze(context, node, dequantize_sources, options, &decision, plan);
  decision.claimed = reason.empty();
  decision.reason = decision.claimed ? "claimed" : reason;
  if (!decision.claimed) *plan = ConvLayerPlan();
  return decision;
}

}  // namespace tflite_sparse
