#include "delegate/partition_kernel.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>

#include "abi/int_array.h"

namespace tflite_sparse {

namespace {

using Shape = std::array<int, 4>;  // NHWC

bool FloatNhwc(const TfLiteTensor& tensor, Shape* shape) {
  if (tensor.type != kTfLiteFloat32 || tensor.dims == nullptr || tensor.dims->size != 4) {
    return false;
  }
  for (int axis = 0; axis < 4; ++axis) (*shape)[axis] = tensor.dims->data[axis];
  return true;
}

}  // namespace

PartitionKernel::PartitionKernel(std::set<int> external, std::shared_ptr<ThreadPool> pool,
                                 int64_t large_tensor_bytes, bool verbose,
                                 std::shared_ptr<RunLog> run_log, bool profile)
    : external_(std::move(external)),
      pool_(std::move(pool)),
      large_tensor_bytes_(large_tensor_bytes),
      verbose_(verbose),
      run_log_(std::move(run_log)),
      profile_(profile) {}

void PartitionKernel::AddStep(int node, const ConvLayerPlan& plan, PackedFilter packed,
                              const FusedAdd* fused_add) {
  Step step;
  step.node = node;
  step.tensors.input = plan.input_tensor;
  step.tensors.residual = fused_add != nullptr ? fused_add->residual_tensor : -1;
  step.tensors.output = fused_add != nullptr ? fused_add->output_tensor : plan.output_tensor;
  step.op = std::make_unique<SparseConvOperator>(plan.params, plan.activation_min,
                                                 plan.activation_max, std::move(packed),
                                                 plan.microkernel, pool_);
  // The steps run one after another: one workspace for all (see set_workspace).
  step.op->set_workspace(workspace_);
  if (fused_add != nullptr) {
    step.op->set_residual_activation(fused_add->activation_min, fused_add->activation_max);
  }
  steps_.push_back(std::move(step));
  prepared_ = false;
}

void PartitionKernel::AddPoolStep(int conv_node, const FusedPool& fused, Isa isa) {
  Step step;
  step.node = conv_node;
  step.tensors.input = fused.input_tensor;
  step.tensors.output = fused.output_tensor;
  step.pool = std::make_unique<MaxPoolOperator>(fused.params, fused.activation_min,
                                                fused.activation_max, isa, pool_);
  steps_.push_back(std::move(step));
  prepared_ = false;
}

bool PartitionKernel::Step::Prepare(int batch, int in_h, int in_w, int channels,
                                    std::string* error) {
  return op ? op->Prepare(batch, in_h, in_w, channels, error)
            : pool->Prepare(batch, in_h, in_w, channels, error);
}

TfLiteStatus PartitionKernel::Prepare(TfLiteContext* context) {
  prepared_ = false;
  // Shapes of the internal tensors, known once their step is prepared.
  std::map<int, Shape> internal_shapes;
  const auto shape_of = [&](int tensor, Shape* shape) {
    if (external_.count(tensor)) return FloatNhwc(context->tensors[tensor], shape);
    const auto found = internal_shapes.find(tensor);
    if (found == internal_shapes.end()) return false;
    *shape = found->second;
    return true;
  };
  std::map<int, int64_t> image_bytes;  // every step tensor's bytes per image
  const auto note_image_bytes = [&](int tensor, const Shape& shape) {
    image_bytes[tensor] =
        static_cast<int64_t>(shape[1]) * shape[2] * shape[3] * static_cast<int64_t>(sizeof(float));
  };
  batch_ = -1;
  bool same_batch = true;
  for (Step& step : steps_) {
    Shape input;
    if (!shape_of(step.tensors.input, &input)) {
      context->ReportError(context, "tflite_sparse_delegate: conv input must be float32 NHWC");
      return kTfLiteError;
    }
    std::string error;
    // The whole batch first; steps that turn out to run image by image are prepared again.
    if (!step.Prepare(input[0], input[1], input[2], input[3], &error)) {
      context->ReportError(context, "tflite_sparse_delegate: %s", error.c_str());
      return kTfLiteError;
    }
    step.tensors.output_may_overwrite_residual =
        step.op && step.op->output_may_overwrite_residual();
    if (batch_ < 0) batch_ = input[0];
    same_batch = same_batch && input[0] == batch_;
    const ConvGeometry& geometry = step.geometry();
    const Shape output = {geometry.batch, geometry.out_h, geometry.out_w, geometry.out_channels};
    note_image_bytes(step.tensors.input, input);
    note_image_bytes(step.tensors.output, output);
    if (step.tensors.residual >= 0) {
      // Checked at claim time for the static shapes; inputs resized since may disagree.
      Shape residual;
      if (!shape_of(step.tensors.residual, &residual) || residual != output) {
        context->ReportError(context,
                             "tflite_sparse_delegate: the ADD fused into a conv needs both "
                             "operands of shape [%d, %d, %d, %d] (load the delegate with "
                             "fuse_add=0 to run a broadcasting ADD)",
                             output[0], output[1], output[2], output[3]);
        return kTfLiteError;
      }
      note_image_bytes(step.tensors.residual, residual);
    }
    if (!external_.count(step.tensors.output)) {
      internal_shapes[step.tensors.output] = output;
      continue;
    }
    TfLiteTensor& tensor = context->tensors[step.tensors.output];
    Shape current;
    if (!FloatNhwc(tensor, &current) || current != output) {
      if (tensor.type != kTfLiteFloat32) {
        context->ReportError(context, "tflite_sparse_delegate: conv output must be float32");
        return kTfLiteError;
      }
      // ResizeTensor takes ownership of the array and frees it with free().
      TfLiteIntArray* dims = MakeIntArray({output.begin(), output.end()}).release();
      if (context->ResizeTensor(context, &tensor, dims) != kTfLiteOk) return kTfLiteError;
    }
  }

  std::vector<StepTensors> tensors;
  for (const Step& step : steps_) tensors.push_back(step.tensors);
  schedule_ = SchedulePartition(tensors, external_, image_bytes, batch_, same_batch,
                                large_tensor_bytes_);
  bool rescheduled = false;
  for (int index = 0; index < schedule_.per_image_steps; ++index) {
    const ConvGeometry& geometry = steps_[index].geometry();
    std::string error;
    if (!steps_[index].Prepare(1, geometry.in_h, geometry.in_w, geometry.channels, &error)) {
      context->ReportError(context, "tflite_sparse_delegate: %s", error.c_str());
      return kTfLiteError;
    }
    // Prepared for one image, a step may choose another variant; one that may no longer write
    // over its residual gets its own bytes (the per-image steps do not depend on it).
    if (tensors[index].output_may_overwrite_residual &&
        !steps_[index].op->output_may_overwrite_residual()) {
      tensors[index].output_may_overwrite_residual = false;
      rescheduled = true;
    }
  }
  if (rescheduled) {
    schedule_ = SchedulePartition(tensors, external_, image_bytes, batch_, same_batch,
                                  large_tensor_bytes_);
  }
  per_image_scratch_.ResizeZeroed(
      static_cast<size_t>(schedule_.per_image_scratch_bytes / sizeof(float)));
  batch_scratch_.ResizeZeroed(static_cast<size_t>(schedule_.batch_scratch_bytes / sizeof(float)));
  const auto resolve = [&](int tensor) {
    TensorRef ref;
    ref.tensor = tensor;
    if (tensor < 0) return ref;
    ref.image_floats = image_bytes.at(tensor) / static_cast<int64_t>(sizeof(float));
    ref.external = external_.count(tensor) > 0;
    if (!ref.external) {
      const ScratchPlacement& placement = schedule_.internal.at(tensor);
      ref.per_image = placement.per_image;
      ref.scratch_offset = placement.offset / static_cast<int64_t>(sizeof(float));
    }
    return ref;
  };
  for (Step& step : steps_) {
    step.input = resolve(step.tensors.input);
    step.residual = resolve(step.tensors.residual);
    step.output = resolve(step.tensors.output);
  }
  // Each conv step prefetches, on each thread, the weights the next conv step starts with there
  // (SparseConvOperator::set_next_weights); the last has no successor here.
  const SparseConvOperator* next_conv = nullptr;
  for (size_t index = steps_.size(); index-- > 0;) {
    if (!steps_[index].op) continue;
    steps_[index].op->set_next_weights(next_conv != nullptr ? next_conv->FirstWeightsOfRuns()
                                                            : std::vector<WeightRange>());
    next_conv = steps_[index].op.get();
  }
  PlanWarmUp();
  if (verbose_) {
    std::fprintf(stderr,
                 "tflite_sparse_delegate: partition of %zu conv(s) at batch %d: %d run image by "
                 "image, scratch %lld + %lld bytes\n",
                 steps_.size(), batch_, schedule_.per_image_steps,
                 static_cast<long long>(schedule_.per_image_scratch_bytes),
                 static_cast<long long>(schedule_.batch_scratch_bytes));
  }
  // The microkernel each operator runs at these shapes (SparseConvOperator::variant).
  std::vector<std::pair<int, const char*>> microkernels;
  for (const Step& step : steps_) {
    if (step.op) microkernels.emplace_back(step.node, step.op->variant().name);
  }
  run_log_->SetMicrokernels(microkernels);
  prepared_ = true;
  return kTfLiteOk;
}

void PartitionKernel::PlanWarmUp() {
  // Between two invokes the layers after the partition and the partition's own late layers
  // (megabytes of weights) evict the activation scratch and the workspace, which the first
  // steps then write from memory: every store to a line not in the cache reads it first. So the
  // first conv steps that prefetch nothing of their own (a compute-bound stem, a layer whose next
  // layer's weights are too small to spread) prefetch them instead, through the same stream
  // (SparseConvOperator::set_next_weights): the scratch, then the workspace, one to a step, each
  // cut evenly between the step's runs. Measured on ResNet-50 (docs/RESULTS.md, "Fused max pools
  // and whole-image pairs"). It changes no result.
  constexpr size_t kWarmUpSteps = 3;  // only the first conv steps: later ones would be too late
  std::vector<WeightRange> cold;
  for (AlignedBuffer* buffer : {&batch_scratch_, &per_image_scratch_, workspace_.get()}) {
    if (buffer->size() > 0) {
      cold.push_back({buffer->data(), static_cast<int64_t>(buffer->size() * sizeof(float))});
    }
  }
  size_t next = 0;
  size_t convs = 0;
  for (Step& step : steps_) {
    if (next == cold.size() || convs == kWarmUpSteps) break;
    if (!step.op) continue;
    ++convs;
    if (step.op->prefetches()) continue;
    const size_t runs = std::max<size_t>(1, step.op->FirstWeightsOfRuns().size());
    const WeightRange range = cold[next++];
    std::vector<WeightRange> shares;
    for (size_t run = 0; run < runs; ++run) {
      const int64_t first = range.bytes * static_cast<int64_t>(run) / static_cast<int64_t>(runs);
      const int64_t end =
          range.bytes * static_cast<int64_t>(run + 1) / static_cast<int64_t>(runs);
      shares.push_back({static_cast<const char*>(range.data) + first, end - first});
    }
    step.op->set_next_weights(shares);
  }
}

float* PartitionKernel::Data(TfLiteContext* context, const TensorRef& ref, int image) {
  if (ref.tensor < 0) return nullptr;
  float* base = ref.external        ? context->tensors[ref.tensor].data.f
                : ref.per_image     ? per_image_scratch_.data()
                                    : batch_scratch_.data();
  if (base == nullptr) return nullptr;
  base += ref.scratch_offset;
  return image < 0 || ref.per_image ? base : base + image * ref.image_floats;
}

TfLiteStatus PartitionKernel::Invoke(TfLiteContext* context) {
  if (!prepared_) {
    context->ReportError(context, "tflite_sparse_delegate: invoke before prepare");
    return kTfLiteError;
  }
  // Profile: each step's time in this invoke (all its images).
  std::vector<int64_t> nanoseconds(profile_ ? steps_.size() : 0, 0);
  const auto run_step = [&](Step& step, int image) {
    const float* input = Data(context, step.input, image);
    float* output = Data(context, step.output, image);
    const float* residual = Data(context, step.residual, image);
    if (step.geometry().batch != 0 &&
        (input == nullptr || output == nullptr ||
         (step.residual.tensor >= 0 && residual == nullptr))) {
      context->ReportError(context, "tflite_sparse_delegate: conv tensors have no data");
      return false;
    }
    const auto start = profile_ ? std::chrono::steady_clock::now()
                                : std::chrono::steady_clock::time_point();
    if (!(step.op ? step.op->Run(input, output, residual) : step.pool->Run(input, output))) {
      context->ReportError(context, "tflite_sparse_delegate: a worker failed");
      return false;
    }
    if (profile_) {
      nanoseconds[static_cast<size_t>(&step - steps_.data())] +=
          std::chrono::duration_cast<std::chrono::nanoseconds>(
              std::chrono::steady_clock::now() - start)
              .count();
    }
    return true;
  };
  const int per_image_steps = schedule_.per_image_steps;
  for (int image = 0; per_image_steps > 0 && image < batch_; ++image) {
    for (int index = 0; index < per_image_steps; ++index) {
      if (!run_step(steps_[index], image)) return kTfLiteError;
    }
  }
  for (size_t index = per_image_steps; index < steps_.size(); ++index) {
    if (!run_step(steps_[index], -1)) return kTfLiteError;
  }
  if (profile_) {
    // One entry per conv node: a fused pool's step adds to its conv's.
    std::map<int, int64_t> per_node;
    for (size_t index = 0; index < steps_.size(); ++index) {
      per_node[steps_[index].node] += nanoseconds[index];
    }
    run_log_->AddRuns({per_node.begin(), per_node.end()});
  }
  return kTfLiteOk;
}

}  // namespace tflite_sparse
