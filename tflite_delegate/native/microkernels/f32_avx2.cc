// AVX2 + FMA row kernels (built with -mavx2 -mfma; selected at run time only if the CPU has both).
#if defined(__x86_64__)
#include "kernel_template.h"
#include "vector_avx.h"

namespace tflite_sparse {

// Tiles sized for 16 ymm registers: P x R accumulators plus R weights and one broadcast.
ConvRowKernel Avx2RowKernel(int block_n) {
  switch (block_n) {
    case 32:
      return ConvRow<Avx256Vector, 4, 2>;
    case 16:
      return ConvRow<Avx256Vector, 2, 5>;
    case 8:
      return ConvRow<Avx256Vector, 1, 8>;
    case 4:
      return ConvRow<Avx128Vector, 1, 8>;
    case 2:
      return ConvRow<ScalarVector, 2, 4>;
    case 1:
      return ConvRow<ScalarVector, 1, 8>;
    default:
      return nullptr;
  }
}

}  // namespace tflite_sparse
#endif  // __x86_64__
