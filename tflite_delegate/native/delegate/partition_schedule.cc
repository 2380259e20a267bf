#include "delegate/partition_schedule.h"

#include <algorithm>
#include <utility>

#include "common/cache_size.h"

namespace tflite_sparse {

namespace {

int64_t AlignUp(int64_t bytes) {
  return (bytes + kScratchAlignment - 1) / kScratchAlignment * kScratchAlignment;
}

// An internal tensor, live over steps [first_step, last_step] (inclusive: a step's output never
// shares bytes with its inputs).
struct LiveTensor {
  int id;
  int64_t bytes;
  int first_step;
  int last_step;
};

// Places `tensors` in one scratch the way TFLite's own arena planner places tensors: largest
// first, each in the smallest gap left by the tensors already placed whose lifetimes overlap its
// own, else after the last of them. Returns the scratch's size in bytes; writes offsets into
// `placements`.
int64_t PlaceByLiveness(std::vector<LiveTensor> tensors, bool per_image,
                        std::map<int, ScratchPlacement>* placements) {
  std::stable_sort(tensors.begin(), tensors.end(), [](const LiveTensor& a, const LiveTensor& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.first_step < b.first_step;
  });
  std::vector<std::pair<int64_t, const LiveTensor*>> placed;  // (offset, tensor)
  int64_t size = 0;
  for (const LiveTensor& tensor : tensors) {
    std::vector<std::pair<int64_t, int64_t>> taken;  // byte ranges of overlapping lifetimes
    for (const auto& [offset, other] : placed) {
      if (other->last_step >= tensor.first_step && tensor.last_step >= other->first_step) {
        taken.emplace_back(offset, offset + other->bytes);
      }
    }
    std::sort(taken.begin(), taken.end());
    int64_t best = -1;
    int64_t best_gap = 0;
    int64_t cursor = 0;
    for (const auto& [begin, end] : taken) {
      const int64_t gap = begin - cursor;
      if (gap >= tensor.bytes && (best < 0 || gap < best_gap)) {
        best = cursor;
        best_gap = gap;
      }
      cursor = std::max(cursor, end);
    }
    const int64_t offset = best >= 0 ? best : cursor;
    placed.emplace_back(offset, &tensor);
    size = std::max(size, offset + tensor.bytes);
    (*placements)[tensor.id] = ScratchPlacement{per_image, offset};
  }
  return size;
}

}  // namespace

PartitionSchedule SchedulePartition(const std::vector<StepTensors>& steps,
                                    const std::set<int>& external,
                                    const std::map<int, int64_t>& image_bytes, int batch,
                                    bool same_batch, int64_t large_tensor_bytes) {
  // Producer and last reader of every internal tensor.
  std::map<int, std::pair<int, int>> interval;
  for (int step = 0; step < static_cast<int>(steps.size()); ++step) {
    const StepTensors& tensors = steps[step];
    for (const int read : {tensors.input, tensors.residual}) {
      const auto found = interval.find(read);
      if (found != interval.end()) found->second.second = step;
    }
    if (!external.count(tensors.output)) interval[tensors.output] = {step, step};
  }
  const auto bytes_of = [&](int tensor) {
    const auto found = image_bytes.find(tensor);
    return found == image_bytes.end() ? int64_t{0} : found->second;
  };

  PartitionSchedule schedule;
  if (batch > 1 && same_batch) {
    for (const auto& [tensor, steps_live] : interval) {
      if (bytes_of(tensor) * batch >= large_tensor_bytes) {
        schedule.per_image_steps = std::max(schedule.per_image_steps, steps_live.second + 1);
      }
    }
  }
  const int prefix = schedule.per_image_steps;
  // In-place outputs: each joins its residual's bytes, so the residual's interval grows to the
  // output's last reader (chains: a block's output written over the previous block's, ...).
  std::map<int, int> shares_with;  // in-place output -> the tensor whose placement it takes
  const auto root_of = [&](int tensor) {
    while (shares_with.count(tensor)) tensor = shares_with.at(tensor);
    return tensor;
  };
  for (int step = 0; step < static_cast<int>(steps.size()); ++step) {
    const StepTensors& tensors = steps[step];
    const auto residual = interval.find(tensors.residual);
    if (!tensors.output_may_overwrite_residual || residual == interval.end() ||
        tensors.residual == tensors.input || residual->second.second != step ||
        !interval.count(tensors.output) || bytes_of(tensors.residual) != bytes_of(tensors.output)) {
      continue;
    }
    const int root = root_of(tensors.residual);
    shares_with[tensors.output] = root;
    interval[root].second = std::max(interval[root].second, interval[tensors.output].second);
  }
  for (const auto& [output, root] : shares_with) interval.erase(output);
  std::vector<LiveTensor> per_image;
  std::vector<LiveTensor> whole_batch;
  for (const auto& [tensor, steps_live] : interval) {
    const auto [first, last] = steps_live;
    if (last < prefix) {
      per_image.push_back({tensor, AlignUp(bytes_of(tensor)), first, last});
    } else {
      // Read after the per-image steps (last >= prefix), like every whole-batch tensor the
      // per-image steps write: their bytes are never reused while those steps repeat.
      whole_batch.push_back({tensor, AlignUp(bytes_of(tensor) * std::max(batch, 0)), first, last});
    }
  }
  schedule.per_image_scratch_bytes = PlaceByLiveness(per_image, true, &schedule.internal);
  schedule.batch_scratch_bytes = PlaceByLiveness(whole_batch, false, &schedule.internal);
  for (const auto& [output, root] : shares_with) {
    schedule.internal[output] = schedule.internal.at(root_of(root));
  }
  return schedule;
}

int64_t DefaultLargeTensorBytes() { return L3CacheBytes() / 4; }

}  // namespace tflite_sparse
