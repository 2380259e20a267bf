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
// The tap-vector sparsity from which a layer of block width N runs faster with the delegate than
// with XNNPACK's dense kernels, with a margin. Measured on AVX-512 (Zen 4) over ResNet-50's conv
// shapes (scripts/benchmark_delegate.py): against XNNPACK the 1x16 and 1x32 microkernels reach
// 0.76-1.2 of the ideal speedup 1 / (1 - s), the 1x8 ones (256-bit) 0.33-0.64 and the 1x4 ones
// (128-bit) 0.16-0.37, i.e. a 1x4 layer at 50 % runs at 0.63x. Since the AVX-512 1x8 variant
// takes its input as embedded broadcasts (AVX-512VL) and runs two tap vectors per loop iteration,
// every 1x8 layer of ResNet-18, ResNet-50 and MobileNetV1 at 50 % ran 1.08-1.4x faster than
// XNNPACK at 1 thread (four runs, Zen 4), so N = 8 starts at 0.5 with AVX-512 and keeps 0.55
// elsewhere (the AVX2 1x8 variant was not measured at 50 % on a machine without AVX-512). Below
// N = 4 the microkernels are scalar. A layer that runs a channel-major variant (1x1 stride-1 at
// N = 4 with AVX2, f32_1x4_p24_panel__avx2) has its own break-even: 0.75, where all nine 1x1
// stride-1 shapes of ResNet-50 ran 1.17-4.2x faster than XNNPACK in three runs on an AVX2-only
// Zen 4 VM (at 0.5 two of them were slower, 0.64-0.91x; docs/RESULTS.md). The AVX-512 channel-major variant
// (f32_1x4_p64_panel__avx512) has the same threshold: at 0.75 the nine shapes ran 1.45-2.60x
// faster than XNNPACK, at 0.5 one of them (7x7 2048->512) ran at 0.90x (1 thread, Zen 4). Used
// when the min_sparsity option is not given.
double DefaultMinSparsity(int block_n, InputLayout layout, Isa isa);

struct ClaimingOptions {
  // Claim layers whose tap-vector sparsity is at least this; negative: DefaultMinSparsity(N,
  // layout, isa).
  double min_sparsity = -1.0;
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
  int fused_add_node = -1;  // the ADD node run in this conv's epilogue (add_fusion.h), or -1
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

// The clamp range of a fused activation TFLite's float kernels implement as a clamp (NONE,
// RELU, RELU_N1_TO_1, RELU6); false for the others.
bool ActivationRange(TfLiteFusedActivation activation, float* low, float* high);

// Block widths the registry has for `isa`, for detection.
std::vector<int> CandidateBlockWidths(Isa isa);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CLAIMING_CLAIMING_POLICY_H_
