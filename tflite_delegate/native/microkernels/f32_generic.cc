// Portable C++ row kernels (any architecture); also the reference the ISA variants are tested
// against.
#include "kernel_template.h"

namespace tflite_sparse {

ConvRowKernel GenericRowKernel(int block_n) {
  switch (block_n) {
    case 32:
      return ConvRow<ScalarVector, 32, 2>;
    case 16:
      return ConvRow<ScalarVector, 16, 4>;
    case 8:
      return ConvRow<ScalarVector, 8, 4>;
    case 4:
      return ConvRow<ScalarVector, 4, 4>;
    case 2:
      return ConvRow<ScalarVector, 2, 4>;
    case 1:
      return ConvRow<ScalarVector, 1, 4>;
    default:
      return nullptr;
  }
}

}  // namespace tflite_sparse
