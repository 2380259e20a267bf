#include "delegate/conv_node_kernel.h"

#include <cstdlib>
#include <string>
#include <utility>

namespace tflite_sparse {

ConvNodeKernel::ConvNodeKernel(const ConvLayerPlan& plan, PackedFilter packed,
                               std::shared_ptr<ThreadPool> pool)
    : input_tensor_(plan.input_tensor),
      output_tensor_(plan.output_tensor),
      operator_(plan.params, plan.activation_min, plan.activation_max, std::move(packed),
                plan.microkernel, std::move(pool)) {}

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
  if (operator_.geometry().batch != 0 && (input.data.f == nullptr || output.data.f == nullptr)) {
    context->ReportError(context, "tflite_sparse_delegate: conv tensors have no data");
    return kTfLiteError;
  }
  if (!operator_.Run(input.data.f, output.data.f)) {
    context->ReportError(context,
                         "tflite_sparse_delegate: invoke before prepare, or a worker failed");
    return kTfLiteError;
  }
  return kTfLiteOk;
}

}  // namespace tflite_sparse
