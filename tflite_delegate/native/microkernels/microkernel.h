// Interface between the convolution driver and the ISA-specific 1xN row microkernels.
//
// A row kernel computes one output row segment of one group of N output channels:
//   out[x, n] = clamp(bias[n] + sum_k weights[k][n] * input[x * input_pixel_stride + offsets[k]])
// for x in [0, out_w) and the group's kept blocks k (in packed order, which fixes the
// accumulation order: results do not depend on how rows are split between threads).
// The input is pre-padded, so kernels never test bounds.
#ifndef TFLITE_DELEGATE_KERNELS_H_
#define TFLITE_DELEGATE_KERNELS_H_

#include <cstdint>

#include "cpu_features.h"

namespace tflite_sparse {

struct ConvRowArgs {
  const float* input;            // receptive-field origin of the row's first output pixel
  int64_t input_pixel_stride;    // floats between origins of adjacent output pixels (stride_w*C)
  int out_w;                     // output pixels in the row
  const float* weights;          // the group's kept blocks, block_n floats each
  const int32_t* offsets;        // per kept block: input offset from the origin (floats)
  int num_blocks;                // kept blocks of the group
  const float* bias;             // block_n floats
  float* output;                 // output pixel (row, 0) at the group's first channel
  int64_t output_pixel_stride;   // floats between adjacent output pixels (O)
  int valid_channels;            // block_n, or fewer in a partial last group
  float activation_min;
  float activation_max;
};

using ConvRowKernel = void (*)(const ConvRowArgs& args);

// Row kernel for `isa` and block width `block_n` (1, 2, 4, 8, 16 or 32); nullptr if this build
// lacks that ISA. The caller checks IsaSupported(isa) first.
ConvRowKernel SelectRowKernel(Isa isa, int block_n);

// Per-ISA selectors, each defined in its own translation unit compiled with its own -m flags.
ConvRowKernel GenericRowKernel(int block_n);
#if defined(__x86_64__)
ConvRowKernel Avx2RowKernel(int block_n);
ConvRowKernel Avx512RowKernel(int block_n);
#endif

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_KERNELS_H_
