// The pixel-pair 1xN microkernel: two horizontally adjacent output pixels per FMA (the layout is
// described at the top of microkernel.h).
//
// The pixel-major kernel (sparse_tile_template.h) with N = 16 broadcasts one input value per
// pixel and FMA: with its weight vector, 9 vector loads per 8 FMAs and 8 accumulator chains for
// an 8-pixel tile. On a core with two 512-bit FMA pipes (Zen 5) that loop issues at about 0.8-0.9
// of the FMA peak: the loads, and exactly as many chains as the pipes' latency needs, bound it.
// Here one 64-bit broadcast from the pair image gives a register [x0, x1, x0, x1, ...] (the
// same tap of a pixel and of its right-hand neighbour), and two permutes of the kept tap
// vector's N = kLanes weights give [w0, w0, w1, w1, ..., w7, w7] and [w8, w8, ..., w15, w15]:
// lane 2n + s accumulates channel n (or 8 + n) of pixel s. A tile of P pairs keeps 2P
// accumulators (16 for 8 pairs, 16 pixels) and loads per kept tap vector one weight register
// and P broadcasts: 9 loads per 16 FMAs. With N = kLanes / 2 (1x8 on AVX-512) one register
// holds a pair's whole group, so every FMA is a full-width one where the pixel-major 1x8 kernel
// issues 256-bit FMAs, half of this core's peak. (The permutes run on the shuffle pipes, beside
// the FMAs: a copy of the packed weights with every float twice, loaded as two registers, ran
// no faster on L2-resident weights and cost a whole model its gain, its weights no longer
// fitting the L3: docs/RESULTS.md, "Pixel pairs for 1x16 layers".)
//
// The epilogue clamps each register (lane-wise, as the pixel-major kernel does), turns the
// register(s) of a pair into one register per pixel with one permute each (even lanes: pixel 0,
// odd lanes: pixel 1), adds the residual of a fused ADD and stores the N channels of each pixel
// (streamed where SparseTileArgs::stream_output says so and a group fills a register). Per
// output element this is the pixel-major arithmetic: bias, one multiply-add per kept tap vector
// in packed order, the clamp, the residual and its clamp, so both layouts agree bitwise (checked
// by the C++ operator test).
//
// Internal linkage for the same reason as sparse_tile_template.h.
#ifndef TFLITE_DELEGATE_MICROKERNELS_PIXEL_PAIR_TEMPLATE_H_
#define TFLITE_DELEGATE_MICROKERNELS_PIXEL_PAIR_TEMPLATE_H_

#include "microkernels/epilogue_clamps.h"
#include "microkernels/microkernel.h"

namespace tflite_sparse {
namespace {

// N floats at `source` (N = kLanes or kLanes / 2) as R = 2N / kLanes registers with every
// float twice: [s0, s0, s1, s1, ...].
template <class V, int N>
inline void LoadDuplicated(const float* source, typename V::Reg (&out)[2 * N / V::kLanes]) {
  if constexpr (2 * N == V::kLanes) {
    out[0] = V::DuplicateLow(V::LoadFirst(source, N));
  } else {
    static_assert(N == V::kLanes, "a pair register holds N / 2 or N channels of both pixels");
    V::DuplicateLanes(V::Load(source), &out[0], &out[1]);
  }
}

// The epilogue of PairGroupTile: clamps each pair register, turns it into one register per
// pixel, adds the residual of a fused ADD and stores each pixel's channels of the group.
// kWhole: a group of N real channels stored with plain stores (no partial group, no streamed
// stores), so no per-pixel test.
template <class V, int N, int P, int kEpilogue, bool kWhole>
inline void StorePairGroup(const SparseTileArgs& args,
                           const typename V::Reg (&accumulators)[P][2 * N / V::kLanes],
                           const int32_t* pixel_index, const int* widths, int group) {
  constexpr int kBlockN = N;
  constexpr int R = 2 * N / V::kLanes;
  constexpr int kActivation = EpilogueClamps<kEpilogue>::kActivation;
  constexpr int kAdd = EpilogueClamps<kEpilogue>::kAdd;
  using Reg = typename V::Reg;
  const Reg low = V::Set(args.activation_min);
  const Reg high = V::Set(args.activation_max);
  const Reg residual_low = V::Set(args.residual_min);
  const Reg residual_high = V::Set(args.residual_max);
  const int remaining_channels = args.out_channels - group * kBlockN;
  const int channels = remaining_channels < kBlockN ? remaining_channels : kBlockN;
  // Streamed (non-temporal) stores for full groups that fill a register, when the operator asks
  // (microkernel.h).
  const bool stream = !kWhole && N == V::kLanes && args.stream_output && channels == kBlockN;
  const int64_t stride = args.output_pixel_stride;
  float* output = args.output + static_cast<int64_t>(group) * kBlockN;
  const float* residual =
      args.residual != nullptr ? args.residual + static_cast<int64_t>(group) * kBlockN : nullptr;
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) {
    Reg pixel[2];
    if constexpr (R == 2) {
      V::Deinterleave(ClampAs<V, kActivation>(accumulators[p][0], low, high),
                      ClampAs<V, kActivation>(accumulators[p][1], low, high), &pixel[0],
                      &pixel[1]);
    } else {
      V::DeinterleaveHalves(ClampAs<V, kActivation>(accumulators[p][0], low, high), &pixel[0],
                            &pixel[1]);
    }
#pragma GCC unroll 2
    for (int s = 0; s < 2; ++s) {
      if (s == 1 && widths[p] < 2) break;
      const int64_t offset = pixel_index[2 * p + s] * stride;
      Reg value = pixel[s];
      if constexpr (kWhole) {
        // kBlockN is a constant here: a plain load and store for N = kLanes, masked ones with a
        // constant mask for N = kLanes / 2.
        if (residual != nullptr) {
          value = ClampAs<V, kAdd>(V::Add(value, V::LoadFirst(residual + offset, kBlockN)),
                                   residual_low, residual_high);
        }
        V::StoreFirst(output + offset, value, kBlockN);
      } else {
        if (residual != nullptr) {
          value = ClampAs<V, kAdd>(V::Add(value, V::LoadFirst(residual + offset, channels)),
                                   residual_low, residual_high);
        }
        if (stream) {
          V::Stream(output + offset, value);
        } else {
          V::StoreFirst(output + offset, value, channels);
        }
      }
    }
  }
}

// One group of N output channels (N = kLanes: two registers per pair; N = kLanes / 2: one) for
// the P pairs whose origins (in the pair image) are `origins`; pixel_index[2p] and
// pixel_index[2p + 1] are pair p's output pixels within the tile and widths[p] its pixel count (1
// or 2); kPrefetch: issue SparseTileArgs's prefetches (one per kept tap vector); kEpilogue: the
// EpilogueKind of the call (EpilogueOf).
template <class V, int N, int P, bool kPrefetch, int kEpilogue>
inline void PairGroupTile(const SparseTileArgs& args, const float* const* origins,
                          const int32_t* pixel_index, const int* widths, int group) {
  constexpr int kBlockN = N;
  constexpr int R = 2 * N / V::kLanes;
  using Reg = typename V::Reg;
  const int32_t first = args.group_begin[group];
  const int32_t count = args.group_begin[group + 1] - first;
  const float* weights =
      static_cast<const float*>(args.weights) + static_cast<int64_t>(first) * kBlockN;
  const int32_t* taps = args.tap_offsets + first;
  const uintptr_t prefetch =
      args.prefetch_address +
      static_cast<uintptr_t>(first - args.prefetch_first_tap) * args.prefetch_step;
  const int remaining_channels = args.out_channels - group * kBlockN;
  Reg accumulators[P][R];
  {
    Reg bias[R];
    LoadDuplicated<V, N>(args.bias + static_cast<int64_t>(group) * kBlockN, bias);
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) {
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) accumulators[p][r] = bias[r];
    }
  }
  // Two kept tap vectors per iteration, as in the pixel-major kernel.
