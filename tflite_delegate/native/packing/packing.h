// Block-sparse-row packing of a dense OHWI filter for the 1xN kernels.
//
// Layout: for each group g of N output channels, the kept blocks in ascending tap order
// (ky, kx, ci), each contributing N contiguous weights (zero-filled past O in the last group).
// group_begin[g] .. group_begin[g+1] index the kept blocks of group g (the row pointers); the
// kernel additionally gets, per kept block, the offset of its input value relative to an output
// pixel's receptive-field origin in the pre-padded input, which depends on the input width and
// is therefore computed at prepare time (ComputeInputOffsets).
#ifndef TFLITE_DELEGATE_PACKING_H_
#define TFLITE_DELEGATE_PACKING_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "aligned_buffer.h"
#include "block_pattern.h"
#include "conv_geometry.h"

namespace tflite_sparse {

struct PackedFilter {
  FilterShape shape;
  int block_n = 1;
  int num_groups = 0;
  AlignedBuffer weights;            // kept blocks x block_n floats, 64-byte aligned
  AlignedBuffer bias;               // num_groups x block_n floats (zeros when absent / padded)
  std::vector<int32_t> group_begin;  // num_groups + 1 row pointers into the kept blocks
  std::vector<int32_t> block_tap;    // per kept block: tap index (ky * KW + kx) * I + ci
};

// Packs `filter` (dense OHWI, shape `shape`) and `bias` (O floats or nullptr) with the block
// width and kept blocks of `pattern`. Returns false with `error` set if an index would exceed
// 32 bits or memory runs out.
bool PackFilter(const float* filter, const float* bias, const FilterShape& shape,
                const BlockPattern& pattern, PackedFilter* packed, std::string* error);

// Per kept block, the input offset (floats) from an output pixel's receptive-field origin in the
// pre-padded NHWC image of `geometry`. Returns false if an offset does not fit 32 bits.
bool ComputeInputOffsets(const PackedFilter& packed, const ConvGeometry& geometry,
                         std::vector<int32_t>* offsets);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_PACKING_H_
