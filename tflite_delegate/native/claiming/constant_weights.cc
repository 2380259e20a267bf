#include "claiming/constant_weights.h"

#include <limits>

#include "claiming/float16.h"

namespace tflite_sparse {

const char* TypeName(TfLiteType type) {
  switch (type) {
    case kTfLiteNoType:
      return "NOTYPE";
    case kTfLiteFloat32:
      return "FLOAT32";
    case kTfLiteInt32:
      return "INT32";
    case kTfLiteUInt8:
      return "UINT8";
    case kTfLiteInt64:
      return "INT64";
    case kTfLiteString:
      return "STRING";
    case kTfLiteBool:
      return "BOOL";
    case kTfLiteInt16:
      return "INT16";
    case kTfLiteInt8:
      return "INT8";
    case kTfLiteFloat16:
      return "FLOAT16";
    case kTfLiteFloat64:
      return "FLOAT64";
    case kTfLiteInt4:
      return "INT4";
    case kTfLiteBFloat16:
      return "BFLOAT16";
  }
  return "UNKNOWN";
}

bool ValidTensorIndex(const TfLiteContext* context, int index) {
  return index >= 0 && static_cast<size_t>(index) < context->tensors_size;
}

int64_t ElementCount(const TfLiteTensor& tensor) {
  if (tensor.dims == nullptr) return -1;
  int64_t count = 1;
  for (int axis = 0; axis < tensor.dims->size; ++axis) {
    const int64_t extent = tensor.dims->data[axis];
    if (extent < 0) return -1;
    // Checked before multiplying: a crafted model must not cause signed overflow.
    if (extent != 0 && count > std::numeric_limits<int64_t>::max() / extent) return -1;
    count *= extent;
  }
  return count;
}

DequantizeSources FindDequantizeSources(TfLiteContext* context,
                                        const std::vector<int>& execution_plan) {
  DequantizeSources sources;
  for (int node_index : execution_plan) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* registration = nullptr;
    if (context->GetNodeAndRegistration(context, node_index, &node, &registration) != kTfLiteOk ||
        node == nullptr || registration == nullptr) {
      continue;
    }
    if (registration->builtin_code != kTfLiteBuiltinDequantize || node->inputs == nullptr ||
        node->outputs == nullptr || node->inputs->size != 1 || node->outputs->size != 1) {
      continue;
    }
    sources[node->outputs->data[0]] = node->inputs->data[0];
  }
  return sources;
}

bool ReadConstantFloats(TfLiteContext* context, int tensor_index,
                        const DequantizeSources& dequantize_sources, const std::string& role,
                        std::vector<float>* values, Refusal* refusal) {
  const TfLiteTensor& tensor = context->tensors[tensor_index];
  const int64_t count = ElementCount(tensor);
  if (count < 0) return refusal->Refuse(ReasonCode::kUnknownShape, role + " has unknown shape");
  if (tensor.type != kTfLiteFloat32) {
    return refusal->Refuse(ReasonCode::kUnsupportedTensorType,
                           role + " type " + TypeName(tensor.type) +
                               " unsupported (float32 or dequantized float16 constants only)");
  }
  if (tensor.quantization.type != kTfLiteNoQuantization) {
    return refusal->Refuse(ReasonCode::kQuantizedTensor, role + " is quantized");
  }
  if (tensor.allocation_type == kTfLiteMmapRo) {
    if (tensor.data.raw_const == nullptr ||
        tensor.bytes < static_cast<size_t>(count) * sizeof(float)) {
      return refusal->Refuse(ReasonCode::kConstantWithoutData, role + " constant has no data");
    }
    values->assign(tensor.data.f, tensor.data.f + count);
    return true;
  }
  const auto source = dequantize_sources.find(tensor_index);
  if (source != dequantize_sources.end() && ValidTensorIndex(context, source->second)) {
    const TfLiteTensor& half = context->tensors[source->second];
    if (half.type == kTfLiteFloat16 && half.allocation_type == kTfLiteMmapRo &&
        half.data.raw_const != nullptr && ElementCount(half) == count &&
        half.bytes >= static_cast<size_t>(count) * sizeof(uint16_t) &&
        half.quantization.type == kTfLiteNoQuantization) {
      values->resize(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) (*values)[i] = HalfToFloat(half.data.f16[i]);
      return true;
    }
  }
  return refusal->Refuse(ReasonCode::kNotConstant, role + " is not a constant");
}

}  // namespace tflite_sparse
