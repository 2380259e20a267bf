// The one registry of microkernel variants, and what is derived from it: dispatch, the ISA and
// block widths the options accept, and the JSON list the library exports.
//
// A row is X(weight prefix, WeightType, N, P, isa suffix, Isa); it declares the function
// <prefix>_1x<N>_p<P>_<isa> (defined in that ISA's f32_<isa>.cc) and registers it under the name
// "<prefix>_1x<N>_p<P>__<isa>". Rows are in preference order: FindMicrokernel returns the first
// row that matches, so faster variants of the same ISA and N go first.
#include <cstdio>

#include "microkernels/microkernel.h"

#if defined(__x86_64__)
#define TFLITE_SPARSE_X86_MICROKERNELS(X)     \
  X(f32, kFloat32, 32, 8, avx512, kAvx512)     \
  X(f32, kFloat32, 16, 8, avx512, kAvx512)    \
  X(f32, kFloat32, 8, 8, avx512, kAvx512)     \
  X(f32, kFloat32, 4, 8, avx512, kAvx512)     \
  X(f32, kFloat32, 2, 4, avx512, kAvx512)     \
  X(f32, kFloat32, 1, 8, avx512, kAvx512)     \
  X(f32, kFloat32, 32, 2, avx2, kAvx2)        \
  X(f32, kFloat32, 16, 5, avx2, kAvx2)        \
  X(f32, kFloat32, 8, 8, avx2, kAvx2)         \
  X(f32, kFloat32, 4, 8, avx2, kAvx2)         \
  X(f32, kFloat32, 2, 4, avx2, kAvx2)         \
  X(f32, kFloat32, 1, 8, avx2, kAvx2)
#else
#define TFLITE_SPARSE_X86_MICROKERNELS(X)
#endif

#define TFLITE_SPARSE_MICROKERNELS(X)        \
  TFLITE_SPARSE_X86_MICROKERNELS(X)          \
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
TFLITE_SPARSE_MICROKERNELS(TFLITE_SPARSE_DECLARE)
#undef TFLITE_SPARSE_DECLARE
}  // namespace microkernels

namespace {

#define TFLITE_SPARSE_ROW(prefix, type, n, p, isa, isa_enum)                         \
  {#prefix "_1x" #n "_p" #p "__" #isa, Isa::isa_enum, WeightType::type, n, p, \
   &microkernels::prefix##_1x##n##_p##p##_##isa},
constexpr MicrokernelVariant kRegistry[] = {TFLITE_SPARSE_MICROKERNELS(TFLITE_SPARSE_ROW)};
#undef TFLITE_SPARSE_ROW

constexpr size_t kRegistrySize = sizeof(kRegistry) / sizeof(kRegistry[0]);

}  // namespace

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

const MicrokernelVariant* FindMicrokernel(Isa isa, int block_n, WeightType weight_type) {
  for (const MicrokernelVariant& variant : kRegistry) {
    if (variant.isa == isa && variant.block_n == block_n && variant.weight_type == weight_type) {
      return &variant;
    }
  }
  return nullptr;
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
            ", \"supported_by_cpu\": " + (IsaSupportedByCpu(variant.isa) ? "true" : "false") +
            "}";
  }
  return json + "]";
}

}  // namespace tflite_sparse
