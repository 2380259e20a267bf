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

bool OnePartitionWithOneOutput(TfLiteContext* context, int first_node, int second_node,
                               int output) {
  std::vector<PreviewedPartition> partitions;
  return PreviewPartitions(context, {first_node, second_node}, &partitions) &&
         partitions.size() == 1 && partitions[0].nodes.size() == 2 &&
         partitions[0].outputs == std::set<int>{output};
}

}  // namespace tflite_sparse
