// The one registry of microkernel variants, and what is derived from it: dispatch, the ISA and
// block widths the options accept, and the JSON list the library exports.
//
// A pixel-major row is X(weight prefix, WeightType, N, P, isa suffix, Isa); it declares the
// function <prefix>_1x<N>_p<P>_<isa> (defined in that ISA's f32_<isa>.cc) and registers it under
// the name "<prefix>_1x<N>_p<P>__<isa>". A channel-major row is C(the same fields, pixels per
// vector register, min kept FLOPs per input value, the same on a CPU that splits 512-bit
// operations, min kept FLOPs per output value, the same split, min kept FLOPs per transposed
// value (KeptFlopsPerTransposedValue), the same split); it declares
// <prefix>_1x<N>_p<P>_panel_<isa> and the ISA's panel builder <prefix>_panel_transpose_<isa>,
// and registers "<prefix>_1x<N>_p<P>_panel__<isa>".
//
// The AVX-512 1x4 panel row needs kChannelMajorMinKeptFlopsPerInput (32, measured with AVX2)
// kept FLOPs per input value, and 8 on Zen 4: there, with the lower limit per output value
// below, it ran ResNet-50's 1x1 layers at 87.5-90 % (12.8-25.6 per input value: 56x56 64->64,
// 256->64, 64->256, 28x28 512->128, and MobileNetV1's 112x112 32->64 at 16) 1.20-1.73x faster
// than the pixel-major 1x4 variant (bench_kernels --layout both, 1 thread, 2026-12-04 22:46
// UTC). It needs 64 kept FLOPs per output value: on Zen 5 at 90 % block
// sparsity (bench_kernels --block-n 4 --layout both, 1 thread) it ran 0.55-0.70x of the
// pixel-major 1x4 variant on 56x56 1x1 64->256, 28x28 128->512 and 14x14 256->1024 (12.8, 25.6
// and 51.2 kept FLOPs per output value) and 1.26-2.30x on 7x7 512->2048, 14x14 1024->256 and 7x7
// 2048->512 (102-410). On Zen 4 (the _split field, for CPUs that split 512-bit operations) it
// needs 8: there it ran those three at 1.19-1.48x of the pixel-major variant at 90 %, and
// 1.75-1.86x 56x56 64->64 and 64->256 at 75 % (32 per output value; bench_kernels, 2026-12-04).
// The AVX-512 1x8 panel row needs 32 and 64 (measured only where 512-bit operations are split:
// Zen 5 prefers the 1x8 pixel-pair row anyway) and on Zen 4 25 per input value and 17 per
// transposed value (see the end of this paragraph; until then 32 and 48): there, since
// channel-major tiles store whole vectors of channels per pixel and the panel builder goes 8
// pixels at a time, it ran ResNet-50's and MobileNetV1's twelve 1x1 stride-1 shapes and two
// strided ones 1.00-1.44x as fast as the pixel-major 1x8 variant at 50 %, and those it takes
// 0.98-1.47x at 75 %, 0.96-1.65x at 87.5 % and 0.99-1.44x at 90 % (bench_kernels --block-n 8
// --layout both, 1 thread, 2026-12-05 01:08 UTC); with 8 and 8 the 56x56 and 28x28 1x1 layers
// at 90 % (12.8-25.6 kept FLOPs per output or input value) ran 0.87-0.97x channel-major. Since
// the pixel-major 1x8 variant runs spaced tiles in runs with unrolled tap loops (2026-12-05) the
// split limit per output value is 48: 56x56 1x1 64->64 at 75 % (32 per input and per output
// value) ran 0.91x channel-major in two runs, 28x28 128->512 at 87.5 % (128 and 32) 0.89-0.92x
// and 56x56 128->128 at 87.5 % (32 and 32) 0.96-1.00x, while 56x56 64->256 at 75 % (128 and 32),
// which now runs pixel-major too, ran 1.05-1.07x channel-major (bench_kernels --block-n 8
// --layout both, 1 and 2 threads, 06:57 UTC). Since channel-major 1x1 tiles hold 16 pixels
// (2026-12-05 08:50 UTC; sparse_conv_operator.cc, kPanelTilePixels) the kept FLOPs per
// transposed value (input and output together) tell the cases apart where the two limits did
// not: on ResNet-50's and MobileNetV1's eighteen 1x1 shapes (six strided) at 50, 75, 87.5 and
// 90 % (bench_kernels --block-n 8 --layout both with no limits, 1 thread, two rounds, 09:00 UTC)
// channel-major ran 1.02-1.53x as fast as the pixel-major 1x8 variant from 20.5 per transposed
// value up (e.g. 56x56 64->256 at 75 %, 128 per input and 32 per output value: 1.17x; 28x28
// 128->512 at 87.5 % and 90 %: 1.12x and 1.05x; 112x112 32->64 at 50 %: 1.05x), and 0.70-0.98x
// below 17 (56x56 64->64 at 75 %, 16: 0.96x; 56x56 128->128 at 90 %, 12.8: 0.98x) but for one
// strided layer: 56x56 256->128 stride 2 at 87.5 % (21.3) ran 0.92x and at 90 % (17) 0.88x, as
// under the old limits; the limits were 32 per input and 20 per transposed value. Since a row's
// last 1-7 pixels go through the 8-pixel transpose (panel_transpose_template.h, 2026-12-05
// 12:40 UTC) the strided layers transpose faster: the same measurement (1 and 2 threads, 13:00
// UTC) gave that layer 1.08-1.09x at 87.5 % and 1.03-1.06x at 90 % (25.6 per input, 17.1 per
// transposed value), ResNet-18's 28x28 128->256 stride 2 at 90 % (51.2 and 17.1) 1.12-1.13x,
// 28x28 512->128 at 90 % (25.6 and 20.5) 1.01-1.03x, while 56x56 64->64 at 75 % (32 and 16)
// read 0.98-1.05x and the 56-wide 1x1 layers at 90 % (10.2-12.8 per transposed value)
// 0.79-1.00x: hence 25 and 17. The AVX2 row keeps no limit (measured on Zen 4 AVX2 only: it won
// on all nine 1x1 shapes at its threshold).
//
// A pixel-pair row is Q(the same fields as X); it declares <prefix>_1x<N>_p<P>_pair_<isa> and
// the ISA's pair-image row builder <prefix>_pair_row_<isa>, and registers
// "<prefix>_1x<N>_p<P>_pair__<isa>". Where the CPU runs them fast (CpuSplitsAvx512, the
// delegate option pixel_pairs) the AVX-512 1x16 and 1x8 pair rows are selected for every KxK
// layer and the 1x1 ones with enough kept work per input value; at prepare time the
// operator gives a 1x16 layer back to the pixel-major row where pairs measured slower inside a
// model (SparseConvOperator::set_pixel_pair_fallback; docs/RESULTS.md, "Pixel pairs for 1x16
// layers").
//
// Rows are in preference order: FindMicrokernel and SelectMicrokernel return the first row that
// matches, so faster variants of the same ISA and N go first; channel-major rows come before
// the pixel-major ones of their ISA because SelectMicrokernel should prefer them where they
// apply.
#include <cstdio>

