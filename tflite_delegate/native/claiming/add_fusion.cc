#include "claiming/add_fusion.h"

#include <set>

#include "claiming/partition_preview.h"

namespace tflite_sparse {

namespace {

bool SameDims(const TfLiteIntArray* a, const TfLiteIntArray* b) {
  if (a == nullptr || b == nullptr || a->size != b->size) return false;
  for (int axis = 0; axis < a->size; ++axis) {
    if (a->data[axis] != b->data[axis]) return false;
  }
  return true;
}

bool IsFloatTensor(const TfLiteContext& context, int tensor) {
  return tensor >= 0 && static_cast<size_t>(tensor) < context.tensors_size &&
         context.tensors[tensor].type == kTfLiteFloat32 && context.tensors[tensor].dims != nullptr;
}

}  // namespace

void SplitFusionsByPartition(TfLiteContext* context, const std::map<int, ConvLayerPlan>& claimed,
                             const std::map<int, std::vector<int>>& companions,
                             std::map<int, FusedAdd>* together, std::map<int, FusedAdd>* alone) {
  alone->clear();
  // Each round moves a pair to its alternative conv (at most once per pair) or to `alone`.
  for (size_t round = 0; !together->empty() && round <= 2 * claimed.size(); ++round) {
    std::vector<int> nodes;
    for (const auto& [conv_node, plan] : claimed) {
      if (alone->count(conv_node)) continue;
      nodes.push_back(conv_node);
      const auto companion = companions.find(conv_node);
      if (companion != companions.end()) {
        nodes.insert(nodes.end(), companion->second.begin(), companion->second.end());
      }
    }
    for (const auto& [conv_node, add] : *together) nodes.push_back(add.add_node);
    std::vector<PreviewedPartition> partitions;
    if (!PreviewPartitions(context, nodes, &partitions)) break;
    const std::map<int, int> partition_of = PartitionOfNodes(partitions);
    const auto partition = [&](int node) {
      const auto found = partition_of.find(node);
      return found == partition_of.end() ? -1 : found->second;
    };
    std::map<int, FusedAdd> kept;
    bool changed = false;
    for (const auto& [conv_node, add] : *together) {
      const int add_partition = partition(add.add_node);
      const int own_output = claimed.at(conv_node).output_tensor;
      if (add_partition >= 0 && partition(conv_node) == add_partition &&
          !partitions[add_partition].outputs.count(own_output)) {
        kept.emplace(conv_node, add);
        continue;
      }
      changed = true;
      const int other = add.alternative_conv;
      if (other >= 0 && !together->count(other) && !kept.count(other) && !alone->count(other) &&
          partition(other) == add_partition && partition(conv_node) >= 0) {
        // The former conv runs in another partition, before the ADD's: its output is ready.
        FusedAdd moved = add;
        moved.residual_tensor = own_output;
        moved.alternative_conv = -1;
        kept.emplace(other, moved);
      } else {
        alone->emplace(conv_node, add);
      }
    }
    together->swap(kept);
    if (!changed) return;
  }
  // No preview, or no fixed point: every remaining pair on its own.
  alone->insert(together->begin(), together->end());
  together->clear();
}

bool FusionFitsOnePartition(TfLiteContext* context, int conv_node, const FusedAdd& add) {
  return OnePartitionWithOneOutput(context, {conv_node, add.add_node}, add.output_tensor);
}

std::map<int, FusedAdd> FindFusedAdds(TfLiteContext* context,
                                      const std::vector<int>& execution_plan,
                                      const TensorUse& use,
                                      const std::map<int, ConvLayerPlan>& claimed) {
  const auto claimed_conv_of = [&](int tensor) {
    const int producer = use.ProducerOf(tensor);
    return producer >= 0 && claimed.count(producer) ? producer : -1;
  };

  std::map<int, FusedAdd> fused;
  for (int add_node : execution_plan) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* registration = nullptr;
    if (context->GetNodeAndRegistration(context, add_node, &node, &registration) != kTfLiteOk ||
        node == nullptr || registration == nullptr ||
        registration->builtin_code != kTfLiteBuiltinAdd || node->inputs == nullptr ||
        node->inputs->size != 2 || node->outputs == nullptr || node->outputs->size != 1 ||
        node->builtin_data == nullptr) {
      continue;
    }
    const int a = node->inputs->data[0];
    const int b = node->inputs->data[1];
    const int output = node->outputs->data[0];
    if (a == b || !IsFloatTensor(*context, a) || !IsFloatTensor(*context, b) ||
        !IsFloatTensor(*context, output) ||
        !SameDims(context->tensors[a].dims, context->tensors[b].dims) ||
        !SameDims(context->tensors[a].dims, context->tensors[output].dims)) {
      continue;  // broadcasting or another type: TFLite's kernel runs it
    }
    FusedAdd add;
    add.add_node = add_node;
    add.output_tensor = output;
    const auto& params = *static_cast<const TfLiteAddParams*>(node->builtin_data);
    if (!ActivationRange(params.activation, &add.activation_min, &add.activation_max)) continue;
    // The operand from the later claimed conv whose output only this ADD reads.
    int conv_node = -1;
    for (const int operand : {a, b}) {
      const int candidate = claimed_conv_of(operand);
      if (candidate < 0 || use.ReadsOf(operand) != 1 || fused.count(candidate)) continue;
      if (conv_node < 0 || use.position.at(candidate) > use.position.at(conv_node)) {
        add.alternative_conv = conv_node;
        conv_node = candidate;
        add.residual_tensor = operand == a ? b : a;
      } else {
        add.alternative_conv = candidate;
      }
    }
    if (conv_node < 0) continue;
    // The residual must exist before the conv runs: a graph input or constant, or the output of
    // a node earlier in the plan.
    const int residual_producer = use.ProducerOf(add.residual_tensor);
    if (residual_producer >= 0 &&
        use.position.at(residual_producer) > use.position.at(conv_node)) {
      continue;
    }
    if (!OnePartitionWithOneOutput(context, {conv_node, add_node}, output)) continue;
    fused.emplace(conv_node, add);
  }
  return fused;
}

}  // namespace tflite_sparse
