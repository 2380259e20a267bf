// Portable C++ float32 microkernels (any architecture). One line per registry row of
// registry.cc; the arithmetic is the template's (sparse_tile_template.h).
#include "microkernels/max_pool_template.h"
#include "microkernels/sparse_tile_template.h"

namespace tflite_sparse {
namespace microkernels {

void f32_1x32_p2_generic(const SparseTileArgs& args) { SparseTile<ScalarVector, 32, 2>(args); }
void f32_1x16_p4_generic(const SparseTileArgs& args) { SparseTile<ScalarVector, 16, 4>(args); }
void f32_1x8_p4_generic(const SparseTileArgs& args) { SparseTile<ScalarVector, 8, 4>(args); }
void f32_1x4_p4_generic(const SparseTileArgs& args) { SparseTile<ScalarVector, 4, 4>(args); }
void f32_1x2_p4_generic(const SparseTileArgs& args) { SparseTile<ScalarVector, 2, 4>(args); }
void f32_1x1_p4_generic(const SparseTileArgs& args) { SparseTile<ScalarVector, 1, 4>(args); }

void f32_maxpool_row_generic(const MaxPoolRowArgs& args) {
  MaxPoolRow<ScalarVector, ScalarVector>(args);
}

}  // namespace microkernels
}  // namespace tflite_sparse
