#include "claiming/claiming_policy.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "common/conv_geometry.h"

namespace tflite_sparse {

namespace {

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

bool HasZeroDimension(const TfLiteTensor& tensor) {
  if (tensor.dims == nullptr) return false;
  for (int axis = 0; axis < tensor.dims->size; ++axis) {
    if (tensor.dims->data[axis] == 0) return true;
  }
  return false;
}

std::string FormatTwoDecimals(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", value);
  return text;
}

// Tensor indices of the node, once validated.
struct NodeTensors {
  int input = -1;
  int filter = -1;
  int bias = -1;  // -1: no bias
  int output = -1;
};

// Step 1: the node has its inputs, output and parameters, and every index names a tensor.
bool ValidateNode(const TfLiteContext* context, const TfLiteNode& node, NodeTensors* tensors,
                  Refusal* refusal) {
  if (node.inputs == nullptr || node.outputs == nullptr || node.inputs->size < 2 ||
      node.outputs->size != 1 || node.builtin_data == nullptr) {
    return refusal->Refuse(ReasonCode::kMalformedNode, "malformed CONV_2D node");
  }
  tensors->input = node.inputs->data[0];
  tensors->filter = node.inputs->data[1];
  tensors->bias = node.inputs->size >= 3 ? node.inputs->data[2] : -1;
  tensors->output = node.outputs->data[0];
  if (!ValidTensorIndex(context, tensors->input) || !ValidTensorIndex(context, tensors->filter) ||
      !ValidTensorIndex(context, tensors->output) ||
      (tensors->bias >= 0 && !ValidTensorIndex(context, tensors->bias))) {
    return refusal->Refuse(ReasonCode::kMalformedNode,
                           "malformed CONV_2D node (tensor index out of range)");
  }
  return true;
}

// Step 2: the float32 activation tensor of role "input"/"output".
bool CheckActivationTensor(const TfLiteTensor& tensor, const std::string& role,
                           Refusal* refusal) {
  if (tensor.type != kTfLiteFloat32) {
    return refusal->Refuse(ReasonCode::kUnsupportedTensorType,
                           role + " type " + TypeName(tensor.type) + " unsupported (float32 only)");
  }
  if (tensor.quantization.type != kTfLiteNoQuantization) {
    return refusal->Refuse(ReasonCode::kQuantizedTensor, role + " is quantized");
  }
  if (tensor.dims == nullptr || tensor.dims->size != 4) {
    return refusal->Refuse(ReasonCode::kNotNhwc, role + " is not 4-D NHWC");
  }
  if (HasZeroDimension(tensor)) {
    return refusal->Refuse(ReasonCode::kZeroSizedTensor, "zero-sized " + role + " tensor");
  }
  return true;
}

// Step 3: the filter is a non-empty OHWI tensor whose I matches the input (groups == 1).
bool CheckFilterShape(const TfLiteTensor& filter, int input_channels, FilterShape* shape,
                      Refusal* refusal) {
  if (filter.dims == nullptr || filter.dims->size != 4) {
    return refusal->Refuse(ReasonCode::kNotNhwc, "filter is not 4-D OHWI");
  }
  shape->out_channels = filter.dims->data[0];
  shape->kernel_h = filter.dims->data[1];
  shape->kernel_w = filter.dims->data[2];
  shape->in_channels = filter.dims->data[3];
  if (HasZeroDimension(filter)) {
    return refusal->Refuse(ReasonCode::kZeroSizedTensor, "zero-sized filter tensor");
  }
  if (input_channels != shape->in_channels) {
    if (shape->in_channels > 0 && input_channels % shape->in_channels == 0) {
      return refusal->Refuse(
          ReasonCode::kGroupedConvolution,
          "grouped convolution (groups=" + std::to_string(input_channels / shape->in_channels) +
              ")");
    }
    return refusal->Refuse(ReasonCode::kChannelMismatch,
                           "input channels " + std::to_string(input_channels) +
                               " do not match filter channels " +
                               std::to_string(shape->in_channels));
  }
  return true;
}

// Step 4: fused activation and padding the microkernels implement; strides and dilations.
bool ReadConvParameters(const TfLiteConvParams& conv, ConvLayerPlan* plan, Refusal* refusal) {
  if (!ActivationRange(conv.activation, &plan->activation_min, &plan->activation_max)) {
    return refusal->Refuse(ReasonCode::kUnsupportedActivation,
                           std::string("fused activation ") + ActivationName(conv.activation) +
                               " unsupported");
  }
  if (conv.padding != kTfLitePaddingSame && conv.padding != kTfLitePaddingValid) {
    return refusal->Refuse(ReasonCode::kUnsupportedPadding,
                           "padding type " + std::to_string(static_cast<int>(conv.padding)) +
                               " unsupported");
  }
  plan->params.padding = conv.padding == kTfLitePaddingSame ? Padding::kSame : Padding::kValid;
  plan->params.stride_h = conv.stride_height;
  plan->params.stride_w = conv.stride_width;
  plan->params.dilation_h = conv.dilation_height_factor;
  plan->params.dilation_w = conv.dilation_width_factor;
  return true;
}

// Step 5: the declared shapes give a usable geometry and the output has the CONV_2D shape.
bool CheckGeometry(const TfLiteTensor& input, const TfLiteTensor& output,
                   const FilterShape& shape, const ConvParameters& params, Refusal* refusal) {
  ConvGeometry geometry;
  std::string reason;
  GeometryError error = GeometryError::kNone;
  if (!ComputeConvGeometry(input.dims->data[0], input.dims->data[1], input.dims->data[2],
                           input.dims->data[3], shape, params, &geometry, &reason, &error)) {
    const ReasonCode code = error == GeometryError::kInvalidParameters ? ReasonCode::kInvalidParameters
                            : error == GeometryError::kIndexOverflow ? ReasonCode::kIndexOverflow
                                                                      : ReasonCode::kZeroSizedTensor;
    return refusal->Refuse(code, reason);
  }
  if (output.dims->data[0] != geometry.batch || output.dims->data[1] != geometry.out_h ||
      output.dims->data[2] != geometry.out_w || output.dims->data[3] != geometry.out_channels) {
    return refusal->Refuse(ReasonCode::kOutputShapeMismatch,
                           "output shape does not match the CONV_2D shape rule");
  }
  return true;
}

// Step 6: constant filter and bias as float32 (see constant_weights.h).
bool ReadWeights(TfLiteContext* context, const NodeTensors& tensors,
                 const DequantizeSources& dequantize_sources, ConvLayerPlan* plan,
                 Refusal* refusal) {
  if (!ReadConstantFloats(context, tensors.filter, dequantize_sources, "filter", &plan->filter,
                          refusal)) {
    return false;
  }
  if (tensors.bias < 0) return true;
  if (!ReadConstantFloats(context, tensors.bias, dequantize_sources, "bias", &plan->bias,
                          refusal)) {
    return false;
  }
  if (plan->bias.size() != static_cast<size_t>(plan->filter_shape.out_channels)) {
    return refusal->Refuse(ReasonCode::kBiasSizeMismatch,
                           "bias has " + std::to_string(plan->bias.size()) +
                               " elements, expected " +
                               std::to_string(plan->filter_shape.out_channels));
  }
  return true;
}

// Step 7: the 1xN pattern at the forced width or the widest width that holds.
BlockPattern AnalyzePattern(const ConvLayerPlan& plan, const ClaimingOptions& options) {
  const int block_n = options.block_n > 0
                          ? options.block_n
                          : DetectBlockWidth(plan.filter.data(), plan.filter_shape,
                                             CandidateBlockWidths(options.isa));
  return AnalyzeBlockPattern(plan.filter.data(), plan.filter_shape, block_n);
}

// Step 8: worth claiming, indexable with 32 bits, and a microkernel exists.
bool ApplyPolicy(const ClaimingOptions& options, int64_t output_pixels_per_image,
                 ConvLayerPlan* plan, Refusal* refusal) {
  const BlockPattern& pattern = plan->pattern;
  // The variant for this shape class (SelectMicrokernel): channel-major (pixel-vector) or
  // pixel-pair where the registry has one that fits and, for the layouts that transpose or pair
  // each tile, enough kept work shares each input and output value (today: channel-major for
  // 1x1 stride-1 convolutions at N = 4 with AVX2 or AVX-512, pixel-pair for KxK and 1x1 ones
  // at N = 16 and 8 with AVX-512 where the CPU runs them fast, option pixel_pairs), else
  // pixel-major. Chosen first because the default threshold depends on its layout.
  const MicrokernelVariant* variant = SelectMicrokernel(
      options.isa, pattern.block_n, plan->filter_shape.kernel_h, plan->filter_shape.kernel_w,
      KeptFlopsPerInputValue(pattern.kept_tap_vectors, pattern.block_n,
                             plan->filter_shape.in_channels),
      KeptFlopsPerOutputValue(pattern.kept_tap_vectors, pattern.block_n,
                              plan->filter_shape.out_channels),
      options.pixel_pairs);
  const InputLayout layout = variant != nullptr ? variant->layout : InputLayout::kPixelMajor;
  const bool per_width = options.min_sparsity < 0;
  const double default_min_sparsity =
      DefaultMinSparsity(pattern.block_n, layout, options.isa, options.split_avx512);
  const bool few_channel_rule =
      per_width && DenseFewChannelConvPays(plan->filter_shape, pattern.block_n,
                                           output_pixels_per_image, options.isa);
  const double min_sparsity =
      few_channel_rule ? 0.0 : per_width ? default_min_sparsity : options.min_sparsity;
  plan->dense_few_channel =
      few_channel_rule && pattern.tap_vector_sparsity < default_min_sparsity - 1e-9;
  // Tolerance: sparsities such as 1 - 64/128 are exact, but thresholds given in decimal are not.
  if (pattern.tap_vector_sparsity < min_sparsity - 1e-9) {
    return refusal->Refuse(
        ReasonCode::kBelowMinSparsity,
        "tap-vector sparsity " + FormatTwoDecimals(pattern.tap_vector_sparsity) +
            " below min_sparsity " + FormatTwoDecimals(min_sparsity) +
            (per_width ? " (the default for N=" + std::to_string(pattern.block_n) +
                             (layout == InputLayout::kChannelMajor ? ", channel-major"
                              : layout == InputLayout::kPixelPair  ? ", pixel-pair"
                                                                   : "") +
                             " with " + IsaName(options.isa) + ")"
                       : ""));
  }
  // Packed weights are indexed with 32 bits (see PackFilter).
  const int64_t packed_floats = pattern.kept_tap_vectors * pattern.block_n;
  if (packed_floats > std::numeric_limits<int32_t>::max()) {
    return refusal->Refuse(ReasonCode::kIndexOverflow,
                           "packed indices would overflow 32-bit (" +
                               std::to_string(packed_floats) + " packed weights)");
  }
  plan->microkernel = variant;
  if (plan->microkernel == nullptr) {
    return refusal->Refuse(ReasonCode::kNoMicrokernel,
                           std::string("no ") + IsaName(options.isa) + " microkernel for N=" +
                               std::to_string(pattern.block_n));
  }
  return true;
}

// The chain of steps; false with `refusal` set at the first step that refuses.
bool Analyze(TfLiteContext* context, const TfLiteNode& node,
             const DequantizeSources& dequantize_sources, const ClaimingOptions& options,
             NodeDecision* decision, ConvLayerPlan* plan, Refusal* refusal) {
  NodeTensors tensors;
  if (!ValidateNode(context, node, &tensors, refusal)) return false;
  const TfLiteTensor& input = context->tensors[tensors.input];
  const TfLiteTensor& output = context->tensors[tensors.output];
  if (!CheckActivationTensor(input, "input", refusal) ||
      !CheckActivationTensor(output, "output", refusal)) {
    return false;
  }
  const bool filter_ok = CheckFilterShape(context->tensors[tensors.filter], input.dims->data[3],
                                          &plan->filter_shape, refusal);
  decision->filter = plan->filter_shape;
  if (!filter_ok) return false;
  if (!ReadConvParameters(*static_cast<const TfLiteConvParams*>(node.builtin_data), plan,
                          refusal) ||
      !CheckGeometry(input, output, plan->filter_shape, plan->params, refusal) ||
      !ReadWeights(context, tensors, dequantize_sources, plan, refusal)) {
    return false;
  }
  plan->pattern = AnalyzePattern(*plan, options);
  decision->has_pattern = true;
  decision->pattern = plan->pattern;
  const int64_t output_pixels_per_image =
      static_cast<int64_t>(output.dims->data[1]) * output.dims->data[2];
  if (!ApplyPolicy(options, output_pixels_per_image, plan, refusal)) return false;
  plan->input_tensor = tensors.input;
  plan->output_tensor = tensors.output;
  return true;
}

}  // namespace

bool ActivationRange(TfLiteFusedActivation activation, float* low, float* high) {
  constexpr float kLowest = -std::numeric_limits<float>::infinity();
  constexpr float kHighest = std::numeric_limits<float>::infinity();
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

double DefaultMinSparsity(int block_n, InputLayout layout, Isa isa, bool split_avx512) {
  // N = 2 and 1 run scalar code with every ISA.
  if (block_n < 2) return 1.0;  // never by default (only an all-zero filter)
  if (block_n < 4) return 0.98;
  if (isa == Isa::kAvx512 && split_avx512) {
    if (block_n >= 16) return 0.2;
    if (block_n >= 8) return layout == InputLayout::kChannelMajor ? 0.4 : 0.5;
    return layout == InputLayout::kChannelMajor ? 0.4 : 0.75;
  }
  if (isa == Isa::kAvx512) {
    if (block_n >= 32) return 0.3;
    if (block_n >= 16) return 0.45;
    if (block_n >= 8) return layout == InputLayout::kPixelPair ? 0.6 : 0.75;
    return 0.88;
  }
  if (block_n >= 16) return 0.3;
  if (block_n >= 8) return 0.55;
  return layout == InputLayout::kChannelMajor ? 0.75 : 0.8;
}

bool DenseFewChannelConvPays(const FilterShape& filter, int block_n,
                             int64_t output_pixels_per_image, Isa isa) {
  const int64_t filter_floats = filter.out_channels * filter.TapsPerChannel();
  return isa == Isa::kAvx512 && filter.in_channels >= 1 &&
         filter.in_channels <= kFewInputChannels && block_n == 32 &&
         filter.out_channels >= kDenseFewChannelMinOutChannels &&
         filter_floats * static_cast<int64_t>(sizeof(float)) <= kDenseFewChannelMaxFilterBytes &&
         filter.TapsPerChannel() >= kDenseFewChannelMinTaps &&
         2 * output_pixels_per_image * filter_floats >= kDenseFewChannelMinFlops;
}

std::vector<int> CandidateBlockWidths(Isa isa) {
  std::vector<int> widths;
  size_t count = 0;
  const MicrokernelVariant* variants = RegisteredMicrokernels(&count);
  for (size_t i = 0; i < count; ++i) {
    if (variants[i].isa == isa &&
        std::find(widths.begin(), widths.end(), variants[i].block_n) == widths.end()) {
      widths.push_back(variants[i].block_n);
    }
  }
  return widths;
}

NodeDecision AnalyzeConvNode(TfLiteContext* context, int node_index, const TfLiteNode& node,
                             const DequantizeSources& dequantize_sources,
                             const ClaimingOptions& options, ConvLayerPlan* plan) {
  NodeDecision decision;
  decision.node_index = node_index;
  *plan = ConvLayerPlan();
  Refusal refusal;
  decision.claimed =
      Analyze(context, node, dequantize_sources, options, &decision, plan, &refusal);
  if (decision.claimed) {
    decision.reason_code = ReasonCode::kClaimed;
    decision.reason = plan->dense_few_channel ? kClaimedDenseFewChannelReason : "claimed";
    decision.microkernel = plan->microkernel->name;
  } else {
    decision.reason_code = refusal.code;
    decision.reason = refusal.message;
    *plan = ConvLayerPlan();
  }
  return decision;
}

}  // namespace tflite_sparse
