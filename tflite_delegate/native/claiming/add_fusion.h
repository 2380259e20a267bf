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

namespace tflite_sparse {

// An ADD node run by a claimed conv.
struct FusedAdd {
  int add_node = -1;
  int residual_tensor = -1;  // the ADD's other operand
  int output_tensor = -1;    // the ADD's output: the fused kernel's output
  float activation_min = 0.0f;
  float activation_max = 0.0f;
};

// The ADD to fuse into each claimed conv that has one, keyed by conv node index. `claimed` maps
// the claimed conv nodes to their plans; `execution_plan` is the graph's (topological) order.
std::map<int, FusedAdd> FindFusedAdds(TfLiteContext* context,
                                      const std::vector<int>& execution_plan,
                                      const std::map<int, ConvLayerPlan>& claimed);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CLAIMING_ADD_FUSION_H_
