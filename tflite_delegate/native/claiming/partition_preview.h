// How TFLite would cut a set of nodes into delegate partitions, asked before the delegate commits
// to it (TfLiteContext::PreviewDelegatePartitioning): the fused ADD (add_fusion.h), the folded
// PAD (pad_folding.h) and the fused max pool (pool_fusion.h) each need their nodes and their
// conv in one partition, with the tensors between them read by nothing outside it.
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

// True if TFLite would make `nodes` one partition whose only output is `output`.
bool OnePartitionWithOneOutput(TfLiteContext* context, const std::vector<int>& nodes,
                               int output);

// Nodes that must run in their conv's partition, and the tensors between them that must not
// leave it (a folded PAD and its output; a fused pool, its input and its PAD's output).
struct Companions {
  int conv_node = -1;
  std::vector<int> nodes;
  std::vector<int> internal_tensors;
};

// The keys of `companions` whose nodes TFLite would not put in their conv's partition, or whose
// internal tensors would be outputs of it, when `request` is replaced in one call; every key
// when the runtime cannot preview.
std::vector<int> SplitCompanions(TfLiteContext* context, const std::vector<int>& request,
                                 const std::map<int, Companions>& companions);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CLAIMING_PARTITION_PREVIEW_H_
