// The channel-major ("pixel-vector") 1xN microkernel, for small N (4, 8): XNNPACK's NCHW
// sparse-GEMM layout applied to our 1xN packing.
//
// The pixel-major template (sparse_tile_template.h) puts the N channels of a group in one
// register, so for N = 4 every FMA is a 128-bit one: half of what a 256-bit FMA does in the same
// issue slot (a quarter of a 512-bit one). Here a register holds V::kLanes consecutive lanes of
// one input channel (8 for AVX2), read from a channel-major panel: for a 1x1 layer
// panel[c][pixel] of the tile's pixels, transposed by the operator right before the call; for a
// KxK layer the operator's planes of the padded input (microkernel.h; at a stride, its phases),
// where lane l of the tile is a position of the plane grid and a tap's input is a fixed
// distance further, so the microkernel is the same loop over tap offsets. A group is computed in
// passes of Q of its N channels, each pass keeping Q x P accumulators (Q channels x P vectors)
// and walking the group's kept tap vectors: P loads from the panel row of the input channel
// (unaligned for a KxK tap), then for each of the Q weights one broadcast and P full-width
// FMAs. (Q < N keeps wide groups within 16 ymm registers: N = 8 as two passes of Q = 4 needs
// 0.75 loads per FMA where one pass of 8 x 1 needs 1.125.) The Q x P block is clamped and, for
// the groups of a whole block of V::kLanes channels, put into a channel-major stack block that
// V::TransposeBlock writes back to the NHWC output one vector of channels per pixel (PanelBlock);
// other groups go out through 4x4 transposes inside each 128-bit lane (V::StoreQuad), 16 bytes
// per pixel and quad of channels. Lane l goes to output pixel l (a 1x1 tile), or to
// pixel_offsets[l] and not at all where that is negative (a KxK tile's lanes in the padding
// columns).
//
// Arithmetic per output element is the pixel-major variants' (bias, then one fused multiply-add
// per kept tap vector in packed order: fma(input, weight, sum) is fma(weight, input, sum)), so
// channel-major and pixel-major variants of one ISA agree bitwise, whatever the tiling and
// threads (checked by the C++ operator test).
//
// Internal linkage for the same reason as sparse_tile_template.h: each ISA file compiles its own
// copy with its own -m flags.
#ifndef TFLITE_DELEGATE_MICROKERNELS_PIXEL_VECTOR_TEMPLATE_H_
#define TFLITE_DELEGATE_MICROKERNELS_PIXEL_VECTOR_TEMPLATE_H_

#include "microkernels/epilogue_clamps.h"
#include "microkernels/microkernel.h"
#include "microkernels/sparse_tile_template.h"

