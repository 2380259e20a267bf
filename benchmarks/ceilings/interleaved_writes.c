// What it costs two cores to write disjoint parts of one buffer when the parts interleave: the
// output pattern of a 2-thread layer whose threads split the output channels (each thread writes
// its channels of every pixel), against the same stores into parts that do not interleave.
//
// An NHWC output of `pixels` pixels x `channels` floats (default 49 x 512: ResNet-50's 7x7 1x1
// 2048->512 layer, 2 KiB per pixel). Two threads pinned to the first two CPUs the process may
// use repeat a job: each writes its half of the output 8 times with 64-byte stores, then both
// meet at a barrier. The halves:
//   channels:  thread t writes channels [t C / 2, (t + 1) C / 2) of every pixel (interleaved);
//   private:   the same channels, but thread 1 into a buffer of its own (no buffer shared);
//   pixels:    thread t writes every channel of pixels [t P / 2, (t + 1) P / 2) (contiguous).
// No line is written by both threads in any of them. On this project's Zen 4 VMs (2026-12-05)
// the interleaved halves took 31-142 us a job against 4-6 us for the others (49 x 512), the slow
// end in the host's periods of slow core-to-core round trips (core_round_trip.c); so the
// operator splits layers between threads by pixels (docs/RESULTS.md, "Threads write whole
// pixels"). Usage: interleaved_writes [pixels channels]; prints the median us per job of 5
// samples of 2000 jobs per layout, layouts interleaved. Exit status 2 when the CPU lacks AVX,
// fewer than two CPUs are available, a thread cannot be pinned, or the arguments are not a
// positive pixel count and a positive multiple of 32 channels.
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "two_cpus.h"

enum { kSamples = 5, kJobs = 2000, kPasses = 8 };
// The halves (see the top), in table order.
enum { kChannels, kPrivate, kPixels, kLayouts };
static const char* const kLayoutNames[kLayouts] = {"channels (interleaved)", "private",
                                                   "pixels (contiguous)"};

static int pixels = 49;
static int channels = 512;
static float* shared_output;
static float* own_output;  // thread 1's buffer in the private layout
static int layout;          // set by the first thread before each sample's jobs
static _Alignas(128) atomic_long started;
static _Alignas(128) atomic_long finished;

// Thread `t`'s half of one job: kPasses passes of 64-byte lines of `value` (two 32-byte AVX
// stores each; main checks that the CPU has AVX).
__attribute__((target("avx"))) static void write_half(int t, float value) {
  const __m256 v = _mm256_set1_ps(value);
  // Pixels [p0, p1) x channels [c0, c1) of `base`.
  int p0 = 0, p1 = pixels, c0 = t * channels / 2, c1 = (t + 1) * channels / 2;
  if (layout == kPixels) {
    p0 = t * pixels / 2;
    p1 = (t + 1) * pixels / 2;
    c0 = 0;
    c1 = channels;
  }
  float* base = layout == kPrivate && t == 1 ? own_output : shared_output;
  for (int pass = 0; pass < kPasses; ++pass) {
    for (int p = p0; p < p1; ++p) {
      float* row = base + (size_t)p * channels;
      for (int c = c0; c < c1; c += 16) {
        _mm256_store_ps(row + c, v);
        _mm256_store_ps(row + c + 8, v);
      }
    }
  }
}

// The second thread: job j starts when `started` reaches j, and is reported in `finished`.
static void* second_thread(void* unused) {
  (void)unused;
  for (long job = 1; job <= (long)kSamples * kLayouts * kJobs; ++job) {
    while (atomic_load_explicit(&started, memory_order_acquire) < job) _mm_pause();
    write_half(1, (float)job);
    atomic_store_explicit(&finished, job, memory_order_release);
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc > 2) {
    pixels = atoi(argv[1]);
    channels = atoi(argv[2]);
  }
  if (!__builtin_cpu_supports("avx")) {
    fprintf(stderr, "needs a CPU with AVX\n");
    return 2;
  }
  if (pixels < 1 || channels < 32 || channels % 32 != 0) {
    fprintf(stderr, "needs a positive pixel count and a positive multiple of 32 channels\n");
    return 2;
  }
  const size_t bytes = ((size_t)pixels * channels * sizeof(float) + 4095) / 4096 * 4096;
  shared_output = aligned_alloc(4096, bytes);
  own_output = aligned_alloc(4096, bytes);
  if (shared_output == NULL || own_output == NULL) {
    fprintf(stderr, "cannot allocate two buffers of %zu bytes\n", bytes);
    return 2;
  }
  memset(shared_output, 0, bytes);
  memset(own_output, 0, bytes);
  int cpus[2];
  pthread_t thread;
  const int status = start_on_two_cpus(second_thread, &thread, cpus);
  if (status != 0) return status;
  double samples[kLayouts][kSamples];
  long job = 0;
  for (int sample = 0; sample < kSamples; ++sample) {
    for (int k = 0; k < kLayouts; ++k) {
      // The second thread is idle between jobs, so the layout can change here.
      layout = (sample + k) % kLayouts;
      const double start = now_ns();
      for (int j = 0; j < kJobs; ++j) {
        ++job;
        atomic_store_explicit(&started, job, memory_order_release);
        write_half(0, (float)job);
        while (atomic_load_explicit(&finished, memory_order_acquire) < job) _mm_pause();
      }
      samples[layout][sample] = (now_ns() - start) / kJobs * 1e-3;
    }
  }
  pthread_join(thread, NULL);
  printf("CPUs %d and %d, %d pixels x %d channels, %d passes per job\n", cpus[0], cpus[1], pixels,
         channels, kPasses);
  printf("| halves | us per job |\n|---|---:|\n");
  for (int k = 0; k < kLayouts; ++k) {
    printf("| %s | %.2f |\n", kLayoutNames[k], median(samples[k], kSamples));
  }
  free(shared_output);
  free(own_output);
  return 0;
}
