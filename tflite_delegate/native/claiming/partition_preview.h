// How TFLite would cut a set of nodes into delegate partitions, asked before the delegate commits
// to it (TfLiteContext::PreviewDelegatePartitioning): the fused ADD (add_fusion.h) and the folded
// PAD (pad_folding.h) each need their node and its conv in one partition, with the tensor
// between them read by nothing outside it.
#ifndef TFLITE_DELEGATE_CLAIMING_PARTITION_PREVIEW_H_
#define TFLITE_DELEGATE_CLAIMING_PARTITION_PREVIEW_H_

#include <map>
#include <set>
#include <vector>

#include "abi/tflite_abi.h"

namespace tflite_sparse {

// One partition of a preview: its nodes and its output tensors.
struct PreviewedPartition {
  std::set<int> nodes;
  std::set<int> outputs;
};

// TFLite's partitions of `nodes` replaced in one request, in the runtime's order, or false when
// the runtime cannot preview them.
bool PreviewPartitions(TfLiteContext* context, const std::vector<int>& nodes,
                       std::vector<PreviewedPartition>* previewed);

// The partition index of every node of a preview.
std::map<int, int> PartitionOfNodes(const std::vector<PreviewedPartition>& partitions);

// True if TFLite would make {first_node, second_node} one partition whose only output is
// `output`.
bool OnePartitionWithOneOutput(TfLiteContext* context, int first_node, int second_node,
                               int output);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CLAIMING_PARTITION_PREVIEW_H_
