#include "claiming/pool_fusion.h"

#include "claiming/constant_weights.h"
#include "claiming/pad_folding.h"
#include "claiming/partition_preview.h"

namespace tflite_sparse {

namespace {

bool FloatNhwc(const TfLiteTensor& tensor) {
  return tensor.type == kTfLiteFloat32 && tensor.dims != nullptr && tensor.dims->size == 4;
}

// The pool of MAX_POOL_2D node `pool_node` reading `input`, or false when the node is not one
// the pool step runs (see the header).
bool DescribePool(TfLiteContext* context, int pool_node, int input, FusedPool* fused) {
  TfLiteNode* node = nullptr;
  TfLiteRegistration* registration = nullptr;
  if (context->GetNodeAndRegistration(context, pool_node, &node, &registration) != kTfLiteOk ||
      node == nullptr || registration == nullptr ||
      registration->builtin_code != kTfLiteBuiltinMaxPool2d || node->inputs == nullptr ||
      node->outputs == nullptr || node->inputs->size != 1 || node->outputs->size != 1 ||
      node->inputs->data[0] != input || node->builtin_data == nullptr ||
      !ValidTensorIndex(context, node->outputs->data[0]) ||
      !FloatNhwc(context->tensors[input]) ||
      !FloatNhwc(context->tensors[node->outputs->data[0]])) {
    return false;
  }
  const auto* params = static_cast<const TfLitePoolParams*>(node->builtin_data);
  if ((params->padding != kTfLitePaddingSame && params->padding != kTfLitePaddingValid) ||
      params->stride_width < 1 || params->stride_height < 1 || params->filter_width < 1 ||
      params->filter_height < 1 ||
      !ActivationRange(params->activation, &fused->activation_min, &fused->activation_max)) {
    return false;
  }
  fused->pool_node = pool_node;
  fused->output_tensor = node->outputs->data[0];
  fused->params.window.padding =
      params->padding == kTfLitePaddingSame ? Padding::kSame : Padding::kValid;
  fused->params.window.stride_h = params->stride_height;
  fused->params.window.stride_w = params->stride_width;
  fused->params.filter_h = params->filter_height;
  fused->params.filter_w = params->filter_width;
  return true;
}

}  // namespace

std::map<int, FusedPool> FindFusedPools(TfLiteContext* context, const TensorUse& use,
                                        const std::map<int, ConvLayerPlan>& claimed,
                                        bool fold_pad) {
  std::map<int, FusedPool> pools;
  for (const auto& [conv_node, plan] : claimed) {
    FusedPool fused;
    fused.input_tensor = plan.output_tensor;
    int reader = use.OnlyReaderOf(plan.output_tensor);
    if (reader < 0) continue;
    std::vector<int> nodes = {conv_node};
    TfLiteNode* node = nullptr;
    TfLiteRegistration* registration = nullptr;
    if (context->GetNodeAndRegistration(context, reader, &node, &registration) != kTfLiteOk ||
        node == nullptr || node->outputs == nullptr || node->outputs->size != 1) {
      continue;
    }
    const int reader_output = node->outputs->data[0];
    FoldedPad pad;
    if (fold_pad && DescribeFoldablePad(context, reader, reader_output, &pad)) {
      if (pad.input_tensor != plan.output_tensor) continue;
      fused.pad_node = reader;
      fused.pad_output_tensor = reader_output;
      AddFoldedZeros(pad, &fused.params.window);
      nodes.push_back(reader);
      reader = use.OnlyReaderOf(reader_output);
      if (reader < 0) continue;
    }
    const int pool_input = fused.pad_node >= 0 ? fused.pad_output_tensor : plan.output_tensor;
    if (!DescribePool(context, reader, pool_input, &fused)) continue;
    nodes.push_back(reader);
    if (!OnePartitionWithOneOutput(context, nodes, fused.output_tensor)) continue;
    pools.emplace(conv_node, fused);
  }
  return pools;
}

}  // namespace tflite_sparse
