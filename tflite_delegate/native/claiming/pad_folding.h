// Which PAD nodes the delegate folds into the claimed CONV_2D they feed.
//
// Keras writes a padded strided conv (ResNet's 7x7 stride-2 stem, the first conv of ResNet-18's
// stages in some zoos) as ZeroPadding2D then a VALID conv, which the converter keeps as a PAD
// node and a CONV_2D node. XNNPACK runs the PAD as a copy of the whole tensor into a larger one:
// 0.42 ms for ResNet-50's 224x224x3 input on one Zen 5 core (rows of three channels are short
// copies), about 3 % of the 1x16-sparse model. The sparse operator pads its input itself where
// a conv needs it (into the pair image or the pre-padded input it writes on every run anyway),
// so a folded PAD costs nothing: the conv's step reads the PAD's input, and the PAD's zeros join
// the conv's own padding (ConvParameters::pad_top ...). The result is bitwise the same: the conv
// multiplies the same zeros at the same places.
//
// A PAD node P is folded into a claimed conv C when
// - P is PAD, or PADV2 whose constant value is a read-only float32 +0.0f;
// - P's input is a float32 tensor of rank 4 (NHWC);
// - P's paddings are a read-only int32 or int64 [4, 2] tensor that pads only height and width,
//   each side by at most kMaxFoldedPad;
// - P's output is C's input and read by no other node;
// - TFLite's partitioner puts {P, C} in one partition whose only output is C's (which also rules
//   out P's output being a model output), alone and in the delegate's whole request.
#ifndef TFLITE_DELEGATE_CLAIMING_PAD_FOLDING_H_
#define TFLITE_DELEGATE_CLAIMING_PAD_FOLDING_H_

#include <map>
#include <vector>

#include "abi/tflite_abi.h"
#include "claiming/claiming_policy.h"
#include "claiming/tensor_use.h"

namespace tflite_sparse {

// Larger explicit pads are left to TFLite (the conv would mostly multiply zeros).
inline constexpr int64_t kMaxFoldedPad = 1 << 16;

// A PAD node run by the claimed conv it feeds.
struct FoldedPad {
  int pad_node = -1;
  int input_tensor = -1;   // the PAD's input: what the conv's step reads instead
  int output_tensor = -1;  // the PAD's output: the conv's own input
  int top = 0;             // zero rows above, rows below, columns left, columns right
  int bottom = 0;
  int left = 0;
  int right = 0;
};

// True if node `pad_node`, whose output is `pad_output`, is a PAD that can be folded (the
// first three conditions above); fills `fold`. Also used for the PAD before a fused max pool
// (pool_fusion.h).
bool DescribeFoldablePad(TfLiteContext* context, int pad_node, int pad_output, FoldedPad* fold);

// The PAD to fold into each claimed conv that has one, keyed by conv node index (each checked
// alone with PreviewDelegatePartitioning). `claimed` maps the claimed conv nodes to their plans;
// `use` gives the graph's tensors' producers and readers.
std::map<int, FoldedPad> FindFoldedPads(TfLiteContext* context, const TensorUse& use,
                                        const std::map<int, ConvLayerPlan>& claimed);

// Adds the PAD's zeros to the explicit padding of `params` (a conv's, or a fused pool's window).
void AddFoldedZeros(const FoldedPad& pad, ConvParameters* params);

// Turns the plan of a conv into that of its step with `pad` folded in: the PAD's input as
// input, the PAD's zeros added to the explicit padding.
void FoldPad(const FoldedPad& pad, ConvLayerPlan* plan);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CLAIMING_PAD_FOLDING_H_
