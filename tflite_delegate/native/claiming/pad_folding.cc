#include "claiming/pad_folding.h"

#include <cstring>

#include "claiming/constant_weights.h"
#include "claiming/partition_preview.h"

namespace tflite_sparse {

namespace {

// TFLite's builtin operator codes of the two zero-padding nodes (schema: PAD = 34, PADV2 = 60).
constexpr int kBuiltinPad = 34;
constexpr int kBuiltinPadV2 = 60;

bool ReadOnly(const TfLiteTensor& tensor) {
  return tensor.allocation_type == kTfLiteMmapRo && tensor.data.raw_const != nullptr;
}

// The [4, 2] paddings of a PAD node as int64, or false when they are not a read-only int32 or
// int64 constant of that shape.
bool ReadPaddings(const TfLiteTensor& tensor, int64_t (*pads)[2]) {
  if (!ReadOnly(tensor) || tensor.dims == nullptr || tensor.dims->size != 2 ||
      tensor.dims->data[0] != 4 || tensor.dims->data[1] != 2) {
    return false;
  }
  if (tensor.type == kTfLiteInt32 && tensor.bytes >= 8 * sizeof(int32_t)) {
    int32_t values[8];
    std::memcpy(values, tensor.data.raw_const, sizeof(values));
    for (int k = 0; k < 8; ++k) pads[k / 2][k % 2] = values[k];
    return true;
  }
  if (tensor.type == kTfLiteInt64 && tensor.bytes >= 8 * sizeof(int64_t)) {
    int64_t values[8];
    std::memcpy(values, tensor.data.raw_const, sizeof(values));
    for (int k = 0; k < 8; ++k) pads[k / 2][k % 2] = values[k];
    return true;
  }
  return false;
}

// True if PADV2's constant value tensor is a read-only float32 +0.0f (the bits of +0.0: a -0.0
// pad could change the sign of a zero output).
bool PadsWithPositiveZero(const TfLiteTensor& tensor) {
  if (!ReadOnly(tensor) || tensor.type != kTfLiteFloat32 || ElementCount(tensor) != 1 ||
      tensor.bytes < sizeof(float)) {
    return false;
  }
  uint32_t bits = 1;
  std::memcpy(&bits, tensor.data.raw_const, sizeof(bits));
  return bits == 0;
}

}  // namespace

bool DescribeFoldablePad(TfLiteContext* context, int pad_node, int pad_output, FoldedPad* fold) {
  TfLiteNode* node = nullptr;
  TfLiteRegistration* registration = nullptr;
  if (context->GetNodeAndRegistration(context, pad_node, &node, &registration) != kTfLiteOk ||
      node == nullptr || registration == nullptr || node->inputs == nullptr ||
      node->outputs == nullptr || node->outputs->size != 1 ||
      node->outputs->data[0] != pad_output) {
    return false;
  }
  const int code = registration->builtin_code;
  const int inputs = node->inputs->size;
  if (!((code == kBuiltinPad && inputs == 2) || (code == kBuiltinPadV2 && inputs == 3))) {
    return false;
  }
  for (int k = 0; k < inputs; ++k) {
    if (!ValidTensorIndex(context, node->inputs->data[k])) return false;
  }
  const TfLiteTensor& input = context->tensors[node->inputs->data[0]];
  if (input.type != kTfLiteFloat32 || input.dims == nullptr || input.dims->size != 4) {
    return false;
  }
  if (code == kBuiltinPadV2 && !PadsWithPositiveZero(context->tensors[node->inputs->data[2]])) {
    return false;
  }
  int64_t pads[4][2];
  if (!ReadPaddings(context->tensors[node->inputs->data[1]], pads)) return false;
  if (pads[0][0] != 0 || pads[0][1] != 0 || pads[3][0] != 0 || pads[3][1] != 0) return false;
  for (int axis = 1; axis <= 2; ++axis) {
    for (int side = 0; side < 2; ++side) {
      if (pads[axis][side] < 0 || pads[axis][side] > kMaxFoldedPad) return false;
    }
  }
  fold->pad_node = pad_node;
  fold->input_tensor = node->inputs->data[0];
  fold->output_tensor = pad_output;
  fold->top = static_cast<int>(pads[1][0]);
  fold->bottom = static_cast<int>(pads[1][1]);
  fold->left = static_cast<int>(pads[2][0]);
  fold->right = static_cast<int>(pads[2][1]);
  return true;
}

std::map<int, FoldedPad> FindFoldedPads(TfLiteContext* context, const TensorUse& use,
                                        const std::map<int, ConvLayerPlan>& claimed) {
  std::map<int, FoldedPad> folds;
  for (const auto& [conv_node, plan] : claimed) {
    const int pad_node = use.ProducerOf(plan.input_tensor);
    FoldedPad fold;
    if (pad_node < 0 || use.ReadsOf(plan.input_tensor) != 1 ||
        !DescribeFoldablePad(context, pad_node, plan.input_tensor, &fold) ||
        !OnePartitionWithOneOutput(context, {fold.pad_node, conv_node}, plan.output_tensor)) {
      continue;
    }
    folds.emplace(conv_node, fold);
  }
  return folds;
}

void AddFoldedZeros(const FoldedPad& pad, ConvParameters* params) {
  params->pad_top += pad.top;
  params->pad_bottom += pad.bottom;
  params->pad_left += pad.left;
  params->pad_right += pad.right;
}

void FoldPad(const FoldedPad& pad, ConvLayerPlan* plan) {
  plan->input_tensor = pad.input_tensor;
  AddFoldedZeros(pad, &plan->params);
}

}  // namespace tflite_sparse