namespace tflite_sparse {
namespace {

// Output pixel of lane `lane` of the tile (see PanelGroupPass), or -1: not stored.
template <bool kLaneTable>
inline int64_t LanePixel(const SparseTileArgs& args, int lane, int pixels) {
  if constexpr (kLaneTable) {
    return args.pixel_offsets[lane];
  } else {
    return lane < pixels ? lane : -1;
  }
}

// Channels [q0, q0 + Q) of one group of N output channels for P x V::kLanes lanes starting at
// args.input (the panel column of the tile's first lane): the Q x P accumulators after the bias,
// every kept tap vector and the activation clamp (only its finite sides: the epilogue kind,
// epilogue_clamps.h, that PixelVectorTile picks once per call: ReLU layers of 1x4 at 90 %,
// 56x56 1x1 64->64 and 64->256, ran 1.04-1.07x faster on Zen 4 without the min against
// infinity). Always inlined: as a call GCC kept the accumulators in memory, and the 1x4 layers
// ran at half speed.
template <class V, int N, int Q, int P, int kEpilogue>
[[gnu::always_inline]] inline void PanelGroupSums(const SparseTileArgs& args, int group, int q0,
                                                  typename V::Reg (&accumulators)[Q][P]) {
  constexpr int kLanes = V::kLanes;
  using Reg = typename V::Reg;
  const int32_t first = args.group_begin[group];
  const int32_t count = args.group_begin[group + 1] - first;
  const float* weights =
      static_cast<const float*>(args.weights) + static_cast<int64_t>(first) * N + q0;
  const int32_t* taps = args.tap_offsets + first;
  const float* bias = args.bias + static_cast<int64_t>(group) * N + q0;
#pragma GCC unroll 8
  for (int n = 0; n < Q; ++n) {
    const Reg value = V::Broadcast(bias + n);
#pragma GCC unroll 8
    for (int v = 0; v < P; ++v) accumulators[n][v] = value;
  }
  for (int32_t k = 0; k < count; ++k, weights += N) {
    const float* column = args.input + taps[k];
    Reg inputs[P];
#pragma GCC unroll 8
    for (int v = 0; v < P; ++v) inputs[v] = V::Load(column + v * kLanes);
#pragma GCC unroll 8
    for (int n = 0; n < Q; ++n) {
      const Reg weight = V::Broadcast(weights + n);
#pragma GCC unroll 8
      for (int v = 0; v < P; ++v) {
        accumulators[n][v] = V::MulAdd(inputs[v], weight, accumulators[n][v]);
      }
    }
  }
  const Reg low = V::Set(args.activation_min);
  const Reg high = V::Set(args.activation_max);
#pragma GCC unroll 8
  for (int n = 0; n < Q; ++n) {
#pragma GCC unroll 8
    for (int v = 0; v < P; ++v) {
      accumulators[n][v] =
          ClampAs<V, EpilogueClamps<kEpilogue>::kActivation>(accumulators[n][v], low, high);
    }
  }
}

// One pass of PanelGroupSums written straight to the NHWC output. Without kLaneTable lane l is
// output pixel l and the first `pixels` lanes are real (the rest of the last vector reads
// whatever the panel holds there and is not stored); with it lane l is output pixel
// args.pixel_offsets[l], not stored where negative. Each pixel gets 16 bytes per quad of
// channels, so a line of the output is written in several passes: PanelBlock below writes
// whole lines where it can.
template <class V, int N, int Q, int P, bool kLaneTable, int kEpilogue>
inline void PanelGroupPass(const SparseTileArgs& args, int group, int q0, int pixels) {
  static_assert(Q % 4 == 0 && N % Q == 0, "the output transpose works on quads of channels");
  constexpr int kLanes = V::kLanes;
  typename V::Reg accumulators[Q][P];
  PanelGroupSums<V, N, Q, P, kEpilogue>(args, group, q0, accumulators);
  const int64_t stride = args.output_pixel_stride;
  float* output = args.output + static_cast<int64_t>(group) * N + q0;
  const int remaining_channels = args.out_channels - group * N - q0;
  if (remaining_channels >= Q) {
#pragma GCC unroll 8
    for (int v = 0; v < P; ++v) {
#pragma GCC unroll 8
      for (int q = 0; q < Q; q += 4) {
        V::StoreQuad(accumulators[q][v], accumulators[q + 1][v], accumulators[q + 2][v],
                     accumulators[q + 3][v], [&](int lane) -> float* {
                       const int64_t pixel =
                           LanePixel<kLaneTable>(args, v * kLanes + lane, pixels);
                       return pixel >= 0 ? output + pixel * stride + q : nullptr;
                     });
      }
    }
  } else {
    // Partial last group (out_channels not a multiple of N): through a stack buffer, lane by
    // lane; it is one group of the layer, so its speed does not matter.
#pragma GCC unroll 8
    for (int v = 0; v < P; ++v) {
      alignas(64) float lanes[Q][kLanes];
#pragma GCC unroll 8
      for (int n = 0; n < Q; ++n) V::Store(lanes[n], accumulators[n][v]);
      for (int l = 0; l < kLanes; ++l) {
        const int64_t pixel = LanePixel<kLaneTable>(args, v * kLanes + l, pixels);
        if (pixel < 0) continue;
        for (int n = 0; n < remaining_channels; ++n) output[pixel * stride + n] = lanes[n][l];
      }
    }
  }
  if (args.residual != nullptr) {
    // Fused ADD: a second pass over the block just written (in L1), the pixel-major variants'
    // arithmetic (clamped convolution + residual, clamped to the ADD's range).
    const float* residual = args.residual + static_cast<int64_t>(group) * N + q0;
    const int channels = remaining_channels < Q ? remaining_channels : Q;
    for (int lane = 0; lane < P * kLanes; ++lane) {
      const int64_t pixel = LanePixel<kLaneTable>(args, lane, pixels);
      if (pixel < 0) continue;
      for (int n = 0; n < channels; ++n) {
        float& value = output[pixel * stride + n];
        value = ScalarVector::Clamp(value + residual[pixel * stride + n], args.residual_min,
                                    args.residual_max);
      }
    }
  }
}

// V::kLanes / N consecutive groups from `group` (V::kLanes channels, a 64-byte line of every
// output pixel with AVX-512): each pass's clamped sums go to a channel-major stack block, then
// every vector of lanes is transposed back (V::TransposeBlock) and each pixel gets its
// V::kLanes channels in one store, the fused ADD's residual added in registers. The passes of
// PanelGroupPass write 16 bytes of a line at a time, and where the output's pixel stride is a
// multiple of 4 KiB (Cout 1024, 2048) the tile's lines all fall in one set of the L1 cache, so
// every such store missed (bench_kernels, Zen 4, 1x4 at 75 %: ResNet-50's 14x14 256->1024 layer
// ran 1.6x faster with the output stores left out). Needs the block's channels all real.
template <class V, int N, int Q, int P, bool kLaneTable, int kEpilogue>
inline void PanelBlock(const SparseTileArgs& args, int group, int pixels) {
  constexpr int kLanes = V::kLanes;
  constexpr int kRow = P * kLanes;  // staging floats per channel
  using Reg = typename V::Reg;
  alignas(64) float staging[kLanes * kRow];
#pragma GCC unroll 1
  for (int g = 0; g < kLanes / N; ++g) {
#pragma GCC unroll 1
    for (int q0 = 0; q0 < N; q0 += Q) {
      Reg accumulators[Q][P];
      PanelGroupSums<V, N, Q, P, kEpilogue>(args, group + g, q0, accumulators);
      float* rows = staging + (g * N + q0) * kRow;
#pragma GCC unroll 8
      for (int n = 0; n < Q; ++n) {
#pragma GCC unroll 8
        for (int v = 0; v < P; ++v) V::Store(rows + n * kRow + v * kLanes, accumulators[n][v]);
      }
    }
  }
  const int64_t stride = args.output_pixel_stride;
  const int64_t channel = static_cast<int64_t>(group) * N;
  float* output = args.output + channel;
  const float* residual = args.residual != nullptr ? args.residual + channel : nullptr;
  const Reg low = V::Set(args.residual_min);
  const Reg high = V::Set(args.residual_max);
#pragma GCC unroll 1
  for (int v = 0; v < P; ++v) {
    V::TransposeBlock(staging + v * kLanes, kRow, [&](int lane, Reg value) {
      const int64_t pixel = LanePixel<kLaneTable>(args, v * kLanes + lane, pixels);
      if (pixel < 0) return;
      if (residual != nullptr) {
        value = ClampAs<V, EpilogueClamps<kEpilogue>::kAdd>(
            V::Add(value, V::Load(residual + pixel * stride)), low, high);
      }
      V::Store(output + pixel * stride, value);
    });
  }
}

// Runs the group range for a run-time vector count in [1, P]: every count has its own
// instantiation (accumulators stay in registers), so the operator can cut the pixels into tiles
// of nearly equal vector counts. Groups go through PanelBlock where a whole block of V::kLanes
// channels starting at a multiple of V::kLanes is in the range and real.
template <class V, int N, int Q, int P, bool kLaneTable, int kEpilogue>
inline void PanelTileOfVectors(const SparseTileArgs& args, int vectors, int pixels) {
  if constexpr (P > 1) {
    if (vectors < P) {
      PanelTileOfVectors<V, N, Q, P - 1, kLaneTable, kEpilogue>(args, vectors, pixels);
      return;
    }
  }
  constexpr int kBlockGroups = V::kLanes % N == 0 ? V::kLanes / N : 0;
  for (int group = args.first_group; group < args.end_group;) {
    if constexpr (kBlockGroups > 0) {
      if (group % kBlockGroups == 0 && group + kBlockGroups <= args.end_group &&
          (group + kBlockGroups) * N <= args.out_channels) {
        PanelBlock<V, N, Q, P, kLaneTable, kEpilogue>(args, group, pixels);
        group += kBlockGroups;
        continue;
      }
    }
    const int channels = args.out_channels - group * N;
    for (int q0 = 0; q0 < N && q0 < channels; q0 += Q) {
      PanelGroupPass<V, N, Q, P, kLaneTable, kEpilogue>(args, group, q0, pixels);
    }
    ++group;
  }
}

// The microkernel: 1 to P x V::kLanes consecutive lanes of the panel (num_pixels of them; with
// a lane table, pixel_offsets, rounded up to whole vectors), groups of N channels in passes of Q.
template <class V, int N, int Q, int P>
void PixelVectorTile(const SparseTileArgs& args) {
  static_assert(P >= 1, "a tile has at least one pixel vector");
  const int pixels = args.num_pixels < P * V::kLanes ? args.num_pixels : P * V::kLanes;
  if (pixels <= 0) return;
  const int vectors = (pixels + V::kLanes - 1) / V::kLanes;
  WithEpilogue<true>(args, [&](auto epilogue) {
    constexpr int kEpilogue = decltype(epilogue)::kValue;
    if (args.pixel_offsets != nullptr) {
      PanelTileOfVectors<V, N, Q, P, true, kEpilogue>(args, vectors, pixels);
    } else {
      PanelTileOfVectors<V, N, Q, P, false, kEpilogue>(args, vectors, pixels);
    }
  });
}

}  // namespace
}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_MICROKERNELS_PIXEL_VECTOR_TEMPLATE_H_
