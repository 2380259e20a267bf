// A persistent pool of worker threads owned by one delegate.
//
// Between jobs a worker first polls for the next job for a short while (kSpinNanoseconds) and
// then sleeps on a condition variable. Consecutive claimed convolutions (the three convs of a
// ResNet bottleneck) follow each other within microseconds, and a futex wake-up of a sleeping
// worker costs tens of microseconds on a virtual machine, which is a visible share of a 1 ms
// layer; the poll is short so that a worker never holds a core for long while XNNPACK and the
// builtin ops run between our nodes, and a worker yields its core (sched_yield) between polls,
// so that a thread of XNNPACK's woken onto that core runs at once. The calling thread runs task
// 0 itself and polls for the workers' completion with pause instructions.
// A job either needs every thread index (Join::kEveryThread) or lets the caller's task finish
// it alone (Join::kStartedThreads, for work-stealing loops): then a worker that has not begun
// the job by the time the caller's task returns skips it, and the caller waits only for the
// workers already inside. On 2 cores shared with XNNPACK's polling workers, a worker of ours
// can stay descheduled for a whole scheduler time slice (milliseconds); waiting for it would
// cost far more than the layer itself.
// Workers are named tfl-sparse-1, tfl-sparse-2, ... (top -H, perf sched).
// Work is described by a plain function pointer and a context pointer, so starting a job
// allocates nothing; parallelize.h builds the tiled loops on top of it.
#ifndef TFLITE_DELEGATE_THREADING_THREAD_POOL_H_
#define TFLITE_DELEGATE_THREADING_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace tflite_sparse {

class ThreadPool {
 public:
  using Task = void (*)(void* context, int thread_index);

  // Which workers Run waits for (see the file comment).
  enum class Join {
    kEveryThread,     // task(context, index) runs once for every index in [0, num_threads())
    kStartedThreads,  // task 0 runs; task k (k > 0) runs at most once, only if worker k
                      // begins before task 0 returns: task 0 must complete the job by itself
  };

  // `num_threads` counts the calling thread: num_threads - 1 workers are started.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs task(context, index) for the indices that `join` says and returns when all of those
  // finished; false if any task threw. Concurrent callers are serialised.
  bool Run(Task task, void* context, Join join = Join::kEveryThread);

 private:
  void WorkerLoop(int index);

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one job at a time
  // The job: written by Run before it publishes a new generation (release), read by workers
  // after they observe it (acquire).
  Task task_ = nullptr;
  void* context_ = nullptr;
  Join join_ = Join::kEveryThread;
  // The job's state in one word, so that a worker enters exactly the job it observed and never
  // one that has been closed: bits 32-63 the job's generation (bumped by every Run), bit 31 set
  // once the caller stops admitting workers, bits 0-30 the workers inside the job's task.
  std::atomic<uint64_t> state_{0};
  std::atomic<int> finished_{0};  // workers that completed the current job's task
  std::atomic<bool> failed_{false};
  std::atomic<bool> stopping_{false};
  // Sleeping workers and a sleeping caller wait on these; state_ and finished_ change under
  // mutex_ only where a sleeper could miss the change (see thread_pool.cc).
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
};

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_THREADING_THREAD_POOL_H_
