#include "delegate/delegate.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <set>
#include <tuple>
#include <utility>

#include "abi/int_array.h"
#include "claiming/partition_preview.h"
#include "delegate/partition_kernel.h"
#include "delegate/report_json.h"
#include "packing/packing.h"

namespace tflite_sparse {

namespace {

const char kKernelName[] = "TfLiteSparseConv1xN";

void ReportException(TfLiteContext* context, const char* where) {
  // Called from inside a catch block: a C++ exception must never cross the C ABI.
  try {
    throw;
  } catch (const std::bad_alloc&) {
    context->ReportError(context, "tflite_sparse_delegate: out of memory in %s", where);
  } catch (const std::exception& error) {
    context->ReportError(context, "tflite_sparse_delegate: %s failed: %s", where, error.what());
  } catch (...) {
    context->ReportError(context, "tflite_sparse_delegate: %s failed", where);
  }
}

}  // namespace

SparseDelegate::SparseDelegate(const DelegateOptions& options)
    : options_(options), delegate_() {
  delegate_.data_ = this;
  delegate_.Prepare = &SparseDelegate::PrepareCallback;
  // With dynamic tensors allowed, resizing an input after delegation re-prepares the same
  // kernels (which recompute their output shape) instead of undoing the delegation.
  delegate_.flags = kTfLiteDelegateFlagsAllowDynamicTensors;
  if (options_.num_threads > 0) {
    num_threads_ = options_.num_threads;
    pool_ = std::make_shared<ThreadPool>(num_threads_);
  }
}

SparseDelegate* SparseDelegate::FromTfLiteDelegate(const TfLiteDelegate* delegate) {
  if (delegate == nullptr || delegate->Prepare != &SparseDelegate::PrepareCallback ||
      delegate->data_ == nullptr) {
    return nullptr;
  }
  return static_cast<SparseDelegate*>(delegate->data_);
}

TfLiteStatus SparseDelegate::PrepareCallback(TfLiteContext* context, TfLiteDelegate* delegate) {
  try {
    SparseDelegate* self = FromTfLiteDelegate(delegate);
    if (self == nullptr) return kTfLiteDelegateError;
    return self->Prepare(context);
  } catch (...) {
    ReportException(context, "delegate Prepare");
    return kTfLiteDelegateError;
  }
}

TfLiteStatus SparseDelegate::Prepare(TfLiteContext* context) {
  std::lock_guard<std::mutex> lock(mutex_);
  const int threads = options_.num_threads > 0 ? options_.num_threads
                      : context->recommended_num_threads > 0
                          ? std::min(context->recommended_num_threads, kMaxThreads)
                          : 1;
  if (pool_ == nullptr || pool_->num_threads() != threads) {
    // Kernels created earlier keep their own reference to the previous pool.
    pool_ = std::make_shared<ThreadPool>(threads);
  }
  num_threads_ = threads;

  TfLiteIntArray* plan_array = nullptr;
  if (context->GetExecutionPlan(context, &plan_array) != kTfLiteOk || plan_array == nullptr) {
    return kTfLiteDelegateError;
  }
  // The runtime's array is invalidated by ReplaceNodeSubsetsWithDelegateKernels: copy it.
  const std::vector<int> execution_plan(plan_array->data, plan_array->data + plan_array->size);
  const DequantizeSources dequantize_sources = FindDequantizeSources(context, execution_plan);
  const ClaimingOptions claiming = ClaimingOptionsOf(options_);

  decisions_.clear();
  run_log_->Clear();
  pending_plans_.clear();
  std::vector<int> claimed;
  for (int node_index : execution_plan) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* registration = nullptr;
    if (context->GetNodeAndRegistration(context, node_index, &node, &registration) != kTfLiteOk ||
        node == nullptr || registration == nullptr ||
        registration->builtin_code != kTfLiteBuiltinConv2d) {
      continue;
    }
    ConvLayerPlan plan;
    NodeDecision decision =
        AnalyzeConvNode(context, node_index, *node, dequantize_sources, claiming, &plan);
    if (decision.claimed) {
      claimed.push_back(node_index);
      pending_plans_.emplace(node_index, std::move(plan));
    }
    decisions_.push_back(std::move(decision));
  }
  // Without a readable graph, no PAD is folded and no ADD fused.
  TensorUse use;
  const bool graph_read = FindTensorUse(context, execution_plan, &use);
  pending_pads_.clear();
  // The nodes that join each conv in the request: its folded PAD, its fused pool and its PAD.
  std::map<int, std::vector<int>> companions_of_conv;
  if (options_.fold_pad && graph_read) {
    pending_pads_ = FindFoldedPads(context, use, pending_plans_);
    for (const auto& [conv_node, pad] : pending_pads_) {
      companions_of_conv[conv_node].push_back(pad.pad_node);
    }
  }
  pending_pools_.clear();
  if (options_.fuse_pool && graph_read) {
    pending_pools_ = FindFusedPools(context, use, pending_plans_, options_.fold_pad);
    for (const auto& [conv_node, pool] : pending_pools_) {
      if (pool.pad_node >= 0) companions_of_conv[conv_node].push_back(pool.pad_node);
      companions_of_conv[conv_node].push_back(pool.pool_node);
    }
  }
  pending_adds_.clear();
  std::map<int, FusedAdd> alone;  // fused ADDs whose conv is replaced on its own (add_fusion.h)
  if (options_.fuse_add && graph_read) {
    pending_adds_ = FindFusedAdds(context, execution_plan, use, pending_plans_);
    SplitFusionsByPartition(context, pending_plans_, companions_of_conv, &pending_adds_, &alone);
  }
  // A conv replaced on its own, with its ADD, leaves its PAD (and a pool) to TFLite.
  for (const auto& [conv_node, add] : alone) {
    pending_pads_.erase(conv_node);
    pending_pools_.erase(conv_node);
  }
  pending_positions_.clear();
  for (size_t i = 0; i < execution_plan.size(); ++i) {
    pending_positions_[execution_plan[i]] = static_cast<int>(i);
  }

