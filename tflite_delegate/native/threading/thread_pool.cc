#include "threading/thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <cstdio>

namespace tflite_sparse {

namespace {

// How long a worker polls for the next job, and the caller for the workers, before sleeping.
constexpr int64_t kSpinNanoseconds = 50 * 1000;

// Fields of ThreadPool::state_ (see thread_pool.h).
constexpr int kGenerationShift = 32;
constexpr uint64_t kClosed = uint64_t{1} << 31;
constexpr uint64_t kInsideMask = kClosed - 1;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// How a thread waits between two polls.
enum class Poll {
  // The calling thread, waiting for the workers to finish a job: a pause instruction.
  kPause,
  // A worker, waiting for the next job: sched_yield(), which gives the core to any other thread
  // ready to run on it (none: it returns at once). In a model whose claimed convs alternate with
  // XNNPACK's nodes (MobileNetV1: 13 of our partitions between its depthwise convs) XNNPACK's
  // worker is woken onto the core where ours has just finished a job, and a worker polling with
  // pause instructions held that core for the rest of its poll: MobileNetV1 at 2 threads ran
  // 1.06-1.10x faster with the yields (docs/RESULTS.md), ResNets, one partition each, 0.98-1.02x.
  kYield,
};

// Polls `done()` for up to kSpinNanoseconds; true if it became true.
template <Poll kPoll, class Predicate>
bool SpinUntil(const Predicate& done) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(kSpinNanoseconds);
  for (int poll = 0;; ++poll) {
    if (done()) return true;
    if constexpr (kPoll == Poll::kYield) {
      // A system call per poll: the clock read is cheap beside it.
      sched_yield();
      if (std::chrono::steady_clock::now() >= deadline) return done();
    } else {
      CpuRelax();
      // Reading the clock costs more than a poll: look at it every 64 polls.
      if ((poll & 63) == 63 && std::chrono::steady_clock::now() >= deadline) return done();
    }
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

bool ThreadPool::Run(Task task, void* context, Join join) {
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
  join_ = join;
  failed_.store(false, std::memory_order_relaxed);
  finished_.store(0, std::memory_order_relaxed);
  {
    // Under the mutex, so that a worker between its last poll and its wait cannot miss it.
    std::lock_guard<std::mutex> lock(mutex_);
    const uint64_t generation = (state_.load(std::memory_order_relaxed) >> kGenerationShift) + 1;
    state_.store(generation << kGenerationShift, std::memory_order_release);  // open, empty
  }
  wake_.notify_all();
  bool caller_failed = false;
  try {
    task(context, 0);
  } catch (...) {
    caller_failed = true;
  }
  if (join == Join::kStartedThreads) {
    // From here on a waking worker skips this job; wait only for the ones already inside.
    state_.fetch_or(kClosed, std::memory_order_acq_rel);
  }
  const int workers = static_cast<int>(workers_.size());
  const auto finished = [&] {
    return join == Join::kEveryThread
               ? finished_.load(std::memory_order_acquire) == workers
               : (state_.load(std::memory_order_acquire) & kInsideMask) == 0;
  };
  if (!SpinUntil<Poll::kPause>(finished)) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, finished);
  }
  task_ = nullptr;
  context_ = nullptr;
  return !caller_failed && !failed_.load(std::memory_order_relaxed);
}

void ThreadPool::WorkerLoop(int index) {
  // Named so that top -H and perf tell our workers from XNNPACK's (at most 15 characters; no
  // allocation, so nothing here can throw on a worker thread).
  char name[16];
  std::snprintf(name, sizeof(name), "tfl-sparse-%d", index);
  pthread_setname_np(pthread_self(), name);
  uint64_t seen_generation = 0;
  for (;;) {
    const auto has_news = [&] {
      return stopping_.load(std::memory_order_acquire) ||
             state_.load(std::memory_order_acquire) >> kGenerationShift != seen_generation;
    };
    if (!SpinUntil<Poll::kYield>(has_news)) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, has_news);
    }
    if (stopping_.load(std::memory_order_acquire)) return;
    // Enter the job observed, unless it is closed already (or replaced: the next round sees it).
    uint64_t state = state_.load(std::memory_order_acquire);
    seen_generation = state >> kGenerationShift;
    bool entered = false;
    while ((state & kClosed) == 0 && state >> kGenerationShift == seen_generation) {
      if (state_.compare_exchange_weak(state, state + 1, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
        entered = true;
        break;
      }
    }
    if (!entered) continue;
    const Join join = join_;
    try {
      task_(context_, index);
    } catch (...) {
      failed_.store(true, std::memory_order_relaxed);
    }
    // The counter the caller waits on is the last thing a worker touches in a job: once it
    // changes, the caller may return and the next Run may reset everything else.
    bool last;
    if (join == Join::kEveryThread) {
      last = finished_.fetch_add(1, std::memory_order_acq_rel) + 1 ==
             static_cast<int>(workers_.size());
    } else {
      const uint64_t after = state_.fetch_sub(1, std::memory_order_acq_rel) - 1;
      last = (after & kClosed) != 0 && (after & kInsideMask) == 0;
    }
    if (last) {
      // Under the mutex, so that a caller between its last poll and its wait cannot miss it.
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_one();
    }
  }
}

}  // namespace tflite_sparse
