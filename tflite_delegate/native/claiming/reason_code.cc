#include "claiming/reason_code.h"

namespace tflite_sparse {

const char* ReasonCodeName(ReasonCode code) {
  switch (code) {
    case ReasonCode::kClaimed:
      return "claimed";
    case ReasonCode::kMalformedNode:
      return "malformed_node";
    case ReasonCode::kUnsupportedTensorType:
      return "unsupported_tensor_type";
    case ReasonCode::kQuantizedTensor:
      return "quantized_tensor";
    case ReasonCode::kNotNhwc:
      return "not_nhwc";
    case ReasonCode::kZeroSizedTensor:
      return "zero_sized_tensor";
    case ReasonCode::kGroupedConvolution:
      return "grouped_convolution";
    case ReasonCode::kChannelMismatch:
      return "channel_mismatch";
    case ReasonCode::kUnsupportedActivation:
      return "unsupported_activation";
    case ReasonCode::kUnsupportedPadding:
      return "unsupported_padding";
    case ReasonCode::kInvalidParameters:
      return "invalid_parameters";
    case ReasonCode::kIndexOverflow:
      return "index_overflow";
    case ReasonCode::kOutputShapeMismatch:
      return "output_shape_mismatch";
    case ReasonCode::kUnknownShape:
      return "unknown_shape";
    case ReasonCode::kNotConstant:
      return "not_constant";
    case ReasonCode::kConstantWithoutData:
      return "constant_without_data";
    case ReasonCode::kBiasSizeMismatch:
      return "bias_size_mismatch";
    case ReasonCode::kBelowMinSparsity:
      return "below_min_sparsity";
    case ReasonCode::kNoMicrokernel:
      return "no_microkernel";
  }
  return "unknown";
}

}  // namespace tflite_sparse
