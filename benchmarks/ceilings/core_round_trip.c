// How long two cores take to hand one cache line back and forth: the cost behind every piece of
// data one thread of a 2-thread layer reads from the other (a layer's input that the other
// thread wrote, a shared pair image) and behind every join of a parallel job.
//
// This project's 2-core VMs are not always placed the same way on their host. Most of the time
// their two vCPUs exchange a line in about 90 ns (a round trip: one store seen by the other core
// and its answer seen back); at other times, from seconds to minutes, in 400-1500 ns, as two
// cores on different dies (or a vCPU the host has paused) would. The sparse delegate's 2-thread
// layers move far more data between the cores per FLOP than dense XNNPACK's, so in those
// periods they lose 20-35 % while XNNPACK loses about 5 % (docs/RESULTS.md, "Claiming tiles a
// few at a time"). The benchmarks print this figure beside the load average.
//
// Two threads pinned to the first two CPUs the process may use pass a counter back and forth
// through one 128-byte aligned atomic: the first stores an odd value and waits for the next even
// one, the second answers every odd value. Usage: core_round_trip [round trips per sample,
// 100000]; prints the median of 5 samples as "round trip ns: <value>". Exit status 2 when fewer
// than two CPUs are available or a thread cannot be pinned.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "two_cpus.h"

enum { kSamples = 5 };

static _Alignas(128) atomic_long counter;
static long round_trips = 100000;

// Answers every odd value with the next even one, for kSamples samples of round_trips each.
static void* answer(void* unused) {
  (void)unused;
  for (long value = 1; value < 2 * round_trips * kSamples; value += 2) {
    while (atomic_load_explicit(&counter, memory_order_acquire) != value) {
    }
    atomic_store_explicit(&counter, value + 1, memory_order_release);
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc > 1) round_trips = atol(argv[1]);
  if (round_trips < 1) {
    fprintf(stderr, "round trips per sample must be a positive integer, got %s\n", argv[1]);
    return 2;
  }
  int cpus[2];
  pthread_t thread;
  const int status = start_on_two_cpus(answer, &thread, cpus);
  if (status != 0) return status;
  double samples[kSamples];
  long value = 1;
  for (int sample = 0; sample < kSamples; ++sample) {
    const double start = now_ns();
    for (long trip = 0; trip < round_trips; ++trip, value += 2) {
      atomic_store_explicit(&counter, value, memory_order_release);
      while (atomic_load_explicit(&counter, memory_order_acquire) != value + 1) {
      }
    }
    samples[sample] = (now_ns() - start) / (double)round_trips;
  }
  pthread_join(thread, NULL);
  printf("CPUs %d and %d\nround trip ns: %.1f\n", cpus[0], cpus[1], median(samples, kSamples));
  return 0;
}
