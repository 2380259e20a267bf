#include "threading/thread_pool.h"

#include <chrono>

namespace tflite_sparse {

namespace {

// How long a worker polls for the next job, and the caller for the workers, before sleeping.
constexpr int64_t kSpinNanoseconds = 50 * 1000;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Polls `done()` for up to kSpinNanoseconds; true if it became true.
template <class Predicate>
bool SpinUntil(const Predicate& done) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(kSpinNanoseconds);
  for (int poll = 0;; ++poll) {
    if (done()) return true;
    CpuRelax();
    // Reading the clock costs more than a poll: look at it every 64 polls.
    if ((poll & 63) == 63 && std::chrono::steady_clock::now() >= deadline) return done();
  }
}

}  // namespace

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
      stopping_.store(true);
    }
    wake_.notify_all();
    for (std::thread& worker : workers_) worker.join();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true);
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
  task_ = task;
  context_ = context;
  failed_.store(false, std::memory_order_relaxed);
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  {
    // Under the mutex, so that a worker between its last poll and its wait cannot miss it.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  bool caller_failed = false;
  try {
    task(context, 0);
  } catch (...) {
    caller_failed = true;
  }
  const auto finished = [this] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!SpinUntil(finished)) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, finished);
  }
  task_ = nullptr;
  context_ = nullptr;
  return !caller_failed && !failed_.load(std::memory_order_relaxed);
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen_generation = 0;
  for (;;) {
    const auto has_news = [&] {
      return stopping_.load(std::memory_order_acquire) ||
             generation_.load(std::memory_order_acquire) != seen_generation;
    };
    if (!SpinUntil(has_news)) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, has_news);
    }
    if (stopping_.load(std::memory_order_acquire)) return;
    seen_generation = generation_.load(std::memory_order_acquire);
    try {
      task_(context_, index);
    } catch (...) {
      failed_.store(true, std::memory_order_relaxed);
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // Under the mutex, so that a caller between its last poll and its wait cannot miss it.
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_one();
    }
  }
}

}  // namespace tflite_sparse
