#include "block_pattern.h"

#include <algorithm>

namespace tflite_sparse {

namespace {

int GroupEnd(const FilterShape& shape, int block_n, int group) {
  return std::min(shape.out_channels, (group + 1) * block_n);
}

int CeilDiv(int numerator, int denominator) { return (numerator + denominator - 1) / denominator; }

}  // namespace

bool BlockIsNonzero(const float* filter, const FilterShape& shape, int block_n, int group,
                    int64_t tap) {
  const int64_t taps = shape.TapsPerChannel();
  for (int channel = group * block_n; channel < GroupEnd(shape, block_n, group); ++channel) {
    if (filter[channel * taps + tap] != 0.0f) return true;
  }
  return false;
}

bool BlockPatternHolds(const float* filter, const FilterShape& shape, int block_n) {
  const int64_t taps = shape.TapsPerChannel();
  const int groups = CeilDiv(shape.out_channels, block_n);
  int64_t zero_weights = 0;
  int64_t stray_zeros = 0;
  for (int group = 0; group < groups; ++group) {
    const int begin = group * block_n;
    const int end = GroupEnd(shape, block_n, group);
    for (int64_t tap = 0; tap < taps; ++tap) {
      int nonzero = 0;
      for (int channel = begin; channel < end; ++channel) {
        nonzero += filter[channel * taps + tap] != 0.0f;
      }
      const int zeros = end - begin - nonzero;
      zero_weights += zeros;
      if (nonzero > 0) stray_zeros += zeros;
    }
  }
  return stray_zeros * kStrayZeroLimit <= zero_weights;
}

int DetectBlockWidth(const float* filter, const FilterShape& shape) {
  int widest_useful = 1;
  while (widest_useful < shape.out_channels && widest_useful < kBlockWidths[0]) {
    widest_useful *= 2;
  }
  for (int block_n : kBlockWidths) {
    if (block_n > widest_useful) continue;
    if (block_n == 1 || BlockPatternHolds(filter, shape, block_n)) return block_n;
  }
  return 1;
}

BlockPattern AnalyzeBlockPattern(const float* filter, const FilterShape& shape, int block_n) {
  BlockPattern pattern;
  pattern.block_n = block_n > 0 ? block_n : DetectBlockWidth(filter, shape);
  pattern.num_groups = CeilDiv(shape.out_channels, pattern.block_n);
  const int64_t taps = shape.TapsPerChannel();
  pattern.total_blocks = static_cast<int64_t>(pattern.num_groups) * taps;
  pattern.nonzero_blocks_per_group.assign(pattern.num_groups, 0);
  for (int group = 0; group < pattern.num_groups; ++group) {
    int kept = 0;
    for (int64_t tap = 0; tap < taps; ++tap) {
      if (BlockIsNonzero(filter, shape, pattern.block_n, group, tap)) ++kept;
    }
    pattern.nonzero_blocks_per_group[group] = kept;
    pattern.nonzero_blocks += kept;
  }
  if (pattern.num_groups > 0) {
    const auto [low, high] = std::minmax_element(pattern.nonzero_blocks_per_group.begin(),
                                                 pattern.nonzero_blocks_per_group.end());
    pattern.blocks_per_group_min = *low;
    pattern.blocks_per_group_max = *high;
    pattern.uniform = *low == *high;
  }
  pattern.block_sparsity =
      pattern.total_blocks > 0
          ? 1.0 - static_cast<double>(pattern.nonzero_blocks) / pattern.total_blocks
          : 0.0;
  return pattern;
}

}  // namespace tflite_sparse
