#include "delegate/delegate.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <utility>

#include "delegate/conv_node_kernel.h"
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
  pending_adds_.clear();
  if (options_.fuse_add) pending_adds_ = FindFusedAdds(context, execution_plan, pending_plans_);
  for (NodeDecision& decision : decisions_) {
    const auto add = pending_adds_.find(decision.node_index);
    if (add != pending_adds_.end()) decision.fused_add_node = add->second.add_node;
    if (options_.verbose) {
      // "claimed (<microkernel>)[ + ADD node <k>]" or "<reason> [<reason_code>]".
      std::fprintf(stderr, "tflite_sparse_delegate: CONV_2D node %d: %s %s%s%s",
                   decision.node_index, decision.reason.c_str(), decision.claimed ? "(" : "[",
                   decision.claimed ? decision.microkernel : ReasonCodeName(decision.reason_code),
                   decision.claimed ? ")" : "]");
      if (decision.fused_add_node >= 0) {
        std::fprintf(stderr, " + ADD node %d", decision.fused_add_node);
      }
      std::fprintf(stderr, "\n");
    }
  }

  TfLiteRegistration registration;
  std::memset(&registration, 0, sizeof(registration));
  registration.init = &SparseDelegate::InitKernel;
  registration.free = &SparseDelegate::FreeKernel;
  registration.prepare = &SparseDelegate::PrepareKernel;
  registration.invoke = &SparseDelegate::InvokeKernel;
  registration.custom_name = kKernelName;
  registration.version = 1;

  // One partition per claimed node, or per claimed node and its fused ADD: the only tensor ever
  // internal to a partition is a fused conv's own output, which the kernel never materialises.
  TfLiteStatus status = kTfLiteOk;
  for (int node_index : claimed) {
    auto* nodes = static_cast<TfLiteIntArray*>(std::malloc(sizeof(int) * 3));
    if (nodes == nullptr) throw std::bad_alloc();
    const auto add = pending_adds_.find(node_index);
    nodes->size = add != pending_adds_.end() ? 2 : 1;
    nodes->data[0] = node_index;
    if (add != pending_adds_.end()) nodes->data[1] = add->second.add_node;
    status = context->ReplaceNodeSubsetsWithDelegateKernels(context, registration, nodes,
                                                            &delegate_);
    std::free(nodes);  // the runtime does not take ownership of the node list
    if (status != kTfLiteOk) break;
  }
  pending_plans_.clear();
  pending_adds_.clear();
  return status;
}

void* SparseDelegate::CreateKernel(TfLiteContext* context, const TfLiteDelegateParams* params) {
  if (params == nullptr || params->nodes_to_replace == nullptr ||
      params->nodes_to_replace->size < 1 || params->nodes_to_replace->size > 2) {
    context->ReportError(context,
                         "tflite_sparse_delegate: expected a conv (and its ADD) per partition");
    return nullptr;
  }
  // The conv is the partition's node with a plan; a second node must be its fused ADD.
  const TfLiteIntArray& nodes = *params->nodes_to_replace;
  auto found = pending_plans_.find(nodes.data[0]);
  if (found == pending_plans_.end() && nodes.size == 2) found = pending_plans_.find(nodes.data[1]);
  if (found == pending_plans_.end()) {
    context->ReportError(context, "tflite_sparse_delegate: node %d was not analysed",
                         nodes.data[0]);
    return nullptr;
  }
  const int node_index = found->first;
  const auto add = pending_adds_.find(node_index);
  const FusedAdd* fused_add = add != pending_adds_.end() ? &add->second : nullptr;
  const int expected_nodes = fused_add != nullptr ? 2 : 1;
  if (nodes.size != expected_nodes ||
      (fused_add != nullptr && nodes.data[0] != fused_add->add_node &&
       nodes.data[1] != fused_add->add_node)) {
    context->ReportError(context, "tflite_sparse_delegate: unexpected partition of node %d",
                         node_index);
    return nullptr;
  }
  const ConvLayerPlan& plan = found->second;
  PackedFilter packed;
  std::string error;
  const float* bias = plan.bias.empty() ? nullptr : plan.bias.data();
  if (!PackFilter(plan.filter.data(), bias, plan.filter_shape, plan.pattern, &packed, &error)) {
    context->ReportError(context, "tflite_sparse_delegate: node %d: %s", node_index,
                         error.c_str());
    return nullptr;
  }
  auto* kernel = new ConvNodeKernel(plan, std::move(packed), pool_, fused_add);
  kernels_created_.fetch_add(1);
  return kernel;
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
  delete static_cast<ConvNodeKernel*>(buffer);  // destructor does not throw
}

TfLiteStatus SparseDelegate::PrepareKernel(TfLiteContext* context, TfLiteNode* node) {
  try {
    auto* kernel = static_cast<ConvNodeKernel*>(node->user_data);
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
    auto* kernel = static_cast<ConvNodeKernel*>(node->user_data);
    if (kernel == nullptr) return kTfLiteError;
    return kernel->Invoke(context);
  } catch (...) {
    ReportException(context, "kernel invoke");
    return kTfLiteError;
  }
}

std::string SparseDelegate::ReportJson() {
  std::lock_guard<std::mutex> lock(mutex_);
  return FormatReportJson(IsaName(options_.isa), num_threads_, kernels_created_.load(),
                          decisions_);
}

}  // namespace tflite_sparse
