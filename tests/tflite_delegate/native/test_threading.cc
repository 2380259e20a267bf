// The thread pool and the parallelize layer: every index covered exactly once, the static
// contiguous split and the take-over of a delayed thread's tiles, failures reported, the pool
// reusable.
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_harness.h"
#include "threading/parallelize.h"
#include "threading/thread_pool.h"

namespace {

using tflite_sparse::ThreadPool;

TEST(RunCallsEveryThreadIndexOnce) {
  for (int threads = 1; threads <= 4; ++threads) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int job = 0; job < 50; ++job) {
      std::vector<std::atomic<int>> calls(threads);
      const bool ok = pool.Run(
          [](void* context, int index) {
            (*static_cast<std::vector<std::atomic<int>>*>(context))[index].fetch_add(1);
          },
          &calls);
      EXPECT_TRUE(ok);
      for (int index = 0; index < threads; ++index) EXPECT_EQ(calls[index].load(), 1);
    }
  }
}

TEST(WorkersAreNamedByTheirIndex) {
  // top -H and perf show the name: it tells our workers from XNNPACK's and the interpreter's.
  ThreadPool pool(3);
  std::vector<std::string> names(3);
  EXPECT_TRUE(pool.Run(
      [](void* context, int index) {
        char name[16] = {};
        pthread_getname_np(pthread_self(), name, sizeof(name));
        (*static_cast<std::vector<std::string>*>(context))[index] = name;
      },
      &names));
  EXPECT_TRUE(names[1] == "tfl-sparse-1");
  EXPECT_TRUE(names[2] == "tfl-sparse-2");
}

TEST(Parallelize1DTileCoversTheRangeOnceInContiguousRuns) {
  auto rng = native_test::Random(7);
  for (int threads = 1; threads <= 4; ++threads) {
    ThreadPool pool(threads);
    for (int trial = 0; trial < 40; ++trial) {
      const int64_t range = native_test::UniformInt(rng, 0, 300);
      const int64_t tile = native_test::UniformInt(rng, 1, 17);
      std::vector<std::atomic<int>> hits(static_cast<size_t>(range));
      std::atomic<int> bad_tiles{0};
      const bool ok = tflite_sparse::Parallelize1DTile(
          &pool, range, tile, [&](int64_t start, int64_t count) {
            if (start % tile != 0 || count < 1 || count > tile || start + count > range) {
              ++bad_tiles;
            }
            for (int64_t i = start; i < start + count; ++i) hits[i].fetch_add(1);
          });
      EXPECT_TRUE(ok);
      EXPECT_EQ(bad_tiles.load(), 0);
      int wrong = 0;
      for (auto& hit : hits) wrong += hit.load() != 1;
      EXPECT_EQ(wrong, 0) << "range " << range << " tile " << tile << " threads " << threads;
    }
  }
}

