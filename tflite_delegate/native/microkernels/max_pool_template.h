// The max-pool row (microkernels/max_pool.h) over a vector type of sparse_tile_template.h or
// vector_avx.h (Load, Set, Max, Clamp, Store; kLanes). Included by each ISA's translation unit;
// internal linkage, as in sparse_tile_template.h, so that each copy keeps its own -m flags.
#ifndef TFLITE_DELEGATE_MICROKERNELS_MAX_POOL_TEMPLATE_H_
#define TFLITE_DELEGATE_MICROKERNELS_MAX_POOL_TEMPLATE_H_

#include <limits>

#include "microkernels/max_pool.h"

namespace tflite_sparse {
namespace {

// Channels [c, c + kVectors x Vector::kLanes) of one output pixel: kVectors independent chains,
// so that the max latency of one does not hold back the others.
template <typename Vector, int kVectors>
inline void MaxPoolChannels(const MaxPoolRowArgs& args, const float* origin, int columns,
                            bool zero, int c, float* out) {
  using Reg = typename Vector::Reg;
  Reg maximum[kVectors];
  for (int v = 0; v < kVectors; ++v) maximum[v] = Vector::Set(std::numeric_limits<float>::lowest());
  for (int r = 0; r < args.rows; ++r) {
    const float* row = origin + r * args.row_stride + c;
    for (int column = 0; column < columns; ++column) {
      const float* value = row + static_cast<int64_t>(column) * args.channels;
      for (int v = 0; v < kVectors; ++v) {
        maximum[v] = Vector::Max(maximum[v], Vector::Load(value + v * Vector::kLanes));
      }
    }
  }
  const Reg low = Vector::Set(args.activation_min);
  const Reg high = Vector::Set(args.activation_max);
  for (int v = 0; v < kVectors; ++v) {
    if (zero) maximum[v] = Vector::Max(maximum[v], Vector::Set(0.0f));
    Vector::Store(out + v * Vector::kLanes, Vector::Clamp(maximum[v], low, high));
  }
}

template <typename Vector, typename Scalar>
void MaxPoolRow(const MaxPoolRowArgs& args) {
  constexpr int kLanes = Vector::kLanes;
  const int channels = args.channels;
  for (int x = 0; x < args.num_pixels; ++x) {
    const float* origin = args.input + static_cast<int64_t>(args.column_first[x]) * channels;
    const int columns = args.column_count[x];
    const bool zero = static_cast<int64_t>(args.window_rows) * args.window_columns[x] >
                      static_cast<int64_t>(args.rows) * columns;
    float* out = args.output + static_cast<int64_t>(x) * channels;
    int c = 0;
    for (; c + 4 * kLanes <= channels; c += 4 * kLanes) {
      MaxPoolChannels<Vector, 4>(args, origin, columns, zero, c, out + c);
    }
    for (; c + kLanes <= channels; c += kLanes) {
      MaxPoolChannels<Vector, 1>(args, origin, columns, zero, c, out + c);
    }
    for (; c < channels; ++c) MaxPoolChannels<Scalar, 1>(args, origin, columns, zero, c, out + c);
  }
}

}  // namespace
}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_MICROKERNELS_MAX_POOL_TEMPLATE_H_
