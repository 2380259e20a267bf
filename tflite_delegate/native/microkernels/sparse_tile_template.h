// The 1xN sparse-tile microkernel, written once and instantiated by each ISA translation unit
// with its own vector type V (lanes V::kLanes, register type V::Reg). A group of N = kLanes * R
// output channels occupies R registers; a tile of P output pixels keeps P x R accumulators in
// registers, loads each kept tap vector's N weights once per (tile, group) and broadcasts one
// input value per pixel. A call covers a range of groups for the same pixels, so the tile's
// input stays in L1 while the weights stream.
//
// Every tile size from 1 to P pixels has its own instantiation. Every instantiation gives an
// output element the same arithmetic: the bias, then one multiply-add per kept tap vector in
// packed order. So results do not depend on the tile size or on which thread computes a pixel.
//
// Everything here has internal linkage (anonymous namespace): the same template compiled with
// -mavx512f in one file and without in another must never be merged by the linker, or the
// generic path could end up running AVX-512 code. For the same reason this header and the ISA
// files use no inline functions from the standard library.
#ifndef TFLITE_DELEGATE_MICROKERNELS_SPARSE_TILE_TEMPLATE_H_
#define TFLITE_DELEGATE_MICROKERNELS_SPARSE_TILE_TEMPLATE_H_

#include "microkernels/epilogue_clamps.h"
#include "microkernels/microkernel.h"

namespace tflite_sparse {
namespace {

// Plain C++ "vector" of one lane: the portable path, also used for N = 1 and 2 in the ISA files.
struct ScalarVector {
  using Reg = float;
  static constexpr int kLanes = 1;
  static Reg Load(const float* source) { return *source; }
  static Reg Broadcast(const float* source) { return *source; }
  static Reg Set(float value) { return value; }
  // Separate multiply and add (the microkernel files are built with -ffp-contract=off) so
  // results do not depend on whether the compiler fused them in one loop and not in another.
  static Reg MulAdd(Reg a, Reg b, Reg accumulator) { return accumulator + a * b; }
  static Reg Add(Reg a, Reg b) { return a + b; }
  // x86's maxps: the second operand unless the first is greater (NaN or equal: the second).
  static Reg Max(Reg a, Reg b) { return a > b ? a : b; }
  // Written so that NaN propagates, like TFLite's min(max(x, lo), hi).
  static Reg Clamp(Reg value, Reg low, Reg high) {
    const Reg above = value < low ? low : value;
    return above > high ? high : above;
  }
  static void Store(float* destination, Reg value) { *destination = value; }
  // The portable path has no non-temporal store: a plain one.
  static void Stream(float* destination, Reg value) { *destination = value; }
};

// Stores one finished register of a full group: streamed (non-temporal) or plain.
template <class V, bool kStream>
inline void PutOutput(float* destination, typename V::Reg value) {
  if constexpr (kStream) {
    V::Stream(destination, value);
  } else {
    V::Store(destination, value);
  }
}

// An empty asm that takes `pointer` in a general register and may change it: GCC then keeps a
// pointer advanced by a run-time stride as one register plus an add per step, where it otherwise
// forms p x stride for each of a tile's pixels and, short of registers in SpacedTileGroups,
// keeps those offsets on the stack (StoreFullGroup's stores by pointer: 1.02-1.09x more on top
// of SpacedTileGroups' walk on 1x16 56x56 1x1 layers at 89 %; docs/RESULTS.md, "Groups walked
// by pointer").
template <class T>
[[gnu::always_inline]] inline void KeepInRegister(T*& pointer) {
  __asm__("" : "+r"(pointer));
}

// The epilogue of a full group's P x R accumulators: clamp, and with a fused ADD add the
// residual and clamp to the ADD's range; one store per register. kActivation and kAdd: how each
// clamp runs (epilogue_clamps.h).
// `stride`: floats between the pixels' outputs (and residuals), passed by value so that it stays
// in a register (read through `args` after every store, since a store may alias it).
template <class V, int R, int P, bool kStream, int kActivation, int kAdd>
inline void StoreFullGroup(const SparseTileArgs& args, int64_t stride,
                           const typename V::Reg (&accumulators)[P][R], typename V::Reg low,
                           typename V::Reg high, const float* residual, float* output) {
  using Reg = typename V::Reg;
  if (residual == nullptr) {
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        PutOutput<V, kStream>(output + r * V::kLanes,
                              ClampAs<V, kActivation>(accumulators[p][r], low, high));
      }
      output += stride;
      KeepInRegister(output);
    }
    return;
  }
  // Fused ADD: clamp, add the residual, clamp to the ADD's range; one pass over the output.
  const Reg residual_low = V::Set(args.residual_min);
  const Reg residual_high = V::Set(args.residual_max);
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const Reg sum = V::Add(ClampAs<V, kActivation>(accumulators[p][r], low, high),
                             V::Load(residual + r * V::kLanes));
      PutOutput<V, kStream>(output + r * V::kLanes,
                            ClampAs<V, kAdd>(sum, residual_low, residual_high));
    }
    output += stride;
    residual += stride;
    KeepInRegister(output);
    KeepInRegister(residual);
  }
}

