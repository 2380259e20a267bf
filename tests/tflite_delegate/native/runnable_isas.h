// The microkernel ISAs the C++ tests run every check with.
#ifndef TESTS_TFLITE_DELEGATE_NATIVE_RUNNABLE_ISAS_H_
#define TESTS_TFLITE_DELEGATE_NATIVE_RUNNABLE_ISAS_H_

#include <vector>

#include "microkernels/microkernel.h"

namespace native_test {

// The ISAs this build registers and this CPU runs, generic first.
inline std::vector<tflite_sparse::Isa> RunnableIsas() {
  std::vector<tflite_sparse::Isa> isas;
  for (tflite_sparse::Isa isa :
       {tflite_sparse::Isa::kGeneric, tflite_sparse::Isa::kAvx2, tflite_sparse::Isa::kAvx512}) {
    if (tflite_sparse::IsaRegistered(isa) && tflite_sparse::IsaSupportedByCpu(isa)) {
      isas.push_back(isa);
    }
  }
  return isas;
}

}  // namespace native_test

#endif  // TESTS_TFLITE_DELEGATE_NATIVE_RUNNABLE_ISAS_H_
