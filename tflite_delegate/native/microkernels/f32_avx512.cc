// AVX-512F float32 microkernels (built with -mavx512f -mavx2 -mfma; registered for Isa::kAvx512,
// run only if the CPU has all three). Narrow groups (N = 8, 4) use 256/128-bit FMA. Tiles are
// 8 pixels: each FMA takes its input straight from memory as an embedded broadcast at
// [pixel origin + tap offset], so the 8 origins must stay in general-purpose registers (with the
// tap offset, the weight and tap pointers and the loop bound, that is all 16); a larger tile
// spills origins and adds a load per FMA. 8 accumulators per register of the group (R) cover the
// 4-cycle FMA latency at one 512-bit FMA per cycle (measured: 95-105 GFLOP/s on the kept work
// of ResNet-50's 3x3 and 1x1 shapes, near this core's ~108 GFLOP/s fp32 peak).
#if defined(__x86_64__)
#include <immintrin.h>

#include "microkernels/sparse_tile_template.h"
#include "microkernels/vector_avx.h"

namespace tflite_sparse {
namespace {

struct Avx512Vector {  // 16 lanes
  using Reg = __m512;
  static constexpr int kLanes = 16;
  static Reg Load(const float* source) { return _mm512_loadu_ps(source); }
  static Reg Broadcast(const float* source) { return _mm512_set1_ps(*source); }
  static Reg Set(float value) { return _mm512_set1_ps(value); }
  static Reg MulAdd(Reg a, Reg b, Reg accumulator) { return _mm512_fmadd_ps(a, b, accumulator); }
  static Reg Add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  // max/min return their second operand when either is NaN: NaN inputs propagate. The
  // all-lanes masked forms avoid GCC 12's false -Wmaybe-uninitialized on _mm512_max_ps.
  static Reg Clamp(Reg value, Reg low, Reg high) {
    constexpr __mmask16 kAllLanes = 0xffff;
    return _mm512_maskz_min_ps(kAllLanes, high, _mm512_maskz_max_ps(kAllLanes, low, value));
  }
  static void Store(float* destination, Reg value) { _mm512_storeu_ps(destination, value); }
};

}  // namespace

namespace microkernels {

void f32_1x32_p8_avx512(const SparseTileArgs& args) { SparseTile<Avx512Vector, 2, 8>(args); }
void f32_1x16_p8_avx512(const SparseTileArgs& args) { SparseTile<Avx512Vector, 1, 8>(args); }
void f32_1x8_p8_avx512(const SparseTileArgs& args) { SparseTile<Avx256Vector, 1, 8>(args); }
void f32_1x4_p8_avx512(const SparseTileArgs& args) { SparseTile<Avx128Vector, 1, 8>(args); }
void f32_1x2_p4_avx512(const SparseTileArgs& args) { SparseTile<ScalarVector, 2, 4>(args); }
void f32_1x1_p8_avx512(const SparseTileArgs& args) { SparseTile<ScalarVector, 1, 8>(args); }

}  // namespace microkernels
}  // namespace tflite_sparse
#endif  // __x86_64__