#include "microkernels/max_pool.h"
#include "microkernels/microkernel.h"

#if defined(__x86_64__)
#define TFLITE_SPARSE_X86_MICROKERNELS(X, C, Q)  \
  C(f32, kFloat32, 4, 64, avx512, kAvx512, 16, kChannelMajorMinKeptFlopsPerInput, 8.0, 64.0, 8.0, \
    0.0, 0.0)                                                                                  \
  X(f32, kFloat32, 32, 8, avx512, kAvx512)     \
  Q(f32, kFloat32, 16, 16, avx512, kAvx512)   \
  X(f32, kFloat32, 16, 8, avx512, kAvx512)    \
  Q(f32, kFloat32, 8, 16, avx512, kAvx512)    \
  C(f32, kFloat32, 8, 48, avx512, kAvx512, 16, kChannelMajorMinKeptFlopsPerInput, 25.0, 64.0,   \
    0.0, 0.0, 17.0)                                                                            \
  X(f32, kFloat32, 8, 8, avx512, kAvx512)     \
  X(f32, kFloat32, 4, 8, avx512, kAvx512)     \
  X(f32, kFloat32, 2, 4, avx512, kAvx512)     \
  X(f32, kFloat32, 1, 8, avx512, kAvx512)     \
  C(f32, kFloat32, 4, 24, avx2, kAvx2, 8, kChannelMajorMinKeptFlopsPerInput,                    \
    kChannelMajorMinKeptFlopsPerInput, 0.0, 0.0, 0.0, 0.0)                                     \
  X(f32, kFloat32, 32, 2, avx2, kAvx2)        \
  X(f32, kFloat32, 16, 5, avx2, kAvx2)        \
  X(f32, kFloat32, 8, 8, avx2, kAvx2)         \
  X(f32, kFloat32, 4, 8, avx2, kAvx2)         \
  X(f32, kFloat32, 2, 4, avx2, kAvx2)         \
  X(f32, kFloat32, 1, 8, avx2, kAvx2)
