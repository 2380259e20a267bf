// AVX2 + FMA float32 microkernels (built with -mavx2 -mfma; registered for Isa::kAvx2, run only
// if the CPU has both). Tiles sized for 16 ymm registers: P x R accumulators plus R weights and
// one broadcast.
//
// For N = 4 the registry prefers the channel-major ("pixel-vector") variant below
// (pixel_vector_template.h) wherever a layer keeps enough work per value: 256-bit FMAs over 8
// lanes of a channel-major panel (a 1x1 tile's pixels, or a KxK layer's planes), which this file
// also builds (f32_panel_transpose_avx2). The pixel-major N = 4 variant can only use 128-bit
// FMAs, half of what this core does per FMA slot. On Zen 4 with AVX2 only (bench_kernels --isa
// avx2 --layout both, 1 thread) the channel-major one ran ResNet-50's four 3x3 shapes 1.7-2.4x
// faster than the pixel-major one at 50, 75 and 90 %.
#if defined(__x86_64__)
#include <immintrin.h>

#include "microkernels/max_pool_template.h"
#include "microkernels/panel_transpose_template.h"
#include "microkernels/pixel_vector_template.h"
#include "microkernels/sparse_tile_template.h"
#include "microkernels/vector_avx.h"

namespace tflite_sparse {
namespace {

// vmaskmovps: the only masked store AVX2 has (microcoded and slow on AMD cores, which is why
// the AVX-512 file builds its panels with an AVX-512VL one).
struct Avx2MaskedStore {
  static void Store(float* destination, __m256i mask, __m256 value) {
    _mm256_maskstore_ps(destination, mask, value);
  }
};

// The channel-major microkernels' vector: 8 pixels of one channel.
struct Avx256PixelVector : Avx256Vector {
  // Writes channels 0..3 (registers r0..r3, 8 lanes each) of each lane l to destination(l), a
  // float* (skipped when null). A 4x4 transpose inside each 128-bit lane leaves lane 4j+k's four
  // channels in lane j of quad[k]; each goes out as one 16-byte store (the upper-lane extract
  // folds into the store).
  template <class Destination>
  static void StoreQuad(Reg r0, Reg r1, Reg r2, Reg r3, const Destination& destination) {
    const __m256d t0 = _mm256_castps_pd(_mm256_unpacklo_ps(r0, r1));
    const __m256d t1 = _mm256_castps_pd(_mm256_unpackhi_ps(r0, r1));
    const __m256d t2 = _mm256_castps_pd(_mm256_unpacklo_ps(r2, r3));
    const __m256d t3 = _mm256_castps_pd(_mm256_unpackhi_ps(r2, r3));
    const __m256 quad[4] = {
        _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2)), _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2)),
        _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3)), _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3))};
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      if (float* out = destination(k)) _mm_storeu_ps(out, _mm256_castps256_ps128(quad[k]));
      if (float* out = destination(4 + k)) _mm_storeu_ps(out, _mm256_extractf128_ps(quad[k], 1));
    }
  }

  // Transposes 8 channels x 8 lanes (channel c at rows + c * row_stride, 32-byte aligned) and
  // calls store(l, channels of lane l) for l = 0..7 (the panel builder's Transpose8x8).
  template <class Store>
  static void TransposeBlock(const float* rows, int row_stride, const Store& store) {
    Reg block[8];
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) block[c] = _mm256_load_ps(rows + c * row_stride);
    Transpose8x8(block);
#pragma GCC unroll 8
    for (int l = 0; l < 8; ++l) store(l, block[l]);
  }
};

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

// The panel builder (panel_transpose_template.h), with AVX2's masked stores.
void f32_panel_transpose_avx2(const float* input, int channels, int64_t pixel_stride,
                              int64_t pixels, float* panel, int64_t panel_stride) {
  PanelTranspose<Avx2MaskedStore>(input, channels, pixel_stride, pixels, panel, panel_stride);
}

void f32_maxpool_row_avx2(const MaxPoolRowArgs& args) {
  MaxPoolRow<Avx256Vector, ScalarVector>(args);
}

}  // namespace microkernels
}  // namespace tflite_sparse
#endif  // __x86_64__
