#include "kernels.h"

namespace tflite_sparse {

ConvRowKernel SelectRowKernel(Isa isa, int block_n) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::kAvx512:
      return Avx512RowKernel(block_n);
    case Isa::kAvx2:
      return Avx2RowKernel(block_n);
#else
    case Isa::kAvx512:
    case Isa::kAvx2:
      return nullptr;
#endif
    case Isa::kGeneric:
      break;
  }
  return GenericRowKernel(block_n);
}

}  // namespace tflite_sparse
