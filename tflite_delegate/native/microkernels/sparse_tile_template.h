// The 1xN microkernel, written once and instantiated by each ISA translation unit with its own
// vector type V (lanes V::kLanes, register type V::Reg). A block of N = kLanes * R output channels
// occupies R registers; a tile of P output pixels of one row keeps P x R accumulators in
// registers, loads each block's N weights once per tile and broadcasts one input value per pixel.
//
// Everything here has internal linkage (anonymous namespace): the same template compiled with
// -mavx512f in one file and without in another must never be merged by the linker, or the
// generic path could end up running AVX-512 code. For the same reason this header and the ISA
// files use no inline functions from the standard library.
#ifndef TFLITE_DELEGATE_KERNEL_TEMPLATE_H_
#define TFLITE_DELEGATE_KERNEL_TEMPLATE_H_

#include "kernels.h"

namespace tflite_sparse {
namespace {

// Plain C++ "vector" of one lane: the portable path, also used for N = 1 and 2 in the ISA files.
struct ScalarVector {
  using Reg = float;
  static constexpr int kLanes = 1;
  static Reg Load(const float* source) { return *source; }
  static Reg Broadcast(const float* source) { return *source; }
  static Reg Set(float value) { return value; }
  // Separate multiply and add (the kernel files are built with -ffp-contract=off) so results do
  // not depend on whether the compiler fused them in one loop and not in another.
  static Reg MulAdd(Reg a, Reg b, Reg accumulator) { return accumulator + a * b; }
  // Written so that NaN propagates, like TFLite's min(max(x, lo), hi).
  static Reg Clamp(Reg value, Reg low, Reg high) {
    const Reg above = value < low ? low : value;
    return above > high ? high : above;
  }
  static void Store(float* destination, Reg value) { *destination = value; }
};

template <class V, int R, int P>
inline void ConvTile(const ConvRowArgs& args, const float* input, float* output) {
  constexpr int kBlockN = V::kLanes * R;
  using Reg = typename V::Reg;
  Reg accumulators[P][R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const Reg bias = V::Load(args.bias + r * V::kLanes);
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) accumulators[p][r] = bias;
  }
  const float* weights = args.weights;
  const int64_t pixel_stride = args.input_pixel_stride;
  for (int block = 0; block < args.num_blocks; ++block, weights += kBlockN) {
    const float* source = input + args.offsets[block];
    Reg weight[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) weight[r] = V::Load(weights + r * V::kLanes);
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      const Reg value = V::Broadcast(source + p * pixel_stride);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        accumulators[p][r] = V::MulAdd(value, weight[r], accumulators[p][r]);
      }
    }
  }
  const Reg low = V::Set(args.activation_min);
  const Reg high = V::Set(args.activation_max);
  if (args.valid_channels == kBlockN) {
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        V::Store(output + p * args.output_pixel_stride + r * V::kLanes,
                 V::Clamp(accumulators[p][r], low, high));
      }
    }
  } else {
    // Partial last group: only the first valid_channels lanes exist in the output tensor.
    for (int p = 0; p < P; ++p) {
      alignas(64) float lanes[kBlockN];
      for (int r = 0; r < R; ++r) {
        V::Store(lanes + r * V::kLanes, V::Clamp(accumulators[p][r], low, high));
      }
      float* destination = output + p * args.output_pixel_stride;
      for (int lane = 0; lane < args.valid_channels; ++lane) destination[lane] = lanes[lane];
    }
  }
}

// Full tiles of P pixels, then single pixels; each output element sees the same arithmetic in
// either path.
template <class V, int R, int P>
void ConvRow(const ConvRowArgs& args) {
  const int64_t input_step = args.input_pixel_stride;
  const int64_t output_step = args.output_pixel_stride;
  const float* input = args.input;
  float* output = args.output;
  int x = 0;
  for (; x + P <= args.out_w; x += P) {
    ConvTile<V, R, P>(args, input, output);
    input += P * input_step;
    output += P * output_step;
  }
  for (; x < args.out_w; ++x) {
    ConvTile<V, R, 1>(args, input, output);
    input += input_step;
    output += output_step;
  }
}

}  // namespace
}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_KERNEL_TEMPLATE_H_
