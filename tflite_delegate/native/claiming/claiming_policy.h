// Which CONV_2D nodes the delegate takes, and why it leaves the others to TFLite.
//
// Runs inside delegate Prepare (the only place where GetNodeAndRegistration works). The decision
// is a chain of small steps, each of which may refuse with a reason code and a message:
// node validation -> activation tensors -> filter shape -> conv parameters -> geometry ->
// constant weights (float16 tracing) -> 1xN pattern analysis -> policy (min_sparsity, index
// limits, an available microkernel). For a claimed node it also returns everything the operator
// needs later, copied out of the graph: tensor indices, conv parameters and the dense float32
// filter and bias (float16 constants already widened).
#ifndef TFLITE_DELEGATE_CLAIMING_CLAIMING_POLICY_H_
#define TFLITE_DELEGATE_CLAIMING_CLAIMING_POLICY_H_

#include <string>
#include <vector>

#include "abi/tflite_abi.h"
#include "claiming/constant_weights.h"
#include "claiming/reason_code.h"
#include "common/conv_shape.h"
#include "microkernels/microkernel.h"
#include "packing/block_pattern.h"

namespace tflite_sparse {

// The options that decide claiming (a subset of the delegate options).
struct ClaimingOptions {
  double min_sparsity = 0.3;  // claim layers whose tap-vector sparsity is at least this
  int block_n = 0;            // 0: detect per layer among the registry's widths; else forced
  Isa isa = Isa::kGeneric;    // the microkernel ISA the delegate runs
};

struct NodeDecision {
  int node_index = -1;
  bool claimed = false;
  ReasonCode reason_code = ReasonCode::kClaimed;
  std::string reason;        // "claimed" or why not
  bool has_pattern = false;  // the pattern statistics below were computed
  FilterShape filter;        // O, KH, KW, I (zeros when unknown)
  BlockPattern pattern;      // valid when has_pattern
  const char* microkernel = nullptr;  // registry name of the variant, when claimed
};

// Everything an operator needs about one claimed node.
struct ConvLayerPlan {
  int input_tensor = -1;
  int output_tensor = -1;
  ConvParameters params;
  float activation_min = 0.0f;
  float activation_max = 0.0f;
  FilterShape filter_shape;
  std::vector<float> filter;  // dense OHWI
  std::vector<float> bias;    // O floats, empty when the node has no bias
  BlockPattern pattern;
  const MicrokernelVariant* microkernel = nullptr;
};

// Decides about one CONV_2D node. Returns the decision; fills `plan` when claimed.
NodeDecision AnalyzeConvNode(TfLiteContext* context, int node_index, const TfLiteNode& node,
                             const DequantizeSources& dequantize_sources,
                             const ClaimingOptions& options, ConvLayerPlan* plan);

// Block widths the registry has for `isa`, for detection.
std::vector<int> CandidateBlockWidths(Isa isa);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CLAIMING_CLAIMING_POLICY_H_
