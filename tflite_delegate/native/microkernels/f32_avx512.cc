// AVX-512 float32 microkernels (built with -mavx512f -mavx512vl -mavx2 -mfma; registered for
// Isa::kAvx512, run only if the CPU has all four). Narrow groups (N = 8, 4) use 256/128-bit FMA,
// EVEX-encoded thanks to AVX-512VL so that they too take their input as an embedded broadcast
// (VEX encoding needs a separate vbroadcastss per FMA). On Zen 4 that made the 1x8 variant 1.10x
// faster and the 1x4 one 1.07x (geometric means over ResNet-50's 57 single-conv layer rows,
// benchmark_delegate, old and new library alternating; docs/RESULTS.md). Tiles are
// 8 pixels: each FMA takes its input straight from memory as an embedded broadcast at
// [pixel origin + tap offset], so the 8 origins must stay in general-purpose registers (with the
// tap offset, the weight and tap pointers and the loop bound, that is all 16); a larger tile
// spills origins and adds a load per FMA. 8 accumulators per register of the group (R) cover the
// 4-cycle FMA latency at one 512-bit FMA per cycle (Zen 4: 95-105 GFLOP/s on the kept work of
// ResNet-50's 3x3 and 1x1 shapes, near that core's ~108 GFLOP/s fp32 peak) and exactly at two
// (Zen 5: 140-190 GFLOP/s of a ~230 peak; 16 chains as two interleaved groups measured slower,
// and the loop's loads, not its chains, are what it waits for there: docs/RESULTS.md, "Zen 5:
// what bounds the 1x16 kernel").
#if defined(__x86_64__)
#include <immintrin.h>

#include "microkernels/max_pool_template.h"
#include "microkernels/panel_transpose_template.h"
#include "microkernels/pixel_pair_template.h"
#include "microkernels/pixel_vector_template.h"
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
  static Reg Max(Reg a, Reg b) {
    constexpr __mmask16 kAllLanes = 0xffff;
    return _mm512_maskz_max_ps(kAllLanes, a, b);
  }
  // max/min return their second operand when either is NaN: NaN inputs propagate. The
  // all-lanes masked forms avoid GCC 12's false -Wmaybe-uninitialized on _mm512_max_ps.
  static Reg Clamp(Reg value, Reg low, Reg high) {
    constexpr __mmask16 kAllLanes = 0xffff;
    return _mm512_maskz_min_ps(kAllLanes, high, _mm512_maskz_max_ps(kAllLanes, low, value));
  }
  static void Store(float* destination, Reg value) { _mm512_storeu_ps(destination, value); }
  // Non-temporal; `destination` 64-byte aligned.
  static void Stream(float* destination, Reg value) { _mm512_stream_ps(destination, value); }
};

// A 256-bit store of the lanes whose mask lane has its top bit set, as a k-masked store.
struct Avx512VlMaskedStore {
  static void Store(float* destination, __m256i mask, __m256 value) {
    _mm256_mask_storeu_ps(destination, _mm256_cmplt_epi32_mask(mask, _mm256_setzero_si256()),
                          value);
  }
};

