// Detection of the 1xN block pattern on a dense OHWI convolution filter.
//
// A 1xN block (g, ky, kx, ci) is the N weights filter[g*N : g*N+N, ky, kx, ci]: N consecutive
// output channels at one tap position. Models trained with SUBP (whole KH x KW kernel per block)
// are the special case where all taps of one (g, ci) are zero together.
//
// Any width gives correct results (a kept block may hold zeros, which the kernel multiplies);
// the width only decides speed. A width "holds" when all but at most 1 in kStrayZeroLimit of the
// filter's zero weights lie in all-zero blocks: the others are stray zeros, stored inside kept
// blocks. Exact 1xN structure has none, but a trained or float16-rounded filter may hold a few
// exact zeros inside kept blocks, and one of them must not push a 1x16 layer down to the scalar
// 1x1 kernel. A dense filter (no zeros) holds at every width.
#ifndef TFLITE_DELEGATE_BLOCK_PATTERN_H_
#define TFLITE_DELEGATE_BLOCK_PATTERN_H_

#include <cstdint>
#include <vector>

namespace tflite_sparse {

// Candidate block widths, widest first.
constexpr int kBlockWidths[] = {32, 16, 8, 4, 2, 1};

// A width holds when stray zeros * kStrayZeroLimit <= zero weights.
constexpr int64_t kStrayZeroLimit = 32;

struct FilterShape {
  int out_channels = 0;  // O
  int kernel_h = 0;      // KH
  int kernel_w = 0;      // KW
  int in_channels = 0;   // I
  // Tap positions per output channel: KH * KW * I.
  int64_t TapsPerChannel() const {
    return static_cast<int64_t>(kernel_h) * kernel_w * in_channels;
  }
};

struct BlockPattern {
  int block_n = 1;              // N used for packing
  int num_groups = 0;           // ceil(O / N); the last group may be partial
  std::vector<int> nonzero_blocks_per_group;  // kept blocks per group, size num_groups
  int64_t nonzero_blocks = 0;   // kept blocks over all groups
  int64_t total_blocks = 0;     // num_groups * KH * KW * I
  double block_sparsity = 0.0;  // 1 - nonzero_blocks / total_blocks (0 for an empty filter)
  int blocks_per_group_min = 0;
  int blocks_per_group_max = 0;
  bool uniform = true;  // every group keeps the same number of blocks
};

// True if the width `block_n` holds for `filter` (OHWI, dense): at most 1/kStrayZeroLimit of
// its zero weights lie inside kept blocks. The last group counts only its real channels when O
// is not a multiple of block_n.
bool BlockPatternHolds(const float* filter, const FilterShape& shape, int block_n);

// Widest N in kBlockWidths, not wider than O rounded up to a power of two, for which the pattern
// holds (N = 1 always holds).
int DetectBlockWidth(const float* filter, const FilterShape& shape);

// Block statistics at `block_n` (0: detect it). A forced width whose pattern does not hold is
// still valid: its kept blocks simply store more zeros.
BlockPattern AnalyzeBlockPattern(const float* filter, const FilterShape& shape, int block_n);

// True if block (group, tap) has a non-zero weight; tap indexes (ky, kx, ci) in OHWI order.
bool BlockIsNonzero(const float* filter, const FilterShape& shape, int block_n, int group,
                    int64_t tap);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_BLOCK_PATTERN_H_
