#include "common/conv_geometry.h"

#include <algorithm>
#include <initializer_list>
#include <limits>

namespace tflite_sparse {

namespace {

constexpr int64_t kInt32Limit = std::numeric_limits<int32_t>::max();

struct AxisLayout {
  int64_t out = 0;
  int64_t pad_before = 0;
  int64_t padded = 0;
};

// One spatial axis of an input `in` long with `before` and `after` explicit zeros (a folded
// PAD) around it; all arithmetic in 64 bits so hostile shapes cannot overflow here.
AxisLayout LayoutAxis(int64_t real_in, int64_t before, int64_t after, int64_t kernel,
                      int64_t stride, int64_t dilation, Padding padding) {
  AxisLayout axis;
  // The conv's own padding rule sees the explicitly padded input; its zeros then come in front
  // of (or after) the explicit ones, which is the same image.
  const int64_t in = real_in + before + after;
  const int64_t effective_kernel = (kernel - 1) * dilation + 1;
  axis.pad_before = before;
  if (padding == Padding::kSame) {
    axis.out = (in + stride - 1) / stride;
    const int64_t total = std::max<int64_t>((axis.out - 1) * stride + effective_kernel - in, 0);
    axis.pad_before += total / 2;
    axis.padded = in + total;
  } else {
    axis.out = in >= effective_kernel ? (in - effective_kernel) / stride + 1 : 0;
    axis.padded = in;
  }
  return axis;
}

// Product of non-negative factors, or -1 when it does not fit int64 (hostile shapes must not
// overflow: signed overflow is undefined, and a wrapped size could pass the limits below).
int64_t CheckedProduct(std::initializer_list<int64_t> factors) {
  int64_t product = 1;
  for (const int64_t factor : factors) {
    if (__builtin_mul_overflow(product, factor, &product)) return -1;
  }
  return product;
}

bool FitsInt32(int64_t size) { return size >= 0 && size <= kInt32Limit; }

std::string DescribeSize(int64_t size) {
  return size < 0 ? std::string("more than 2^63") : std::to_string(size);
}

}  // namespace

bool ConvGeometry::operator==(const ConvGeometry& other) const {
  return batch == other.batch && in_h == other.in_h && in_w == other.in_w &&
         channels == other.channels && out_h == other.out_h && out_w == other.out_w &&
         out_channels == other.out_channels;
}

bool ComputeConvGeometry(int batch, int in_h, int in_w, int channels, const FilterShape& filter,
                         const ConvParameters& params, ConvGeometry* geometry,
                         std::string* reason, GeometryError* error) {
  GeometryError unused;
  GeometryError& code = error != nullptr ? *error : unused;
  code = GeometryError::kNone;
  if (params.stride_h < 1 || params.stride_w < 1) {
    code = GeometryError::kInvalidParameters;
    *reason = "stride must be positive";
    return false;
  }
  if (params.dilation_h < 1 || params.dilation_w < 1) {
    code = GeometryError::kInvalidParameters;
    *reason = "dilation must be positive";
    return false;
  }
  if (params.pad_top < 0 || params.pad_bottom < 0 || params.pad_left < 0 ||
      params.pad_right < 0) {
    code = GeometryError::kInvalidParameters;
    *reason = "explicit padding must not be negative";
    return false;
  }
  if (filter.out_channels < 1 || filter.kernel_h < 1 || filter.kernel_w < 1 ||
      filter.in_channels < 1) {
    code = GeometryError::kZeroSized;
    *reason = "zero-sized filter";
    return false;
  }
  if (batch < 1 || in_h < 1 || in_w < 1 || channels < 1) {
    code = GeometryError::kZeroSized;
    *reason = "zero-sized input tensor";
    return false;
  }
  const AxisLayout rows = LayoutAxis(in_h, params.pad_top, params.pad_bottom, filter.kernel_h,
                                     params.stride_h, params.dilation_h, params.padding);
  const AxisLayout cols = LayoutAxis(in_w, params.pad_left, params.pad_right, filter.kernel_w,
                                     params.stride_w, params.dilation_w, params.padding);
  if (rows.out < 1 || cols.out < 1) {
    code = GeometryError::kZeroSized;
    *reason = "zero-sized output (input smaller than the dilated kernel)";
    return false;
  }
  // The microkernels index one pre-padded image, one output image and the packed filter with
  // 32-bit offsets; refuse anything larger rather than risk wrap-around.
  // The filter bound leaves room for a zero-padded last group of up to 32 channels.
  const int64_t padded_image = CheckedProduct({rows.padded, cols.padded, channels});
  const int64_t output_image = CheckedProduct({rows.out, cols.out, filter.out_channels});
  const int64_t taps = CheckedProduct({filter.kernel_h, filter.kernel_w, filter.in_channels});
  const int64_t filter_size = taps < 0 ? -1 : CheckedProduct({filter.out_channels + 32, taps});
  if (!FitsInt32(rows.padded) || !FitsInt32(cols.padded) || !FitsInt32(padded_image) ||
      !FitsInt32(output_image) || !FitsInt32(filter_size)) {
    code = GeometryError::kIndexOverflow;
    *reason = "packed indices would overflow 32-bit (padded input image " +
              DescribeSize(padded_image) + ", output image " + DescribeSize(output_image) +
              ", filter " + DescribeSize(filter_size) + " elements)";
    return false;
  }
  ConvGeometry result;
  result.batch = batch;
  result.in_h = in_h;
  result.in_w = in_w;
  result.channels = channels;
  result.out_h = static_cast<int>(rows.out);
  result.out_w = static_cast<int>(cols.out);
  result.out_channels = filter.out_channels;
  result.pad_top = static_cast<int>(rows.pad_before);
  result.pad_left = static_cast<int>(cols.pad_before);
  result.padded_h = static_cast<int>(rows.padded);
  result.padded_w = static_cast<int>(cols.padded);
  result.needs_padding = rows.padded != in_h || cols.padded != in_w;
  result.params = params;
  result.filter = filter;
  *geometry = result;
  return true;
}

}  // namespace tflite_sparse
