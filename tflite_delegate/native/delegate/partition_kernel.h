// The TFLite kernel of one partition: a run of claimed CONV_2D nodes (each with the ADD fused into
// it, if any: claiming/add_fusion.h; and the max pool fused after it, if any:
// claiming/pool_fusion.h) that TFLite replaced by one delegate node. Each conv is a step running
// the sparse CONV_2D operator (operator/sparse_conv_operator.h), each fused pool a step running
// the max-pool operator (operator/max_pool_operator.h); the partition
// prepares them in order from its input shapes, resizes its output tensors, keeps the tensors
// only it sees in its own scratch and runs the steps on the schedule of
// delegate/partition_schedule.h (a prefix image by image at batch > 1). Errors go through the
// TfLiteContext.
#ifndef TFLITE_DELEGATE_DELEGATE_PARTITION_KERNEL_H_
#define TFLITE_DELEGATE_DELEGATE_PARTITION_KERNEL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "abi/tflite_abi.h"
#include "claiming/add_fusion.h"
#include "claiming/claiming_policy.h"
#include "claiming/pool_fusion.h"
#include "common/aligned_buffer.h"
#include "delegate/partition_schedule.h"
#include "delegate/run_log.h"
#include "operator/max_pool_operator.h"
#include "operator/sparse_conv_operator.h"

namespace tflite_sparse {

class PartitionKernel {
 public:
  // `external`: the partition's input and output tensors (TFLite's memory); steps are added in
  // execution order. `large_tensor_bytes`: see SchedulePartition. `verbose`: Prepare prints the
  // schedule to stderr. `run_log`: where Prepare records each step's microkernel and, with
  // `profile`, Invoke each step's time (delegate/run_log.h).
  PartitionKernel(std::set<int> external, std::shared_ptr<ThreadPool> pool,
                  int64_t large_tensor_bytes, bool verbose, std::shared_ptr<RunLog> run_log,
                  bool profile);

  // Adds the step of one claimed conv, CONV_2D node `node` (`fused_add`: the ADD it also runs,
  // or null).
  void AddStep(int node, const ConvLayerPlan& plan, PackedFilter packed,
               const FusedAdd* fused_add);
  // Adds the step of the max pool fused after claimed conv `conv_node` (added just before), run
  // with `isa`'s max-pool microkernel. Its time joins the conv's in the profile.
  void AddPoolStep(int conv_node, const FusedPool& fused, Isa isa);

  // Prepares every step for the current input shapes, plans the scratch and resizes the output
  // tensors (only when their shape changes).
  TfLiteStatus Prepare(TfLiteContext* context);
  TfLiteStatus Invoke(TfLiteContext* context);

  const std::set<int>& external() const { return external_; }

 private:
  // Where a step's tensor lives, resolved by Prepare so that Invoke needs no lookups.
  struct TensorRef {
    int tensor = -1;              // -1: none (a step without a residual)
    bool external = false;        // TFLite's memory: context->tensors[tensor].data.f
    bool per_image = false;       // the per-image scratch: the same floats for every image
    int64_t scratch_offset = 0;   // floats into its scratch (internal tensors)
    int64_t image_floats = 0;     // floats per image
  };
  struct Step {
    int node = -1;  // the conv node (a pool step: the conv it follows)
    StepTensors tensors;
    TensorRef input;
    TensorRef residual;
    TensorRef output;
    std::unique_ptr<SparseConvOperator> op;  // a conv step
    std::unique_ptr<MaxPoolOperator> pool;   // a pool step
    bool Prepare(int batch, int in_h, int in_w, int channels, std::string* error);
    const ConvGeometry& geometry() const { return op ? op->geometry() : pool->geometry(); }
  };
  // Gives the activation scratch and the operators' workspace to the first conv steps whose
  // work items prefetch nothing of their own, as the range they prefetch (see the .cc).
  void PlanWarmUp();
  // Data of `ref` for `image` (-1: the whole batch), or null when it has none.
  float* Data(TfLiteContext* context, const TensorRef& ref, int image);

  std::set<int> external_;
  std::shared_ptr<ThreadPool> pool_;
  std::vector<Step> steps_;
  int64_t large_tensor_bytes_;
  bool verbose_;
  std::shared_ptr<RunLog> run_log_;
  bool profile_;
  bool prepared_ = false;
  int batch_ = 0;
  PartitionSchedule schedule_;
  AlignedBuffer per_image_scratch_;
  AlignedBuffer batch_scratch_;
  // The steps' operator workspace (SparseConvOperator::set_workspace).
  std::shared_ptr<AlignedBuffer> workspace_ = std::make_shared<AlignedBuffer>();
};

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_DELEGATE_PARTITION_KERNEL_H_