  TfLiteRegistration registration;
  std::memset(&registration, 0, sizeof(registration));
  registration.init = &SparseDelegate::InitKernel;
  registration.free = &SparseDelegate::FreeKernel;
  registration.prepare = &SparseDelegate::PrepareKernel;
  registration.invoke = &SparseDelegate::InvokeKernel;
  registration.custom_name = kKernelName;
  registration.version = 1;

  // Every claimed conv, folded PAD and fused ADD in one request: TFLite cuts them into
  // partitions, each a connected run of claimed nodes with no other node between them (a
  // ResNet's whole body when every conv is claimed), and one PartitionKernel runs each. Then
  // each conv of `alone` with its ADD, or alone when the graph as it now is would split them.
  std::vector<int> together;
  for (int node_index : claimed) {
    if (!alone.count(node_index)) together.push_back(node_index);
  }
  for (const auto& [conv_node, pad] : pending_pads_) together.push_back(pad.pad_node);
  for (const auto& [conv_node, add] : pending_adds_) together.push_back(add.add_node);
  for (const auto& [conv_node, pool] : pending_pools_) {
    if (pool.pad_node >= 0) together.push_back(pool.pad_node);
    together.push_back(pool.pool_node);
  }
  KeepCompanionsInOnePartition(context, &together);
  for (const auto& [conv_node, pad] : pending_pads_) FoldPad(pad, &pending_plans_.at(conv_node));
  TfLiteStatus status = ReplaceNodes(context, registration, together);
  for (const auto& [conv_node, add] : alone) {
    if (status != kTfLiteOk) break;
    if (FusionFitsOnePartition(context, conv_node, add)) {
      pending_adds_.emplace(conv_node, add);
      status = ReplaceNodes(context, registration, {conv_node, add.add_node});
    } else {
      status = ReplaceNodes(context, registration, {conv_node});
    }
  }

  for (NodeDecision& decision : decisions_) {
    const auto add = pending_adds_.find(decision.node_index);
    if (add != pending_adds_.end()) decision.fused_add_node = add->second.add_node;
    const auto pad = pending_pads_.find(decision.node_index);
    if (pad != pending_pads_.end()) decision.folded_pad_node = pad->second.pad_node;
    const auto pool = pending_pools_.find(decision.node_index);
    if (pool != pending_pools_.end()) {
      decision.fused_pool_node = pool->second.pool_node;
      decision.fused_pool_pad_node = pool->second.pad_node;
    }
    if (options_.verbose) {
      // "claimed (<microkernel>)[ + PAD node <j>][ + ADD node <k>][ + PAD node <l>]
      // [ + MAX_POOL_2D node <m>]" or "<reason> [<reason_code>]".
      std::fprintf(stderr, "tflite_sparse_delegate: CONV_2D node %d: %s %s%s%s",
                   decision.node_index, decision.reason.c_str(), decision.claimed ? "(" : "[",
                   decision.claimed ? decision.microkernel : ReasonCodeName(decision.reason_code),
                   decision.claimed ? ")" : "]");
      if (decision.folded_pad_node >= 0) {
        std::fprintf(stderr, " + PAD node %d", decision.folded_pad_node);
      }
      if (decision.fused_add_node >= 0) {
        std::fprintf(stderr, " + ADD node %d", decision.fused_add_node);
      }
      if (decision.fused_pool_pad_node >= 0) {
        std::fprintf(stderr, " + PAD node %d", decision.fused_pool_pad_node);
      }
      if (decision.fused_pool_node >= 0) {
        std::fprintf(stderr, " + MAX_POOL_2D node %d", decision.fused_pool_node);
      }
      std::fprintf(stderr, "\n");
    }
  }
  pending_plans_.clear();
  pending_pads_.clear();
  pending_adds_.clear();
  pending_pools_.clear();
  pending_positions_.clear();
  return status;
}

