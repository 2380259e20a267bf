// AVX2 + FMA float32 microkernels (built with -mavx2 -mfma; registered for Isa::kAvx2, run only
// if the CPU has both). Tiles sized for 16 ymm registers: P x R accumulators plus R weights and
// one broadcast.
//
// For N = 4 on 1x1 stride-1 convolutions the registry prefers the channel-major
// ("pixel-vector") variant below (pixel_vector_template.h): 256-bit FMAs over 8 pixels of a
// channel-major tile panel, which this file also builds (f32_panel_transpose_avx2). The
// pixel-major N = 4 variant can only use 128-bit FMAs, half of what this core does per FMA slot.
#if defined(__x86_64__)
#include <immintrin.h>

#include "microkernels/max_pool_template.h"
#include "microkernels/pixel_vector_template.h"
#include "microkernels/sparse_tile_template.h"
#include "microkernels/vector_avx.h"

namespace tflite_sparse {
namespace {

// The channel-major microkernels' vector: 8 pixels of one channel.
struct Avx256PixelVector : Avx256Vector {
  static Reg LoadAligned(const float* source) { return _mm256_load_ps(source); }

  // Writes channels 0..3 (registers r0..r3, 8 pixels each) of the first `pixels` (may be <= 0 or
  // > 8) of 8 pixels to output + pixel * stride. A 4x4 transpose inside each 128-bit lane leaves
  // pixel 4j+k's four channels in lane j of quad[k]; each goes out as one 16-byte store (the
  // upper-lane extract folds into the store).
  static void StoreQuad(Reg r0, Reg r1, Reg r2, Reg r3, float* output, int64_t stride,
                        int pixels) {
    const __m256d t0 = _mm256_castps_pd(_mm256_unpacklo_ps(r0, r1));
    const __m256d t1 = _mm256_castps_pd(_mm256_unpackhi_ps(r0, r1));
    const __m256d t2 = _mm256_castps_pd(_mm256_unpacklo_ps(r2, r3));
    const __m256d t3 = _mm256_castps_pd(_mm256_unpackhi_ps(r2, r3));
    const __m256 quad[4] = {
        _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2)), _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2)),
        _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3)), _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3))};
    if (pixels >= 8) {
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        _mm_storeu_ps(output + k * stride, _mm256_castps256_ps128(quad[k]));
        _mm_storeu_ps(output + (4 + k) * stride, _mm256_extractf128_ps(quad[k], 1));
      }
      return;
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      if (k < pixels) _mm_storeu_ps(output + k * stride, _mm256_castps256_ps128(quad[k]));
      if (4 + k < pixels) {
        _mm_storeu_ps(output + (4 + k) * stride, _mm256_extractf128_ps(quad[k], 1));
      }
    }
  }
};

// In-register 8x8 transpose: rows[i] lane j becomes rows[j] lane i (unpack pairs of floats,
// then 2-float shuffles, then 128-bit halves: 24 shuffles for 64 floats).
inline void Transpose8x8(__m256 rows[8]) {
  __m256 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(rows[i], rows[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(rows[i], rows[i + 1]);
  }
  __m256 u[8];
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  // u[4m + k] lane j holds column 4j + k of rows 4m..4m+3.
  for (int k = 0; k < 4; ++k) {
    rows[k] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x20);
    rows[4 + k] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x31);
  }
}

}  // namespace

namespace microkernels {

void f32_1x32_p2_avx2(const SparseTileArgs& args) { SparseTile<Avx256Vector, 4, 2>(args); }
void f32_1x16_p5_avx2(const SparseTileArgs& args) { SparseTile<Avx256Vector, 2, 5>(args); }
void f32_1x8_p8_avx2(const SparseTileArgs& args) { SparseTile<Avx256Vector, 1, 8>(args); }
void f32_1x4_p8_avx2(const SparseTileArgs& args) { SparseTile<Avx128Vector, 1, 8>(args); }
void f32_1x2_p4_avx2(const SparseTileArgs& args) { SparseTile<ScalarVector, 2, 4>(args); }
void f32_1x1_p8_avx2(const SparseTileArgs& args) { SparseTile<ScalarVector, 1, 8>(args); }

// Channel-major N = 4: 4 channels x 3 vectors of 8 pixels (tile_pixels 24). 12 accumulators,
// 3 inputs and one broadcast weight fill the 16 ymm registers and keep 12 FMAs in flight (the
// 4-cycle latency at 2 FMAs per cycle needs 8). No channel-major N = 8 here: the pixel-major
// N = 8 variant already uses full-width ymm FMAs, and a channel-major one (two passes of 4
// channels, PixelVectorTile<Avx256PixelVector, 8, 4, 3>) measured 0.3-1.0x of it on ResNet-50's
// 1x1 shapes: the same FMAs plus the tile transposition.
void f32_1x4_p24_panel_avx2(const SparseTileArgs& args) {
  PixelVectorTile<Avx256PixelVector, 4, 4, 3>(args);
}

// Blocks of 16 pixels x 8 channels: 16 (masked at the channel tail) row loads, two in-register
// 8x8 transposes, and per channel two 32-byte stores that fill one whole 64-byte line of its
// panel row. Pixels past `pixels` load as zeros, which is what the panel's padding columns must
// hold.
void f32_panel_transpose_avx2(const float* input, int channels, int64_t pixels, float* panel,
                              int64_t panel_stride) {
  static_assert(kPanelPixelAlignment == 16, "blocks of 16 pixels");
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t p0 = 0; p0 < pixels; p0 += 16) {
    const int64_t real_pixels = pixels - p0 < 16 ? pixels - p0 : 16;
    for (int c0 = 0; c0 < channels; c0 += 8) {
      const int real_channels = channels - c0 < 8 ? channels - c0 : 8;
      // Lanes 0..real_channels-1 of each row (the mask's top bit selects a lane).
      const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(real_channels), lane);
      __m256 low[8];
      __m256 high[8];
      for (int i = 0; i < 8; ++i) {
        const float* row = input + (p0 + i) * channels + c0;
        low[i] = i >= real_pixels     ? _mm256_setzero_ps()
                 : real_channels == 8 ? _mm256_loadu_ps(row)
                                      : _mm256_maskload_ps(row, mask);
        row += 8 * static_cast<int64_t>(channels);
        high[i] = 8 + i >= real_pixels ? _mm256_setzero_ps()
                  : real_channels == 8 ? _mm256_loadu_ps(row)
                                       : _mm256_maskload_ps(row, mask);
      }
      Transpose8x8(low);
      Transpose8x8(high);
      float* destination = panel + static_cast<int64_t>(c0) * panel_stride + p0;
      for (int c = 0; c < real_channels; ++c) {
        _mm256_store_ps(destination + c * panel_stride, low[c]);
        _mm256_store_ps(destination + c * panel_stride + 8, high[c]);
      }
    }
  }
}

void f32_maxpool_row_avx2(const MaxPoolRowArgs& args) {
  MaxPoolRow<Avx256Vector, ScalarVector>(args);
}

}  // namespace microkernels
}  // namespace tflite_sparse
#endif  // __x86_64__
