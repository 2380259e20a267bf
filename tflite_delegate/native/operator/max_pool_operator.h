// The MAX_POOL_2D operator the delegate runs after a claimed conv, in the conv's partition
// (claiming/pool_fusion.h), with a zero PAD between them folded in.
//
// Prepare (once per input shape) computes the output size with TFLite's rules and, per output
// row and per output column, which input rows and columns its window covers; Run calls the ISA's
// max-pool row microkernel (microkernels/max_pool.h) once per output row, rows split between
// threads. Like SparseConvOperator it knows nothing of TFLite, so the C++ tests drive it
// directly.
#ifndef TFLITE_DELEGATE_OPERATOR_MAX_POOL_OPERATOR_H_
#define TFLITE_DELEGATE_OPERATOR_MAX_POOL_OPERATOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/conv_geometry.h"
#include "common/pool_parameters.h"
#include "microkernels/max_pool.h"
#include "threading/thread_pool.h"

namespace tflite_sparse {

class MaxPoolOperator {
 public:
  MaxPoolOperator(const PoolParameters& params, float activation_min, float activation_max,
                  Isa isa, std::shared_ptr<ThreadPool> pool);

  // Prepares for an NHWC input of the given shape (batch may be 0: the output is empty). Returns
  // false with `error` set when the shape is unusable (an empty output, sizes beyond 32-bit
  // indices). Until a Prepare succeeds, Run refuses to run.
  bool Prepare(int batch, int in_h, int in_w, int channels, std::string* error);

  // Input and output sizes of the last successful Prepare (out_channels == channels; the
  // padding fields describe the zero-padded input: pad_top, pad_left and padded_h/w include the
  // folded PAD's zeros and SAME's rows and columns).
  const ConvGeometry& geometry() const { return geometry_; }

  // Pools `input` (batch x in_h x in_w x channels floats) into `output` (batch x out_h x out_w x
  // channels floats). False if not prepared or a worker failed.
  bool Run(const float* input, float* output);

  // Window positions x output values below which the calling thread pools alone (the analogue
  // of SparseConvOperator::kDefaultMinParallelFlops): about 10 us of one Zen 5 core, which
  // pools about 30 G of them per second with AVX-512 (`make bench-kernels`, max-pool table).
  static constexpr int64_t kMinParallelWork = 256 * 1024;

  const char* microkernel_name() const { return MaxPoolRowName(isa_); }

 private:
  PoolParameters params_;
  float activation_min_;
  float activation_max_;
  Isa isa_;
  MaxPoolRowFunction function_;
  std::shared_ptr<ThreadPool> pool_;
  bool prepared_ = false;
  bool serial_ = true;
  ConvGeometry geometry_;
  // Per output row: first input row, input rows, and rows inside the zero-padded input.
  std::vector<int32_t> row_first_;
  std::vector<int32_t> row_count_;
  std::vector<int32_t> window_rows_;
  // Per output column, the same for columns (MaxPoolRowArgs).
  std::vector<int32_t> column_first_;
  std::vector<int32_t> column_count_;
  std::vector<int32_t> window_columns_;
};

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_OPERATOR_MAX_POOL_OPERATOR_H_
