// The channel-major panel builder (PanelTransposeFunction, microkernel.h), one template for the
// AVX2 and AVX-512 files: they differ only in the masked store of a last partial block of
// pixels (the `Store` policy: vmaskmovps for AVX2, an AVX-512VL k-masked store where the CPU
// has it, several times faster on AMD cores). Where channels are a multiple of 8, pixels go 8 at
// a time across all channels (TransposeEightPixels), the last 1-7 with masked stores; other
// channel counts in blocks of 16 pixels x 8 channels: 16 (masked at the channel tail) row loads,
// two in-register 8x8 transposes, and per channel two 32-byte stores. A KxK layer's plane rows
// are not aligned (unaligned stores), and nothing past `pixels` is written (the next plane row
// may be another thread's).
//
// Internal linkage, as in sparse_tile_template.h: each including file compiles its own copy
// with its own -m flags. Include only from files compiled with at least -mavx2 -mfma.
#ifndef TFLITE_DELEGATE_MICROKERNELS_PANEL_TRANSPOSE_TEMPLATE_H_
#define TFLITE_DELEGATE_MICROKERNELS_PANEL_TRANSPOSE_TEMPLATE_H_

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>

#include "microkernels/microkernel.h"

namespace tflite_sparse {
namespace {

// In-register 8x8 transpose: rows[i] lane j becomes rows[j] lane i (unpack pairs of floats,
// then 2-float shuffles, then 128-bit halves: 24 shuffles for 64 floats).
inline void Transpose8x8(__m256 rows[8]) {
  __m256 t[8];
#pragma GCC unroll 4
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(rows[i], rows[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(rows[i], rows[i + 1]);
  }
  __m256 u[8];
#pragma GCC unroll 2
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  // u[4m + k] lane j holds column 4j + k of rows 4m..4m+3.
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    rows[k] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x20);
    rows[4 + k] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x31);
  }
}

// Pixels 0..pixels-1 (at most 8; rows `pixel_stride` floats apart) x `channels` (a multiple of
// 8) into panel columns 0..pixels-1. Each register is loaded as 128-bit halves of two pixels four
// apart, so the load unit does the 8x8 transpose's cross-lane step and 16 in-lane shuffles per
// 8x8 block remain (Transpose8x8 needs 24). Against 16-pixel blocks through Transpose8x8
// (bench_kernels, Zen 4, 1 thread, 1x4 channel-major, GFLOP/s on the kept work, two
// alternations): at 90 % 14x14 1x1 1024->256 1.11x, 56x56 256->64 1.08-1.09x, 28x28 512->128 and
// 7x7 2048->512 1.05x, 56x56 64->64 1.03-1.06x, the widening 1x1 layers and the 3x3 planes
// 0.98-1.02x; AVX2 (--isa avx2) at 75 % 1.01-1.05x.
// kPartial: fewer than 8 pixels; the missing rows are read as copies of the last one (no read
// past the input) and only the first `pixels` columns are stored (Store, see PanelTranspose), so
// that a row's last block of 1-7 pixels takes this path too instead of the general one below
// (docs/RESULTS.md, "Padding columns without memset").
template <class Store, bool kPartial>
inline void TransposeEightPixels(const float* input, int channels, int64_t pixel_stride,
                                 int pixels, float* panel, int64_t panel_stride) {
  const float* pixel_rows[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    pixel_rows[i] = input + (kPartial && i >= pixels ? pixels - 1 : i) * pixel_stride;
  }
  const __m256i mask = kPartial ? _mm256_cmpgt_epi32(_mm256_set1_epi32(pixels),
                                                     _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
                                : _mm256_set1_epi32(-1);
  const auto put = [&](float* destination, __m256 value) {
    if constexpr (kPartial) {
      Store::Store(destination, mask, value);
    } else {
      _mm256_storeu_ps(destination, value);
    }
  };
  for (int c0 = 0; c0 < channels; c0 += 8) {
    // Lane 0 of quads[h][i]: channels c0 + 4h .. +3 of pixel i; lane 1: those of pixel i + 4.
    __m256 quads[2][4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        quads[h][i] = _mm256_insertf128_ps(
            _mm256_castps128_ps256(_mm_loadu_ps(pixel_rows[i] + c0 + 4 * h)),
            _mm_loadu_ps(pixel_rows[i + 4] + c0 + 4 * h), 1);
      }
    }
    float* destination = panel + static_cast<int64_t>(c0) * panel_stride;
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256* q = quads[h];
      const __m256 t0 = _mm256_unpacklo_ps(q[0], q[1]);
      const __m256 t1 = _mm256_unpackhi_ps(q[0], q[1]);
      const __m256 t2 = _mm256_unpacklo_ps(q[2], q[3]);
      const __m256 t3 = _mm256_unpackhi_ps(q[2], q[3]);
      float* channel = destination + 4 * h * panel_stride;
      put(channel, _mm256_shuffle_ps(t0, t2, 0x44));
      put(channel + panel_stride, _mm256_shuffle_ps(t0, t2, 0xee));
      put(channel + 2 * panel_stride, _mm256_shuffle_ps(t1, t3, 0x44));
      put(channel + 3 * panel_stride, _mm256_shuffle_ps(t1, t3, 0xee));
    }
  }
}

