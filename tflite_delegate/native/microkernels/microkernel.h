// The microkernel interface and its one registry.
//
// A microkernel computes one tile of output pixels for a range of groups of a 1xN block-sparse
// convolution whose filter was packed by packing/packing.h:
//
//   out[p, g*N + n] = clamp(bias[g*N + n]
//                           + sum_k weights[k][n] * input[pixel_offsets[p] + tap_offsets[k]])
//
// for every pixel p of the tile, every group g in [first_group, end_group), every lane n < N that
// is a real output channel, and the kept tap vectors k of group g in packed order. The order of
// the sum is fixed by the packing, so every variant and every tile size gives each output
// element the same arithmetic (bias first, then one multiply-add per kept tap vector): results do
// not depend on how the operator tiles the work or splits it between threads.
//
// Pixels of a tile are consecutive *flattened* output pixels (over batch x out_h x out_w), so a
// tile may cross output rows and images; each pixel's input position comes from pixel_offsets
// (an indirection array the operator computes at prepare time). The input is pre-padded where
// the convolution needs padding, so microkernels never test bounds.
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

struct SparseTileArgs {
  const float* input;            // base of the (pre-padded when needed) NHWC input
  const int64_t* pixel_offsets;  // num_pixels entries: floats from `input` to each pixel's origin
  int num_pixels;                // 1 .. the variant's tile_pixels
  int first_group;               // groups [first_group, end_group) of the layer
  int end_group;
  const int32_t* group_begin;    // num_groups + 1 row pointers into the kept tap vectors
  const void* weights;           // packed kept tap vectors, block_n elements each, 64-byte aligned
  const int32_t* tap_offsets;    // per kept tap vector: floats from a pixel's origin to its input
  const float* bias;             // num_groups * block_n floats (zero-padded)
  float* output;                 // output of the tile's first pixel, channel 0
  int64_t output_pixel_stride;   // floats between consecutive flattened output pixels
  int out_channels;              // real output channels (the last group may be partial)
  float activation_min;
  float activation_max;
};

using SparseTileFunction = void (*)(const SparseTileArgs& args);

struct MicrokernelVariant {
  const char* name;  // e.g. "f32_1x16_p8__avx512": weight type, 1xN, tile pixels, ISA
  Isa isa;
  WeightType weight_type;
  int block_n;      // N: output channels per group
  int tile_pixels;  // P: pixels of a full tile
  SparseTileFunction function;
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

// The preferred variant for (isa, block_n, weight type), or nullptr if the registry has none.
const MicrokernelVariant* FindMicrokernel(Isa isa, int block_n,
                                          WeightType weight_type = WeightType::kFloat32);

// "generic", "avx2" or "avx512"; "float32".
const char* IsaName(Isa isa);
const char* WeightTypeName(WeightType weight_type);

// Parses "generic"/"avx2"/"avx512" (exact, lower case); false for anything else.
bool ParseIsaName(const std::string& text, Isa* isa);

// What the CPU lacks to run `isa`, e.g. "AVX-512F/AVX2/FMA" (for error messages).
const char* IsaRequirement(Isa isa);

// The fastest ISA that is registered and that the CPU supports.
Isa BestSupportedIsa();

// Block widths N that the registry has for `isa`, ascending, written as "1, 2, 4, 8, 16 or 32".
std::string RegisteredBlockWidthsText(Isa isa);

// True if some registered variant of any ISA has this block width.
bool BlockWidthRegistered(int block_n);

// JSON array describing every registry row: name, isa, weight_type, block_n, tile_pixels and
// supported_by_cpu.
std::string MicrokernelsJson();

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_MICROKERNELS_MICROKERNEL_H_
