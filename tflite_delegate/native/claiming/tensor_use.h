// Who writes and who reads each tensor of the graph: what the passes that run a neighbouring node
// inside a claimed conv (add_fusion.h, pad_folding.h, pool_fusion.h) check first.
#ifndef TFLITE_DELEGATE_CLAIMING_TENSOR_USE_H_
#define TFLITE_DELEGATE_CLAIMING_TENSOR_USE_H_

#include <map>
#include <vector>

#include "abi/tflite_abi.h"

namespace tflite_sparse {

struct TensorUse {
  std::map<int, int> position;  // node index -> its place in the execution plan
  std::map<int, int> producer;  // tensor index -> the node that writes it
  std::map<int, std::vector<int>> readers;  // tensor index -> the node of each input naming it
  // The node writing `tensor`, or -1 (a graph input or a constant).
  int ProducerOf(int tensor) const;
  // Node inputs naming `tensor` (0 when none does).
  int ReadsOf(int tensor) const;
  // The node reading `tensor` when exactly one node input names it, else -1.
  int OnlyReaderOf(int tensor) const;
};

// The use of every tensor by the nodes of `execution_plan`; false when a node cannot be read.
bool FindTensorUse(TfLiteContext* context, const std::vector<int>& execution_plan,
                   TensorUse* use);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CLAIMING_TENSOR_USE_H_
