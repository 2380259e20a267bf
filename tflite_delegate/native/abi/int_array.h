// TfLiteIntArray lists the plugin builds for the runtime: node lists for
// ReplaceNodeSubsetsWithDelegateKernels and PreviewDelegatePartitioning (which copy them; the
// caller frees), and shapes for ResizeTensor (which takes ownership: release() the pointer).
#ifndef TFLITE_DELEGATE_ABI_INT_ARRAY_H_
#define TFLITE_DELEGATE_ABI_INT_ARRAY_H_

#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "abi/tflite_abi.h"

namespace tflite_sparse {

struct IntArrayFree {
  void operator()(TfLiteIntArray* array) const { std::free(array); }
};
using IntArray = std::unique_ptr<TfLiteIntArray, IntArrayFree>;

// A malloc'ed TfLiteIntArray holding `values` (the runtime frees arrays it owns with free());
// throws std::bad_alloc.
inline IntArray MakeIntArray(const std::vector<int>& values) {
  auto* array =
      static_cast<TfLiteIntArray*>(std::malloc(sizeof(int) * (values.size() + 1)));
  if (array == nullptr) throw std::bad_alloc();
  array->size = static_cast<int>(values.size());
  for (size_t k = 0; k < values.size(); ++k) array->data[k] = values[k];
  return IntArray(array);
}

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_ABI_INT_ARRAY_H_