#else
#define TFLITE_SPARSE_X86_MICROKERNELS(X, C, Q)
#endif

#define TFLITE_SPARSE_MICROKERNELS(X, C, Q)  \
  TFLITE_SPARSE_X86_MICROKERNELS(X, C, Q)    \
  X(f32, kFloat32, 32, 2, generic, kGeneric) \
  X(f32, kFloat32, 16, 4, generic, kGeneric) \
  X(f32, kFloat32, 8, 4, generic, kGeneric)  \
  X(f32, kFloat32, 4, 4, generic, kGeneric)  \
  X(f32, kFloat32, 2, 4, generic, kGeneric)  \
  X(f32, kFloat32, 1, 4, generic, kGeneric)

namespace tflite_sparse {

namespace microkernels {
#define TFLITE_SPARSE_DECLARE(prefix, type, n, p, isa, isa_enum) \
  void prefix##_1x##n##_p##p##_##isa(const SparseTileArgs& args);
#define TFLITE_SPARSE_DECLARE_PANEL(prefix, type, n, p, isa, isa_enum, lanes, input_flops,  \
                                    input_flops_split, output_flops, output_flops_split,  \
                                    transposed_flops, transposed_flops_split)             \
  void prefix##_1x##n##_p##p##_panel_##isa(const SparseTileArgs& args);             \
  void prefix##_panel_transpose_##isa(const float* input, int channels, int64_t pixel_stride, \
                                      int64_t pixels, float* panel, int64_t panel_stride);
#define TFLITE_SPARSE_DECLARE_PAIR(prefix, type, n, p, isa, isa_enum)                  \
  void prefix##_1x##n##_p##p##_pair_##isa(const SparseTileArgs& args);                  \
  void prefix##_pair_row_##isa(const float* input_row, int in_w, int channels, int pad_left, \
                               int padded_w, int stride_w, int column_step, float* pair_row);
TFLITE_SPARSE_MICROKERNELS(TFLITE_SPARSE_DECLARE, TFLITE_SPARSE_DECLARE_PANEL,
                           TFLITE_SPARSE_DECLARE_PAIR)
#undef TFLITE_SPARSE_DECLARE
#undef TFLITE_SPARSE_DECLARE_PANEL
#undef TFLITE_SPARSE_DECLARE_PAIR
#if defined(__x86_64__)
void f32_maxpool_row_avx512(const MaxPoolRowArgs& args);
void f32_maxpool_row_avx2(const MaxPoolRowArgs& args);
#endif
void f32_maxpool_row_generic(const MaxPoolRowArgs& args);
}  // namespace microkernels

