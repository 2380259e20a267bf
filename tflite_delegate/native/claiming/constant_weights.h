// Reading a CONV_2D node's constant filter and bias as float32: either a read-only float32
// constant, or the output of a DEQUANTIZE node whose input is a read-only float16 constant
// (the converter's float16-weight models).
#ifndef TFLITE_DELEGATE_CLAIMING_CONSTANT_WEIGHTS_H_
#define TFLITE_DELEGATE_CLAIMING_CONSTANT_WEIGHTS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "abi/tflite_abi.h"
#include "claiming/refusal.h"

namespace tflite_sparse {

// Maps a tensor index to the input tensor of the DEQUANTIZE node producing it.
using DequantizeSources = std::map<int, int>;

// Builds the DEQUANTIZE map for the nodes of `execution_plan`.
DequantizeSources FindDequantizeSources(TfLiteContext* context,
                                        const std::vector<int>& execution_plan);

// True if `index` names a tensor of `context`.
bool ValidTensorIndex(const TfLiteContext* context, int index);

// Number of elements of a tensor, or -1 if its dims are missing or negative, or the count does
// not fit int64.
int64_t ElementCount(const TfLiteTensor& tensor);

// "FLOAT32", "INT8", ... for messages.
const char* TypeName(TfLiteType type);

// Copies the constant tensor `tensor_index` as float32 into `values` (tracing one DEQUANTIZE of
// a float16 constant). `role` ("filter"/"bias") names it in the refusal.
bool ReadConstantFloats(TfLiteContext* context, int tensor_index,
                        const DequantizeSources& dequantize_sources, const std::string& role,
                        std::vector<float>* values, Refusal* refusal);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CLAIMING_CONSTANT_WEIGHTS_H_