#pragma GCC unroll 2
  for (int32_t k = 0; k < count; ++k, weights += kBlockN) {
    const int32_t tap = taps[k];
    if constexpr (kPrefetch) {
      __builtin_prefetch(
          reinterpret_cast<const void*>(prefetch + static_cast<uintptr_t>(k) * args.prefetch_step),
          0, 2);
    }
    Reg weight[R];
    LoadDuplicated<V, N>(weights, weight);
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) {
      const Reg value = V::BroadcastPair(origins[p] + tap);
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) {
        accumulators[p][r] = V::MulAdd(value, weight[r], accumulators[p][r]);
      }
    }
  }
  // Full groups stored with plain stores, nearly every call: an epilogue without the per-pixel
  // tests of partial groups and streamed stores (docs/RESULTS.md, "Epilogues without infinite
  // clamps").
  if (remaining_channels >= kBlockN && !args.stream_output) {
    StorePairGroup<V, N, P, kEpilogue, true>(args, accumulators, pixel_index, widths, group);
  } else {
    StorePairGroup<V, N, P, kEpilogue, false>(args, accumulators, pixel_index, widths, group);
  }
}

// P pairs, every group of the call's range.
template <class V, int N, int P, int kEpilogue>
inline void PairTileGroups(const SparseTileArgs& args) {
  const float* origins[P];
  int widths[P];
  for (int p = 0; p < P; ++p) {
    origins[p] = args.input + args.pixel_offsets[p];
    widths[p] = args.pair_widths[p];
  }
  const int32_t* pixel_index = args.pair_pixels;
  if (args.prefetch_address != 0) {
    for (int group = args.first_group; group < args.end_group; ++group) {
      PairGroupTile<V, N, P, true, kEpilogue>(args, origins, pixel_index, widths, group);
    }
    return;
  }
  for (int group = args.first_group; group < args.end_group; ++group) {
    PairGroupTile<V, N, P, false, kEpilogue>(args, origins, pixel_index, widths, group);
  }
}

// PairTileGroups with the call's epilogue: full tiles (kMaxP pairs, nearly every tile) get an
// instantiation per EpilogueKind, smaller ones clamp as kEpilogueGeneral (the same bits).
template <class V, int N, int P, int kMaxP>
inline void PairTile(const SparseTileArgs& args) {
  WithEpilogue<P == kMaxP>(args, [&](auto epilogue) {
    PairTileGroups<V, N, P, decltype(epilogue)::kValue>(args);
  });
}

// PairTile<V, N, pairs> for a run-time pair count in [1, P].
template <class V, int N, int P, int kMaxP = P>
inline void PairTileOfSize(const SparseTileArgs& args, int pairs) {
  if constexpr (P > 1) {
    if (pairs < P) {
      PairTileOfSize<V, N, P - 1, kMaxP>(args, pairs);
      return;
    }
  }
  PairTile<V, N, P, kMaxP>(args);
}

// The microkernel: a tile of 1 to P pairs, N output channels per group.
template <class V, int N, int P>
void PixelPairTile(const SparseTileArgs& args) {
  static_assert(P >= 1, "a tile has at least one pair");
  PairTileOfSize<V, N, P>(args, args.num_pairs < P ? args.num_pairs : P);
}

}  // namespace
}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_MICROKERNELS_PIXEL_PAIR_TEMPLATE_H_
