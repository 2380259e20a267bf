// The microkernel interface and its one registry.
//
// A microkernel computes one tile of output pixels for a range of groups of a 1xN block-sparse
// convolution whose filter was packed by packing/packing.h:
//
//   out[p, g*N + n] = clamp(bias[g*N + n]
//                           + sum_k weights[k][n] * input[pixel_offsets[p] + tap_offsets[k]])
//
// for every pixel p of the tile, every group g in [first_group, end_group), every lane n < N that
// is a real output channel, and the kept tap vectors k of group g in packed order. With a
// residual (a fused ADD after the convolution, e.g. a ResNet block's shortcut) that value then
// becomes
//
//   out[p, c] = clamp(out[p, c] + residual[p, c], residual_min, residual_max)
//
// which is exactly what storing the convolution's output and running TFLite's ADD with its fused
// activation on it would compute (float addition is commutative), without the second pass over
// memory. The order of
// the sum is fixed by the packing, so every variant and every tile size gives each output
// element the same arithmetic (bias first, then one multiply-add per kept tap vector): results do
// not depend on how the operator tiles the work or splits it between threads.
//
// Pixels of a tile are consecutive *flattened* output pixels (over batch x out_h x out_w), so a
// tile may cross output rows and images; each pixel's input position comes from pixel_offsets
// (an indirection array the operator computes at prepare time). The input is pre-padded where
// the convolution needs padding, so microkernels never test bounds.
//
// That is the *pixel-major* layout (kPixelMajor). A *channel-major* variant (kChannelMajor,
// the "pixel-vector" microkernels of pixel_vector_template.h) reads a panel instead and
// vectorises over consecutive lanes (8 per ymm, 16 per zmm), with the N weights of a kept tap
// vector broadcast as scalars. For a 1x1 convolution the operator transposes each tile's pixels
// (at a stride, those of every output row the tile covers) into a small channel-major
// panel[c][pixel] right before the call (see kPanelPixelAlignment and PanelTransposeFunction),
// and the same SparseTileArgs then mean:
//
//   input          the tile's panel (its column 0 is the tile's first pixel)
//   pixel_offsets  nullptr: lane l is the tile's pixel l
//   num_pixels     1 .. tile_pixels consecutive flattened pixels from there
//   tap_offsets    floats from a pixel's panel column to its tap's input: c * panel stride
//                  (the same for every tile: the operator fixes the stride at prepare time)
//
// For a KxK convolution it writes *planes* once per run instead: per input channel the padded
// image, flattened row after row (at a stride s_h x s_w, its s_h x s_w phases: the rows
// ph, ph + s_h, ... and columns pw, pw + s_w, ... of phase (ph, pw)), so that lane l = y x W + x
// (W the phase width) is output pixel (y, x) when x < out_w, and each tap reads every lane's
// input a fixed distance further (its phase, then ky d_h div s_h rows and kx d_w div s_w
// columns); the lanes of the padding columns (x >= out_w) compute values that are not stored.
// Then:
//
//   input          the first lane of the tile in the image's planes
//   pixel_offsets  per lane of the tile (whole vectors): its output pixel, counted from the
//                  tile's first output pixel (`output`), or -1 for a lane not stored
//   num_pixels     the tile's lanes, 1 .. tile_pixels
//   tap_offsets    c x channel stride + phase x phase stride + the distance within the phase
//
// In both cases the output is NHWC as for pixel-major variants, with the same per-element
// arithmetic.
//
// A *pixel-pair* variant (kPixelPair, pixel_pair_template.h) computes two horizontally adjacent
// output pixels of one row per FMA: it reads a "pair image" that the operator builds once per
// run from the input, with padding (PairRowFunction),
//
//   pairs[2 * i + s] = padded[i + s * d]   (s = 0, 1; d = stride_w x channels floats)
//
// for every float position i of the padded input: the input of a pixel and of its right-hand
// neighbour for the same tap, side by side, so one 64-bit broadcast feeds both pixels, and each
// 512-bit register holds 8 channels of both (pixel_pair_template.h): about half the input loads
// per FMA of the pixel-major 1x16 kernel and twice its accumulator chains, and full-width FMAs
// where the pixel-major 1x8 kernel has 256-bit ones. The same
// SparseTileArgs then mean:
//
//   input          the pair image
//   pixel_offsets  per pair of the tile: floats from `input` to its first pixel's origin
//   num_pixels     output pixels of the tile (the sum of pair_widths)
//   num_pairs      pairs of the tile, 1 .. tile_pixels / 2
//   pair_widths    per pair: 2, or 1 for a pixel without a partner (its neighbour's lanes are
//                  computed from the pair image's zeros and not stored)
//   pair_pixels    per pair, two entries: its first and its second output pixel, counted in
//                  output_pixel_stride steps from `output` (the second unused at width 1)
//   tap_offsets    floats from a pair's origin to its tap: 2 x the pixel-major offsets
//
// and the output is NHWC, with the same per-element arithmetic. Pixel-pair variants run KxK
// convolutions (any stride) from a pair image of the whole batch, and 1x1 ones from a pair
// image of each tile's pixels, built right before the call like a channel-major panel: at
// stride 1 pairs of consecutive flattened pixels, strided the pairs of each output row the tile
// covers (a lone last pixel in an odd-width row). A KxK layer with an odd output width pairs
// its last column vertically instead, pixel (y, W - 1) with (y + 1, W - 1), from columns that
// the operator appends to every pair-image row (the pair of one column and the same column
// stride_h rows down: SparseConvOperator::PairRows), so that no tap is wasted. They do
// not take input-channel blocks (group_end, accumulate and store_partial stay unset).
//
// Adding a variant is two edits: one instantiation in its ISA's file (f32_<isa>.cc) and one row
// in the table of registry.cc. Dispatch, option parsing, the CPU check, the C++ tests, the
// microbenchmark and the Python tests all read that table.
#ifndef TFLITE_DELEGATE_MICROKERNELS_MICROKERNEL_H_
#define TFLITE_DELEGATE_MICROKERNELS_MICROKERNEL_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace tflite_sparse {

