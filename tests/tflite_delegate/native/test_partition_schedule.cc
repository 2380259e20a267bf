// The schedule of a partition (delegate/partition_schedule.h): which steps run image by image,
// and where its internal tensors live, against hand-computed placements and, on random step
// graphs, against the rules it must keep (no two live tensors share bytes, alignment).
#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "delegate/partition_schedule.h"
#include "test_harness.h"

namespace {

using tflite_sparse::PartitionSchedule;
using tflite_sparse::SchedulePartition;
using tflite_sparse::StepTensors;

// Two ResNet-like blocks after an external input 0: tensors 1 and 3 are large (1000 bytes per
// image, 8000 at batch 8), the others small (100 bytes per image); 6 is the partition's output.
//   step 0: 0 -> 1          step 3: 3 -> 4
//   step 1: 1 -> 2          step 4: 4 -> 5
//   step 2: 2 (+ 1) -> 3    step 5: 5 (+ 4) -> 6
std::vector<StepTensors> TwoBlocks() {
  return {{0, -1, 1}, {1, -1, 2}, {2, 1, 3}, {3, -1, 4}, {4, -1, 5}, {5, 4, 6}};
}
const std::set<int> kExternal = {0, 6};
const std::map<int, int64_t> kImageBytes = {{0, 1000}, {1, 1000}, {2, 100}, {3, 1000},
                                            {4, 100},  {5, 100},  {6, 100}};

TEST(StepsRunImageByImageUpToTheLastReaderOfTheLastLargeTensor) {
  const PartitionSchedule schedule =
      SchedulePartition(TwoBlocks(), kExternal, kImageBytes, 8, true, 4000);
  // Tensor 3 (8000 bytes over the batch) is last read by step 3.
  EXPECT_EQ(schedule.per_image_steps, 4);
  EXPECT_EQ(schedule.internal.size(), size_t{5});
  // Per image, largest first, 64-byte aligned: 1 at 0 (1024 bytes), 3 at 1024 (its step reads
  // 1), 2 at 2048 (live with both).
  const std::map<int, int64_t> per_image = {{1, 0}, {3, 1024}, {2, 2048}};
  for (const auto& [tensor, offset] : per_image) {
    EXPECT_TRUE(schedule.internal.at(tensor).per_image) << tensor;
    EXPECT_EQ(schedule.internal.at(tensor).offset, offset) << tensor;
  }
  EXPECT_EQ(schedule.per_image_scratch_bytes, 2048 + 128);
  // Tensor 4 is written by a per-image step and read after them: the whole batch (800 bytes,
  // 832 aligned), live from the start; 5 follows it.
  EXPECT_TRUE(!schedule.internal.at(4).per_image);
  EXPECT_EQ(schedule.internal.at(4).offset, 0);
  EXPECT_TRUE(!schedule.internal.at(5).per_image);
  EXPECT_EQ(schedule.internal.at(5).offset, 832);
  EXPECT_EQ(schedule.batch_scratch_bytes, 832 + 832);
}

TEST(NoStepRunsImageByImageWithoutALargeTensorOrABatch) {
  const int64_t never = std::numeric_limits<int64_t>::max();
  const std::vector<std::pair<int, int64_t>> cases = {{1, 0}, {0, 0}, {8, never}, {8, 8001}};
  for (const auto& [batch, large] : cases) {
    const PartitionSchedule schedule =
        SchedulePartition(TwoBlocks(), kExternal, kImageBytes, batch, true, large);
    EXPECT_EQ(schedule.per_image_steps, 0) << batch << " " << large;
    EXPECT_EQ(schedule.per_image_scratch_bytes, 0);
    for (const auto& [tensor, placement] : schedule.internal) {
      EXPECT_TRUE(!placement.per_image) << tensor;
    }
  }
  // Steps of different batches never run image by image.
  EXPECT_EQ(SchedulePartition(TwoBlocks(), kExternal, kImageBytes, 8, false, 0).per_image_steps,
            0);
  // Threshold 0: every internal tensor counts, up to tensor 5's reader (the last step).
  EXPECT_EQ(SchedulePartition(TwoBlocks(), kExternal, kImageBytes, 8, true, 0).per_image_steps, 6);
  // At batch 1 the whole batch is one image: 1, 3 and 2 as above; 4 (steps 3-5) takes the
  // smallest gap, 1's bytes, and 5 follows it.
  const PartitionSchedule one = SchedulePartition(TwoBlocks(), kExternal, kImageBytes, 1, true, 0);
  EXPECT_EQ(one.internal.at(3).offset, 1024);
  EXPECT_EQ(one.internal.at(4).offset, 0);
  EXPECT_EQ(one.internal.at(5).offset, 128);
  EXPECT_EQ(one.batch_scratch_bytes, 2048 + 128);
}

// The interval, over step indices, in which an internal tensor's bytes are in use, in the
// arena the schedule chose: per-image tensors from their producer to their last reader;
// whole-batch tensors written by per-image steps from step 0 (those steps run again for every
// image), the others from their producer.
std::map<int, std::pair<int, int>> LiveSteps(const std::vector<StepTensors>& steps,
                                             const PartitionSchedule& schedule) {
  std::map<int, std::pair<int, int>> live;
  for (int step = 0; step < static_cast<int>(steps.size()); ++step) {
    for (const int read : {steps[step].input, steps[step].residual}) {
      if (live.count(read)) live[read].second = step;
    }
    const auto placed = schedule.internal.find(steps[step].output);
    if (placed == schedule.internal.end()) continue;
    const bool rerun = !placed->second.per_image && step < schedule.per_image_steps;
    live[steps[step].output] = {rerun ? 0 : step, step};
  }
  return live;
}

TEST(RandomStepGraphsNeverShareLiveBytes) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 300; ++trial) {
    const int count = 1 + static_cast<int>(rng() % 12);
    const int batch = 1 + static_cast<int>(rng() % 4);
    std::vector<StepTensors> steps;
    std::set<int> external = {0};
    std::map<int, int64_t> image_bytes = {{0, 64}};
    for (int step = 0; step < count; ++step) {
      StepTensors tensors;
      tensors.input = static_cast<int>(rng() % (step + 1));  // 0 or an earlier step's output
      if (rng() % 3 == 0) tensors.residual = static_cast<int>(rng() % (step + 1));
      tensors.output = step + 1;
      image_bytes[tensors.output] = 1 + static_cast<int64_t>(rng() % 5000);
      if (rng() % 5 == 0) external.insert(tensors.output);
      steps.push_back(tensors);
    }
    const int64_t large = static_cast<int64_t>(rng() % 20000);
    const PartitionSchedule schedule =
        SchedulePartition(steps, external, image_bytes, batch, true, large);
    EXPECT_TRUE(schedule.per_image_steps >= 0 && schedule.per_image_steps <= count);
    if (batch == 1) {
      EXPECT_EQ(schedule.per_image_steps, 0);
    }
    const auto live = LiveSteps(steps, schedule);
    for (const StepTensors& tensors : steps) {
      EXPECT_EQ(schedule.internal.count(tensors.output), size_t{external.count(tensors.output) == 0});
    }
    for (const auto& [tensor, placement] : schedule.internal) {
      const int64_t bytes = image_bytes[tensor] * (placement.per_image ? 1 : batch);
      const int64_t arena = placement.per_image ? schedule.per_image_scratch_bytes
                                                : schedule.batch_scratch_bytes;
      EXPECT_EQ(placement.offset % tflite_sparse::kScratchAlignment, 0);
      EXPECT_TRUE(placement.offset + bytes <= arena) << tensor;
      // A per-image tensor is finished with before the next image starts.
      if (placement.per_image) {
        EXPECT_TRUE(live.at(tensor).second < schedule.per_image_steps);
      }
      // Large tensors (over the batch) are all read by per-image steps only.
      if (batch > 1 && image_bytes[tensor] * batch >= large) {
        EXPECT_TRUE(live.at(tensor).second < schedule.per_image_steps) << tensor;
      }
      for (const auto& [other, other_placement] : schedule.internal) {
        if (other <= tensor || other_placement.per_image != placement.per_image) continue;
        const auto [first, last] = live.at(tensor);
        const auto [other_first, other_last] = live.at(other);
        if (last < other_first || other_last < first) continue;  // never live together
        const int64_t other_bytes = image_bytes[other] * (placement.per_image ? 1 : batch);
        const bool disjoint = placement.offset + bytes <= other_placement.offset ||
                              other_placement.offset + other_bytes <= placement.offset;
        EXPECT_TRUE(disjoint) << "trial " << trial << ": tensors " << tensor << " and " << other;
      }
    }
  }
}

}  // namespace
