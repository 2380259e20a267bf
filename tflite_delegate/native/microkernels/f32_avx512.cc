// AVX-512F float32 microkernels (built with -mavx512f -mavx2 -mfma; registered for Isa::kAvx512,
// run only if the CPU has all three). Narrow groups (N = 8, 4) use 256/128-bit FMA. Tiles sized
// for 32 zmm registers: P x R accumulators plus R weights and one broadcast; the 256/128-bit
// variants without AVX-512VL reach only 16 registers.
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

void f32_1x32_p12_avx512(const SparseTileArgs& args) { SparseTile<Avx512Vector, 2, 12>(args); }
void f32_1x16_p16_avx512(const SparseTileArgs& args) { SparseTile<Avx512Vector, 1, 16>(args); }
void f32_1x8_p8_avx512(const SparseTileArgs& args) { SparseTile<Avx256Vector, 1, 8>(args); }
void f32_1x4_p8_avx512(const SparseTileArgs& args) { SparseTile<Avx128Vector, 1, 8>(args); }
void f32_1x2_p4_avx512(const SparseTileArgs& args) { SparseTile<ScalarVector, 2, 4>(args); }
void f32_1x1_p8_avx512(const SparseTileArgs& args) { SparseTile<ScalarVector, 1, 8>(args); }

}  // namespace microkernels
}  // namespace tflite_sparse
#endif  // __x86_64__