// One group of N output channels for P pixels whose receptive-field origins are `origins`;
// kPrefetch: issue SparseTileArgs's prefetches (one per kept tap vector); kEpilogue: the
// EpilogueKind of the call (EpilogueOf).
template <class V, int R, int P, bool kPrefetch, int kEpilogue>
inline void GroupTile(const SparseTileArgs& args, const float* const* origins, int group,
                      float* output) {
  constexpr int kBlockN = V::kLanes * R;
  using Reg = typename V::Reg;
  const int32_t first = args.group_begin[group];
  const int32_t end =
      args.group_end != nullptr ? args.group_end[group] : args.group_begin[group + 1];
  const int32_t count = end - first;
  const float* weights = static_cast<const float*>(args.weights) +
                         static_cast<int64_t>(first) * kBlockN;
  const int32_t* taps = args.tap_offsets + first;
  const uintptr_t prefetch =
      args.prefetch_address +
      static_cast<uintptr_t>(first - args.prefetch_first_tap) * args.prefetch_step;
  const int remaining_channels = args.out_channels - group * kBlockN;
  const bool full = remaining_channels >= kBlockN;
  Reg accumulators[P][R];
  if (!args.accumulate) {
    const float* bias = args.bias + static_cast<int64_t>(group) * kBlockN;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const Reg value = V::Load(bias + r * V::kLanes);
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p) accumulators[p][r] = value;
    }
  } else if (full) {
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        accumulators[p][r] = V::Load(output + p * args.output_pixel_stride + r * V::kLanes);
      }
    }
  } else {
    // Partial last group: only its real channels exist in `output` (the rest of the lanes start
    // at zero and are never stored).
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      alignas(64) float lanes[kBlockN] = {};
      const float* source = output + p * args.output_pixel_stride;
      for (int lane = 0; lane < remaining_channels; ++lane) lanes[lane] = source[lane];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) accumulators[p][r] = V::Load(lanes + r * V::kLanes);
    }
  }
  // Two kept tap vectors per loop iteration: half the loop control and pointer updates per
  // FMA, which counts where the tap lists are short (high sparsity) or the FMAs narrow (N = 8,
  // 4). Measured on ResNet-50's 57 single-conv layer rows, 1 thread, two alternating pairs of
  // runs: geometric-mean speedup 1.03x for N = 16, 1.02-1.05x for N = 8, 1.04x for N = 4.
