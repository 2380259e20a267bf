#include "claiming/partition_preview.h"

#include "abi/int_array.h"

namespace tflite_sparse {

bool PreviewPartitions(TfLiteContext* context, const std::vector<int>& nodes,
                       std::vector<PreviewedPartition>* previewed) {
  if (context->PreviewDelegatePartitioning == nullptr) return false;
  const IntArray array = MakeIntArray(nodes);
  TfLiteDelegateParams* partitions = nullptr;
  int count = 0;
  if (context->PreviewDelegatePartitioning(context, array.get(), &partitions, &count) !=
          kTfLiteOk ||
      (count > 0 && partitions == nullptr)) {
    return false;
  }
  const auto members = [](const TfLiteIntArray* list) {
    return list == nullptr ? std::set<int>() : std::set<int>(list->data, list->data + list->size);
  };
  previewed->clear();
  for (int p = 0; p < count; ++p) {
    previewed->push_back({members(partitions[p].nodes_to_replace),
                          members(partitions[p].output_tensors)});
  }
  return true;
}

std::map<int, int> PartitionOfNodes(const std::vector<PreviewedPartition>& partitions) {
  std::map<int, int> partition_of;
  for (size_t p = 0; p < partitions.size(); ++p) {
    for (const int node : partitions[p].nodes) partition_of[node] = static_cast<int>(p);
  }
  return partition_of;
}

bool OnePartitionWithOneOutput(TfLiteContext* context, const std::vector<int>& nodes,
                               int output) {
  std::vector<PreviewedPartition> partitions;
  return PreviewPartitions(context, nodes, &partitions) && partitions.size() == 1 &&
         partitions[0].nodes.size() == nodes.size() &&
         partitions[0].outputs == std::set<int>{output};
}

std::vector<int> SplitCompanions(TfLiteContext* context, const std::vector<int>& request,
                                 const std::map<int, Companions>& companions) {
  std::vector<int> split;
  std::vector<PreviewedPartition> partitions;
  const bool previewed = PreviewPartitions(context, request, &partitions);
  const std::map<int, int> partition_of = PartitionOfNodes(partitions);
  for (const auto& [key, group] : companions) {
    const auto conv = partition_of.find(group.conv_node);
    bool together = previewed && conv != partition_of.end();
    for (const int node : group.nodes) {
      const auto found = partition_of.find(node);
      together = together && found != partition_of.end() && found->second == conv->second;
    }
    for (const int tensor : group.internal_tensors) {
      together = together && !partitions[static_cast<size_t>(conv->second)].outputs.count(tensor);
    }
    if (!together) split.push_back(key);
  }
  return split;
}

}  // namespace tflite_sparse
