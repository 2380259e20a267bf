// Which MAX_POOL_2D nodes the delegate runs inside the partition of the claimed CONV_2D that
// feeds them (ResNet's stem: a 7x7 conv with its ReLU, a ZeroPadding2D(1) and a 3x3 stride-2
// max pool).
//
// TFLite hands such a pool, and the PAD before it, to XNNPACK: between the stem and the body a
// copy of the 112x112x64 stem output into a 114x114x64 tensor and an SSE2 max pool over it,
// together about 0.27 ms of ResNet-50 "1.0G"'s 11 ms on one Zen 5 core (perf record), and they cut
// the claimed convs into two partitions. Fused, the pool is a step of the conv's partition
// (operator/max_pool_operator.h) that reads the conv's output and counts the PAD's zeros as
// values of its window: the result is bitwise the same.
//
// A MAX_POOL_2D node P is fused after a claimed conv C when
// - C's output is read by P alone, or by a foldable PAD alone (pad_folding.h: +0.0f, height and
//   width only; with the fold_pad option) whose output P alone reads;
// - P has one float32 NHWC input and one output, SAME or VALID padding, positive strides and
//   filter sizes, and a fused activation that is a clamp;
// - C has no fused ADD (whose output would be what the pool reads);
// - TFLite's partitioner puts {C, PAD, P} in one partition whose only output is P's, alone and in
//   the delegate's whole request.
#ifndef TFLITE_DELEGATE_CLAIMING_POOL_FUSION_H_
#define TFLITE_DELEGATE_CLAIMING_POOL_FUSION_H_

#include <map>
#include <vector>

#include "abi/tflite_abi.h"
#include "claiming/claiming_policy.h"
#include "claiming/tensor_use.h"
#include "common/pool_parameters.h"

namespace tflite_sparse {

// A MAX_POOL_2D node (and the PAD before it) run in the partition of the claimed conv feeding it.
struct FusedPool {
  int pool_node = -1;
  int pad_node = -1;          // the folded PAD between conv and pool, or -1
  int input_tensor = -1;      // the conv's output: what the pool step reads
  int pad_output_tensor = -1;  // the PAD's output (-1 without a PAD)
  int output_tensor = -1;     // the pool's output
  PoolParameters params;      // with the PAD's zeros in pad_top ... pad_right
  float activation_min = 0.0f;
  float activation_max = 0.0f;
};

// The pool to fuse after each claimed conv that has one, keyed by conv node index. `claimed`
// maps the claimed conv nodes to their plans; `use` gives the graph's producers and readers;
// `fold_pad`: whether a PAD between conv and pool may be folded.
std::map<int, FusedPool> FindFusedPools(TfLiteContext* context, const TensorUse& use,
                                        const std::map<int, ConvLayerPlan>& claimed,
                                        bool fold_pad);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CLAIMING_POOL_FUSION_H_
