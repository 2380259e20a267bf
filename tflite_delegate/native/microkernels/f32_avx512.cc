// AVX-512F row kernels (built with -mavx512f -mavx2 -mfma; selected at run time only if the CPU
// has all three). Narrow blocks (N = 8, 4) use 256/128-bit FMA.
#if defined(__x86_64__)
#include <immintrin.h>

#include "kernel_template.h"
#include "vector_avx.h"

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

// Tiles sized for 32 zmm registers: P x R accumulators plus R weights and one broadcast. The
// 256/128-bit variants without AVX-512VL only reach 16 registers.
ConvRowKernel Avx512RowKernel(int block_n) {
  switch (block_n) {
    case 32:
      return ConvRow<Avx512Vector, 2, 12>;
    case 16:
      return ConvRow<Avx512Vector, 1, 16>;
    case 8:
      return ConvRow<Avx256Vector, 1, 8>;
    case 4:
      return ConvRow<Avx128Vector, 1, 8>;
    case 2:
      return ConvRow<ScalarVector, 2, 4>;
    case 1:
      return ConvRow<ScalarVector, 1, 8>;
    default:
      return nullptr;
  }
}

}  // namespace tflite_sparse
#endif  // __x86_64__
