#include "packing/packing.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace tflite_sparse {

namespace {
constexpr int64_t kInt32Limit = std::numeric_limits<int32_t>::max();
}  // namespace

bool PackFilter(const float* filter, const float* bias, const FilterShape& shape,
                const BlockPattern& pattern, PackedFilter* packed, std::string* error) {
  const int block_n = pattern.block_n;
  const int64_t taps = shape.TapsPerChannel();
  const int64_t packed_floats = pattern.kept_tap_vectors * block_n;
  if (pattern.kept_tap_vectors > kInt32Limit || packed_floats > kInt32Limit || taps > kInt32Limit) {
    *error = "packed indices would overflow 32-bit (" + std::to_string(packed_floats) +
             " packed weights)";
    return false;
  }
  PackedFilter result;
  result.shape = shape;
  result.block_n = block_n;
  result.num_groups = pattern.num_groups;
  result.weights.ResizeZeroed(static_cast<size_t>(packed_floats));
  result.bias.ResizeZeroed(static_cast<size_t>(pattern.num_groups) * block_n);
  result.group_begin.assign(pattern.num_groups + 1, 0);
  result.tap_index.reserve(static_cast<size_t>(pattern.kept_tap_vectors));
  int64_t kept = 0;
  for (int group = 0; group < pattern.num_groups; ++group) {
    result.group_begin[group] = static_cast<int32_t>(kept);
    const int first_channel = group * block_n;
    const int channels_in_group = std::min(block_n, shape.out_channels - first_channel);
    for (int64_t tap = 0; tap < taps; ++tap) {
      if (!TapVectorIsNonzero(filter, shape, block_n, group, tap)) continue;
      float* destination = result.weights.data() + kept * block_n;
      for (int lane = 0; lane < channels_in_group; ++lane) {
        destination[lane] = filter[(first_channel + lane) * taps + tap];
      }
      result.tap_index.push_back(static_cast<int32_t>(tap));
      ++kept;
    }
    if (bias != nullptr) {
      for (int lane = 0; lane < channels_in_group; ++lane) {
        result.bias.data()[first_channel + lane] = bias[first_channel + lane];
      }
    }
  }
  result.group_begin[pattern.num_groups] = static_cast<int32_t>(kept);
  if (kept != pattern.kept_tap_vectors) {
    *error = "internal error: tap-vector count changed while packing";
    return false;
  }
  *packed = std::move(result);
  return true;
}

TapPosition DecodeTapIndex(int64_t tap_index, const FilterShape& shape) {
  return {tap_index / (static_cast<int64_t>(shape.in_channels) * shape.kernel_w),
          tap_index / shape.in_channels % shape.kernel_w, tap_index % shape.in_channels};
}

bool ComputeTapOffsets(const PackedFilter& packed, const ConvGeometry& geometry,
                       std::vector<int32_t>* offsets) {
  const int64_t row_stride = static_cast<int64_t>(geometry.padded_w) * geometry.channels;
  offsets->resize(packed.tap_index.size());
  for (size_t vector = 0; vector < packed.tap_index.size(); ++vector) {
    const TapPosition tap = DecodeTapIndex(packed.tap_index[vector], packed.shape);
    const int64_t offset = tap.ky * geometry.params.dilation_h * row_stride +
                           tap.kx * geometry.params.dilation_w * geometry.channels + tap.channel;
    if (offset > kInt32Limit) return false;
    (*offsets)[vector] = static_cast<int32_t>(offset);
  }
  return true;
}

}  // namespace tflite_sparse