void SparseDelegate::KeepCompanionsInOnePartition(TfLiteContext* context,
                                                  std::vector<int>* request) {
  // Each round drops at least one fold or pool, or ends.
  for (;;) {
    std::map<int, Companions> companions;  // by PAD or pool node
    for (const auto& [conv_node, pad] : pending_pads_) {
      companions[pad.pad_node] = {conv_node, {pad.pad_node}, {pad.output_tensor}};
    }
    for (const auto& [conv_node, pool] : pending_pools_) {
      Companions group = {conv_node, {pool.pool_node}, {pool.input_tensor}};
      if (pool.pad_node >= 0) {
        group.nodes.push_back(pool.pad_node);
        group.internal_tensors.push_back(pool.pad_output_tensor);
      }
      companions[pool.pool_node] = group;
    }
    if (companions.empty()) return;
    const std::vector<int> split = SplitCompanions(context, *request, companions);
    if (split.empty()) return;
    for (const int key : split) {
      const Companions& group = companions.at(key);
      for (const int node : group.nodes) {
        request->erase(std::remove(request->begin(), request->end(), node), request->end());
      }
      const auto pad = pending_pads_.find(group.conv_node);
      if (pad != pending_pads_.end() && pad->second.pad_node == key) pending_pads_.erase(pad);
      const auto pool = pending_pools_.find(group.conv_node);
      if (pool != pending_pools_.end() && pool->second.pool_node == key) {
        pending_pools_.erase(pool);
      }
    }
  }
}

TfLiteStatus SparseDelegate::ReplaceNodes(TfLiteContext* context,
                                          const TfLiteRegistration& registration,
                                          std::vector<int> nodes) {
  if (nodes.empty()) return kTfLiteOk;
  SortInExecutionOrder(&nodes);
  const IntArray array = MakeIntArray(nodes);  // the runtime copies the node list
  return context->ReplaceNodeSubsetsWithDelegateKernels(context, registration, array.get(),
                                                        &delegate_);
}

void SparseDelegate::SortInExecutionOrder(std::vector<int>* nodes) {
  std::sort(nodes->begin(), nodes->end(), [&](int a, int b) {
    return pending_positions_[a] < pending_positions_[b];
  });
}

