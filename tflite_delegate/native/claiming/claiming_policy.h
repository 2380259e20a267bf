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
// with XNNPACK's dense kernels, with a margin; used when the min_sparsity option is not given.
//
// AVX-512 thresholds are set on AMD Zen 5 (two 512-bit FMAs per cycle), where XNNPACK's dense
// kernels run about twice as fast as on Zen 4 (one per cycle) but the narrow microkernels do not: a
// 256-bit FMA (N = 8) or 128-bit one (N = 4) issues at most a half or a quarter of the peak.
// `python -m scripts.benchmark_delegate --levels=layer --nets=resnet50 --block_n=4,8,16,32
// --sparsity=0.5,0.75,0.9 --threads=1` on Zen 5 (2026-12-03, docs/RESULTS.md), speedup over
// XNNPACK, min over ResNet-50's 19 conv shapes: N = 32 1.53x at 0.5; N = 16 1.18x at 0.5, i.e. 0.59
// of the ideal at worst, so break-even near 0.41: threshold 0.45 (1.12x at worst at 0.46, a second
// run); N = 8 0.71-0.90x at 0.5, 1.20x at 0.75: threshold 0.75; N = 4 1.16x at worst at 0.89 (the
// benchmark's "0.9" prunes int(0.9 x 64) = 57 of 64 blocks: 56x56 1x1 64->64, pixel-major, whose
// seven kept tap vectors per group run at about 20 GFLOP/s) but 0.81x and 0.87x at 0.86 (56x56 1x1
// 64->64 and 64->256, a second run): threshold 0.88, also for the channel-major 1x1 variant, which
// ran 0.71x and 0.88x at 0.75 on the two 1x1 layers with four times more outputs than inputs. Each
// of these is at least the Zen 4 threshold, so they are never slower there either. The
// pixel-pair 1x8 variant (512-bit FMAs; KxK and 1x1 stride-1 layers with enough work per input
// value, SelectMicrokernel) ran 1.03-1.35x at 0.5 on the 13 shapes it takes (the same benchmark
// with --block_n=8 --min_sparsity=0, 2026-12-03 22:42 UTC), but 0.74x, 0.92x and 0.99x on three
// of its 1x1 shapes in the next run (22:51 UTC, 56x56 64->64 and 256->64, 28x28 128->512), and
// 1.02x at worst at 0.6 (23:17 UTC): N = 8 pixel-pair 0.6, pixel-major 0.75. Strided 1x1 layers
// run it too since 2026-12-04: at 0.6 all nine of ResNet-50 and ResNet-18 ran 1.26-1.71x (1 and
// 2 threads, --kernels=1 --block_n=8 --sparsity=0.6 --min_sparsity=0, 02:37 UTC).
//
// AVX2 and generic keep the thresholds measured on Zen 4 with AVX2 only, where XNNPACK also uses
// 256-bit FMAs: 0.3 for N >= 16, 0.55 for N = 8, 0.8 for N = 4 (0.75 channel-major: all nine 1x1
// stride-1 shapes of ResNet-50 ran 1.17-4.2x faster than XNNPACK at 0.75 in three runs, at 0.5
// two were slower, 0.64-0.91x).
//
// N = 2 and 1 run scalar code with every ISA. Measured on Zen 5 (the same layer benchmark with
// --block_n=1,2): N = 2 ran 0.26-1.21x (median 0.80x) at 0.96 but 1.59x at worst at 0.985, so
// 0.98; N = 1 ran 0.31-1.40x at 0.96 and still 0.34-0.78x on six of the 19 shapes at 0.985 (one
// output channel per group: the per-group bias, clamp and store of every pixel outweigh a tap
// list of one to four values), so 1.0: never by default, only an all-zero filter. The same for
// AVX2 and generic, where XNNPACK's dense kernels are at most half as fast (256-bit FMAs), which
// does not make up for 0.26x.
//
// AVX-512 on a CPU that splits 512-bit operations into halves (CpuSplitsAvx512: Zen 4, one
// 512-bit FMA per cycle, where XNNPACK runs half as fast as on Zen 5 and our 256- and 128-bit
// FMAs as fast) has its own table, measured there with the pixel-major variants (pixel pairs
// off, as the option's default is there): `python -m scripts.benchmark_delegate --levels=layer
// --nets=resnet50 --threads=1 --repeats=5 --min_sparsity=0` with --block_n and --sparsity as
// below (2026-12-04 20:07-20:11 UTC, docs/RESULTS.md, "Zen 4 again: pixel pairs and
// claim thresholds"), min / median speedup over XNNPACK on ResNet-50's 19 conv shapes: N = 32
// 1.06 / 1.14x at 0.1, 1.18 / 1.28x at 0.2; N = 16 1.05 / 1.13x at 0.1, 1.20 / 1.28x at 0.2,
// 1.37 / 1.46x at 0.3: threshold 0.2 for N >= 16; N = 8 0.97 / 1.05x at 0.3, 0.96 / 1.14x at
// 0.35, 1.11 / 1.22x at 0.4, 1.31 / 1.47x at 0.5: 0.4; N = 4 0.70 / 0.84x at 0.5 (the
// pixel-major 3x3 and strided layers), 0.88 / 1.13x at 0.65, 0.97 / 1.28x at 0.7, 1.15 / 1.54x
// at 0.75 (both layouts): 0.75. Since the channel-major variants also run KxK stride-1 layers
// (from planes) and strided 1x1 ones (2026-12-04 22:00 UTC), every ResNet-50 shape at N = 4
// runs channel-major from about 0.3 on Zen 4 (1x1 ones need 8 kept FLOPs per output value
// there: MinKeptFlopsPerOutput), and the same command with --block_n=4 gave 1.01 / 1.27x at 0.3,
// 1.13 / 1.43x at 0.4, 1.33 / 1.60x at 0.5, and 1.12 / 1.30x at 0.4 with --threads=2: 0.4 for
// channel-major N = 4 (0.75 stays for the pixel-major layers left: too little work per value).
// N = 8's channel-major variant (after the pixel pairs in the registry; on 1x1 layers too since
// 2026-12-05) keeps 0.4: 1.13 / 1.32x at 0.4 with 2 threads. An N = 8 layer left pixel-major
// there (too little kept work per value: MinKeptFlopsPerInput / MinKeptFlopsPerOutput /
// MinKeptFlopsPerTransposedValue) starts
// at 0.5: run pixel-major, MobileNetV1's 112x112 1x1 32->64 ran 0.98x / 0.92x of XNNPACK at 0.4
// (1 / 2 threads) and 0.88x / 0.85x at 0.3 (`--nets=resnet50,resnet18,mobilenet_v1
// --block_n=4,8 --sparsity=0.3,0.4 --threads=1,2 --min_sparsity=0`, 2026-12-04 23:58 UTC),
// 1.11-1.15x at 0.5. (With the 1x8 row's Zen 4 limits then, 32 kept FLOPs per input and per
// output value, that layer ran channel-major from 0.4: 1.10-1.12x at 0.42, 1.23-1.24x at 0.5;
// with 32 per input and 20 per transposed value up to 0.53; with today's, 25 and 17, up to 0.60,
// where channel-major ran it 1.00-1.04x as fast as pixel-major at 0.56 and 0.59, 1 and 2
// threads.)
double DefaultMinSparsity(int block_n, InputLayout layout, Isa isa, bool split_avx512);

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
//   MFLOP) at 0.99-1.17x;
// - at least kDenseFewChannelMinTaps (49) filter taps KH x KW x I per output channel. On Zen 5,
//   whose 512-bit FMAs make XNNPACK's dense kernels twice as fast, our 1x32 microkernel runs
//   these convs at 90-99 % of the core's peak and wins only where the tap list is long: 7x7
//   stride 2 3->64 (147 taps) 1.35-1.45x / 1.09-1.27x, 7x7 stride 2 1->64 (49) 1.06-1.73x /
//   1.12-1.52x, 8x8 stride 8 3->256 (192) 1.03-1.29x at 1 thread; but 3x3 stride 1 3->64 (27
//   taps) ran at 0.72-0.89x, 3x3 stride 2 3->64 (27) 0.97-1.11x and 4x4 stride 4 3->96 (48)
//   0.98-1.29x (two runs of the stem level, 2026-12-03).
// An explicit min_sparsity option replaces the rule like every default.
inline constexpr int kFewInputChannels = 4;
inline constexpr int kDenseFewChannelMinOutChannels = 64;
inline constexpr int64_t kDenseFewChannelMaxFilterBytes = 256 * 1024;
inline constexpr int64_t kDenseFewChannelMinFlops = 20 * 1000 * 1000;
inline constexpr int kDenseFewChannelMinTaps = 49;
bool DenseFewChannelConvPays(const FilterShape& filter, int block_n,
                             int64_t output_pixels_per_image, Isa isa);

