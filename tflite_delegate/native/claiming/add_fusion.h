// Which ADD nodes the delegate runs inside the epilogue of a claimed CONV_2D (a ResNet block's
// last convolution, its shortcut ADD and the ReLU fused into that ADD).
//
// TFLite runs such an ADD as its own node: XNNPACK reads both operands and writes the sum, then
// clamps it in a second pass, about 6 % of a 1x16-sparse ResNet-50's time on one core. Fused, the
// convolution's microkernel adds the shortcut to its result while it is still in registers and
// stores the block's output once (microkernel.h): the same arithmetic, bitwise, as the conv
// node followed by the ADD node.
//
// An ADD is fused into a claimed conv C only when the result cannot differ and nothing else
// needs C's own output: a float32 ADD without broadcasting (both operands and the output of the
// same static shape), a fused activation that is a clamp, one operand C's output and C's output
// read by nothing else, the other operand (the residual) available before C runs, and TFLite's
// own partitioner (PreviewDelegatePartitioning) turning {C, ADD} into one partition whose only
// output is the ADD's output (which also rules out C's output being a model output). When both
// operands come from claimed convs, the later one in the execution plan takes the ADD.
#ifndef TFLITE_DELEGATE_CLAIMING_ADD_FUSION_H_
#define TFLITE_DELEGATE_CLAIMING_ADD_FUSION_H_

#include <map>
#include <vector>

#include "abi/tflite_abi.h"
#include "claiming/claiming_policy.h"
#include "claiming/tensor_use.h"

namespace tflite_sparse {

// An ADD node run by a claimed conv.
struct FusedAdd {
  int add_node = -1;
  int residual_tensor = -1;  // the ADD's other operand
  int output_tensor = -1;    // the ADD's output: the fused kernel's output
  float activation_min = 0.0f;
  float activation_max = 0.0f;
  // The claimed conv producing the other operand (read by this ADD only), or -1: the ADD moves
  // to it when TFLite puts this conv in an earlier partition than the ADD (a ResNet projection
  // block's shortcut conv, which only needs the block's input); its residual is then this
  // conv's own output, `residual_tensor` the operand it produces.
  int alternative_conv = -1;
};

// The ADD to fuse into each claimed conv that has one, keyed by conv node index. `claimed` maps
// the claimed conv nodes to their plans; `execution_plan` is the graph's (topological) order and
// `use` its tensors' producers and readers.
std::map<int, FusedAdd> FindFusedAdds(TfLiteContext* context,
                                      const std::vector<int>& execution_plan,
                                      const TensorUse& use,
                                      const std::map<int, ConvLayerPlan>& claimed);

// Splits `fused` (FindFusedAdds checked each pair alone) for one request that replaces `claimed`
// and the ADDs of `together`: `together` keeps the pairs TFLite puts in one partition with the
// conv's own output internal to it; a pair that is split moves to the ADD's alternative_conv when
// that conv shares the ADD's partition, and otherwise goes to `alone` (its conv then leaves the
// one request, to be replaced with its ADD afterwards in a request of its own: an after_shared
// conv whose ADD waits for a TFLite node the conv itself does not need). `companions`: other
// nodes that join the request with a conv, by conv node (its folded PAD, pad_folding.h; its
// fused max pool and that pool's PAD, pool_fusion.h).
// Repeats until the preview no longer changes anything. Without PreviewDelegatePartitioning
// every pair is `alone`.
void SplitFusionsByPartition(TfLiteContext* context, const std::map<int, ConvLayerPlan>& claimed,
                             const std::map<int, std::vector<int>>& companions,
                             std::map<int, FusedAdd>* together, std::map<int, FusedAdd>* alone);

// True if TFLite, on the graph as it is now, would make {conv_node, its ADD} one partition whose
// only output is the ADD's.
bool FusionFitsOnePartition(TfLiteContext* context, int conv_node, const FusedAdd& add);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CLAIMING_ADD_FUSION_H_
