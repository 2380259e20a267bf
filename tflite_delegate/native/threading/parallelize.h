// Parallel loops over 1-D and 2-D index ranges cut into tiles, on a ThreadPool (in the spirit of
// pthreadpool's parallelize_1d_tile_1d / parallelize_2d_tile_2d).
//
// The split starts static and contiguous: the tiles, numbered in row-major order (j fastest), are
// cut into num_threads consecutive runs of equal count (thread t owns tiles
// [T * t / n, T * (t + 1) / n)), so a thread walks weights and pixels in order. Each run has an
// atomic cursor: a thread claims its own tiles from its cursor a few at a time (TilesPerClaim),
// and when its run is exhausted it claims the remaining tiles of the other runs from their
// cursors. A thread that the OS deschedules (2 cores shared with XNNPACK's spinning workers,
// other processes) therefore no longer holds the whole job back: the others finish its tiles but
// the at most kMaxTilesPerClaim it has claimed, and a worker that has not even woken up when the
// calling thread runs out of tiles is not waited for (ThreadPool::Join::kStartedThreads). Every
// tile is claimed exactly once, and which thread computes a tile never
// changes what the tile computes, so a function whose result depends only on its tile gives
// bitwise identical results for any thread count and any schedule. Each call is one pool job (one
// wake-up and one join); the functor is called directly per tile, with no allocation and no
// std::function. A null pool runs every tile on the calling thread (for work too small to pay
// for a wake-up).
#ifndef TFLITE_DELEGATE_THREADING_PARALLELIZE_H_
#define TFLITE_DELEGATE_THREADING_PARALLELIZE_H_

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "threading/thread_pool.h"

namespace tflite_sparse {

// First tile of thread `thread` out of `threads` for `tiles` tiles.
inline int64_t FirstTileOfThread(int64_t tiles, int thread, int threads) {
  // 128-bit product: tiles * thread cannot overflow for any int64 tile count.
  return static_cast<int64_t>(static_cast<__int128>(tiles) * thread / threads);
}

// Runs task(context, 0) on the calling thread, as a one-thread pool would (a null pool).
inline bool RunOnCallingThread(ThreadPool::Task task, void* context) {
  try {
    task(context, 0);
  } catch (...) {
    return false;
  }
  return true;
}

// Runs the job on `pool`, or on the calling thread when `pool` is null.
inline bool RunJob(ThreadPool* pool, ThreadPool::Task task, void* context,
                   ThreadPool::Join join) {
  return pool != nullptr ? pool->Run(task, context, join) : RunOnCallingThread(task, context);
}

// One run's cursor: the next unclaimed tile of the run. Two cache lines each (the L2 fetches
// lines in aligned pairs), so that claiming from one run never contends with claims from another.
struct alignas(128) TileCursor {
  std::atomic<int64_t> next{0};
};

// How many tiles a thread claims at once from a run with `left` unclaimed tiles: a quarter of
// them, at most kMaxTilesPerClaim, one each once fewer than 8 are left (so the runs still end
// together). A claim is a locked read-modify-write, which waits until every store the thread has
// issued (the tile it just computed) is in its L1; `perf annotate` put 0.4 ms per invoke of
// ResNet-50 "1.0G" at 2 threads on the claims' instruction. Claiming up to four at a time ran the
// model 0.995-1.048x as fast and "2.0G" 1.010-1.035x (four runs of compare_delegate_builds, 7-15
// rounds each, Zen 5; docs/RESULTS.md, "Claiming tiles a few at a time").
constexpr int64_t kMaxTilesPerClaim = 4;
inline int64_t TilesPerClaim(int64_t left) {
  return left < 8 ? 1 : std::min<int64_t>(left / 4, kMaxTilesPerClaim);
}

// Jobs with more threads than this fall back to the plain static split (no cursors).
constexpr int kMaxStealingThreads = 64;

// Calls fn(i, j, count_i, count_j) for the tiles of [0, range_i) x [0, range_j); tiles are
// ordered with j fastest, so a thread's run covers whole rows of j tiles where it can.
template <class Function>
bool Parallelize2DTile(ThreadPool* pool, int64_t range_i, int64_t range_j, int64_t tile_i,
                       int64_t tile_j, const Function& fn) {
  if (range_i <= 0 || range_j <= 0) return true;
  if (tile_i < 1) tile_i = 1;
  if (tile_j < 1) tile_j = 1;
  struct Context {
    const Function* fn;
    int64_t range_i, range_j, tile_i, tile_j, tiles_j, tiles;
    int threads;
    TileCursor* cursors;  // one per run, or null for the plain static split

    void RunTile(int64_t t) const {
      const int64_t i = t / tiles_j * tile_i;
      const int64_t j = t % tiles_j * tile_j;
      (*fn)(i, j, range_i - i < tile_i ? range_i - i : tile_i,
            range_j - j < tile_j ? range_j - j : tile_j);
    }
  };
  const int threads = pool ? pool->num_threads() : 1;
  TileCursor cursors[kMaxStealingThreads];
  Context context{&fn,     range_i, range_j, tile_i, tile_j, (range_j + tile_j - 1) / tile_j,
                  0,       threads, nullptr};
  context.tiles = (range_i + tile_i - 1) / tile_i * context.tiles_j;
  if (threads > 1 && threads <= kMaxStealingThreads) {
    // Written before Run publishes the job (release), read by the workers after (acquire).
    for (int run = 0; run < threads; ++run) {
      cursors[run].next.store(FirstTileOfThread(context.tiles, run, threads),
                              std::memory_order_relaxed);
    }
    context.cursors = cursors;
  }
  return RunJob(
      pool,
      [](void* opaque, int thread) {
        const Context& c = *static_cast<const Context*>(opaque);
        if (c.cursors == nullptr) {
          const int64_t end = FirstTileOfThread(c.tiles, thread + 1, c.threads);
          for (int64_t t = FirstTileOfThread(c.tiles, thread, c.threads); t < end; ++t) {
            c.RunTile(t);
          }
          return;
        }
        // Own run first, then the others' leftovers, nearest run first.
        for (int k = 0; k < c.threads; ++k) {
          const int run = (thread + k) % c.threads;
          const int64_t end = FirstTileOfThread(c.tiles, run + 1, c.threads);
          std::atomic<int64_t>& next = c.cursors[run].next;
          for (int64_t left = end - next.load(std::memory_order_relaxed); left > 0;
               left = end - next.load(std::memory_order_relaxed)) {
            // `left` may be stale: the claim is clipped to the run's end.
            const int64_t claim = TilesPerClaim(left);
            const int64_t first = next.fetch_add(claim, std::memory_order_relaxed);
            const int64_t last = std::min(first + claim, end);
            for (int64_t t = first; t < last; ++t) c.RunTile(t);
          }
        }
      },
      // With cursors the calling thread alone would finish every tile, so a worker that wakes
      // too late to help is not waited for.
      &context,
      context.cursors != nullptr ? ThreadPool::Join::kStartedThreads
                                 : ThreadPool::Join::kEveryThread);
}

// Calls fn(start, count) for the tiles [start, start + count) of [0, range), count = tile except
// for the last tile. Returns false if a call threw (the pool reports it; other tiles still run).
// The one-row case of Parallelize2DTile: same tiles, same split.
template <class Function>
bool Parallelize1DTile(ThreadPool* pool, int64_t range, int64_t tile, const Function& fn) {
  return Parallelize2DTile(pool, 1, range, 1, tile,
                           [&fn](int64_t, int64_t start, int64_t, int64_t count) {
                             fn(start, count);
                           });
}

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_THREADING_PARALLELIZE_H_
