#include "operator/max_pool_operator.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "threading/parallelize.h"

namespace tflite_sparse {

namespace {

// One axis of the pooling windows, for every output index `out` < `outputs`: the window covers
// padded positions [out x stride, out x stride + filter); the zero-padded input is [zero_begin,
// zero_end) of them and the real input [real_begin, real_begin + real). Gives, per output index,
// the first real index, the real count and the count inside the zero-padded input.
void WindowAxis(int64_t outputs, int64_t stride, int64_t filter, int64_t zero_begin,
                int64_t zero_end, int64_t real_begin, int64_t real, std::vector<int32_t>* first,
                std::vector<int32_t>* count, std::vector<int32_t>* window) {
  first->resize(static_cast<size_t>(outputs));
  count->resize(static_cast<size_t>(outputs));
  window->resize(static_cast<size_t>(outputs));
  for (int64_t out = 0; out < outputs; ++out) {
    const int64_t begin = out * stride;
    const int64_t end = begin + filter;
    const int64_t real_first = std::max(begin, real_begin);
    const int64_t real_end = std::min(end, real_begin + real);
    (*first)[out] = static_cast<int32_t>(real_end > real_first ? real_first - real_begin : 0);
    (*count)[out] = static_cast<int32_t>(std::max<int64_t>(real_end - real_first, 0));
    (*window)[out] = static_cast<int32_t>(
        std::max<int64_t>(std::min(end, zero_end) - std::max(begin, zero_begin), 0));
  }
}

}  // namespace

MaxPoolOperator::MaxPoolOperator(const PoolParameters& params, float activation_min,
                                 float activation_max, Isa isa, std::shared_ptr<ThreadPool> pool)
    : params_(params),
      activation_min_(activation_min),
      activation_max_(activation_max),
      isa_(isa),
      function_(FindMaxPoolRow(isa)),
      pool_(std::move(pool)) {}

bool MaxPoolOperator::Prepare(int batch, int in_h, int in_w, int channels, std::string* error) {
  prepared_ = false;
  // The window as a depthwise "filter" over the same channels: TFLite computes a pool's output
  // size and SAME padding exactly as a conv's with dilation 1.
  FilterShape window;
  window.out_channels = channels;
  window.kernel_h = params_.filter_h;
  window.kernel_w = params_.filter_w;
  window.in_channels = channels;
  ConvGeometry geometry;
  std::string reason;
  if (batch < 0 || !ComputeConvGeometry(batch > 0 ? batch : 1, in_h, in_w, channels, window,
                                        params_.window, &geometry, &reason)) {
    *error = "unsupported max-pool input shape: " +
             (reason.empty() ? std::string("negative batch") : reason);
    return false;
  }
  geometry.batch = batch;
  geometry_ = geometry;
  const ConvGeometry& g = geometry_;
  // Padded coordinates: SAME's rows come first, then the folded PAD's zeros, then the input.
  const ConvParameters& w = params_.window;
  WindowAxis(g.out_h, w.stride_h, params_.filter_h, g.pad_top - w.pad_top,
             g.pad_top + in_h + w.pad_bottom, g.pad_top, in_h, &row_first_, &row_count_,
             &window_rows_);
  WindowAxis(g.out_w, w.stride_w, params_.filter_w, g.pad_left - w.pad_left,
             g.pad_left + in_w + w.pad_right, g.pad_left, in_w, &column_first_, &column_count_,
             &window_columns_);
  const int64_t work = static_cast<int64_t>(g.batch) * g.out_h * g.out_w * channels *
                       params_.filter_h * params_.filter_w;
  serial_ = pool_->num_threads() == 1 || work < kMinParallelWork;
  prepared_ = true;
  return true;
}

bool MaxPoolOperator::Run(const float* input, float* output) {
  if (!prepared_) return false;
  const ConvGeometry& g = geometry_;
  if (g.batch == 0) return true;
  const int64_t row_floats = static_cast<int64_t>(g.in_w) * g.channels;
  const int64_t out_row_floats = static_cast<int64_t>(g.out_w) * g.channels;
  MaxPoolRowArgs base;
  base.input = input;
  base.row_stride = row_floats;
  base.rows = 0;
  base.window_rows = 0;
  base.column_first = column_first_.data();
  base.column_count = column_count_.data();
  base.window_columns = window_columns_.data();
  base.num_pixels = g.out_w;
  base.channels = g.channels;
  base.activation_min = activation_min_;
  base.activation_max = activation_max_;
  base.output = output;
  const MaxPoolRowFunction function = function_;
  // One output row per tile, over batch x out_h.
  return Parallelize1DTile(
      serial_ ? nullptr : pool_.get(), static_cast<int64_t>(g.batch) * g.out_h, 1,
      [&](int64_t row, int64_t) {
        const int64_t image = row / g.out_h;
        const int64_t y = row % g.out_h;
        MaxPoolRowArgs args = base;
        args.input = input + (image * g.in_h + row_first_[y]) * row_floats;
        args.rows = row_count_[y];
        args.window_rows = window_rows_[y];
        args.output = output + row * out_row_floats;
        function(args);
      });
}

}  // namespace tflite_sparse