struct ClaimingOptions {
  // Claim layers whose tap-vector sparsity is at least this; negative: DefaultMinSparsity(N,
  // layout, isa), or 0 where DenseFewChannelConvPays.
  double min_sparsity = -1.0;
  int block_n = 0;            // 0: detect per layer among the registry's widths; else forced
  Isa isa = Isa::kGeneric;    // the microkernel ISA the delegate runs
  bool pixel_pairs = true;    // SelectMicrokernel may choose pixel-pair variants
  bool split_avx512 = false;  // CpuSplitsAvx512(): DefaultMinSparsity's table for such CPUs
};

struct NodeDecision {
  int node_index = -1;
  bool claimed = false;
  ReasonCode reason_code = ReasonCode::kClaimed;
  std::string reason;        // "claimed" (kClaimedDenseFewChannelReason) or why not
  bool has_pattern = false;  // the pattern statistics below were computed
  FilterShape filter;        // O, KH, KW, I (zeros when unknown)
  BlockPattern pattern;      // valid when has_pattern
  // Registry name of the variant chosen at claim time, when claimed (the delegate's report
  // replaces it by the one the prepared operator runs: SparseDelegate::ReportJson).
  const char* microkernel = nullptr;
  int fused_add_node = -1;  // the ADD node run in this conv's epilogue (add_fusion.h), or -1
  int folded_pad_node = -1;  // the PAD node folded into this conv's padding (pad_folding.h), or -1
  // The MAX_POOL_2D node run after this conv in its partition (pool_fusion.h), and the PAD node
  // folded into that pool; -1 when none.
  int fused_pool_node = -1;
  int fused_pool_pad_node = -1;
  // Profile option (the delegate's report only): invokes timed and their total time in this
  // node's convolution (seconds); runs is -1 without the option.
  int64_t runs = -1;
  double run_seconds = 0.0;
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
// RELU, RELU_N1_TO_1, RELU6); false for the others. An unbounded side is infinite, as in
// TFLite's XNNPACK delegate (its built-in kernels use +-FLT_MAX): an output that overflows to
// +-inf stays infinite, as XNNPACK leaves it, and the microkernels skip the clamp against an
// infinity (microkernels/epilogue_clamps.h).
bool ActivationRange(TfLiteFusedActivation activation, float* low, float* high);

// Block widths the registry has for `isa`, for detection.
std::vector<int> CandidateBlockWidths(Isa isa);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CLAIMING_CLAIMING_POLICY_H_