TEST(Parallelize2DTileCoversTheGridOnceWithJFastest) {
  auto rng = native_test::Random(11);
  for (int threads = 1; threads <= 3; ++threads) {
    ThreadPool pool(threads);
    for (int trial = 0; trial < 30; ++trial) {
      const int64_t range_i = native_test::UniformInt(rng, 1, 40);
      const int64_t range_j = native_test::UniformInt(rng, 1, 20);
      const int64_t tile_i = native_test::UniformInt(rng, 1, 9);
      const int64_t tile_j = native_test::UniformInt(rng, 1, 7);
      std::vector<std::atomic<int>> hits(static_cast<size_t>(range_i * range_j));
      const int64_t tiles_j = (range_j + tile_j - 1) / tile_j;
      const int64_t tiles = (range_i + tile_i - 1) / tile_i * tiles_j;
      const bool ok = pool.Run(
          [](void*, int) {}, nullptr);  // a no-op job between jobs must not disturb anything
      EXPECT_TRUE(ok);
      std::atomic<int> next_order{0};
      std::vector<int> order(static_cast<size_t>(tiles), -1);
      EXPECT_TRUE(tflite_sparse::Parallelize2DTile(
          &pool, range_i, range_j, tile_i, tile_j,
          [&](int64_t i, int64_t j, int64_t count_i, int64_t count_j) {
            const int64_t tile = i / tile_i * tiles_j + j / tile_j;
            order[tile] = next_order++;
            for (int64_t a = i; a < i + count_i; ++a) {
              for (int64_t b = j; b < j + count_j; ++b) hits[a * range_j + b].fetch_add(1);
            }
          }));
      int wrong = 0;
      for (auto& hit : hits) wrong += hit.load() != 1;
      EXPECT_EQ(wrong, 0);
      // Static split: thread t owns tiles [T*t/n, T*(t+1)/n); with one thread they run in order.
      for (int t = 0; t < threads; ++t) {
        EXPECT_EQ(tflite_sparse::FirstTileOfThread(tiles, t + 1, threads) -
                      tflite_sparse::FirstTileOfThread(tiles, t, threads),
                  tiles * (t + 1) / threads - tiles * t / threads);
      }
      if (threads == 1) {
        for (int64_t tile = 0; tile < tiles; ++tile) EXPECT_EQ(order[tile], tile);
      }
    }
  }
}

TEST(AThrowingTaskIsReportedAndThePoolStaysUsable) {
  ThreadPool pool(3);
  const bool ok = tflite_sparse::Parallelize1DTile(&pool, 30, 1, [](int64_t start, int64_t) {
    if (start == 25) throw std::runtime_error("tile 25 failed");
  });
  EXPECT_TRUE(!ok);
  std::atomic<int64_t> sum{0};
  EXPECT_TRUE(tflite_sparse::Parallelize1DTile(&pool, 100, 7, [&](int64_t start, int64_t count) {
    for (int64_t i = start; i < start + count; ++i) sum += i;
  }));
  EXPECT_EQ(sum.load(), int64_t{4950});
}

TEST(ANullPoolRunsEveryTileOnTheCallingThreadInOrder) {
  std::vector<int64_t> starts;
  EXPECT_TRUE(tflite_sparse::Parallelize1DTile(nullptr, 23, 5, [&](int64_t start, int64_t count) {
    EXPECT_EQ(count, start == 20 ? int64_t{3} : int64_t{5});
    starts.push_back(start);
  }));
  EXPECT_EQ(starts.size(), size_t{5});
  for (size_t k = 0; k < starts.size(); ++k) EXPECT_EQ(starts[k], static_cast<int64_t>(5 * k));
  int cells = 0;
  EXPECT_TRUE(tflite_sparse::Parallelize2DTile(
      nullptr, 7, 4, 3, 2, [&](int64_t, int64_t, int64_t count_i, int64_t count_j) {
        cells += static_cast<int>(count_i * count_j);
      }));
  EXPECT_EQ(cells, 28);
  EXPECT_TRUE(!tflite_sparse::Parallelize1DTile(nullptr, 4, 1, [](int64_t start, int64_t) {
    if (start == 2) throw std::runtime_error("tile 2 failed");
  }));
}

TEST(EmptyRangesRunNothing) {
  ThreadPool pool(2);
  int calls = 0;
  EXPECT_TRUE(tflite_sparse::Parallelize1DTile(&pool, 0, 4, [&](int64_t, int64_t) { ++calls; }));
  EXPECT_TRUE(tflite_sparse::Parallelize2DTile(&pool, 5, 0, 2, 2,
                                               [&](int64_t, int64_t, int64_t, int64_t) { ++calls; }));
  EXPECT_EQ(calls, 0);
}

