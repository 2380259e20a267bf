// Packing of a dense OHWI filter into kept tap vectors for the 1xN microkernels.
//
// Layout: for each group g of N output channels, its kept tap vectors in ascending tap order
// (ky, kx, ci), each contributing N contiguous weights (zero-filled past O in the last group).
// group_begin[g] .. group_begin[g+1] index the kept tap vectors of group g (row pointers). The
// microkernels additionally get, per kept tap vector, the offset of its input value from an
// output pixel's receptive-field origin in the pre-padded input; it depends on the input width
// and is therefore computed at prepare time (ComputeTapOffsets).
#ifndef TFLITE_DELEGATE_PACKING_PACKING_H_
#define TFLITE_DELEGATE_PACKING_PACKING_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "packing/block_pattern.h"
#include "common/aligned_buffer.h"
#include "common/conv_shape.h"
#include "common/conv_geometry.h"

namespace tflite_sparse {

struct PackedFilter {
  FilterShape shape;
  int block_n = 1;
  int num_groups = 0;
  AlignedBuffer weights;             // kept tap vectors x block_n floats, 64-byte aligned
  AlignedBuffer bias;                // num_groups x block_n floats (zeros when absent / padded)
  std::vector<int32_t> group_begin;  // num_groups + 1 row pointers into the kept tap vectors
  std::vector<int32_t> tap_index;    // per kept tap vector: (ky * KW + kx) * I + ci
};

// Packs `filter` (dense OHWI, shape `shape`) and `bias` (O floats or nullptr) with the width and
// kept tap vectors of `pattern`. Returns false with `error` set if an index would exceed 32 bits.
// Throws std::bad_alloc when memory runs out.
bool PackFilter(const float* filter, const float* bias, const FilterShape& shape,
                const BlockPattern& pattern, PackedFilter* packed, std::string* error);

// The window row, window column and input channel of a packed tap index
// ((ky * KW + kx) * I + ci).
struct TapPosition {
  int64_t ky;
  int64_t kx;
  int64_t channel;
};
TapPosition DecodeTapIndex(int64_t tap_index, const FilterShape& shape);

// Per kept tap vector, the input offset (floats) from an output pixel's receptive-field origin
// in the pre-padded NHWC image of `geometry`. Returns false if an offset does not fit 32 bits.
bool ComputeTapOffsets(const PackedFilter& packed, const ConvGeometry& geometry,
                       std::vector<int32_t>* offsets);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_PACKING_PACKING_H_
