// How one partition of claimed convs runs over a batch, and where the tensors that only the
// partition sees live.
//
// TFLite hands the delegate every connected run of claimed nodes as one partition (a ResNet's
// whole body when every conv is claimed and the shortcut ADDs are fused). A step is one claimed
// conv (with its fused ADD). Tensors read or written outside the partition (its inputs and
// outputs) stay in TFLite's memory; the others are *internal*: TFLite does not allocate them,
// and the partition keeps them in its own scratch.
//
// Run layer by layer, a batch of 8 ResNet-50 images passes its 56x56x256 activations (25.7 MB)
// through memory between two 1x1 convs: each image's own activations (3.2 MB) would have stayed
// in the caches. So the schedule runs a prefix of the steps image by image (*per-image steps*):
// every step of the prefix for image 0, then for image 1, and so on, the prefix's internal
// tensors in a per-image scratch that the next image reuses while it is still cached. The
// remaining steps run on the whole batch, where a layer's packed weights are read once for all
// images (what pays on the small late layers). The prefix ends after the last reader of the
// last internal tensor whose whole batch takes `large_tensor_bytes` or more; with none (or at
// batch 1, or when the steps do not share one batch) every step runs on the whole batch.
// Either way every output element gets the same arithmetic: results are bitwise the same.
#ifndef TFLITE_DELEGATE_DELEGATE_PARTITION_SCHEDULE_H_
#define TFLITE_DELEGATE_DELEGATE_PARTITION_SCHEDULE_H_

#include <cstdint>
#include <map>
#include <set>
#include <vector>

namespace tflite_sparse {

// The tensors of one step (TFLite tensor indices): input, fused ADD's residual (-1 without one)
// and output, and whether the step may write its output over its residual's bytes
// (SparseConvOperator::output_may_overwrite_residual).
struct StepTensors {
  int input = -1;
  int residual = -1;
  int output = -1;
  bool output_may_overwrite_residual = false;
};

// Where an internal tensor lives: at `offset` bytes into the per-image scratch (one image, reused
// by every image) or into the batch scratch (the whole batch, image b at b x its image bytes).
struct ScratchPlacement {
  bool per_image = false;
  int64_t offset = 0;
};

struct PartitionSchedule {
  int per_image_steps = 0;  // steps [0, per_image_steps) run image by image, before the rest
  std::map<int, ScratchPlacement> internal;  // every internal tensor
  int64_t per_image_scratch_bytes = 0;
  int64_t batch_scratch_bytes = 0;
};

// Byte alignment of every scratch offset (a cache line).
inline constexpr int64_t kScratchAlignment = 64;

// Schedules `steps` (in execution order: a step reads only partition inputs and earlier
// steps' outputs). `external` holds the partition's input and output tensors; `image_bytes`
// gives every step tensor's bytes per image; `batch` is the batch of every step (1 or less, or
// `same_batch` false: no per-image steps). Internal tensors share scratch by liveness, 64-byte
// aligned, placed the way TFLite's arena planner places tensors (largest first, each in the
// smallest gap its overlapping lifetimes leave): a first-fit sweep in step order made
// ResNet-50 "1.0G" 3.5 % slower at batch 1 than TFLite's own placement of the same tensors
// (docs/RESULTS.md). A step's output never shares bytes with its own input. It takes its
// residual's bytes (*in place*) when the step allows it, the residual is internal, is not the
// step's input, is last read by this step and is as large as the output: a ResNet block's fused
// ADD then writes the block's output over its shortcut, whose cache lines it has just read,
// instead of first fetching the lines of another tensor of the same size (every store to a line
// not in the cache reads it first). ResNet-50 ran 1.05x ("2.0G") and 1.07x ("1.0G") as fast at
// 1 thread, bitwise the same.
PartitionSchedule SchedulePartition(const std::vector<StepTensors>& steps,
                                    const std::set<int>& external,
                                    const std::map<int, int64_t>& image_bytes, int batch,
                                    bool same_batch, int64_t large_tensor_bytes);

// Default `large_tensor_bytes`: a quarter of the L3 cache (common/cache_size.h). A tensor that
// large shares the L3 with the layer's other operand and the next layer's weights, and leaves
// it before the next layer reads it.
int64_t DefaultLargeTensorBytes();

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_DELEGATE_PARTITION_SCHEDULE_H_
