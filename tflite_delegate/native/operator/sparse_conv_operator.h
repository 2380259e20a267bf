// The TFLite kernel for one claimed CONV_2D node: packed weights, output shape, pre-padding,
// work split and the parallel invoke.
#ifndef TFLITE_DELEGATE_SPARSE_CONV_KERNEL_H_
#define TFLITE_DELEGATE_SPARSE_CONV_KERNEL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "aligned_buffer.h"
#include "claiming_policy.h"
#include "conv_geometry.h"
#include "kernels.h"
#include "packing.h"
#include "tflite_abi.h"
#include "thread_pool.h"

namespace tflite_sparse {

class SparseConvKernel {
 public:
  // `row_kernel` must match packed.block_n; the pool is shared with the delegate's other kernels.
  SparseConvKernel(const ConvLayerPlan& plan, PackedFilter packed, ConvRowKernel row_kernel,
                   std::shared_ptr<ThreadPool> pool);

  // Recomputes the geometry from the current input shape; resizes the output tensor (only when
  // its shape changes) and the padding scratch.
  TfLiteStatus Prepare(TfLiteContext* context);
  TfLiteStatus Invoke(TfLiteContext* context);

 private:
  void PadInput(const float* input, int64_t first_row, int64_t end_row);
  void ComputeItems(const float* padded_input, float* output, int64_t first_item,
                    int64_t end_item) const;
  void SplitWork();

  int input_tensor_;
  int output_tensor_;
  ConvParameters params_;
  float activation_min_;
  float activation_max_;
  PackedFilter packed_;
  ConvRowKernel row_kernel_;
  std::shared_ptr<ThreadPool> pool_;

  bool prepared_ = false;
  ConvGeometry geometry_;
  std::vector<int32_t> input_offsets_;    // per kept block, for the current input width
  AlignedBuffer padded_input_;            // batch x padded image; borders stay zero
  std::vector<int64_t> group_cost_prefix_;  // cost of groups [0, g) of one output row
  std::vector<int64_t> thread_first_item_;  // num_threads + 1 boundaries over work items
};

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_SPARSE_CONV_KERNEL_H_
