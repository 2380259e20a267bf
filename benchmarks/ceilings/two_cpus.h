// What the two-thread programs of benchmarks/ceilings share: a monotonic clock, the median of
// samples, and a second thread pinned to the second CPU the process may use while the calling
// thread is pinned to the first. Define _GNU_SOURCE before including any system header (for the affinity calls).
#ifndef BENCHMARKS_CEILINGS_TWO_CPUS_H_
#define BENCHMARKS_CEILINGS_TWO_CPUS_H_

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

// Nanoseconds of CLOCK_MONOTONIC.
static double now_ns(void) {
  struct timespec time;
  clock_gettime(CLOCK_MONOTONIC, &time);
  return 1e9 * (double)time.tv_sec + (double)time.tv_nsec;
}

static int compare_doubles(const void* a, const void* b) {
  const double x = *(const double*)a;
  const double y = *(const double*)b;
  return (x > y) - (x < y);
}

// The median of values[0, count) (sorts them in place).
static double median(double* values, int count) {
  qsort(values, (size_t)count, sizeof(values[0]), compare_doubles);
  return values[count / 2];
}

static cpu_set_t only_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return set;
}

// Pins the calling thread to the first CPU the process may use and starts `body` (with a null
// argument) on a thread pinned, before it starts, to the second; their numbers go to cpus[0] and
// cpus[1]. Returns 0 on success; otherwise says why on stderr and returns 2 (the programs' exit
// status for "cannot run here"), with no thread started.
static int start_on_two_cpus(void* (*body)(void*), pthread_t* thread, int cpus[2]) {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
    perror("sched_getaffinity");
    return 2;
  }
  int found = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE && found < 2; ++cpu) {
    if (CPU_ISSET(cpu, &allowed)) cpus[found++] = cpu;
  }
  if (found < 2) {
    fprintf(stderr, "needs two CPUs, this process may use %d\n", found);
    return 2;
  }
  const cpu_set_t first = only_cpu(cpus[0]);
  const cpu_set_t second = only_cpu(cpus[1]);
  if (pthread_setaffinity_np(pthread_self(), sizeof(first), &first) != 0) {
    fprintf(stderr, "cannot pin a thread to CPU %d\n", cpus[0]);
    return 2;
  }
  // Pinned before it starts, so that a failure cannot leave the caller waiting for it.
  pthread_attr_t attributes;
  if (pthread_attr_init(&attributes) != 0) {
    fprintf(stderr, "cannot start a thread pinned to CPU %d\n", cpus[1]);
    return 2;
  }
  const int failed = pthread_attr_setaffinity_np(&attributes, sizeof(second), &second) != 0 ||
                     pthread_create(thread, &attributes, body, NULL) != 0;
  pthread_attr_destroy(&attributes);
  if (failed) {
    fprintf(stderr, "cannot start a thread pinned to CPU %d\n", cpus[1]);
    return 2;
  }
  return 0;
}

#endif  // BENCHMARKS_CEILINGS_TWO_CPUS_H_
