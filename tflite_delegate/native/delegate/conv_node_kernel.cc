#include "delegate/conv_node_kernel.h"

#include <cstdlib>
#include <string>
#include <utility>

namespace tflite_sparse {

ConvNodeKernel::ConvNodeKernel(const ConvLayerPlan& plan, PackedFilter packed,
                               std::shared_ptr<ThreadPool> pool, const FusedAdd* fused_add)
    : input_tensor_(plan.input_tensor),
      output_tensor_(fused_add != nullptr ? fused_add->output_tensor : plan.output_tensor),
      residual_tensor_(fused_add != nullptr ? fused_add->residual_tensor : -1),
      operator_(plan.params, plan.activation_min, plan.activation_max, std::move(packed),
                plan.microkernel, std::move(pool)) {
  if (fused_add != nullptr) {
    operator_.set_residual_activation(fused_add->activation_min, fused_add->activation_max);
  }
}

TfLiteStatus ConvNodeKernel::Prepare(TfLiteContext* context) {
  const TfLiteTensor& input = context->tensors[input_tensor_];
  TfLiteTensor& output = context->tensors[output_tensor_];
  if (input.type != kTfLiteFloat32 || output.type != kTfLiteFloat32 || input.dims == nullptr ||
      input.dims->size != 4) {
    context->ReportError(context, "tflite_sparse_delegate: conv input must be float32 NHWC");
    return kTfLiteError;
  }
  std::string error;
  if (!operator_.Prepare(input.dims->data[0], input.dims->data[1], input.dims->data[2],
                         input.dims->data[3], &error)) {
    context->ReportError(context, "tflite_sparse_delegate: %s", error.c_str());
    return kTfLiteError;
  }
  const ConvGeometry& geometry = operator_.geometry();
  const int output_shape[4] = {geometry.batch, geometry.out_h, geometry.out_w,
                               geometry.out_channels};
  if (residual_tensor_ >= 0) {
    // Checked at claim time for the static shapes; inputs resized since may disagree.
    const TfLiteTensor& residual = context->tensors[residual_tensor_];
    bool same = residual.type == kTfLiteFloat32 && residual.dims != nullptr &&
                residual.dims->size == 4;
    for (int axis = 0; same && axis < 4; ++axis) {
      same = residual.dims->data[axis] == output_shape[axis];
    }
    if (!same) {
      context->ReportError(context,
                           "tflite_sparse_delegate: the ADD fused into a conv needs both operands "
                           "of shape [%d, %d, %d, %d] (load the delegate with fuse_add=0 to run "
                           "a broadcasting ADD)",
                           output_shape[0], output_shape[1], output_shape[2], output_shape[3]);
      return kTfLiteError;
    }
  }
  bool same_shape = output.dims != nullptr && output.dims->size == 4;
  for (int axis = 0; same_shape && axis < 4; ++axis) {
    same_shape = output.dims->data[axis] == output_shape[axis];
  }
  if (!same_shape) {
    // ResizeTensor takes ownership of the array and frees it with free().
    auto* dims = static_cast<TfLiteIntArray*>(std::malloc(sizeof(int) * 5));
    if (dims == nullptr) return kTfLiteError;
    dims->size = 4;
    for (int axis = 0; axis < 4; ++axis) dims->data[axis] = output_shape[axis];
    if (context->ResizeTensor(context, &output, dims) != kTfLiteOk) return kTfLiteError;
  }
  return kTfLiteOk;
}

TfLiteStatus ConvNodeKernel::Invoke(TfLiteContext* context) {
  const TfLiteTensor& input = context->tensors[input_tensor_];
  TfLiteTensor& output = context->tensors[output_tensor_];
  const float* residual =
      residual_tensor_ >= 0 ? context->tensors[residual_tensor_].data.f : nullptr;
  if (operator_.geometry().batch != 0 &&
      (input.data.f == nullptr || output.data.f == nullptr ||
       (residual_tensor_ >= 0 && residual == nullptr))) {
    context->ReportError(context, "tflite_sparse_delegate: conv tensors have no data");
    return kTfLiteError;
  }
  if (!operator_.Run(input.data.f, output.data.f, residual)) {
    context->ReportError(context,
                         "tflite_sparse_delegate: invoke before prepare, or a worker failed");
    return kTfLiteError;
  }
  return kTfLiteOk;
}

}  // namespace tflite_sparse