// The channel-major microkernels' vector: 16 pixels of one channel.
struct Avx512PixelVector : Avx512Vector {
  // 4x4 transposes inside each 128-bit lane of channels 0..3 (r0..r3, 16 lanes each): lane j of
  // quad[k] holds the four channels of lane 4j + k (the AVX2 StoreQuad's transpose, four lanes).
  static void TransposeQuadLanes(Reg r0, Reg r1, Reg r2, Reg r3, Reg quad[4]) {
    // Masked all-lanes forms: GCC 12 warns (-Wmaybe-uninitialized) about the plain ones.
    constexpr __mmask16 kAll16 = 0xffff;
    constexpr __mmask8 kAll8 = 0xff;
    const __m512d t0 = _mm512_castps_pd(_mm512_maskz_unpacklo_ps(kAll16, r0, r1));
    const __m512d t1 = _mm512_castps_pd(_mm512_maskz_unpackhi_ps(kAll16, r0, r1));
    const __m512d t2 = _mm512_castps_pd(_mm512_maskz_unpacklo_ps(kAll16, r2, r3));
    const __m512d t3 = _mm512_castps_pd(_mm512_maskz_unpackhi_ps(kAll16, r2, r3));
    quad[0] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(kAll8, t0, t2));
    quad[1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(kAll8, t0, t2));
    quad[2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(kAll8, t1, t3));
    quad[3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(kAll8, t1, t3));
  }

  // Writes channels 0..3 (registers r0..r3, 16 lanes each) of each lane l to destination(l), a
  // float* (skipped when null), 16 bytes each.
  template <class Destination>
  static void StoreQuad(Reg r0, Reg r1, Reg r2, Reg r3, const Destination& destination) {
    Reg quad[4];
    TransposeQuadLanes(r0, r1, r2, r3, quad);
    constexpr __mmask8 kAll4 = 0xf;
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      if (float* out = destination(k)) {
        _mm_storeu_ps(out, _mm512_maskz_extractf32x4_ps(kAll4, quad[k], 0));
      }
      if (float* out = destination(4 + k)) {
        _mm_storeu_ps(out, _mm512_maskz_extractf32x4_ps(kAll4, quad[k], 1));
      }
      if (float* out = destination(8 + k)) {
        _mm_storeu_ps(out, _mm512_maskz_extractf32x4_ps(kAll4, quad[k], 2));
      }
      if (float* out = destination(12 + k)) {
        _mm_storeu_ps(out, _mm512_maskz_extractf32x4_ps(kAll4, quad[k], 3));
      }
    }
  }

  // Transposes 16 channels x 16 lanes (channel c at rows + c * row_stride, 64-byte aligned) and
  // calls store(l, channels of lane l) for l = 0..15: 4x4 transposes inside each 128-bit lane,
  // then a 4x4 transpose of the 128-bit lanes (64 shuffles for 256 values).
  template <class Store>
  static void TransposeBlock(const float* rows, int row_stride, const Store& store) {
    constexpr __mmask16 kAll16 = 0xffff;
    // Lane j of u[4i + k]: channels 4i..4i+3 of lane 4j + k.
    Reg u[16];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      const float* quad_rows = rows + 4 * i * row_stride;
      TransposeQuadLanes(_mm512_load_ps(quad_rows), _mm512_load_ps(quad_rows + row_stride),
                         _mm512_load_ps(quad_rows + 2 * row_stride),
                         _mm512_load_ps(quad_rows + 3 * row_stride), u + 4 * i);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const Reg v0 = _mm512_maskz_shuffle_f32x4(kAll16, u[k], u[4 + k], 0x44);
      const Reg v1 = _mm512_maskz_shuffle_f32x4(kAll16, u[k], u[4 + k], 0xee);
      const Reg v2 = _mm512_maskz_shuffle_f32x4(kAll16, u[8 + k], u[12 + k], 0x44);
      const Reg v3 = _mm512_maskz_shuffle_f32x4(kAll16, u[8 + k], u[12 + k], 0xee);
      store(k, _mm512_maskz_shuffle_f32x4(kAll16, v0, v2, 0x88));
      store(4 + k, _mm512_maskz_shuffle_f32x4(kAll16, v0, v2, 0xdd));
      store(8 + k, _mm512_maskz_shuffle_f32x4(kAll16, v1, v3, 0x88));
      store(12 + k, _mm512_maskz_shuffle_f32x4(kAll16, v1, v3, 0xdd));
    }
  }
};