// Instruction sets the microkernels are compiled for (each in its own translation unit with its
// own -m flags; never -march=native).
enum class Isa { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// Element type of the packed weights.
enum class WeightType { kFloat32 = 0 };

// How a variant reads its input (see the top of this file).
enum class InputLayout {
  kPixelMajor = 0,    // the NHWC input through the per-pixel indirection
  kChannelMajor = 1,  // a channel-major panel the operator transposes once per run
  kPixelPair = 2,     // a pair image the operator builds once per run (see the top)
};

// A channel-major panel: panel[c * stride + pixel] for the pixels of one tile, where the stride
// (floats) is a multiple of this and the base is 64-byte aligned, so every vector load at a
// tile's pixels is aligned and in bounds (up to 16 lanes). The columns past the tile's last
// pixel hold whatever the buffer held: their lanes are computed and never stored.
constexpr int kPanelPixelAlignment = 16;

// Writes the panel of `pixels` NHWC pixels starting at `input`, pixel_stride floats apart (the
// first `channels` of each): panel[c * panel_stride + p] = input[p * pixel_stride + c] for
// p < pixels, and nothing else. `panel` needs no alignment (a plane row of a KxK layer starts
// anywhere, and the next row may be another thread's: SparseConvOperator::BuildPlaneRows).
using PanelTransposeFunction = void (*)(const float* input, int channels, int64_t pixel_stride,
                                        int64_t pixels, float* panel, int64_t panel_stride);

// Writes one row of a pixel-pair variant's pair image: for every padded column x in
// [0, padded_w) that is a multiple of column_step, and channel c,
// pair_row[2 * (x / column_step * channels + c) + s] = the padded row's value at column
// x + s * stride_w, channel c, where the padded row is `pad_left` zero columns, the
// in_w x channels floats of `input_row`, then zeros (columns past padded_w read as zero too).
// column_step 1 gives every column its pair (KxK windows); 2 and stride_w 1 turn consecutive
// pixels into disjoint pairs (a 1x1 stride-1 tile), 2 x stride_w the output pixels of a strided
// 1x1 row (see SparseConvOperator).
using PairRowFunction = void (*)(const float* input_row, int in_w, int channels, int pad_left,
                                 int padded_w, int stride_w, int column_step, float* pair_row);

// The tile size whose evenly spaced tiles have their own path (SparseTileArgs::pixel_spacing):
// the operator sets the spacing only for variants with this many tile_pixels.
constexpr int kSpacedTilePixels = 8;
// The largest SparseTileArgs::group_taps whose tap loop has an instantiation with a compile-time
// count (sparse_tile_template.h, SpacedTileGroups).
constexpr int kMaxUnrolledGroupTaps = 32;

struct SparseTileArgs {
  const float* input;            // base of the (pre-padded when needed) NHWC input
  const int64_t* pixel_offsets;  // num_pixels entries: floats from `input` to each pixel's origin
  int num_pixels;                // 1 .. the variant's tile_pixels (more: see pixel_spacing)
  int first_group;               // groups [first_group, end_group) of the layer
  int end_group;
  const int32_t* group_begin;    // num_groups + 1 row pointers into the kept tap vectors
  const void* weights;           // packed kept tap vectors, block_n elements each, 64-byte aligned
  const int32_t* tap_offsets;    // per kept tap vector: floats from a pixel's origin to its input
  const float* bias;             // num_groups * block_n floats (zero-padded)
  float* output;                 // output of the tile's first pixel, channel 0
  int64_t output_pixel_stride;   // floats between consecutive flattened output pixels
  int out_channels;              // real output channels (the last group may be partial)
  // The clamp range; an unbounded side is infinite and its clamp is skipped, which gives the
  // same bits (epilogue_clamps.h).
  float activation_min;
  float activation_max;
  // Fused ADD: null, or the residual of the tile's first pixel, channel 0, laid out like the
  // output (output_pixel_stride floats between pixels); added after the clamp above, then
  // clamped to [residual_min, residual_max] (the ADD's fused activation).
  const float* residual = nullptr;
  float residual_min = 0.0f;
  float residual_max = 0.0f;
  // Input-channel blocking (pixel-major variants only; see SparseConvOperator): when group_end is
  // not null, group g's tap vectors are [group_begin[g], group_end[g]) instead of up to
  // group_begin[g + 1]. `accumulate` starts each sum from the value in `output` (the partial sum
  // a previous call stored there) instead of the bias; `store_partial` stores the raw sums (no
  // clamp, no residual) for the next call to continue. A sum split this way gets exactly the
  // arithmetic of one call over all its tap vectors.
  const int32_t* group_end = nullptr;
  bool accumulate = false;
  bool store_partial = false;
  // Write the finished outputs of full groups with non-temporal (streaming) stores, which skip
  // reading each output line into the caches first (SparseConvOperator sets it for outputs too
  // large for the last-level cache to keep). Only for N x 4 bytes a multiple of 64, `output`
  // 64-byte aligned and output_pixel_stride a multiple of 16 floats, so that every streamed
  // store fills whole 64-byte lines; the caller issues a store fence after the call. The stored
  // values are the same.
  bool stream_output = false;
  // Pixel-pair variants only (see the top): the tile's pairs and their output pixels.
  int num_pairs = 0;
  const uint8_t* pair_widths = nullptr;
  const int32_t* pair_pixels = nullptr;
  // Software prefetch of weights that a later call will read (SparseConvOperator: the next group
  // chunk's, or the next layer's first chunk), spread over this call's tap loop so that their
  // memory traffic overlaps its FMAs instead of stalling the later call's first tile. When
  // prefetch_address is not 0, the kept tap vector with packed index t (of any group of the
  // call) prefetches byte address prefetch_address + (t - prefetch_first_tap) x prefetch_step
  // into L2; in a run of tiles (pixel_spacing), tile s of the run adds s x (the call's kept tap
  // vectors) x prefetch_step. An integer, not a pointer: the last addresses may run a little past
  // the weights they aim at (a prefetch never faults). Pixel-major and pixel-pair variants honour
  // it; channel-major ones ignore it. It changes no result.
  uintptr_t prefetch_address = 0;
  int32_t prefetch_first_tap = 0;
  int32_t prefetch_step = 0;
  // Pixel-major variants: when not 0, the call is a run of full tiles, num_pixels a multiple of
  // the variant's tile_pixels, and pixel p's origin is pixel_offsets[0] + p x pixel_spacing
  // (floats), as in a 1x1 stride-1 layer or the tiles within one output row (pixel_offsets
  // still lists every pixel). A variant may then address the pixels from the first one (those
  // of kSpacedTilePixels pixels do: SpacedTileGroups), and runs the tiles one after the other.
  // It changes no result.
  int64_t pixel_spacing = 0;
  // When not 0: every group of [first_group, end_group) keeps exactly this many tap vectors
  // (group_begin[g + 1] - group_begin[g]; SUBP keeps the same number in every group), so that a
  // variant may run its tap loop with a compile-time count (those registered with kUnrollTaps do
  // on runs of spaced tiles, up to kMaxUnrolledGroupTaps). It changes no result.
  int32_t group_taps = 0;
};

using SparseTileFunction = void (*)(const SparseTileArgs& args);

struct MicrokernelVariant {
  const char* name;  // e.g. "f32_1x16_p8__avx512": weight type, 1xN, tile pixels, ISA
  Isa isa;
  WeightType weight_type;
  int block_n;      // N: output channels per group
  int tile_pixels;  // P: pixels of a full tile
  SparseTileFunction function;
  InputLayout layout;
  // Channel-major only: pixels per vector register (tiles start at multiples of it; it divides
  // kPanelPixelAlignment) and the ISA's panel builder. 1 and nullptr for pixel-major rows.
  int vector_pixels;
  PanelTransposeFunction transpose;
  // Channel-major only: SelectMicrokernel takes this row only for layers with at least this many
  // kept FLOPs per input value (see KeptFlopsPerInputValue), per output value and per transposed
  // value (0: no limit; see KeptFlopsPerOutputValue and KeptFlopsPerTransposedValue), and on a
  // CPU that splits 512-bit operations (CpuSplitsAvx512) the _split limits instead.
  double min_kept_flops_per_input;
  double min_kept_flops_per_input_split;
  double min_kept_flops_per_output;
  double min_kept_flops_per_output_split;
  double min_kept_flops_per_transposed_value;
  double min_kept_flops_per_transposed_value_split;
  // Pixel-pair only: the ISA's pair-image row builder (nullptr for other rows).
  PairRowFunction build_pair_row;
};

// Every variant of this build, in preference order (the first row that fits a request wins).
const MicrokernelVariant* RegisteredMicrokernels(size_t* count);

// Environment variable listing ISAs (comma-separated names) to treat as missing from the CPU.
extern const char kCpuWithoutEnvironmentVariable[];

// True if the CPU can execute code built for `isa` (kGeneric: always) and the ISA is not listed
// in $TFLITE_SPARSE_DELEGATE_CPU_WITHOUT.
bool IsaSupportedByCpu(Isa isa);

// True if the registry has at least one variant for `isa` (false for x86 ISAs on other hosts).
bool IsaRegistered(Isa isa);

// The preferred variant for (isa, block_n, weight type, layout), or nullptr if the registry has
// none. Every (isa, block_n) has a pixel-major variant; channel-major ones exist where they win.
const MicrokernelVariant* FindMicrokernel(Isa isa, int block_n,
                                          WeightType weight_type = WeightType::kFloat32,
                                          InputLayout layout = InputLayout::kPixelMajor);

// A channel-major variant transposes every input value of a tile once per (tile, group chunk)
// and writes the output through in-register transposes, so it only pays off when enough kept
// work shares each input value. The measure: kept FLOPs per input value per pixel, 2 x kept tap
// vectors (all groups) x N / input channels (= 2 x KH x KW x O x (1 - s) for a uniform 1xN
// filter at sparsity s). Below kChannelMajorMinKeptFlopsPerInput the pixel-major variant was
// as fast or faster: measured on ResNet-50's 1x1 shapes at N = 4 (AVX2), channel-major lost at
// 12-26 (56x56 64->64 and 256->64 at s = 0.9, 28x28 512->128 at 0.9), broke even near 32
// (64->64 at 0.75) and won 1.2-2.7x from 48 up. The registry's rows use it as their
// min_kept_flops_per_input, except where measured otherwise (registry.cc).
constexpr double kChannelMajorMinKeptFlopsPerInput = 32.0;

// The same measure for a pixel-pair row on a 1x1 convolution, whose tiles are paired
// right before each call: measured on ResNet-50's nine 1x1 shapes at N = 16 (bench_kernels
// --layout both, 1 thread, Zen 5), pixel-pair time over pixel-major time was 0.84-0.93x at 32
// (56x56 64->64 and 256->64 at 75 %), 1.00-1.08x at 64 and 1.1-1.35x from 128 up.
constexpr double kPixelPairMinKeptFlopsPerInput = 48.0;

// A channel-major row's limits on kept FLOPs per input, per output and per transposed value on
// this CPU: its min_kept_flops_per_input / _output / _transposed_value, or the _split ones where
// CpuSplitsAvx512().
double MinKeptFlopsPerInput(const MicrokernelVariant& variant);
double MinKeptFlopsPerOutput(const MicrokernelVariant& variant);
double MinKeptFlopsPerTransposedValue(const MicrokernelVariant& variant);

// 2 x kept_tap_vectors x block_n / in_channels (0 when in_channels <= 0).
double KeptFlopsPerInputValue(int64_t kept_tap_vectors, int block_n, int in_channels);

// The other side of a channel-major variant's cost: every output value goes through an
// in-register transpose and a 16-byte store per pixel and quad of channels, paid once per
// (tile, group) whatever the group's tap list. Kept FLOPs per output value per pixel: 2 x kept
// tap vectors x N / output channels (= 2 x KH x KW x I x (1 - s) for a uniform 1xN filter).
// 0 when out_channels <= 0.
double KeptFlopsPerOutputValue(int64_t kept_tap_vectors, int block_n, int out_channels);

// Both sides at once: a channel-major tile transposes every input and every output value once
// (per pixel, I + O values) for 2 x kept tap vectors x N kept FLOPs, so its kept FLOPs per
// transposed value are per_input x per_output / (per_input + per_output) of the two measures
// above (= 2 x KH x KW x I x O x (1 - s) / (I + O) for a uniform 1xN filter; 0 when either is
// not positive). It tells the two costs apart no better than they do alone, but weighs them
// together: a layer light on one side and heavy on the other pays mostly for the light side.
double KeptFlopsPerTransposedValue(double kept_flops_per_input, double kept_flops_per_output);

// The variant for a convolution with this kernel (any stride, padding and dilation: every
// layout runs every convolution): the first row, in preference order, with this ISA, N and
// weight type that, for a channel-major row, has kept_flops_per_input and
// kept_flops_per_output at least the row's MinKeptFlopsPerInput and MinKeptFlopsPerOutput (and
// KeptFlopsPerTransposedValue of the two at least MinKeptFlopsPerTransposedValue), and
// for a pixel-pair row (only
// when `pixel_pairs`: the delegate option, by default !CpuSplitsAvx512()) on a 1x1 convolution
// (whose tiles are paired right before each call) kept_flops_per_input at least
// kPixelPairMinKeptFlopsPerInput (today, with enough work: the pixel-pair rows for N = 16 and
// 8 with AVX-512 when `pixel_pairs`, else the channel-major row for N = 4 with AVX2 or AVX-512
// and for N = 8 with AVX-512, else the pixel-major row).
const MicrokernelVariant* SelectMicrokernel(Isa isa, int block_n, int kernel_h, int kernel_w,
                                            double kept_flops_per_input,
                                            double kept_flops_per_output, bool pixel_pairs,
                                            WeightType weight_type = WeightType::kFloat32);

// Whether the CPU runs each 512-bit vector operation as two 256-bit halves: AMD Zen 4 (CPU
// family 19h, read from CPUID; Zen 3, the same family, has no AVX-512), one 512-bit FMA per
// cycle, no more FLOPs than its two 256-bit FMA pipes. Zen 5 and, as far as we know, Intel's
// AVX-512 server cores issue two. Two measured consequences (docs/RESULTS.md, "Zen 4 again:
// pixel pairs and claim thresholds"):
// - A pixel-pair variant's FMAs take their input from a separate 64-bit broadcast load
//   (vbroadcastsd) where the pixel-major ones use an embedded broadcast. On Zen 5 both forms
//   issue at the FMA peak and the pairs' halved input loads and doubled accumulator chains win;
//   on Zen 4 the separate broadcast caps the FMAs at about three quarters of the peak, and every
//   pair variant ran 0.81-0.97x of the pixel-major one on ResNet-50's layers. So the delegate
//   option pixel_pairs=auto (its default) is !CpuSplitsAvx512().
// - XNNPACK's dense kernels run at half Zen 5's rate, while our 256- and 128-bit microkernels
//   (N = 8 and 4) issue as fast as there, so narrow groups pay from lower sparsity
//   (DefaultMinSparsity).
bool CpuSplitsAvx512();

// "generic", "avx2" or "avx512"; "float32"; "pixel_major", "channel_major" or "pixel_pair".
const char* IsaName(Isa isa);
const char* WeightTypeName(WeightType weight_type);
const char* InputLayoutName(InputLayout layout);

// Parses "generic"/"avx2"/"avx512" (exact, lower case); false for anything else.
bool ParseIsaName(const std::string& text, Isa* isa);

// What the CPU lacks to run `isa`, e.g. "AVX-512F/VL/AVX2/FMA" (for error messages).
const char* IsaRequirement(Isa isa);

// The fastest ISA that is registered and that the CPU supports.
Isa BestSupportedIsa();

// Block widths N that the registry has for `isa`, ascending, written as "1, 2, 4, 8, 16 or 32".
std::string RegisteredBlockWidthsText(Isa isa);

// True if some registered variant of any ISA has this block width.
bool BlockWidthRegistered(int block_n);

// JSON array describing every registry row: name, isa, weight_type, block_n, tile_pixels,
// layout and supported_by_cpu.
std::string MicrokernelsJson();

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_MICROKERNELS_MICROKERNEL_H_
