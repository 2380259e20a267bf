// The 1xN pattern of a dense OHWI convolution filter, in the project's two units:
//
// - a *block* is N consecutive output channels x one input channel x the whole KH x KW window
//   (the unit SUBP prunes, as in keras_subp); block sparsity is the fraction of all-zero blocks.
// - a *tap vector* is the N weights of one group at one filter tap (ky, kx, ci): the unit the
//   packing stores and the microkernels skip. A tap vector is kept when any of its N weights is
//   non-zero. A filter pruned in whole blocks (SUBP) has equal block and tap-vector sparsity.
//
// A *group* is N consecutive output channels; the last one is partial when O is not a multiple
// of N.
//
// Any width gives correct results (a kept tap vector may hold zeros, which the microkernel
// multiplies); the width only decides speed. A width "holds" when all but at most 1 in
// kStrayZeroLimit of the filter's zero weights lie in all-zero tap vectors: the others are stray
// zeros, stored inside kept tap vectors. Exact 1xN structure has none, but a trained or
// float16-rounded filter may hold a few exact zeros inside kept tap vectors, and one of them must
// not push a 1x16 layer down to the 1x1 microkernel. A dense filter (no zeros) holds at every
// width. tflite_delegate/block_pattern.py is the numpy mirror of this file.
#ifndef TFLITE_DELEGATE_PACKING_BLOCK_PATTERN_H_
#define TFLITE_DELEGATE_PACKING_BLOCK_PATTERN_H_

#include <cstdint>
#include <vector>

#include "common/conv_shape.h"

namespace tflite_sparse {

// A width holds when stray zeros * kStrayZeroLimit <= zero weights.
constexpr int64_t kStrayZeroLimit = 32;

struct BlockPattern {
  int block_n = 1;     // N used for packing
  int num_groups = 0;  // ceil(O / N)
  // Tap vectors (what the packed filter stores), KH * KW * I per group.
  std::vector<int> kept_tap_vectors_per_group;
  int64_t kept_tap_vectors = 0;
  int64_t total_tap_vectors = 0;
  double tap_vector_sparsity = 0.0;  // 1 - kept / total (0 for an empty filter)
  int kept_tap_vectors_min = 0;
  int kept_tap_vectors_max = 0;
  // Blocks (whole KH x KW windows), I per group.
  std::vector<int> kept_blocks_per_group;
  int64_t kept_blocks = 0;
  int64_t total_blocks = 0;
  double block_sparsity = 0.0;  // 1 - kept / total (0 for an empty filter)
  int kept_blocks_min = 0;
  int kept_blocks_max = 0;
  double balance_ratio = 1.0;  // max / mean of kept_blocks_per_group; 1.0 when none is kept
};

// True if the width `block_n` holds for `filter` (OHWI, dense): at most 1/kStrayZeroLimit of
// its zero weights lie inside kept tap vectors. The last group counts only its real channels.
bool BlockWidthHolds(const float* filter, const FilterShape& shape, int block_n);

// Widest of `widths` (any order), not wider than O rounded up to a power of two, for which the
// width holds; 1 if none does (N = 1 always holds).
int DetectBlockWidth(const float* filter, const FilterShape& shape,
                     const std::vector<int>& widths);

// Statistics at `block_n` (> 0). A forced width that does not hold is still valid: its kept tap
// vectors simply store more zeros.
BlockPattern AnalyzeBlockPattern(const float* filter, const FilterShape& shape, int block_n);

// True if tap vector (group, tap) has a non-zero weight; tap indexes (ky, kx, ci) in OHWI order.
bool TapVectorIsNonzero(const float* filter, const FilterShape& shape, int block_n, int group,
                        int64_t tap);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_PACKING_BLOCK_PATTERN_H_