// The pixel-pair microkernel's vector: lanes 2n and 2n + 1 hold channel n of two pixels.
struct Avx512PairVector : Avx512Vector {
  // [v0, v0, v1, v1, ..., v7, v7] and [v8, v8, ..., v15, v15] from v.
  static void DuplicateLanes(Reg v, Reg* low, Reg* high) {
    const __m512i low_index = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512i high_index =
        _mm512_set_epi32(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8);
    // Masked forms: GCC 12 warns (-Wmaybe-uninitialized) about the plain ones.
    constexpr __mmask16 kAllLanes = 0xffff;
    *low = _mm512_maskz_permutexvar_ps(kAllLanes, low_index, v);
    *high = _mm512_maskz_permutexvar_ps(kAllLanes, high_index, v);
  }
  // [s0, s1, s0, s1, ...] from the two floats at `source` (one 64-bit broadcast load).
  static Reg BroadcastPair(const float* source) {
    double pair;
    __builtin_memcpy(&pair, source, sizeof(pair));
    return _mm512_castpd_ps(_mm512_set1_pd(pair));
  }
  // [v0, v0, v1, v1, ..., v7, v7] from v's first 8 lanes.
  static Reg DuplicateLow(Reg v) {
    const __m512i index = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    return _mm512_maskz_permutexvar_ps(static_cast<__mmask16>(0xffff), index, v);
  }
  // Even lanes of a -> the 8 channels of pixel 0 (lanes 0-7); odd lanes -> those of pixel 1.
  static void DeinterleaveHalves(Reg a, Reg* pixel0, Reg* pixel1) {
    const __m512i even = _mm512_set_epi32(15, 13, 11, 9, 7, 5, 3, 1, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(14, 12, 10, 8, 6, 4, 2, 0, 15, 13, 11, 9, 7, 5, 3, 1);
    *pixel0 = _mm512_maskz_permutexvar_ps(static_cast<__mmask16>(0xffff), even, a);
    *pixel1 = _mm512_maskz_permutexvar_ps(static_cast<__mmask16>(0xffff), odd, a);
  }
  // Even lanes of (a, b) -> the 16 channels of pixel 0; odd lanes -> those of pixel 1.
  static void Deinterleave(Reg a, Reg b, Reg* pixel0, Reg* pixel1) {
    const __m512i even =
        _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd =
        _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    *pixel0 = _mm512_permutex2var_ps(a, even, b);
    *pixel1 = _mm512_permutex2var_ps(a, odd, b);
  }
  static __mmask16 FirstLanes(int count) {
    return count >= 16 ? static_cast<__mmask16>(0xffff)
                       : static_cast<__mmask16>((1u << count) - 1u);
  }
  // The first `count` (1..16) lanes from / to memory; the others read as zero / are not written.
  static Reg LoadFirst(const float* source, int count) {
    if (count >= 16) return _mm512_loadu_ps(source);
    return _mm512_maskz_loadu_ps(FirstLanes(count), source);
  }
  static void StoreFirst(float* destination, Reg value, int count) {
    if (count >= 16) {
      _mm512_storeu_ps(destination, value);
    } else {
      _mm512_mask_storeu_ps(destination, FirstLanes(count), value);
    }
  }
};

}  // namespace

