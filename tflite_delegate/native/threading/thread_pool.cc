#include "threading/thread_pool.h"

namespace tflite_sparse {

ThreadPool::ThreadPool(int num_threads) {
  const int workers = num_threads > 1 ? num_threads - 1 : 0;
  workers_.reserve(workers);
  try {
    for (int index = 1; index <= workers; ++index) {
      workers_.emplace_back(&ThreadPool::WorkerLoop, this, index);
    }
  } catch (...) {
    // Could not start every thread: stop the ones that did start before propagating.
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (std::thread& worker : workers_) worker.join();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

bool ThreadPool::Run(Task task, void* context) {
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  if (workers_.empty()) {
    try {
      task(context, 0);
    } catch (...) {
      return false;
    }
    return true;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = task;
    context_ = context;
    pending_ = static_cast<int>(workers_.size());
    failed_ = false;
    ++generation_;
  }
  wake_.notify_all();
  bool caller_failed = false;
  try {
    task(context, 0);
  } catch (...) {
    caller_failed = true;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [this] { return pending_ == 0; });
  task_ = nullptr;
  context_ = nullptr;
  return !caller_failed && !failed_;
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen_generation = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || generation_ != seen_generation; });
    if (stopping_) return;
    seen_generation = generation_;
    const Task task = task_;
    void* const context = context_;
    lock.unlock();
    bool failed = false;
    try {
      task(context, index);
    } catch (...) {
      failed = true;
    }
    lock.lock();
    if (failed) failed_ = true;
    if (--pending_ == 0) done_.notify_one();
  }
}

}  // namespace tflite_sparse