TEST(ADelayedThreadsTilesAreTakenOverByTheOthers) {
  // The worker's first tile stalls (as a descheduled thread would) until every tile but those of
  // its first claim is done; the calling thread must then run the worker's remaining tiles
  // itself. With a purely static split it would stop after its own half and the stall would last
  // the whole timeout; so would it if a claim took more than kMaxTilesPerClaim tiles. The
  // caller's first tile waits until the worker is inside its first tile, so that the caller
  // cannot finish the whole job before the worker wakes up.
  ThreadPool pool(2);
  constexpr int64_t kTiles = 64;
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<int64_t> done{0};
  std::atomic<int64_t> by_caller{0};
  std::atomic<bool> stalled{false};
  std::atomic<bool> timed_out{false};
  std::vector<std::atomic<int>> hits(kTiles);
  const auto wait_until = [&](const auto& condition) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!condition()) {
      if (std::chrono::steady_clock::now() > deadline) {
        timed_out = true;
        return;
      }
      std::this_thread::yield();
    }
  };
  EXPECT_TRUE(tflite_sparse::Parallelize1DTile(&pool, kTiles, 1, [&](int64_t start, int64_t) {
    if (std::this_thread::get_id() == caller) {
      if (by_caller++ == 0) wait_until([&] { return stalled.load(); });
    } else if (!stalled.exchange(true)) {
      wait_until([&] { return done.load() >= kTiles - tflite_sparse::kMaxTilesPerClaim; });
    }
    hits[start].fetch_add(1);
    ++done;
  }));
  EXPECT_TRUE(!timed_out.load());
  EXPECT_EQ(done.load(), kTiles);
  int wrong = 0;
  for (auto& hit : hits) wrong += hit.load() != 1;
  EXPECT_EQ(wrong, 0);
  // The worker ran at most its first claim.
  EXPECT_TRUE(by_caller.load() >= kTiles - tflite_sparse::kMaxTilesPerClaim);
}


TEST(AStartedThreadsJobWaitsForWorkersInsideAndNeverRunsOneAfterItReturned) {
  // Join::kStartedThreads: a worker inside the task when task 0 returns is waited for; a worker
  // that wakes later must skip the job, never run it once Run has returned (its context is gone
  // by then). Each job has its own context whose `open` flag the test clears after Run returns.
  struct Job {
    std::atomic<bool> open{true};
    std::atomic<bool> worker_started{false};
    std::atomic<bool> worker_finished{false};
    std::atomic<int> late_calls{0};
    bool hold_worker = false;
  };
  for (int threads = 2; threads <= 3; ++threads) {
    ThreadPool pool(threads);
    constexpr int kJobs = 400;
    std::vector<Job> jobs(kJobs);
    for (int k = 0; k < kJobs; ++k) {
      Job& job = jobs[k];
      // Every 50th job task 0 waits until a worker is inside, which then takes 20 ms.
      job.hold_worker = k % 50 == 0;
      const bool ok = pool.Run(
          [](void* context, int index) {
            Job& job = *static_cast<Job*>(context);
            if (!job.open.load()) ++job.late_calls;
            if (index == 0) {
              if (job.hold_worker) {
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
                while (!job.worker_started.load() && std::chrono::steady_clock::now() < deadline) {
                  std::this_thread::yield();
                }
              }
              return;
            }
            job.worker_started = true;
            if (job.hold_worker) std::this_thread::sleep_for(std::chrono::milliseconds(20));
            job.worker_finished = true;
          },
          &job, ThreadPool::Join::kStartedThreads);
      EXPECT_TRUE(ok);
      if (job.hold_worker) {
        EXPECT_TRUE(job.worker_started.load());
        EXPECT_TRUE(job.worker_finished.load()) << "job " << k << ": Run returned early";
      }
      job.open = false;
    }
    // A job in which every index must run, right after: the skipped workers take part again.
    std::vector<std::atomic<int>> calls(threads);
    EXPECT_TRUE(pool.Run(
        [](void* context, int index) {
          (*static_cast<std::vector<std::atomic<int>>*>(context))[index].fetch_add(1);
        },
        &calls));
    for (int index = 0; index < threads; ++index) EXPECT_EQ(calls[index].load(), 1);
    int late = 0;
    for (Job& job : jobs) late += job.late_calls.load();
    EXPECT_EQ(late, 0);
  }
}

}  // namespace