namespace {

#define TFLITE_SPARSE_ROW(prefix, type, n, p, isa, isa_enum)                           \
  {#prefix "_1x" #n "_p" #p "__" #isa,           Isa::isa_enum, WeightType::type, n, p, \
   &microkernels::prefix##_1x##n##_p##p##_##isa, InputLayout::kPixelMajor,     1,  nullptr, 0.0, \
   0.0, 0.0, 0.0, 0.0, 0.0, nullptr},
#define TFLITE_SPARSE_PANEL_ROW(prefix, type, n, p, isa, isa_enum, lanes, input_flops,          \
                                input_flops_split, output_flops, output_flops_split,            \
                                transposed_flops, transposed_flops_split)                       \
  {#prefix "_1x" #n "_p" #p "_panel__" #isa,              Isa::isa_enum, WeightType::type, n, p, \
   &microkernels::prefix##_1x##n##_p##p##_panel_##isa,   InputLayout::kChannelMajor, lanes,     \
   &microkernels::prefix##_panel_transpose_##isa, input_flops, input_flops_split, output_flops,  \
   output_flops_split, transposed_flops, transposed_flops_split, nullptr},
#define TFLITE_SPARSE_PAIR_ROW(prefix, type, n, p, isa, isa_enum)                              \
  {#prefix "_1x" #n "_p" #p "_pair__" #isa,            Isa::isa_enum, WeightType::type, n, p, \
   &microkernels::prefix##_1x##n##_p##p##_pair_##isa, InputLayout::kPixelPair, 1, nullptr, 0.0, \
   0.0, 0.0, 0.0, 0.0, 0.0, &microkernels::prefix##_pair_row_##isa},
constexpr MicrokernelVariant kRegistry[] = {TFLITE_SPARSE_MICROKERNELS(
    TFLITE_SPARSE_ROW, TFLITE_SPARSE_PANEL_ROW, TFLITE_SPARSE_PAIR_ROW)};
#undef TFLITE_SPARSE_ROW
#undef TFLITE_SPARSE_PANEL_ROW
#undef TFLITE_SPARSE_PAIR_ROW

constexpr size_t kRegistrySize = sizeof(kRegistry) / sizeof(kRegistry[0]);

}  // namespace

MaxPoolRowFunction FindMaxPoolRow(Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::kAvx512:
      return &microkernels::f32_maxpool_row_avx512;
    case Isa::kAvx2:
      return &microkernels::f32_maxpool_row_avx2;
#endif
    default:
      break;
  }
  return &microkernels::f32_maxpool_row_generic;
}

const char* MaxPoolRowName(Isa isa) {
  return FindMaxPoolRow(isa) == &microkernels::f32_maxpool_row_generic ? "f32_maxpool_row__generic"
         : isa == Isa::kAvx512                                          ? "f32_maxpool_row__avx512"
                                                                        : "f32_maxpool_row__avx2";
}

const MicrokernelVariant* RegisteredMicrokernels(size_t* count) {
  *count = kRegistrySize;
  return kRegistry;
}

bool IsaRegistered(Isa isa) {
  for (const MicrokernelVariant& variant : kRegistry) {
    if (variant.isa == isa) return true;
  }
  return false;
}

const MicrokernelVariant* FindMicrokernel(Isa isa, int block_n, WeightType weight_type,
                                          InputLayout layout) {
  for (const MicrokernelVariant& variant : kRegistry) {
    if (variant.isa == isa && variant.block_n == block_n && variant.weight_type == weight_type &&
        variant.layout == layout) {
      return &variant;
    }
  }
  return nullptr;
}

double MinKeptFlopsPerInput(const MicrokernelVariant& variant) {
  return CpuSplitsAvx512() ? variant.min_kept_flops_per_input_split
                           : variant.min_kept_flops_per_input;
}

double MinKeptFlopsPerOutput(const MicrokernelVariant& variant) {
  return CpuSplitsAvx512() ? variant.min_kept_flops_per_output_split
                           : variant.min_kept_flops_per_output;
}

double MinKeptFlopsPerTransposedValue(const MicrokernelVariant& variant) {
  return CpuSplitsAvx512() ? variant.min_kept_flops_per_transposed_value_split
                           : variant.min_kept_flops_per_transposed_value;
}

double KeptFlopsPerInputValue(int64_t kept_tap_vectors, int block_n, int in_channels) {
  if (in_channels <= 0) return 0.0;
  return 2.0 * static_cast<double>(kept_tap_vectors) * block_n / in_channels;
}

