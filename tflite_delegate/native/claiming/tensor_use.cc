#include "claiming/tensor_use.h"

namespace tflite_sparse {

int TensorUse::ProducerOf(int tensor) const {
  const auto found = producer.find(tensor);
  return found == producer.end() ? -1 : found->second;
}

int TensorUse::ReadsOf(int tensor) const {
  const auto found = readers.find(tensor);
  return found == readers.end() ? 0 : static_cast<int>(found->second.size());
}

int TensorUse::OnlyReaderOf(int tensor) const {
  const auto found = readers.find(tensor);
  return found == readers.end() || found->second.size() != 1 ? -1 : found->second[0];
}

bool FindTensorUse(TfLiteContext* context, const std::vector<int>& execution_plan,
                   TensorUse* use) {
  *use = TensorUse();
  for (size_t i = 0; i < execution_plan.size(); ++i) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* registration = nullptr;
    if (context->GetNodeAndRegistration(context, execution_plan[i], &node, &registration) !=
            kTfLiteOk ||
        node == nullptr) {
      return false;
    }
    use->position[execution_plan[i]] = static_cast<int>(i);
    if (node->inputs != nullptr) {
      for (int k = 0; k < node->inputs->size; ++k) {
        use->readers[node->inputs->data[k]].push_back(execution_plan[i]);
      }
    }
    if (node->outputs != nullptr) {
      for (int k = 0; k < node->outputs->size; ++k) {
        use->producer[node->outputs->data[k]] = execution_plan[i];
      }
    }
  }
  return true;
}

}  // namespace tflite_sparse