#pragma GCC unroll 2
  for (int32_t k = 0; k < count; ++k, weights += kBlockN) {
    const int32_t tap = taps[k];
    if constexpr (kPrefetch) {
      __builtin_prefetch(
          reinterpret_cast<const void*>(prefetch + static_cast<uintptr_t>(k) * args.prefetch_step),
          0, 2);
    }
    Reg weight[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) weight[r] = V::Load(weights + r * V::kLanes);
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      const Reg value = V::Broadcast(origins[p] + tap);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        accumulators[p][r] = V::MulAdd(value, weight[r], accumulators[p][r]);
      }
    }
  }
  // A partial sum is stored as it is; the last call of a sum applies the epilogue.
  const bool finish = !args.store_partial;
  const Reg low = V::Set(finish ? args.activation_min : -__builtin_inff());
  const Reg high = V::Set(finish ? args.activation_max : __builtin_inff());
  // The fused ADD's operand for this group, laid out like `output`.
  const float* residual = finish && args.residual != nullptr
                              ? args.residual + static_cast<int64_t>(group) * kBlockN
                              : nullptr;
  using Clamps = EpilogueClamps<kEpilogue>;
  if (full && finish && args.stream_output) {
    StoreFullGroup<V, R, P, true, Clamps::kActivation, Clamps::kAdd>(
        args, args.output_pixel_stride, accumulators, low, high, residual, output);
  } else if (full) {
    StoreFullGroup<V, R, P, false, Clamps::kActivation, Clamps::kAdd>(
        args, args.output_pixel_stride, accumulators, low, high, residual, output);
  } else {
    // Partial last group: only the first remaining_channels lanes exist in the output tensor.
    // Fully unrolled so the accumulators stay in registers (a rolled loop over p makes GCC keep
    // the whole accumulator array in memory, also inside the tap loop above).
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      alignas(64) float lanes[kBlockN];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        V::Store(lanes + r * V::kLanes, V::Clamp(accumulators[p][r], low, high));
      }
      float* destination = output + p * args.output_pixel_stride;
      if (residual == nullptr) {
        for (int lane = 0; lane < remaining_channels; ++lane) destination[lane] = lanes[lane];
      } else {
        const float* addend = residual + p * args.output_pixel_stride;
        for (int lane = 0; lane < remaining_channels; ++lane) {
          destination[lane] = ScalarVector::Clamp(lanes[lane] + addend[lane], args.residual_min,
                                                  args.residual_max);
        }
      }
    }
  }
}

// The tap's input for pixel p < 8 of an evenly spaced tile, from `tap` (pixel 0's input for the
// tap) and the spacing s1 in bytes with its multiples s3, s5 and s7: written so that each
// address can be one x86 addressing form (base + index x 1, 2, 4 or 8), and 8 pixels need 5
// general-purpose registers where 8 origins need 8.
// (p is a constant once the caller's pixel loop is unrolled, and the selection folds away.)
static_assert(kSpacedTilePixels == 8, "SpacedPixel addresses 8 pixels");
inline const float* SpacedPixel(const char* tap, int p, int64_t s1, int64_t s3, int64_t s5,
                                int64_t s7) {
  const char* address = p == 0   ? tap
                        : p == 1 ? tap + s1
                        : p == 2 ? tap + 2 * s1
                        : p == 3 ? tap + s3
                        : p == 4 ? tap + 4 * s1
                        : p == 5 ? tap + s5
                        : p == 6 ? tap + 2 * s3
                                 : tap + s7;
  return reinterpret_cast<const float*>(address);
}

// How far the weight prefetches of one tile of a spaced run are from the previous tile's: the
// call's kept tap vectors times prefetch_step (SparseTileArgs::prefetch_address).
inline uintptr_t SpacedRunPrefetchTileStep(const SparseTileArgs& args) {
  return static_cast<uintptr_t>(args.group_begin[args.end_group] -
                                args.group_begin[args.first_group]) *
         static_cast<uintptr_t>(args.prefetch_step);
}