double KeptFlopsPerOutputValue(int64_t kept_tap_vectors, int block_n, int out_channels) {
  if (out_channels <= 0) return 0.0;
  return 2.0 * static_cast<double>(kept_tap_vectors) * block_n / out_channels;
}

double KeptFlopsPerTransposedValue(double kept_flops_per_input, double kept_flops_per_output) {
  if (kept_flops_per_input <= 0.0 || kept_flops_per_output <= 0.0) return 0.0;
  return kept_flops_per_input * kept_flops_per_output /
         (kept_flops_per_input + kept_flops_per_output);
}

const MicrokernelVariant* SelectMicrokernel(Isa isa, int block_n, int kernel_h, int kernel_w,
                                            double kept_flops_per_input,
                                            double kept_flops_per_output, bool pixel_pairs,
                                            WeightType weight_type) {
  for (const MicrokernelVariant& variant : kRegistry) {
    if (variant.isa != isa || variant.block_n != block_n || variant.weight_type != weight_type ||
        (variant.layout == InputLayout::kPixelPair && !pixel_pairs)) {
      continue;
    }
    if (variant.layout == InputLayout::kChannelMajor &&
        (kept_flops_per_input < MinKeptFlopsPerInput(variant) ||
         kept_flops_per_output < MinKeptFlopsPerOutput(variant) ||
         KeptFlopsPerTransposedValue(kept_flops_per_input, kept_flops_per_output) <
             MinKeptFlopsPerTransposedValue(variant))) {
      continue;  // too little work per transposed input or output value
    }
    if (variant.layout == InputLayout::kPixelPair && kernel_h * kernel_w == 1 &&
        kept_flops_per_input < kPixelPairMinKeptFlopsPerInput) {
      continue;  // too little work per paired input value
    }
    return &variant;
  }
  return nullptr;
}

const char* InputLayoutName(InputLayout layout) {
  switch (layout) {
    case InputLayout::kChannelMajor:
      return "channel_major";
    case InputLayout::kPixelPair:
      return "pixel_pair";
    case InputLayout::kPixelMajor:
      break;
  }
  return "pixel_major";
}

Isa BestSupportedIsa() {
  // The first registered ISA the CPU runs, in the table's preference order (generic is last).
  for (const MicrokernelVariant& variant : kRegistry) {
    if (IsaSupportedByCpu(variant.isa)) return variant.isa;
  }
  return Isa::kGeneric;
}

bool BlockWidthRegistered(int block_n) {
  for (const MicrokernelVariant& variant : kRegistry) {
    if (variant.block_n == block_n) return true;
  }
  return false;
}

std::string RegisteredBlockWidthsText(Isa isa) {
  // Widths are small powers of two; list them ascending without duplicates.
  std::string text;
  int previous = 0;
  for (;;) {
    int next = 0;
    for (const MicrokernelVariant& variant : kRegistry) {
      if (variant.isa == isa && variant.block_n > previous &&
          (next == 0 || variant.block_n < next)) {
        next = variant.block_n;
      }
    }
    if (next == 0) break;
    if (!text.empty()) text += ", ";
    text += std::to_string(next);
    previous = next;
  }
  const size_t last_comma = text.rfind(", ");
  if (last_comma != std::string::npos) text.replace(last_comma, 2, " or ");
  return text;
}

std::string MicrokernelsJson() {
  std::string json = "[";
  for (size_t i = 0; i < kRegistrySize; ++i) {
    const MicrokernelVariant& variant = kRegistry[i];
    if (i > 0) json += ", ";
    json += std::string("{\"name\": \"") + variant.name + "\", \"isa\": \"" +
            IsaName(variant.isa) + "\", \"weight_type\": \"" +
            WeightTypeName(variant.weight_type) +
            "\", \"block_n\": " + std::to_string(variant.block_n) +
            ", \"tile_pixels\": " + std::to_string(variant.tile_pixels) +
            ", \"layout\": \"" + InputLayoutName(variant.layout) + "\"" +
            ", \"supported_by_cpu\": " + (IsaSupportedByCpu(variant.isa) ? "true" : "false") +
            "}";
  }
  return json + "]";
}

}  // namespace tflite_sparse
