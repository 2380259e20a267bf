// Times Debian libxnnpack-dev's sparse NCHW 1x1 convolution (the 2022 operator API) on given
// weights, as a peer for scripts/benchmark_peers.py. Never linked into the project's library.
//
// A 1x1, stride-1, unpadded, ungrouped xnn_create_convolution2d_nchw_f32 runs XNNPACK's sparse
// matrix x dense matrix (SpMM) microkernels: the packed weights keep only the non-zero values,
// whatever their pattern, so every pruned weight is skipped.
//
// Usage: xnnpack_sparse_conv WEIGHTS HEIGHT WIDTH CIN COUT THREADS [yield|spin]
//   WEIGHTS: raw little-endian float32, the Cout x Cin filter (row = output channel) followed
//   by Cout biases. The operator computes ReLU(filter * input + bias), batch 1, NCHW.
//   yield (default): worker threads yield the CPU after each run (XNN_FLAG_YIELD_WORKERS);
//   spin: they spin-wait for the next run, which is faster on an idle machine but takes a core
//   from whatever runs next (the other engines of an interleaved benchmark).
// Start-up: builds the operator, checks one run against a double-precision reference loop and
// prints "ready nonzeros=<n> max_abs_err=<e> max_abs_out=<m>". Then it serves stdin commands,
// one per line: "time <count>" runs <count> invokes and prints the seconds they took;
// "quit" (or end of input) exits. Errors go to stderr with exit status 1.

#include <math.h>
#include <pthreadpool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xnnpack.h>

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int parse_size(const char* text, const char* name, size_t* value) {
  char* end = NULL;
  const unsigned long long parsed = strtoull(text, &end, 10);
  if (end == text || *end != '\0' || parsed == 0 || parsed > (1ull << 20)) {
    fprintf(stderr, "error: %s must be a positive integer, got '%s'\n", name, text);
    return 0;
  }
  *value = (size_t)parsed;
  return 1;
}

// Deterministic input values in [-1, 1) (a 64-bit linear congruential generator).
static void fill_input(float* input, size_t count) {
  uint64_t state = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < count; i++) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    input[i] = (float)((double)(state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
  }
}