// A run of full tiles of 8 evenly spaced pixels (SparseTileArgs::pixel_spacing: num_pixels / 8
// tiles, each continuing the one before), groups [first_group, end_group) of each, every one
// full, each sum from the bias (no input-channel blocks): GroupTile's arithmetic, with the group
// and tile loops inside. GroupTile, called once per group, loads the 8 origins and the call's
// fields again for every group, and the operator pays for a call and a work item per tile; here
// they stay in registers across groups and tiles, which counts where tap lists are short
// (docs/RESULTS.md, "Evenly spaced tiles" and "Runs of spaced tiles").
//
// kTaps > 0: every group keeps kTaps tap vectors (SparseTileArgs::group_taps) and the tap loop has
// that compile-time count (unrolled completely up to 16). On short tap lists its loop control and the exit branch at the end of
// every group pass counted: a scratch copy of the loop ran 1.07-1.15x faster with a
// compile-time count of 3 to 10 tap vectors, 1.04-1.07x at 13 to 16 (L2-resident and 56x56 1x1
// layers, 1x16; docs/RESULTS.md, "Unrolled tap loops"). With the groups walked by pointer a
// compile-time count also pays from 17 to 32 (kMaxUnrolledGroupTaps), where the loop is unrolled
// by 16 (completely: 0.96-1.00x of that): 56x56 1x1 256->64 at 90 % (26 kept tap vectors) ran
// 1.06-1.07x faster at 1x8 and 1x16 and the 64-channel 1x1 layers at 1x16 50 % (32) 1.04-1.05x,
// for 0.8 MB more library ("Groups walked by pointer").
template <class V, int R, bool kPrefetch, int kEpilogue, bool kStream, int kTaps = 0>
__attribute__((noinline)) void SpacedTileGroups(const SparseTileArgs& args, int first_group,
                                                int end_group) {
  constexpr int kBlockN = V::kLanes * R;
  using Reg = typename V::Reg;
  using Clamps = EpilogueClamps<kEpilogue>;
  const int64_t spacing = args.pixel_spacing;
  const int64_t s1 = spacing * static_cast<int64_t>(sizeof(float));
  const int64_t s3 = 3 * s1;
  const int64_t s5 = 5 * s1;
  const int64_t s7 = 7 * s1;
  const int64_t stride = args.output_pixel_stride;
  const Reg low = V::Set(args.activation_min);
  const Reg high = V::Set(args.activation_max);
  const int32_t* group_begin = args.group_begin;
  const int32_t* taps = args.tap_offsets;
  const float* origin = args.input + args.pixel_offsets[0];
  float* output = args.output;
  const float* residual = args.residual;
  const int tiles = args.num_pixels / kSpacedTilePixels;
  const uintptr_t prefetch_step = static_cast<uintptr_t>(args.prefetch_step);
  const uintptr_t prefetch_tile_step = SpacedRunPrefetchTileStep(args);
  uintptr_t prefetch_tile =
      args.prefetch_address +
      static_cast<uintptr_t>(group_begin[first_group] - args.prefetch_first_tap) * prefetch_step;
  // The groups are walked by pointer (weights, tap offsets, bias and outputs advance by the
  // group's kept tap vectors and N): with a compile-time tap count the loop reads no group_begin
  // at all, and fewer values compete for registers. With StoreFullGroup's stores by pointer,
  // against indexing every group (bench_kernels, 1 thread): 1x16 at 89 % (7 kept tap vectors)
  // 56x56 1x1 64->64 1.12-1.15x, 64->256 1.15-1.17x, 256->64 (28, a loop) 0.97-1.09x; 1x8 at
  // 90 % 64->64 1.17x, 64->256 1.13x; 3x3 layers and 50-75 % within 0.97-1.06x
  // (docs/RESULTS.md, "Groups walked by pointer").
  const int32_t first_tap = group_begin[first_group];
  for (int tile = 0; tile < tiles; ++tile) {
    uintptr_t prefetch = prefetch_tile;
    const float* weights =
        static_cast<const float*>(args.weights) + static_cast<int64_t>(first_tap) * kBlockN;
    const int32_t* tap_offsets = taps + first_tap;
    const float* bias = args.bias + static_cast<int64_t>(first_group) * kBlockN;
    float* group_output = output + static_cast<int64_t>(first_group) * kBlockN;
    const float* group_residual =
        residual != nullptr ? residual + static_cast<int64_t>(first_group) * kBlockN : nullptr;
    for (int group = first_group; group < end_group; ++group) {
      const int32_t count = kTaps > 0 ? kTaps : group_begin[group + 1] - group_begin[group];
      Reg accumulators[kSpacedTilePixels][R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const Reg value = V::Load(bias + r * V::kLanes);
#pragma GCC unroll 8
        for (int p = 0; p < kSpacedTilePixels; ++p) accumulators[p][r] = value;
      }
      // Kept tap vector k of the group: its 8 x R multiply-adds.
      const auto tap_vector = [&](int32_t k) {
        if constexpr (kPrefetch) {
          __builtin_prefetch(reinterpret_cast<const void*>(prefetch), 0, 2);
          prefetch += prefetch_step;
        }
        const char* tap = reinterpret_cast<const char*>(origin + tap_offsets[k]);
        Reg weight[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) weight[r] = V::Load(weights + k * kBlockN + r * V::kLanes);
#pragma GCC unroll 8
        for (int p = 0; p < kSpacedTilePixels; ++p) {
          const Reg value = V::Broadcast(SpacedPixel(tap, p, s1, s3, s5, s7));
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r) {
            accumulators[p][r] = V::MulAdd(value, weight[r], accumulators[p][r]);
          }
        }
      };
      if constexpr (kTaps > 0) {
#pragma GCC unroll 16
        for (int32_t k = 0; k < kTaps; ++k) tap_vector(k);
      } else {
        for (int32_t k = 0; k < count; ++k) tap_vector(k);
      }
      StoreFullGroup<V, R, kSpacedTilePixels, kStream, Clamps::kActivation, Clamps::kAdd>(
          args, stride, accumulators, low, high, group_residual, group_output);
      weights += static_cast<int64_t>(count) * kBlockN;
      tap_offsets += count;
      bias += kBlockN;
      group_output += kBlockN;
      if (group_residual != nullptr) group_residual += kBlockN;
    }
    origin += kSpacedTilePixels * spacing;
    output += kSpacedTilePixels * stride;
    if (residual != nullptr) residual += kSpacedTilePixels * stride;
    prefetch_tile += prefetch_tile_step;
  }
}

