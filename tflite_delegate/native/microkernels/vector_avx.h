// 256-bit (8-lane) and 128-bit (4-lane) vector types for sparse_tile_template.h, shared by the AVX2
// and AVX-512 translation units (the AVX-512 microkernels use them for N = 8 and 4).
//
// Internal linkage on purpose, as in sparse_tile_template.h: each including translation unit gets its
// own copy compiled with its own -m flags, so the linker never merges an AVX-512 build of these
// functions into the AVX2 path. Include only from files compiled with at least -mavx2 -mfma.
#ifndef TFLITE_DELEGATE_MICROKERNELS_VECTOR_AVX_H_
#define TFLITE_DELEGATE_MICROKERNELS_VECTOR_AVX_H_

#if defined(__x86_64__)
#include <immintrin.h>

namespace tflite_sparse {
namespace {

struct Avx256Vector {  // 8 lanes
  using Reg = __m256;
  static constexpr int kLanes = 8;
  static Reg Load(const float* source) { return _mm256_loadu_ps(source); }
  static Reg Broadcast(const float* source) { return _mm256_broadcast_ss(source); }
  static Reg Set(float value) { return _mm256_set1_ps(value); }
  static Reg MulAdd(Reg a, Reg b, Reg accumulator) { return _mm256_fmadd_ps(a, b, accumulator); }
  static Reg Add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg Max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  // max/min return their second operand when either is NaN: NaN inputs propagate.
  static Reg Clamp(Reg value, Reg low, Reg high) {
    return _mm256_min_ps(high, _mm256_max_ps(low, value));
  }
  static void Store(float* destination, Reg value) { _mm256_storeu_ps(destination, value); }
  // Non-temporal; `destination` 32-byte aligned.
  static void Stream(float* destination, Reg value) { _mm256_stream_ps(destination, value); }
};

struct Avx128Vector {  // 4 lanes, VEX-encoded
  using Reg = __m128;
  static constexpr int kLanes = 4;
  static Reg Load(const float* source) { return _mm_loadu_ps(source); }
  static Reg Broadcast(const float* source) { return _mm_broadcast_ss(source); }
  static Reg Set(float value) { return _mm_set1_ps(value); }
  static Reg MulAdd(Reg a, Reg b, Reg accumulator) { return _mm_fmadd_ps(a, b, accumulator); }
  static Reg Add(Reg a, Reg b) { return _mm_add_ps(a, b); }
  static Reg Max(Reg a, Reg b) { return _mm_max_ps(a, b); }
  static Reg Clamp(Reg value, Reg low, Reg high) { return _mm_min_ps(high, _mm_max_ps(low, value)); }
  static void Store(float* destination, Reg value) { _mm_storeu_ps(destination, value); }
  // Non-temporal; `destination` 16-byte aligned.
  static void Stream(float* destination, Reg value) { _mm_stream_ps(destination, value); }
};

}  // namespace
}  // namespace tflite_sparse

#endif  // __x86_64__
#endif  // TFLITE_DELEGATE_MICROKERNELS_VECTOR_AVX_H_
