// The TFLite kernel of one claimed CONV_2D node, and of the ADD fused into it if any
// (claiming/add_fusion.h): adapts the TFLite tensors of the node to the sparse CONV_2D operator
// (operator/sparse_conv_operator.h), resizes the output tensor (the ADD's when fused) and
// reports errors through the TfLiteContext.
#ifndef TFLITE_DELEGATE_DELEGATE_CONV_NODE_KERNEL_H_
#define TFLITE_DELEGATE_DELEGATE_CONV_NODE_KERNEL_H_

#include <memory>

#include "abi/tflite_abi.h"
#include "claiming/add_fusion.h"
#include "claiming/claiming_policy.h"
#include "operator/sparse_conv_operator.h"

namespace tflite_sparse {

class ConvNodeKernel {
 public:
  // `fused_add`: the ADD this kernel also runs, or null.
  ConvNodeKernel(const ConvLayerPlan& plan, PackedFilter packed,
                 std::shared_ptr<ThreadPool> pool, const FusedAdd* fused_add = nullptr);

  // Prepares the operator for the current input shape and resizes the output tensor (only
  // when its shape changes).
  TfLiteStatus Prepare(TfLiteContext* context);
  TfLiteStatus Invoke(TfLiteContext* context);

 private:
  int input_tensor_;
  int output_tensor_;
  int residual_tensor_;  // the fused ADD's other operand, or -1
  SparseConvOperator operator_;
};

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_DELEGATE_CONV_NODE_KERNEL_H_