namespace microkernels {

void f32_1x32_p8_avx512(const SparseTileArgs& args) { SparseTile<Avx512Vector, 2, 8, true>(args); }
void f32_1x16_p8_avx512(const SparseTileArgs& args) {
  SparseTile<Avx512Vector, 1, 8, true, true>(args);
}
void f32_1x8_p8_avx512(const SparseTileArgs& args) {
  SparseTile<Avx256Vector, 1, 8, false, true>(args);
}
void f32_1x4_p8_avx512(const SparseTileArgs& args) { SparseTile<Avx128Vector, 1, 8>(args); }
void f32_1x2_p4_avx512(const SparseTileArgs& args) { SparseTile<ScalarVector, 2, 4>(args); }
void f32_1x1_p8_avx512(const SparseTileArgs& args) { SparseTile<ScalarVector, 1, 8>(args); }

// Channel-major N = 4 (stride-1 layers: 1x1 from per-tile panels, KxK from planes of the padded
// input): 512-bit FMAs over 16 pixels of a channel where the pixel-major N = 4 variant can only
// use 128-bit ones; 4 channels x 4 vectors (64 pixels), 16 accumulators of the 32 zmm registers.
// Measured against that pixel-major variant (bench_kernels --layout both, 1 thread, Zen 4): on
// ResNet-50's nine 1x1 stride-1 shapes 1.2-3.0x at 50 %, 1.5-3.4x at 75 %, 1.2-2.0x at 90 %
// wherever SelectMicrokernel picks it; on its four 3x3 shapes 2.0-2.3x at 75 % and 1.8-2.4x at
// 90 % (75-94 GFLOP/s on the kept work).
void f32_1x4_p64_panel_avx512(const SparseTileArgs& args) {
  PixelVectorTile<Avx512PixelVector, 4, 4, 4>(args);
}

// Channel-major N = 8: the 8 channels in one pass, 3 vectors (48 pixels), 24 accumulators.
// Against the pixel-major N = 8 variant (256-bit FMAs; bench_kernels --layout both, 1 thread,
// Zen 4, without pixel pairs): ResNet-50's four 3x3 shapes 0.99-1.21x at 50 %, 1.03-1.16x at
// 75 %, 1.04-1.28x at 90 %; its 1x1 shapes: registry.cc. Where the CPU runs pixel pairs
// (pixel_pairs, Zen 5) the 1x8 pair row comes first.
void f32_1x8_p48_panel_avx512(const SparseTileArgs& args) {
  PixelVectorTile<Avx512PixelVector, 8, 8, 3>(args);
}

// Pixel pairs: 8 pairs, 16 pixels, 16 accumulator chains. Measured against the pixel-major
// f32_1x16_p8 variant: docs/RESULTS.md, "Pixel pairs for 1x16 layers".
void f32_1x16_p16_pair_avx512(const SparseTileArgs& args) {
  PixelPairTile<Avx512PairVector, 16, 8>(args);
}
// 1x8: a pair's 8 channels in one register, 8 pairs, 8 accumulator chains, 512-bit FMAs.
void f32_1x8_p16_pair_avx512(const SparseTileArgs& args) {
  PixelPairTile<Avx512PairVector, 8, 8>(args);
}

// One row of the pair image (PairRowFunction): per column, 16 channels at a time, the
// column's values and those stride_w columns to the right interleaved by two permutes.
void f32_pair_row_avx512(const float* input_row, int in_w, int channels, int pad_left,
                         int padded_w, int stride_w, int column_step, float* pair_row) {
  const __m512i low = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i high =
      _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  for (int x = 0; x < padded_w; x += column_step) {
    const int column = x - pad_left;
    const int partner = column + stride_w;
    const float* a = column >= 0 && column < in_w
                         ? input_row + static_cast<int64_t>(column) * channels
                         : nullptr;
    const float* b = partner >= 0 && partner < in_w
                         ? input_row + static_cast<int64_t>(partner) * channels
                         : nullptr;
    float* out = pair_row + 2 * static_cast<int64_t>(x / column_step) * channels;
    for (int c = 0; c < channels; c += 16) {
      const int count = channels - c < 16 ? channels - c : 16;
      const __mmask16 lanes = Avx512PairVector::FirstLanes(count);
      const __m512 va = a != nullptr ? _mm512_maskz_loadu_ps(lanes, a + c) : _mm512_setzero_ps();
      const __m512 vb = b != nullptr ? _mm512_maskz_loadu_ps(lanes, b + c) : _mm512_setzero_ps();
      const int low_count = count < 8 ? 2 * count : 16;
      _mm512_mask_storeu_ps(out + 2 * c, Avx512PairVector::FirstLanes(low_count),
                            _mm512_permutex2var_ps(va, low, vb));
      if (count > 8) {
        _mm512_mask_storeu_ps(out + 2 * c + 16, Avx512PairVector::FirstLanes(2 * (count - 8)),
                              _mm512_permutex2var_ps(va, high, vb));
      }
    }
  }
}

// The panel builder (panel_transpose_template.h) with AVX-512VL k-masked stores: KxK planes
// end most rows in a partial block (56 = 3 x 16 + 8), and AVX2's vmaskmovps made building
// ResNet-50's 3x3 planes about 1.2x slower on Zen 4.
void f32_panel_transpose_avx512(const float* input, int channels, int64_t pixel_stride,
                                int64_t pixels, float* panel, int64_t panel_stride) {
  PanelTranspose<Avx512VlMaskedStore>(input, channels, pixel_stride, pixels, panel,
                                      panel_stride);
}

void f32_maxpool_row_avx512(const MaxPoolRowArgs& args) {
  MaxPoolRow<Avx512Vector, ScalarVector>(args);
}

}  // namespace microkernels
}  // namespace tflite_sparse
#endif  // __x86_64__
