// A persistent pool of worker threads owned by one delegate.
//
// Between jobs a worker first polls for the next job for a short while (kSpinNanoseconds) and
// then sleeps on a condition variable. Consecutive claimed convolutions (the three convs of a
// ResNet bottleneck) follow each other within microseconds, and a futex wake-up of a sleeping
// worker costs tens of microseconds on a virtual machine, which is a visible share of a 1 ms
// layer; the poll is short so that a worker never holds a core for long while XNNPACK and the
// builtin ops run between our nodes. The calling thread runs task 0 itself and polls for the
// workers' completion the same way.
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

  // `num_threads` counts the calling thread: num_threads - 1 workers are started.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs task(context, index) once for every index in [0, num_threads()) and returns when all
  // finished; false if any task threw. Concurrent callers are serialised.
  bool Run(Task task, void* context);

 private:
  void WorkerLoop(int index);

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one job at a time
  // The job: written by Run before it publishes a new generation (release), read by workers
  // after they observe it (acquire).
  Task task_ = nullptr;
  void* context_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};  // workers still running the current job
  std::atomic<bool> failed_{false};
  std::atomic<bool> stopping_{false};
  // Sleeping workers and a sleeping caller wait on these; generation_ and pending_ change under
  // mutex_ only where a sleeper could miss the change (see thread_pool.cc).
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
};

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_THREADING_THREAD_POOL_H_