void* SparseDelegate::CreateKernel(TfLiteContext* context, const TfLiteDelegateParams* params) {
  if (params == nullptr || params->nodes_to_replace == nullptr ||
      params->nodes_to_replace->size < 1 || params->input_tensors == nullptr ||
      params->output_tensors == nullptr) {
    context->ReportError(context, "tflite_sparse_delegate: empty partition");
    return nullptr;
  }
  // The partition's convs in execution order; each folded PAD, fused ADD and fused pool (with its
  // PAD) must come with its conv.
  const TfLiteIntArray& nodes = *params->nodes_to_replace;
  std::vector<int> convs;
  std::set<int> others;  // the partition's folded PADs, fused ADDs and fused pools
  for (int k = 0; k < nodes.size; ++k) {
    const int node = nodes.data[k];
    if (pending_plans_.count(node)) {
      convs.push_back(node);
    } else {
      others.insert(node);
    }
  }
  SortInExecutionOrder(&convs);
  for (const int conv : convs) {
    const auto pad = pending_pads_.find(conv);
    const auto add = pending_adds_.find(conv);
    const auto pool = pending_pools_.find(conv);
    const bool pooled = pool != pending_pools_.end();
    for (const auto& [found, companion, what] :
         {std::make_tuple(pad != pending_pads_.end(),
                          pad != pending_pads_.end() ? pad->second.pad_node : -1, "folded PAD"),
          std::make_tuple(add != pending_adds_.end(),
                          add != pending_adds_.end() ? add->second.add_node : -1, "fused ADD"),
          std::make_tuple(pooled, pooled ? pool->second.pool_node : -1, "fused MAX_POOL_2D"),
          std::make_tuple(pooled && pool->second.pad_node >= 0,
                          pooled ? pool->second.pad_node : -1, "fused pool's PAD")}) {
      if (found && others.erase(companion) != 1) {
        context->ReportError(context,
                             "tflite_sparse_delegate: node %d and its %s %d are in different "
                             "partitions",
                             conv, what, companion);
        return nullptr;
      }
    }
  }
  if (!others.empty()) {
    context->ReportError(context, "tflite_sparse_delegate: node %d was not analysed",
                         *others.begin());
    return nullptr;
  }
  std::set<int> external(params->input_tensors->data,
                         params->input_tensors->data + params->input_tensors->size);
  external.insert(params->output_tensors->data,
                  params->output_tensors->data + params->output_tensors->size);
  const int64_t large_tensor_bytes =
      options_.per_image_bytes == kPerImageBytesAuto  ? DefaultLargeTensorBytes()
      : options_.per_image_bytes == kPerImageBytesOff ? std::numeric_limits<int64_t>::max()
                                                      : options_.per_image_bytes;
  auto kernel = std::make_unique<PartitionKernel>(std::move(external), pool_, large_tensor_bytes,
                                                  options_.verbose, run_log_, options_.profile);
  std::set<int> available(kernel->external().begin(), kernel->external().end());
  for (const int conv : convs) {
    const ConvLayerPlan& plan = pending_plans_.at(conv);
    const auto add = pending_adds_.find(conv);
    const FusedAdd* fused_add = add != pending_adds_.end() ? &add->second : nullptr;
    // A step reads only the partition's inputs and the outputs of earlier steps.
    if (!available.count(plan.input_tensor) ||
        (fused_add != nullptr && !available.count(fused_add->residual_tensor))) {
      context->ReportError(context,
                           "tflite_sparse_delegate: node %d reads a tensor its partition has not "
                           "computed yet",
                           conv);
      return nullptr;
    }
    PackedFilter packed;
    std::string error;
    const float* bias = plan.bias.empty() ? nullptr : plan.bias.data();
    if (!PackFilter(plan.filter.data(), bias, plan.filter_shape, plan.pattern, &packed, &error)) {
      context->ReportError(context, "tflite_sparse_delegate: node %d: %s", conv, error.c_str());
      return nullptr;
    }
    kernel->AddStep(conv, plan, std::move(packed), fused_add);
    available.insert(fused_add != nullptr ? fused_add->output_tensor : plan.output_tensor);
    const auto pool = pending_pools_.find(conv);
    if (pool != pending_pools_.end()) {
      kernel->AddPoolStep(conv, pool->second, options_.isa);
      available.insert(pool->second.output_tensor);
    }
  }
  kernels_created_.fetch_add(static_cast<int>(convs.size()));
  partitions_created_.fetch_add(1);
  return kernel.release();
}

void* SparseDelegate::InitKernel(TfLiteContext* context, const char* buffer, size_t) {
  try {
    const auto* params = reinterpret_cast<const TfLiteDelegateParams*>(buffer);
    SparseDelegate* self = params == nullptr ? nullptr : FromTfLiteDelegate(params->delegate);
    if (self == nullptr) return nullptr;
    return self->CreateKernel(context, params);
  } catch (...) {
    ReportException(context, "kernel init");
    return nullptr;
  }
}

void SparseDelegate::FreeKernel(TfLiteContext*, void* buffer) {
  delete static_cast<PartitionKernel*>(buffer);  // destructor does not throw
}

TfLiteStatus SparseDelegate::PrepareKernel(TfLiteContext* context, TfLiteNode* node) {
  try {
    auto* kernel = static_cast<PartitionKernel*>(node->user_data);
    if (kernel == nullptr) {
      context->ReportError(context, "tflite_sparse_delegate: kernel was not created");
      return kTfLiteError;
    }
    return kernel->Prepare(context);
  } catch (...) {
    ReportException(context, "kernel prepare");
    return kTfLiteError;
  }
}

TfLiteStatus SparseDelegate::InvokeKernel(TfLiteContext* context, TfLiteNode* node) {
  try {
    auto* kernel = static_cast<PartitionKernel*>(node->user_data);
    if (kernel == nullptr) return kTfLiteError;
    return kernel->Invoke(context);
  } catch (...) {
    ReportException(context, "kernel invoke");
    return kTfLiteError;
  }
}

std::string SparseDelegate::ReportJson() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<NodeDecision> decisions = decisions_;
  const std::map<int, RunLog::Entry> entries = run_log_->Entries();
  for (NodeDecision& decision : decisions) {
    const auto entry = entries.find(decision.node_index);
    if (!decision.claimed || entry == entries.end()) continue;
    if (entry->second.microkernel != nullptr) decision.microkernel = entry->second.microkernel;
    if (options_.profile) {
      decision.runs = entry->second.runs;
      decision.run_seconds = 1e-9 * static_cast<double>(entry->second.nanoseconds);
    }
  }
  return FormatReportJson(IsaName(options_.isa), options_.split_avx512, options_.pixel_pairs,
                          num_threads_, kernels_created_.load(), partitions_created_.load(),
                          decisions);
}

}  // namespace tflite_sparse