int main(int argc, char** argv) {
  if (argc != 7 && argc != 8) {
    fprintf(stderr, "usage: %s WEIGHTS HEIGHT WIDTH CIN COUT THREADS [yield|spin]\n", argv[0]);
    return 1;
  }
  uint32_t flags = XNN_FLAG_YIELD_WORKERS;
  if (argc == 8 && strcmp(argv[7], "spin") == 0) {
    flags = 0;
  } else if (argc == 8 && strcmp(argv[7], "yield") != 0) {
    fprintf(stderr, "error: the last argument must be 'yield' or 'spin', got '%s'\n", argv[7]);
    return 1;
  }
  size_t height, width, cin, cout, threads;
  if (!parse_size(argv[2], "HEIGHT", &height) || !parse_size(argv[3], "WIDTH", &width) ||
      !parse_size(argv[4], "CIN", &cin) || !parse_size(argv[5], "COUT", &cout) ||
      !parse_size(argv[6], "THREADS", &threads)) {
    return 1;
  }
  const size_t pixels = height * width;
  int status = 1;
  float* filter = NULL;
  float* input = NULL;
  float* output = NULL;
  pthreadpool_t pool = NULL;
  xnn_operator_t op = NULL;
  int initialized = 0;

  filter = malloc(sizeof(float) * (cout * cin + cout));
  // XNNPACK may read (never use) up to XNN_EXTRA_BYTES past the end of its inputs.
  input = malloc(sizeof(float) * cin * pixels + XNN_EXTRA_BYTES);
  output = malloc(sizeof(float) * cout * pixels);
  if (filter == NULL || input == NULL || output == NULL) {
    fprintf(stderr, "error: out of memory\n");
    goto cleanup;
  }
  FILE* file = fopen(argv[1], "rb");
  if (file == NULL) {
    fprintf(stderr, "error: cannot open weights file %s\n", argv[1]);
    goto cleanup;
  }
  const size_t expected = cout * cin + cout;
  const size_t read = fread(filter, sizeof(float), expected, file);
  const int trailing = fgetc(file);
  fclose(file);
  if (read != expected || trailing != EOF) {
    fprintf(stderr, "error: %s must hold exactly %zu float32 values (Cout*Cin + Cout)\n",
            argv[1], expected);
    goto cleanup;
  }
  const float* bias = filter + cout * cin;
  size_t nonzeros = 0;
  for (size_t i = 0; i < cout * cin; i++) nonzeros += filter[i] != 0.0f;
  fill_input(input, cin * pixels);

  if (xnn_initialize(NULL) != xnn_status_success) {
    fprintf(stderr, "error: xnn_initialize failed (unsupported CPU?)\n");
    goto cleanup;
  }
  initialized = 1;
  if (threads > 1) {
    pool = pthreadpool_create(threads);
    if (pool == NULL) {
      fprintf(stderr, "error: pthreadpool_create(%zu) failed\n", threads);
      goto cleanup;
    }
  }
  enum xnn_status result = xnn_create_convolution2d_nchw_f32(
      /*padding top, right, bottom, left=*/0, 0, 0, 0, /*kernel=*/1, 1, /*subsampling=*/1, 1,
      /*dilation=*/1, 1, /*groups=*/1, cin, cout, /*input_channel_stride=*/cin,
      /*output_channel_stride=*/cout, filter, bias, /*output_min=*/0.0f,
      /*output_max=*/INFINITY, flags, &op);
  if (result != xnn_status_success) {
    fprintf(stderr, "error: xnn_create_convolution2d_nchw_f32 failed with status %d\n", result);
    goto cleanup;
  }
  result = xnn_setup_convolution2d_nchw_f32(op, 1, height, width, input, output, pool);
  if (result != xnn_status_success) {
    fprintf(stderr, "error: xnn_setup_convolution2d_nchw_f32 failed with status %d\n", result);
    goto cleanup;
  }
  if (xnn_run_operator(op, pool) != xnn_status_success) {
    fprintf(stderr, "error: xnn_run_operator failed\n");
    goto cleanup;
  }
  double max_error = 0.0, max_output = 0.0;
  for (size_t o = 0; o < cout; o++) {
    for (size_t p = 0; p < pixels; p++) {
      double sum = bias[o];
      for (size_t c = 0; c < cin; c++) sum += (double)filter[o * cin + c] * input[c * pixels + p];
      const double reference = sum > 0.0 ? sum : 0.0;
      const double error = fabs(reference - (double)output[o * pixels + p]);
      if (error > max_error) max_error = error;
      if (fabs(reference) > max_output) max_output = fabs(reference);
    }
  }
  printf("ready nonzeros=%zu max_abs_err=%.3e max_abs_out=%.3e\n", nonzeros, max_error,
         max_output);
  fflush(stdout);

  char line[128];
  while (fgets(line, sizeof line, stdin) != NULL) {
    unsigned long count = 0;
    if (strncmp(line, "quit", 4) == 0) break;
    if (sscanf(line, "time %lu", &count) != 1 || count == 0) {
      fprintf(stderr, "error: unknown command '%s'\n", line);
      goto cleanup;
    }
    const double start = now_seconds();
    for (unsigned long i = 0; i < count; i++) {
      if (xnn_run_operator(op, pool) != xnn_status_success) {
        fprintf(stderr, "error: xnn_run_operator failed\n");
        goto cleanup;
      }
    }
    printf("%.9f\n", now_seconds() - start);
    fflush(stdout);
  }
  status = 0;

cleanup:
  if (op != NULL) xnn_delete_operator(op);
  if (pool != NULL) pthreadpool_destroy(pool);
  if (initialized) xnn_deinitialize();
  free(output);
  free(input);
  free(filter);
  return status;
}
