// Why the delegate claims a CONV_2D node or leaves it to TFLite: one code per kind of refusal,
// reported next to the human-readable message (the JSON report's "reason_code", in snake_case).
#ifndef TFLITE_DELEGATE_CLAIMING_REASON_CODE_H_
#define TFLITE_DELEGATE_CLAIMING_REASON_CODE_H_

namespace tflite_sparse {

enum class ReasonCode {
  kClaimed = 0,
  kMalformedNode,          // missing inputs/outputs/parameters or tensor index out of range
  kUnsupportedTensorType,  // input, output, filter or bias of a type other than float32
  kQuantizedTensor,        // a tensor carries quantization parameters
  kNotNhwc,                // input or output is not 4-D, or the filter is not 4-D OHWI
  kZeroSizedTensor,        // a tensor (or the output) has a zero dimension
  kGroupedConvolution,     // input channels are a multiple of the filter's
  kChannelMismatch,        // input channels differ from the filter's otherwise
  kUnsupportedActivation,  // fused activation other than NONE/RELU/RELU_N1_TO_1/RELU6
  kUnsupportedPadding,     // padding other than SAME/VALID
  kInvalidParameters,      // non-positive stride or dilation
  kIndexOverflow,          // sizes beyond the microkernels' 32-bit offsets
  kOutputShapeMismatch,    // the output tensor does not have the CONV_2D output shape
  kUnknownShape,           // a weight tensor has no (or a negative) shape
  kNotConstant,            // filter or bias is computed at run time
  kConstantWithoutData,    // a read-only constant has no (or too little) data
  kBiasSizeMismatch,       // bias element count differs from the output channels
  kBelowMinSparsity,       // tap-vector sparsity below the min_sparsity option
  kNoMicrokernel,          // the registry has no microkernel for the ISA and width
};

// snake_case name of the code, e.g. "grouped_convolution" (the JSON report's "reason_code").
const char* ReasonCodeName(ReasonCode code);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CLAIMING_REASON_CODE_H_