// P pixels, every group of the call's range.
template <class V, int R, int P, int kEpilogue>
inline void PixelTileGroups(const SparseTileArgs& args, const float* const* origins,
                            float* output) {
  constexpr int kBlockN = V::kLanes * R;
  if (args.prefetch_address != 0) {
    for (int group = args.first_group; group < args.end_group; ++group) {
      GroupTile<V, R, P, true, kEpilogue>(args, origins, group,
                                          output + static_cast<int64_t>(group) * kBlockN);
    }
    return;
  }
  for (int group = args.first_group; group < args.end_group; ++group) {
    GroupTile<V, R, P, false, kEpilogue>(args, origins, group,
                                         output + static_cast<int64_t>(group) * kBlockN);
  }
}

// PixelTileGroups with the call's epilogue. With kEpilogueKinds, the tile sizes the operator
// cuts most pixels into (kMaxP and kMaxP - 1: it makes tiles of nearly equal size) get an
// instantiation per EpilogueKind; other tiles, and every tile of the variants registered
// without, clamp as kEpilogueGeneral, which gives the same bits.
template <class V, int R, int P, int kMaxP, bool kEpilogueKinds>
inline void PixelTile(const SparseTileArgs& args, const float* const* origins, float* output) {
  WithEpilogue<kEpilogueKinds && P + 1 >= kMaxP>(args, [&](auto epilogue) {
    PixelTileGroups<V, R, P, decltype(epilogue)::kValue>(args, origins, output);
  });
}

// Runs PixelTile<V, R, pixels> for a run-time pixel count in [1, P]: every tile size has its own
// instantiation, so the operator can cut the flattened pixels into tiles of nearly equal size
// (49 pixels as 7 x 7 rather than 6 x 8 + 1) and no pixel runs as a lone, latency-bound chain.
template <class V, int R, int P, int kMaxP, bool kEpilogueKinds>
inline void PixelTileOfSize(const SparseTileArgs& args, const float* const* origins,
                            int pixels) {
  if constexpr (P > 1) {
    if (pixels < P) {
      PixelTileOfSize<V, R, P - 1, kMaxP, kEpilogueKinds>(args, origins, pixels);
      return;
    }
  }
  PixelTile<V, R, P, kMaxP, kEpilogueKinds>(args, origins, args.output);
}

// SpacedTileGroups with the call's tap count unrolled when it is kTaps or below (kTaps: 0, or
// kMaxUnrolledGroupTaps to instantiate every count), else the loop as it is.
template <class V, int R, bool kPrefetch, int kEpilogue, bool kStream, int kTaps>
inline void SpacedTileGroupsOfTaps(const SparseTileArgs& args, int first_group, int end_group) {
  if constexpr (kTaps > 0) {
    if (args.group_taps == kTaps) {
      SpacedTileGroups<V, R, kPrefetch, kEpilogue, kStream, kTaps>(args, first_group, end_group);
      return;
    }
    SpacedTileGroupsOfTaps<V, R, kPrefetch, kEpilogue, kStream, kTaps - 1>(args, first_group,
                                                                           end_group);
  } else {
    SpacedTileGroups<V, R, kPrefetch, kEpilogue, kStream>(args, first_group, end_group);
  }
}

