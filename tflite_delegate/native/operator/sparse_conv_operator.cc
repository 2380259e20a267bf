#include "operator/sparse_conv_operator.h"

#include <cstring>
#include <utility>

#include "threading/parallelize.h"

namespace tflite_sparse {

namespace {

// Pixel tiles per thread below which the operator splits groups between threads instead.
constexpr int64_t kMinPixelTilesPerThread = 4;

}  // namespace

SparseConvOperator::SparseConvOperator(const ConvParameters& params, float activation_min,
                                       float activation_max, PackedFilter packed,
                                       const MicrokernelVariant* variant,
                                       std::shared_ptr<ThreadPool> pool)
    : params_(params),
      activation_min_(activation_min),
      activation_max_(activation_max),
      packed_(std::move(packed)),
      variant_(variant),
      pool_(std::move(pool)) {}

bool SparseConvOperator::Prepare(int batch, int in_h, int in_w, int channels,
                                 std::string* error) {
  if (channels != packed_.shape.in_channels) {
    *error = "input has " + std::to_string(channels) + " channels, the filter expects " +
             std::to_string(packed_.shape.in_channels);
    return false;
  }
  // An empty batch is legal after a resize: compute the per-image geometry for one image and
  // produce an empty output.
  ConvGeometry geometry;
  std::string reason;
  if (batch < 0 || !ComputeConvGeometry(batch > 0 ? batch : 1, in_h, in_w, channels,
                                        packed_.shape, params_, &geometry, &reason)) {
    *error = "unsupported input shape: " + (reason.empty() ? std::string("negative batch") : reason);
    return false;
  }
  geometry.batch = batch;
  if (prepared_ && geometry == geometry_) return true;
  // Unprepared until every step below succeeded: if one fails (or throws bad_alloc), the next
  // Prepare starts over instead of reusing a half-updated state, and Run refuses to run.
  prepared_ = false;
  if (!ComputeTapOffsets(packed_, geometry, &tap_offsets_)) {
    *error = "packed indices would overflow 32-bit";
    return false;
  }
  geometry_ = geometry;
  const ConvGeometry& g = geometry_;
  // Indirection: flattened output pixel (image, y, x) -> its receptive-field origin in the
  // (pre-padded) input. Without padding the padded image is the input image itself.
  const int64_t pixels_per_image = static_cast<int64_t>(g.out_h) * g.out_w;
  pixel_offsets_.resize(static_cast<size_t>(batch * pixels_per_image));
  const int64_t row_step = static_cast<int64_t>(params_.stride_h) * g.padded_w * g.channels;
  const int64_t column_step = static_cast<int64_t>(params_.stride_w) * g.channels;
  int64_t* offset = pixel_offsets_.data();
  for (int64_t image = 0; image < batch; ++image) {
    for (int64_t y = 0; y < g.out_h; ++y) {
      const int64_t row_origin = image * g.PaddedImageSize() + y * row_step;
      for (int64_t x = 0; x < g.out_w; ++x) *offset++ = row_origin + x * column_step;
    }
  }
  // Zeroed once here; Run rewrites only the interior, so the borders stay zero.
  padded_input_.ResizeZeroed(g.needs_padding ? static_cast<size_t>(batch) * g.PaddedImageSize()
                                             : 0);
  const int64_t pixel_tiles =
      (batch * pixels_per_image + variant_->tile_pixels - 1) / variant_->tile_pixels;
  const int64_t threads = pool_->num_threads();
  groups_outer_ = pixel_tiles < kMinPixelTilesPerThread * threads && packed_.num_groups > 1;
  group_tile_ = packed_.num_groups;
  if (groups_outer_) {
    const int64_t ranges = threads * kMinPixelTilesPerThread < packed_.num_groups
                               ? threads * kMinPixelTilesPerThread
                               : packed_.num_groups;
    group_tile_ = (packed_.num_groups + ranges - 1) / ranges;
  }
  prepared_ = true;
  return true;
}

void SparseConvOperator::PadRows(const float* input, int64_t first_row, int64_t end_row) {
  // Rows are indexed over batch x in_h; each input row is copied into its padded position.
  const ConvGeometry& g = geometry_;
  const size_t row_floats = static_cast<size_t>(g.in_w) * g.channels;
  for (int64_t row = first_row; row < end_row; ++row) {
    const int64_t image = row / g.in_h;
    const int64_t y = row % g.in_h;
    float* destination = padded_input_.data() + image * g.PaddedImageSize() +
                         ((y + g.pad_top) * g.padded_w + g.pad_left) * g.channels;
    std::memcpy(destination, input + row * row_floats, row_floats * sizeof(float));
  }
}

bool SparseConvOperator::Run(const float* input, float* output) {
  if (!prepared_) return false;
  if (geometry_.batch == 0) return true;
  const ConvGeometry& g = geometry_;
  const float* source = input;
  if (g.needs_padding) {
    const bool padded = Parallelize1DTile(
        pool_.get(), static_cast<int64_t>(g.batch) * g.in_h, 1,
        [this, input](int64_t row, int64_t rows) { PadRows(input, row, row + rows); });
    if (!padded) return false;
    source = padded_input_.data();
  }
  SparseTileArgs base;
  base.input = source;
  base.pixel_offsets = pixel_offsets_.data();
  base.num_pixels = 0;
  base.first_group = 0;
  base.end_group = 0;
  base.group_begin = packed_.group_begin.data();
  base.weights = packed_.weights.data();
  base.tap_offsets = tap_offsets_.data();
  base.bias = packed_.bias.data();
  base.output = output;
  base.output_pixel_stride = g.out_channels;
  base.out_channels = g.out_channels;
  base.activation_min = activation_min_;
  base.activation_max = activation_max_;
  const SparseTileFunction function = variant_->function;
  auto tile = [&base, function](int64_t pixel, int64_t pixels, int64_t group, int64_t groups) {
    SparseTileArgs args = base;
    args.pixel_offsets = base.pixel_offsets + pixel;
    args.num_pixels = static_cast<int>(pixels);
    args.first_group = static_cast<int>(group);
    args.end_group = static_cast<int>(group + groups);
    args.output = base.output + pixel * base.output_pixel_stride;
    function(args);
  };
  const int64_t pixels = static_cast<int64_t>(pixel_offsets_.size());
  const int64_t groups = packed_.num_groups;
  const int64_t tile_pixels = variant_->tile_pixels;
  if (groups_outer_) {
    return Parallelize2DTile(pool_.get(), groups, pixels, group_tile_, tile_pixels,
                             [&tile](int64_t group, int64_t pixel, int64_t group_count,
                                     int64_t pixel_count) {
                               tile(pixel, pixel_count, group, group_count);
                             });
  }
  return Parallelize2DTile(pool_.get(), pixels, groups, tile_pixels, group_tile_,
                           [&tile](int64_t pixel, int64_t group, int64_t pixel_count,
                                   int64_t group_count) {
                             tile(pixel, pixel_count, group, group_count);
                           });
}

}  // namespace tflite_sparse
