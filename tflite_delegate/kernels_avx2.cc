// AVX2 + FMA row kernels (built with -mavx2 -mfma; selected at run time only if the CPU has both).
#if defined(__x86_64__)
#include <immintrin.h>

#include "kernel_template.h"

namespace tflite_sparse {
namespace {

struct Avx2Vector {  // 8 lanes
  using Reg = __m256;
  static constexpr int kLanes = 8;
  static Reg Load(const float* source) { return _mm256_loadu_ps(source); }
  static Reg Broadcast(const float* source) { return _mm256_broadcast_ss(source); }
  static Reg Set(float value) { return _mm256_set1_ps(value); }
  static Reg MulAdd(Reg a, Reg b, Reg accumulator) { return _mm256_fmadd_ps(a, b, accumulator); }
  // max/min return their second operand when either is NaN: NaN inputs propagate.
  static Reg Clamp(Reg value, Reg low, Reg high) {
    return _mm256_min_ps(high, _mm256_max_ps(low, value));
  }
  static void Store(float* destination, Reg value) { _mm256_storeu_ps(destination, value); }
};

struct SseVector {  // 4 lanes, VEX-encoded under -mavx2
  using Reg = __m128;
  static constexpr int kLanes = 4;
  static Reg Load(const float* source) { return _mm_loadu_ps(source); }
  static Reg Broadcast(const float* source) { return _mm_broadcast_ss(source); }
  static Reg Set(float value) { return _mm_set1_ps(value); }
  static Reg MulAdd(Reg a, Reg b, Reg accumulator) { return _mm_fmadd_ps(a, b, accumulator); }
  static Reg Clamp(Reg value, Reg low, Reg high) { return _mm_min_ps(high, _mm_max_ps(low, value)); }
  static void Store(float* destination, Reg value) { _mm_storeu_ps(destination, value); }
};

}  // namespace

// Tiles sized for 16 ymm registers: P x R accumulators plus R weights and one broadcast.
ConvRowKernel Avx2RowKernel(int block_n) {
  switch (block_n) {
    case 32:
      return ConvRow<Avx2Vector, 4, 2>;
    case 16:
      return ConvRow<Avx2Vector, 2, 5>;
    case 8:
      return ConvRow<Avx2Vector, 1, 8>;
    case 4:
      return ConvRow<SseVector, 1, 8>;
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
