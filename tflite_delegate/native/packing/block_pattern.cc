#include "packing/block_pattern.h"

#include <algorithm>

namespace tflite_sparse {

namespace {

int GroupEnd(const FilterShape& shape, int block_n, int group) {
  return std::min(shape.out_channels, (group + 1) * block_n);
}

int CeilDiv(int numerator, int denominator) { return (numerator + denominator - 1) / denominator; }

void MinMax(const std::vector<int>& counts, int* low, int* high) {
  if (counts.empty()) return;
  const auto [first, last] = std::minmax_element(counts.begin(), counts.end());
  *low = *first;
  *high = *last;
}

}  // namespace

bool TapVectorIsNonzero(const float* filter, const FilterShape& shape, int block_n, int group,
                        int64_t tap) {
  const int64_t taps = shape.TapsPerChannel();
  for (int channel = group * block_n; channel < GroupEnd(shape, block_n, group); ++channel) {
    if (filter[channel * taps + tap] != 0.0f) return true;
  }
  return false;
}

bool BlockWidthHolds(const float* filter, const FilterShape& shape, int block_n) {
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

int DetectBlockWidth(const float* filter, const FilterShape& shape,
                     const std::vector<int>& widths) {
  int widest = 0;
  for (int width : widths) widest = std::max(widest, width);
  int widest_useful = 1;
  while (widest_useful < shape.out_channels && widest_useful < widest) widest_useful *= 2;
  std::vector<int> candidates(widths);
  std::sort(candidates.rbegin(), candidates.rend());
  for (int block_n : candidates) {
    if (block_n > widest_useful) continue;
    if (block_n == 1 || BlockWidthHolds(filter, shape, block_n)) return block_n;
  }
  return 1;
}

BlockPattern AnalyzeBlockPattern(const float* filter, const FilterShape& shape, int block_n) {
  BlockPattern pattern;
  pattern.block_n = block_n;
  pattern.num_groups = CeilDiv(shape.out_channels, block_n);
  const int64_t taps = shape.TapsPerChannel();
  pattern.total_tap_vectors = static_cast<int64_t>(pattern.num_groups) * taps;
  pattern.total_blocks = static_cast<int64_t>(pattern.num_groups) * shape.in_channels;
  pattern.kept_tap_vectors_per_group.assign(pattern.num_groups, 0);
  pattern.kept_blocks_per_group.assign(pattern.num_groups, 0);
  std::vector<char> block_kept(static_cast<size_t>(shape.in_channels));
  for (int group = 0; group < pattern.num_groups; ++group) {
    std::fill(block_kept.begin(), block_kept.end(), 0);
    int kept = 0;
    for (int64_t tap = 0; tap < taps; ++tap) {
      if (!TapVectorIsNonzero(filter, shape, block_n, group, tap)) continue;
      ++kept;
      block_kept[static_cast<size_t>(tap % shape.in_channels)] = 1;
    }
    pattern.kept_tap_vectors_per_group[group] = kept;
    pattern.kept_tap_vectors += kept;
    const int blocks = static_cast<int>(std::count(block_kept.begin(), block_kept.end(), 1));
    pattern.kept_blocks_per_group[group] = blocks;
    pattern.kept_blocks += blocks;
  }
  MinMax(pattern.kept_tap_vectors_per_group, &pattern.kept_tap_vectors_min,
         &pattern.kept_tap_vectors_max);
  MinMax(pattern.kept_blocks_per_group, &pattern.kept_blocks_min, &pattern.kept_blocks_max);
  pattern.tap_vector_sparsity =
      pattern.total_tap_vectors > 0
          ? 1.0 - static_cast<double>(pattern.kept_tap_vectors) / pattern.total_tap_vectors
          : 0.0;
  pattern.block_sparsity =
      pattern.total_blocks > 0
          ? 1.0 - static_cast<double>(pattern.kept_blocks) / pattern.total_blocks
          : 0.0;
  if (pattern.kept_blocks > 0) {
    const double mean = static_cast<double>(pattern.kept_blocks) / pattern.num_groups;
    pattern.balance_ratio = pattern.kept_blocks_max / mean;
  }
  return pattern;
}

}  // namespace tflite_sparse
