// AVX2 + FMA float32 microkernels (built with -mavx2 -mfma; registered for Isa::kAvx2, run only
// if the CPU has both). Tiles sized for 16 ymm registers: P x R accumulators plus R weights and
// one broadcast.
#if defined(__x86_64__)
#include "microkernels/sparse_tile_template.h"
#include "microkernels/vector_avx.h"

namespace tflite_sparse {
namespace microkernels {

void f32_1x32_p2_avx2(const SparseTileArgs& args) { SparseTile<Avx256Vector, 4, 2>(args); }
void f32_1x16_p5_avx2(const SparseTileArgs& args) { SparseTile<Avx256Vector, 2, 5>(args); }
void f32_1x8_p8_avx2(const SparseTileArgs& args) { SparseTile<Avx256Vector, 1, 8>(args); }
void f32_1x4_p8_avx2(const SparseTileArgs& args) { SparseTile<Avx128Vector, 1, 8>(args); }
void f32_1x2_p4_avx2(const SparseTileArgs& args) { SparseTile<ScalarVector, 2, 4>(args); }
void f32_1x1_p8_avx2(const SparseTileArgs& args) { SparseTile<ScalarVector, 1, 8>(args); }

}  // namespace microkernels
}  // namespace tflite_sparse
#endif  // __x86_64__
