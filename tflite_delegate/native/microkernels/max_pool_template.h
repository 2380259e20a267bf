// The max-pool row (microkernels/max_pool.h) over a vector type of sparse_tile_template.h or
// vector_avx.h (Load, Set, Max, Clamp, Store; kLanes). Included by each ISA's translation unit;
// internal linkage, as in sparse_tile_template.h, so that each copy keeps its own -m flags.
#ifndef TFLITE_DELEGATE_MICROKERNELS_MAX_POOL_TEMPLATE_H_
#define TFLITE_DELEGATE_MICROKERNELS_MAX_POOL_TEMPLATE_H_

#include <limits>

#include "microkernels/max_pool.h"

namespace tflite_sparse {
namespace {

// Channels [c, c + 4 x Vector::kLanes) of one output pixel: four independent chains in four
// named registers, so that the max latency of one does not hold back the others. (With an array
// of accumulators GCC 12 ran the four chains one after another: ResNet's 3x3 stride-2 pool of a
// 112x112x64 image took 154 us on one Zen 5 core, warm.)
template <typename Vector>
inline void MaxPoolFourVectors(const MaxPoolRowArgs& args, const float* origin, int columns,
                               bool zero, int c, float* out) {
  using Reg = typename Vector::Reg;
  constexpr int kLanes = Vector::kLanes;
  Reg m0 = Vector::Set(std::numeric_limits<float>::lowest());
  Reg m1 = m0;
  Reg m2 = m0;
  Reg m3 = m0;
  for (int r = 0; r < args.rows; ++r) {
    const float* value = origin + r * args.row_stride + c;
    for (int column = 0; column < columns; ++column, value += args.channels) {
      m0 = Vector::Max(m0, Vector::Load(value));
      m1 = Vector::Max(m1, Vector::Load(value + kLanes));
      m2 = Vector::Max(m2, Vector::Load(value + 2 * kLanes));
      m3 = Vector::Max(m3, Vector::Load(value + 3 * kLanes));
    }
  }
  if (zero) {
    const Reg zeros = Vector::Set(0.0f);
    m0 = Vector::Max(m0, zeros);
    m1 = Vector::Max(m1, zeros);
    m2 = Vector::Max(m2, zeros);
    m3 = Vector::Max(m3, zeros);
  }
  const Reg low = Vector::Set(args.activation_min);
  const Reg high = Vector::Set(args.activation_max);
  Vector::Store(out, Vector::Clamp(m0, low, high));
  Vector::Store(out + kLanes, Vector::Clamp(m1, low, high));
  Vector::Store(out + 2 * kLanes, Vector::Clamp(m2, low, high));
  Vector::Store(out + 3 * kLanes, Vector::Clamp(m3, low, high));
}

// The same for channels [c, c + Vector::kLanes): one chain.
template <typename Vector>
inline void MaxPoolOneVector(const MaxPoolRowArgs& args, const float* origin, int columns,
                             bool zero, int c, float* out) {
  using Reg = typename Vector::Reg;
  Reg m = Vector::Set(std::numeric_limits<float>::lowest());
  for (int r = 0; r < args.rows; ++r) {
    const float* value = origin + r * args.row_stride + c;
    for (int column = 0; column < columns; ++column, value += args.channels) {
      m = Vector::Max(m, Vector::Load(value));
    }
  }
  if (zero) m = Vector::Max(m, Vector::Set(0.0f));
  Vector::Store(out, Vector::Clamp(m, Vector::Set(args.activation_min),
                                   Vector::Set(args.activation_max)));
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
      MaxPoolFourVectors<Vector>(args, origin, columns, zero, c, out + c);
    }
    for (; c + kLanes <= channels; c += kLanes) {
      MaxPoolOneVector<Vector>(args, origin, columns, zero, c, out + c);
    }
    for (; c < channels; ++c) MaxPoolOneVector<Scalar>(args, origin, columns, zero, c, out + c);
  }
}

}  // namespace
}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_MICROKERNELS_MAX_POOL_TEMPLATE_H_
