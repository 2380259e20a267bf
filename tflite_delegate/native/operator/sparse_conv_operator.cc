#include "sparse_conv_kernel.h"

#include <cstdlib>
#include <cstring>
#include <utility>

namespace tflite_sparse {

SparseConvKernel::SparseConvKernel(const ConvLayerPlan& plan, PackedFilter packed,
                                   ConvRowKernel row_kernel, std::shared_ptr<ThreadPool> pool)
    : input_tensor_(plan.input_tensor),
      output_tensor_(plan.output_tensor),
      params_(plan.params),
      activation_min_(plan.activation_min),
      activation_max_(plan.activation_max),
      packed_(std::move(packed)),
      row_kernel_(row_kernel),
      pool_(std::move(pool)) {
  // A work item's cost: its kept blocks plus one for the bias/activation/store of the row, so
  // that empty groups still count.
  group_cost_prefix_.assign(packed_.num_groups + 1, 0);
  for (int group = 0; group < packed_.num_groups; ++group) {
    group_cost_prefix_[group + 1] = group_cost_prefix_[group] + 1 +
                                    packed_.group_begin[group + 1] - packed_.group_begin[group];
  }
}

TfLiteStatus SparseConvKernel::Prepare(TfLiteContext* context) {
  const TfLiteTensor& input = context->tensors[input_tensor_];
  TfLiteTensor& output = context->tensors[output_tensor_];
  if (input.type != kTfLiteFloat32 || output.type != kTfLiteFloat32 || input.dims == nullptr ||
      input.dims->size != 4) {
    context->ReportError(context, "tflite_sparse_delegate: conv input must be float32 NHWC");
    return kTfLiteError;
  }
  const int batch = input.dims->data[0];
  if (input.dims->data[3] != packed_.shape.in_channels) {
    context->ReportError(context,
                         "tflite_sparse_delegate: input has %d channels, the filter expects %d",
                         input.dims->data[3], packed_.shape.in_channels);
    return kTfLiteError;
  }
  // An empty batch is legal after a resize: compute the per-image geometry for one image and
  // produce an empty output.
  ConvGeometry geometry;
  std::string reason;
  if (batch < 0 || !ComputeConvGeometry(batch > 0 ? batch : 1, input.dims->data[1],
                                        input.dims->data[2], input.dims->data[3], packed_.shape,
                                        params_, &geometry, &reason)) {
    context->ReportError(context, "tflite_sparse_delegate: unsupported input shape: %s",
                         reason.empty() ? "negative batch" : reason.c_str());
    return kTfLiteError;
  }
  geometry.batch = batch;
  const int output_shape[4] = {batch, geometry.out_h, geometry.out_w, geometry.out_channels};
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
  if (prepared_ && geometry == geometry_) return kTfLiteOk;
  // Unprepared until every step below succeeded: if one fails (or throws bad_alloc), the next
  // Prepare starts over instead of reusing a half-updated state, and Invoke refuses to run.
  prepared_ = false;
  if (!ComputeInputOffsets(packed_, geometry, &input_offsets_)) {
    context->ReportError(context,
                         "tflite_sparse_delegate: packed indices would overflow 32-bit");
    return kTfLiteError;
  }
  geometry_ = geometry;
  // Zeroed once here; Invoke rewrites only the interior, so the borders stay zero.
  padded_input_.ResizeZeroed(geometry_.needs_padding
                                 ? static_cast<size_t>(batch) * geometry_.PaddedImageSize()
                                 : 0);
  SplitWork();
  prepared_ = true;
  return kTfLiteOk;
}

void SparseConvKernel::SplitWork() {
  // Work items are (image, output row, group) in that order; thread t takes the contiguous
  // range whose cumulative cost starts at t/T of the total. Rows cost the same, so a thread
  // mostly owns whole rows (input reuse across groups) and groups split only at chunk edges.
  const int threads = pool_->num_threads();
  const int groups = packed_.num_groups;
  const int64_t rows = static_cast<int64_t>(geometry_.batch) * geometry_.out_h;
  const int64_t items = rows * groups;
  const int64_t row_cost = group_cost_prefix_[groups];
  const int64_t total_cost = rows * row_cost;
  auto cost_before = [&](int64_t item) {
    return (item / groups) * row_cost + group_cost_prefix_[item % groups];
  };
  thread_first_item_.assign(threads + 1, items);
  thread_first_item_[0] = 0;
  for (int thread = 1; thread < threads; ++thread) {
    // Exact integer target: ceil(total * thread / threads) without overflow for sane sizes.
    const long double target_real =
        static_cast<long double>(total_cost) * thread / static_cast<long double>(threads);
    int64_t low = thread_first_item_[thread - 1];
    int64_t high = items;
    while (low < high) {  // first item whose cumulative cost reaches the target
      const int64_t middle = low + (high - low) / 2;
      if (static_cast<long double>(cost_before(middle)) < target_real) {
        low = middle + 1;
      } else {
        high = middle;
      }
    }
    thread_first_item_[thread] = low;
  }
}

void SparseConvKernel::PadInput(const float* input, int64_t first_row, int64_t end_row) {
  // Rows are indexed over batch x in_h; each input row is copied into its padded position.
  const ConvGeometry& g = geometry_;
  const size_t row_floats = static_cast<size_t>(g.in_w) * g.channels;
  for (int64_t row = first_row; row < end_row; ++row) {
    const int64_t image = row / g.in_h;
    const int64_t y = row % g.in_h;
    float* destination = padded_input_.data() + image * g.PaddedImageSize() +
                         ((y + g.pad_top) * g.padded_w + g.pad_left) *
                             g.channels;
    std::memcpy(destination, input + row * row_floats,
                row_floats * sizeof(float));
  }
}

void SparseConvKernel::ComputeItems(const float* padded_input, float* output,
                                    int64_t first_item, int64_t end_item) const {
  const ConvGeometry& g = geometry_;
  const int groups = packed_.num_groups;
  const int block_n = packed_.block_n;
  const int64_t image_size = g.PaddedImageSize();
  const int64_t input_row_stride =
      static_cast<int64_t>(g.params.stride_h) * g.padded_w * g.channels;
  const int64_t output_row_floats = static_cast<int64_t>(g.out_w) * g.out_channels;
  ConvRowArgs args;
  args.input_pixel_stride = static_cast<int64_t>(g.params.stride_w) * g.channels;
  args.out_w = g.out_w;
  args.output_pixel_stride = g.out_channels;
  args.activation_min = activation_min_;
  args.activation_max = activation_max_;
  for (int64_t item = first_item; item < end_item; ++item) {
    const int64_t row = item / groups;  // over batch x out_h
    const int group = static_cast<int>(item % groups);
    const int64_t image = row / g.out_h;
    const int64_t y = row % g.out_h;
    const int32_t first_block = packed_.group_begin[group];
    args.input = padded_input + image * image_size + y * input_row_stride;
    args.weights = packed_.weights.data() + static_cast<int64_t>(first_block) * block_n;
    args.offsets = input_offsets_.data() + first_block;
    args.num_blocks = packed_.group_begin[group + 1] - first_block;
    args.bias = packed_.bias.data() + static_cast<int64_t>(group) * block_n;
    args.output = output + row * output_row_floats + static_cast<int64_t>(group) * block_n;
    args.valid_channels =
        g.out_channels - group * block_n < block_n ? g.out_channels - group * block_n : block_n;
    row_kernel_(args);
  }
}

TfLiteStatus SparseConvKernel::Invoke(TfLiteContext* context) {
  if (!prepared_) {
    context->ReportError(context, "tflite_sparse_delegate: invoke before prepare");
    return kTfLiteError;
  }
  if (geometry_.batch == 0) return kTfLiteOk;
  const TfLiteTensor& input_tensor = context->tensors[input_tensor_];
  TfLiteTensor& output_tensor = context->tensors[output_tensor_];
  const float* input = input_tensor.data.f;
  float* output = output_tensor.data.f;
  if (input == nullptr || output == nullptr) {
    context->ReportError(context, "tflite_sparse_delegate: conv tensors have no data");
    return kTfLiteError;
  }
  const int threads = pool_->num_threads();
  const float* padded_input = input;
  if (geometry_.needs_padding) {
    const int64_t rows = static_cast<int64_t>(geometry_.batch) * geometry_.in_h;
    const bool padded = pool_->Run([&](int thread) {
      PadInput(input, rows * thread / threads, rows * (thread + 1) / threads);
    });
    if (!padded) return kTfLiteError;
    padded_input = padded_input_.data();
  }
  const bool computed = pool_->Run([&](int thread) {
    ComputeItems(padded_input, output, thread_first_item_[thread],
                 thread_first_item_[thread + 1]);
  });
  if (!computed) {
    context->ReportError(context, "tflite_sparse_delegate: a worker thread failed");
    return kTfLiteError;
  }
  return kTfLiteOk;
}

}  // namespace tflite_sparse
