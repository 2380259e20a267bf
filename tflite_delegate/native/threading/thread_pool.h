// A persistent pool of worker threads owned by one delegate.
//
// Workers sleep on a condition variable between jobs (no spinning: the CPU stays free for
// XNNPACK and builtin ops running between our nodes). The calling thread runs task 0 itself.
// Work is described by a plain function pointer and a context pointer, so starting a job
// allocates nothing; parallelize.h builds the tiled loops on top of it.
#ifndef TFLITE_DELEGATE_THREADING_THREAD_POOL_H_
#define TFLITE_DELEGATE_THREADING_THREAD_POOL_H_

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
  std::mutex mutex_;      // guards the fields below
  std::condition_variable wake_;
  std::condition_variable done_;
  Task task_ = nullptr;
  void* context_ = nullptr;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool failed_ = false;
  bool stopping_ = false;
};

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_THREADING_THREAD_POOL_H_
