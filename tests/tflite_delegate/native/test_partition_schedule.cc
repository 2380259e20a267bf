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

TEST(AFusedAddWritesOverTheResidualItReadsLast) {
  // Step 2 (2 + 1 -> 3) may write over its residual 1, which only it reads after step 1, and 1
  // and 3 have the same size: 3 takes 1's bytes, live from step 0 to 3 (1024 bytes). Largest
  // first: 1 (and 3) at 0; 2 (steps 1-2) at 1024; 4 (steps 3-5) at 1024, beside 1 (2 is done);
  // 5 (steps 4-5) at 0, where 1 and 3 are done.
  std::vector<StepTensors> steps = TwoBlocks();
  steps[2].output_may_overwrite_residual = true;
  steps[5].output_may_overwrite_residual = true;  // its output 6 is external: no sharing
  const PartitionSchedule one = SchedulePartition(steps, kExternal, kImageBytes, 1, true, 0);
  const std::map<int, int64_t> offsets = {{1, 0}, {3, 0}, {2, 1024}, {4, 1024}, {5, 0}};
  for (const auto& [tensor, offset] : offsets) {
    EXPECT_EQ(one.internal.at(tensor).offset, offset) << tensor;
  }
  EXPECT_EQ(one.batch_scratch_bytes, 1024 + 128);
  // At batch 8 with the prefix of the first test: 1 and 3 (read by per-image steps only) share
  // the per-image scratch.
  const PartitionSchedule eight = SchedulePartition(steps, kExternal, kImageBytes, 8, true, 4000);
  EXPECT_EQ(eight.per_image_steps, 4);
  EXPECT_TRUE(eight.internal.at(3).per_image && eight.internal.at(1).per_image);
  EXPECT_EQ(eight.internal.at(3).offset, eight.internal.at(1).offset);
  // No sharing when the step does not allow it, when the residual is read later, when it is
  // the step's input too, or when the sizes differ.
  std::vector<std::vector<StepTensors>> refused(4, steps);
  refused[0][2].output_may_overwrite_residual = false;
  refused[1][3].residual = 1;  // step 3 reads 1 too
  refused[2][2].input = 1;     // 1 + 1 -> 3
  std::map<int, int64_t> other_bytes = kImageBytes;
  other_bytes[3] = 960;
  for (size_t k = 0; k < refused.size(); ++k) {
    const PartitionSchedule schedule = SchedulePartition(
        refused[k], kExternal, k == 3 ? other_bytes : kImageBytes, 1, true, 0);
    EXPECT_TRUE(schedule.internal.at(3).offset != schedule.internal.at(1).offset) << k;
  }
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
  int shared_pairs = 0;  // in-place outputs seen (the test must exercise them)
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
      tensors.output_may_overwrite_residual = rng() % 2 == 0;
      // Often the residual's size, so that outputs do take their residual's bytes.
      image_bytes[tensors.output] = tensors.residual >= 0 && rng() % 2 == 0
                                        ? image_bytes[tensors.residual]
                                        : 1 + static_cast<int64_t>(rng() % 5000);
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
    // The (output, residual) pairs that may share bytes: the step allows it and reads the
    // residual for the last time; never the step's input.
    std::set<std::pair<int, int>> may_share;
    for (int step = 0; step < count; ++step) {
      const StepTensors& tensors = steps[step];
      if (schedule.internal.count(tensors.output) && schedule.internal.count(tensors.input)) {
        EXPECT_TRUE(schedule.internal.at(tensors.output).offset !=
                        schedule.internal.at(tensors.input).offset ||
                    schedule.internal.at(tensors.output).per_image !=
                        schedule.internal.at(tensors.input).per_image)
            << "trial " << trial << ": step " << step << " writes over its input";
      }
      if (tensors.output_may_overwrite_residual && tensors.residual != tensors.input &&
          live.count(tensors.residual) && live.at(tensors.residual).second == step) {
        may_share.insert({std::min(tensors.output, tensors.residual),
                          std::max(tensors.output, tensors.residual)});
      }
    }
    // Shared bytes pass down a chain (a block's output over the previous one's): tensors that
    // share bytes through shared pairs are one chain.
    std::map<int, int> chain;
    const auto chain_of = [&](int tensor) {
      while (chain.count(tensor)) tensor = chain.at(tensor);
      return tensor;
    };
    for (const auto& [a, b] : may_share) {
      if (chain_of(a) != chain_of(b)) chain[chain_of(b)] = chain_of(a);
    }
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
        // One chain of in-place outputs shares the very same bytes (or none).
        const bool shared = chain_of(tensor) == chain_of(other) && bytes == other_bytes &&
                            placement.offset == other_placement.offset;
        EXPECT_TRUE(disjoint || shared)
            << "trial " << trial << ": tensors " << tensor << " and " << other;
        if (shared) ++shared_pairs;
      }
    }
  }
  EXPECT_TRUE(shared_pairs > 10) << shared_pairs;
}

}  // namespace