// A run of full tiles of 8 evenly spaced pixels without input-channel blocks: the full groups in
// SpacedTileGroups, a partial last group (out_channels not a multiple of N) tile by tile in
// GroupTile. kUnrollTaps: instantiate the unrolled tap loops (SparseTileArgs::group_taps).
template <class V, int R, bool kEpilogueKinds, bool kUnrollTaps>
inline void SpacedTile(const SparseTileArgs& args) {
  constexpr int kBlockN = V::kLanes * R;
  constexpr int kTaps = kUnrollTaps ? kMaxUnrolledGroupTaps : 0;
  const int full_groups = args.out_channels / kBlockN;
  const int full_end = full_groups < args.end_group ? full_groups : args.end_group;
  WithEpilogue<kEpilogueKinds>(args, [&](auto epilogue) {
    constexpr int kEpilogue = decltype(epilogue)::kValue;
    if (args.first_group < full_end) {
      const bool prefetch = args.prefetch_address != 0;
      if (args.stream_output) {
        (prefetch ? SpacedTileGroupsOfTaps<V, R, true, kEpilogue, true, kTaps>
                  : SpacedTileGroupsOfTaps<V, R, false, kEpilogue, true, kTaps>)(
            args, args.first_group, full_end);
      } else {
        (prefetch ? SpacedTileGroupsOfTaps<V, R, true, kEpilogue, false, kTaps>
                  : SpacedTileGroupsOfTaps<V, R, false, kEpilogue, false, kTaps>)(
            args, args.first_group, full_end);
      }
    }
    if (full_end < args.end_group) {
      SparseTileArgs partial = args;
      partial.first_group = full_end > args.first_group ? full_end : args.first_group;
      partial.num_pixels = kSpacedTilePixels;
      const uintptr_t prefetch_tile_step = SpacedRunPrefetchTileStep(args);
      for (int first = 0; first < args.num_pixels; first += kSpacedTilePixels) {
        const float* origins[kSpacedTilePixels];
        for (int p = 0; p < kSpacedTilePixels; ++p) {
          origins[p] = args.input + args.pixel_offsets[0] + (first + p) * args.pixel_spacing;
        }
        PixelTileGroups<V, R, kSpacedTilePixels, kEpilogue>(partial, origins, partial.output);
        partial.output += kSpacedTilePixels * args.output_pixel_stride;
        if (partial.residual != nullptr) {
          partial.residual += kSpacedTilePixels * args.output_pixel_stride;
        }
        if (partial.prefetch_address != 0) partial.prefetch_address += prefetch_tile_step;
      }
    }
  });
}

// The microkernel: a tile of 1 to P pixels, or a run of evenly spaced full tiles
// (SparseTileArgs::pixel_spacing). kEpilogueKinds: instantiate the common epilogues without
// their infinite clamps (epilogue_clamps.h); kUnrollTaps: the spaced tap loops instantiated for
// every tap count up to kMaxUnrolledGroupTaps (SparseTileArgs::group_taps). Both for the
// variants that run most layers, where the extra code pays.
template <class V, int R, int P, bool kEpilogueKinds = false, bool kUnrollTaps = false>
void SparseTile(const SparseTileArgs& args) {
  static_assert(P >= 1, "a tile has at least one pixel");
  if constexpr (P == kSpacedTilePixels) {
    if (args.pixel_spacing != 0 && args.group_end == nullptr && !args.accumulate &&
        !args.store_partial) {
      SpacedTile<V, R, kEpilogueKinds, kUnrollTaps>(args);
      return;
    }
  }
  if (args.num_pixels > P) {
    // A run of tiles that no faster path takes (input-channel blocks, or a variant of another
    // tile size): tile by tile.
    SparseTileArgs part = args;
    for (int first = 0; first < args.num_pixels; first += P) {
      const int left = args.num_pixels - first;
      part.pixel_offsets = args.pixel_offsets + first;
      part.num_pixels = left < P ? left : P;
      part.output = args.output + first * args.output_pixel_stride;
      if (args.residual != nullptr) part.residual = args.residual + first * args.output_pixel_stride;
      SparseTile<V, R, P, kEpilogueKinds, kUnrollTaps>(part);
    }
    return;
  }
  const float* origins[P];
  for (int p = 0; p < args.num_pixels; ++p) origins[p] = args.input + args.pixel_offsets[p];
  PixelTileOfSize<V, R, P, P, kEpilogueKinds>(args, origins, args.num_pixels);
}

}  // namespace
}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_MICROKERNELS_SPARSE_TILE_TEMPLATE_H_