// Store::Store(float* destination, __m256i mask, __m256 value) writes the lanes whose mask
// lane has its top bit set.
template <class Store>
void PanelTranspose(const float* input, int channels, int64_t pixel_stride, int64_t pixels,
                    float* panel, int64_t panel_stride) {
  static_assert(kPanelPixelAlignment == 16, "blocks of 16 pixels");
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t p0 = 0; p0 < pixels; p0 += 16) {
    const int64_t real_pixels = pixels - p0 < 16 ? pixels - p0 : 16;
    if (channels % 8 == 0) {
      // Blocks of 8 pixels, the last of 1-7 masked.
      for (int64_t p = p0; p < p0 + real_pixels; p += 8) {
        const int64_t left = p0 + real_pixels - p;
        const int count = left < 8 ? static_cast<int>(left) : 8;
        if (count == 8) {
          TransposeEightPixels<Store, false>(input + p * pixel_stride, channels, pixel_stride, 8,
                                             panel + p, panel_stride);
        } else {
          TransposeEightPixels<Store, true>(input + p * pixel_stride, channels, pixel_stride,
                                            count, panel + p, panel_stride);
        }
      }
      continue;
    }
    for (int c0 = 0; c0 < channels; c0 += 8) {
      const int real_channels = channels - c0 < 8 ? channels - c0 : 8;
      // Lanes 0..real_channels-1 of each row (the mask's top bit selects a lane).
      const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(real_channels), lane);
      __m256 low[8];
      __m256 high[8];
      const float* rows = input + p0 * pixel_stride + c0;
      if (real_pixels == 16 && real_channels == 8) {
        // The common whole block, with no per-row tests (so that the block stays in registers).
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
          low[i] = _mm256_loadu_ps(rows + i * pixel_stride);
          high[i] = _mm256_loadu_ps(rows + (8 + i) * pixel_stride);
        }
      } else {
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
          const float* row = rows + i * pixel_stride;
          low[i] = i >= real_pixels     ? _mm256_setzero_ps()
                   : real_channels == 8 ? _mm256_loadu_ps(row)
                                        : _mm256_maskload_ps(row, mask);
          row += 8 * pixel_stride;
          high[i] = 8 + i >= real_pixels ? _mm256_setzero_ps()
                    : real_channels == 8 ? _mm256_loadu_ps(row)
                                         : _mm256_maskload_ps(row, mask);
        }
      }
      Transpose8x8(low);
      Transpose8x8(high);
      float* destination = panel + static_cast<int64_t>(c0) * panel_stride + p0;
      if (real_pixels == 16) {
        for (int c = 0; c < real_channels; ++c) {
          _mm256_storeu_ps(destination + c * panel_stride, low[c]);
          _mm256_storeu_ps(destination + c * panel_stride + 8, high[c]);
        }
      } else {
        const int high_pixels = static_cast<int>(real_pixels) - 8;
        const __m256i low_mask =
            _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(real_pixels)), lane);
        const __m256i high_mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(high_pixels), lane);
        for (int c = 0; c < real_channels; ++c) {
          Store::Store(destination + c * panel_stride, low_mask, low[c]);
          if (high_pixels > 0) Store::Store(destination + c * panel_stride + 8, high_mask, high[c]);
        }
      }
    }
  }
}

}  // namespace
}  // namespace tflite_sparse

#endif  // __x86_64__
#endif  // TFLITE_DELEGATE_MICROKERNELS_PANEL_TRANSPOSE_TEMPLATE_H_
