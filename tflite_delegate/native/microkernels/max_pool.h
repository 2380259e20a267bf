// The max-pool microkernel: one output row segment of a MAX_POOL_2D that the delegate runs after
// a claimed conv (claiming/pool_fusion.h, operator/max_pool_operator.h). One function per ISA,
// generated from microkernels/max_pool_template.h and found through FindMaxPoolRow.
#ifndef TFLITE_DELEGATE_MICROKERNELS_MAX_POOL_H_
#define TFLITE_DELEGATE_MICROKERNELS_MAX_POOL_H_

#include <cstdint>

#include "microkernels/microkernel.h"

namespace tflite_sparse {

// Output pixel x (0 <= x < num_pixels) of one output row: the maximum over the input values of
// rows [0, rows) and columns [column_first[x], column_first[x] + column_count[x]) (the value of
// row r, column c, channel k at input[r * row_stride + c * channels + k]), and over 0.0f when the
// window also covers zero padding, i.e. when window_rows x window_columns[x] (the window's
// positions inside the zero-padded input) exceeds rows x column_count[x]; then clamped to
// [activation_min, activation_max]. Positions outside the zero-padded input (TFLite's SAME
// padding of the pool) take no part. An empty window gives the lowest float, clamped. Every
// maximum is max(a, b) = a > b ? a : b, folded over the window in row-major order starting from
// the lowest float, as x86's maxps computes it, so every ISA gives the same bits.
struct MaxPoolRowArgs {
  const float* input;           // row 0, column 0, channel 0 of the window rows
  int64_t row_stride;           // floats between input rows
  int rows;                     // input rows of every window of this output row
  int window_rows;              // rows of the window inside the zero-padded input (>= rows)
  const int32_t* column_first;  // per output pixel: its window's first input column
  const int32_t* column_count;  // per output pixel: its window's input columns
  const int32_t* window_columns;  // per output pixel: its window's columns in the padded input
  int num_pixels;
  int channels;
  float activation_min;
  float activation_max;
  float* output;  // num_pixels x channels floats
};

using MaxPoolRowFunction = void (*)(const MaxPoolRowArgs& args);

// The max-pool row function of `isa` (every registered ISA has one), and its name.
MaxPoolRowFunction FindMaxPoolRow(Isa isa);
const char* MaxPoolRowName(Isa isa);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_MICROKERNELS_MAX_POOL_H_
