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

// The one per-shape rule on top of DefaultMinSparsity: a convolution over few input channels
// (the RGB stem of most CNNs) runs faster with the delegate than with XNNPACK even dense, so
// with the default threshold it is claimed whatever its sparsity (threshold 0). XNNPACK's
// dense kernels spend each filter tap's inner loop on only I = 3 input channels; the pixel-major
// 1x32 microkernel treats every (ky, kx, ci) as one tap vector of a long list instead. Measured
// with AVX-512 on Zen 4: single-conv models, 224x224 input unless said, XNNPACK time / delegate
// time at 1 / 2 threads, medians of 11 interleaved samples, the ranges over two to five runs of
// `python -m scripts.benchmark_delegate --levels=stem` (its STEM_SHAPES, or --stem_shapes; with
// --min_sparsity=0 for the shapes the rule leaves out) and of earlier runs of the same kind
// (docs/RESULTS.md, "Dense convolutions over few input channels"): 7x7 stride 2 3->64 (the ResNet
// stem) 1.26-1.55x / 1.19-1.56x at batch 1, 1.23-1.39x / 1.20-1.34x at batch 8; 3x3 stride 1 3->64
// 1.46-1.99x / 1.48-1.93x; 3x3 stride 2 3->64 1.09-1.15x / 1.03-1.11x; 4x4 stride 4 3->96
// (patchify) 1.18-1.24x / 1.16-1.24x; 8x8 stride 8 3->256 1.23-1.28x / 1.25-1.29x. The limits,
// each from a measured loss or break-even:
// - AVX-512 only: the AVX2 1x32 variant ran the 3->32 stem at 0.69-0.78x and the ResNet stem at
//   0.93x with 2 threads;
// - I <= kFewInputChannels (4): with O = 64, I = 1, 2 and 4 ran at 1.14-2.21x (7x7 stride 2,
//   3x3 stride 1 and 2, 5x5 stride 2); I = 8 and 16 were measured with O = 32 only (0.92-1.07x,
//   1.03-1.25x), too little to go further;
// - N = 32 detected (any dense O > 16; the last group may be partial: O = 72, 80 and 96 ran at
//   1.20-1.42x) and O >= 64, at least two groups per tile: O = 32 ran at 0.96-1.28x (MobileNet's
//   3x3 stride-2 stem, also at 299 input), I = 1 and O = 32 at 0.57-0.99x, O = 48 at 0.96-1.01x,
//   O = 24 at 1.01-1.54x, O = 16 (N = 16) at 0.74-1.01x;
// - a dense filter of at most kDenseFewChannelMaxFilterBytes (256 KiB, the operator's weight
//   budget per group chunk): a 16x16 stride-16 3->768 patch embedding (2.4 MB of weights) ran
//   at 1.25-1.48x at batch 1 but 0.84-0.93x at batch 8 (1 thread);
// - at least kDenseFewChannelMinFlops (20 MFLOP) per image: 32x32 3->64 (3.5 MFLOP) ran at
//   0.62-0.81x with 2 threads, too small to split across threads; 3x3 stride 2 1->64 (14.5
//   MFLOP) at 0.99-1.17x.
// An explicit min_sparsity option replaces the rule like every default.
inline constexpr int kFewInputChannels = 4;
inline constexpr int kDenseFewChannelMinOutChannels = 64;
inline constexpr int64_t kDenseFewChannelMaxFilterBytes = 256 * 1024;
inline constexpr int64_t kDenseFewChannelMinFlops = 20 * 1000 * 1000;
bool DenseFewChannelConvPays(const FilterShape& filter, int block_n,
                             int64_t output_pixels_per_image, Isa isa);

struct ClaimingOptions {
  // Claim layers whose tap-vector sparsity is at least this; negative: DefaultMinSparsity(N,
  // layout, isa), or 0 where DenseFewChannelConvPays.
  double min_sparsity = -1.0;
  int block_n = 0;            // 0: detect per layer among the registry's widths; else forced
  Isa isa = Isa::kGeneric;    // the microkernel ISA the delegate runs
};

struct NodeDecision {
  int node_index = -1;
  bool claimed = false;
  ReasonCode reason_code = ReasonCode::kClaimed;
  std::string reason;        // "claimed" (kClaimedDenseFewChannelReason) or why not
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
  // Claimed only because of DenseFewChannelConvPays (below DefaultMinSparsity).
  bool dense_few_channel = false;
};

// NodeDecision::reason of a node claimed only because of DenseFewChannelConvPays.
inline constexpr char kClaimedDenseFewChannelReason[] =
    "claimed: a dense conv over few input channels, faster than XNNPACK even dense";

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
