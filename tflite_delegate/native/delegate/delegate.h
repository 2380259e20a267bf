// The delegate object: options, the thread pool, the claiming pass of delegate Prepare, creation
// of the partition kernels (packing + operators), and the JSON report of the most recent Prepare.
#ifndef TFLITE_DELEGATE_DELEGATE_DELEGATE_H_
#define TFLITE_DELEGATE_DELEGATE_DELEGATE_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "abi/tflite_abi.h"
#include "claiming/add_fusion.h"
#include "claiming/claiming_policy.h"
#include "claiming/pad_folding.h"
#include "claiming/pool_fusion.h"
#include "delegate/options.h"
#include "delegate/run_log.h"
#include "threading/thread_pool.h"

namespace tflite_sparse {

class SparseDelegate {
 public:
  explicit SparseDelegate(const DelegateOptions& options);
  SparseDelegate(const SparseDelegate&) = delete;
  SparseDelegate& operator=(const SparseDelegate&) = delete;

  TfLiteDelegate* tflite_delegate() { return &delegate_; }

  // The SparseDelegate behind `delegate`, or nullptr if it is not one of ours.
  static SparseDelegate* FromTfLiteDelegate(const TfLiteDelegate* delegate);

  // JSON description: isa, num_threads, kernels_created, partitions_created and the decision for
  // every CONV_2D node of the most recent Prepare. A claimed node's microkernel is the one its
  // operator runs once the interpreter has prepared the node (AllocateTensors), before that the
  // one chosen when it was claimed; with the profile option its runs and their total time.
  std::string ReportJson();

 private:
  static TfLiteStatus PrepareCallback(TfLiteContext* context, TfLiteDelegate* delegate);
  static void* InitKernel(TfLiteContext* context, const char* buffer, size_t length);
  static void FreeKernel(TfLiteContext* context, void* buffer);
  static TfLiteStatus PrepareKernel(TfLiteContext* context, TfLiteNode* node);
  static TfLiteStatus InvokeKernel(TfLiteContext* context, TfLiteNode* node);

  TfLiteStatus Prepare(TfLiteContext* context);
  // Hands `nodes` to TFLite in one request (ReplaceNodeSubsetsWithDelegateKernels).
  TfLiteStatus ReplaceNodes(TfLiteContext* context, const TfLiteRegistration& registration,
                            std::vector<int> nodes);
  // Drops from `request`, and from pending_pads_ and pending_pools_, every folded PAD and fused
  // pool that TFLite would not put in its conv's partition (with the tensors between them
  // internal) when `request` is replaced in one call. Repeats until none moves.
  void KeepCompanionsInOnePartition(TfLiteContext* context, std::vector<int>* request);
  // Sorts nodes of the running Prepare by their position in the execution plan.
  void SortInExecutionOrder(std::vector<int>* nodes);
  // Called by the runtime from inside Prepare (mutex_ is already held by this thread).
  void* CreateKernel(TfLiteContext* context, const TfLiteDelegateParams* params);

  DelegateOptions options_;
  TfLiteDelegate delegate_;
  std::mutex mutex_;  // guards everything below; held for the whole of Prepare
  std::shared_ptr<ThreadPool> pool_;
  int num_threads_ = 0;  // 0 until the first Prepare when the option is not given
  std::vector<NodeDecision> decisions_;
  std::map<int, ConvLayerPlan> pending_plans_;  // claimed nodes of the running Prepare
  std::map<int, FoldedPad> pending_pads_;       // their folded PADs, by conv node
  std::map<int, FusedAdd> pending_adds_;        // their fused ADDs, by conv node
  std::map<int, FusedPool> pending_pools_;      // their fused max pools, by conv node
  std::map<int, int> pending_positions_;        // execution-plan position of every node
  // What the kernels report about the claimed nodes (microkernel at run time, profile); not
  // under mutex_, so that preparing or invoking a kernel never waits for a delegate Prepare.
  std::shared_ptr<RunLog> run_log_ = std::make_shared<RunLog>();
  std::atomic<int> kernels_created_{0};     // claimed convs built into kernels
  std::atomic<int> partitions_created_{0};  // delegate nodes (partitions) built
};

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_DELEGATE_DELEGATE_H_
