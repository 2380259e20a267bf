// Which CONV_2D nodes the delegate takes, and why it leaves the others to TFLite.
//
// Runs inside delegate Prepare (the only place where GetNodeAndRegistration works). For a claimed
// node it also returns everything the kernel needs later, copied out of the graph: tensor indices,
// conv parameters and the dense float32 filter and bias (fp16 constants already widened).
#ifndef TFLITE_DELEGATE_CLAIMING_POLICY_H_
#define TFLITE_DELEGATE_CLAIMING_POLICY_H_

#include <map>
#include <string>
#include <vector>

#include "block_pattern.h"
#include "conv_geometry.h"
#include "options.h"
#include "tflite_abi.h"

namespace tflite_sparse {

struct NodeDecision {
  int node_index = -1;
  bool claimed = false;
  std::string reason;           // "claimed" or why not
  bool has_pattern = false;     // the block statistics below were computed
  int block_n = 0;
  double block_sparsity = 0.0;
  FilterShape filter;           // O, KH, KW, I (zeros when unknown)
  int blocks_per_group_min = 0;
  int blocks_per_group_max = 0;
  bool uniform = false;
};

// Everything a kernel needs about one claimed node.
struct ConvLayerPlan {
  int input_tensor = -1;
  int output_tensor = -1;
  ConvParameters params;
  float activation_min = 0.0f;
  float activation_max = 0.0f;
  FilterShape filter_shape;
  std::vector<float> filter;  // dense OHWI
  std::vector<float> bias;    // O floats, empty when the node has no bias
  BlockPattern pattern;
};

// Maps a tensor index to the input tensor of the DEQUANTIZE node producing it.
using DequantizeSources = std::map<int, int>;

// Builds the DEQUANTIZE map for the nodes of `execution_plan`.
DequantizeSources FindDequantizeSources(TfLiteContext* context,
                                        const std::vector<int>& execution_plan);

// Decides about one CONV_2D node. Returns the decision; fills `plan` when claimed.
NodeDecision AnalyzeConvNode(TfLiteContext* context, int node_index, const TfLiteNode& node,
                             const DequantizeSources& dequantize_sources,
                             const DelegateOptions& options, ConvLayerPlan* plan);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CLAIMING_POLICY_H_
