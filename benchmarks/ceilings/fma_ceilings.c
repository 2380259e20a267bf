// What one core issues of each FMA form the microkernels use: the ceiling of each microkernel
// family, measured on this machine rather than taken from a datasheet (make bench-ceilings).
//
// Each row runs a loop of independent FMA chains on an L1-resident buffer in one instruction
// form and reports GFLOP/s (2 x lanes per FMA) and FMA instructions per nanosecond. No load waits
// on memory and no chain waits on another beyond the FMA latency, so the figure is what that
// form can issue: a microkernel built on it cannot run faster per kept FLOP, whatever its tiling.
// 8 chains is the pixel-major microkernels' tile (8 pixels, one accumulator each); a 16-chain
// row shows whether more chains would help.
//
//   form                                       used by
//   zmm FMA, register operands                 (the core's fp32 peak)
//   zmm FMA, {1to16} broadcast operand         1x16 and 1x32 pixel-major (AVX-512)
//   ymm FMA, {1to8} broadcast (EVEX, VL)       1x8 pixel-major (AVX-512)
//   ymm vbroadcastss, then FMA (VEX)           1x8 and 1x16 pixel-major (AVX2), and the AVX-512
//                                              1x8 variant when built without AVX-512VL
//   xmm FMA, {1to4} broadcast (EVEX, VL)       1x4 pixel-major (AVX-512)
//   zmm vbroadcastsd, then FMA                 1x16 pixel-pair (AVX-512): two pixels' 8 channels
//                                              per register
//   zmm FMA, full 64-byte memory operand       (the channel-major panels' input rows)
//   the 1x16 tile loop: per tap vector one      the pixel-major 1x16 microkernel's inner loop
//   64-byte weight load, one 32-bit tap         (8 pixels), and the same with 16 pixels
//   offset load, 8 (or 16) broadcast FMAs
//   a whole 1x16 group pass, straight-line:     the 1x16 microkernel's work per group and tile
//   bias into 8 accumulators, 7 (or 16) tap     at 90 % (75 %) block sparsity of 64 inputs
//   vectors, ReLU and 8 stores
//
// On a core with two 512-bit FMA pipes (Zen 5) the broadcast forms reach the peak alone; the
// 8-pixel tile loop, whose weight load comes once per 8 FMAs, reaches about 0.9 of it and the
// 16-pixel one the peak (docs/RESULTS.md). The 1x16 microkernel itself runs further below: what
// the loop does not show are its stores, its tile's input misses and the groups' short tap lists.
// The group-pass rows add the per-group work (bias, clamp, stores) written out without loops or
// branches: on Zen 4 they run at the peak even with 7 tap vectors, so what the registered
// microkernel loses on short tap lists (bench_kernels --window 1) is the latency and bookkeeping
// around each short pass, not that instruction mix (docs/RESULTS.md, "Short tap lists and two
// threads").
//
// A second table times the memory floor of a layer: one pass that reads a 56x56x64 input (803
// KB) and writes an output of the same size, as a 1x1 64->64 conv must at least (clamped copy,
// 256-bit loads and stores, buffers reused so they stay in L2/L3 as in an interpreter loop).
//
// Every function carries its own target attribute, so the program runs on any x86-64 CPU and
// skips the rows whose ISA the CPU lacks. Usage: fma_ceilings [milliseconds per sample, 200];
// each row is the best of 5 samples.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if !defined(__x86_64__)
int main(void) {
  puts("fma_ceilings: x86-64 only");
  return 0;
}
#else
#include <immintrin.h>

static double Now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static float buffer[4096] __attribute__((aligned(64)));

// One iteration: FMA k (k = 0..chains-1) accumulates into register k; a broadcast reads k * 64
// bytes from a base that moves every iteration (pixels of a tile are one line apart or more).
#define C8(F) F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7)
#define C16(F) C8(F) F(8) F(9) F(10) F(11) F(12) F(13) F(14) F(15)
#define CLOBBERS                                                                              \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",    \
      "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory"
#define CLOBBERS_EVEX CLOBBERS, "xmm16", "xmm17"

// zmm17 / ymm17 / xmm17 and ymm15 stand for the weights, zmm16 / ymm14 for a broadcast value.
#define ZMM_REG(k) "vfmadd231ps %%zmm16, %%zmm17, %%zmm" #k "\n\t"
#define ZMM_BCAST(k) "vfmadd231ps " #k "*64(%[q])%{1to16%}, %%zmm17, %%zmm" #k "\n\t"
#define YMM_BCAST(k) "vfmadd231ps " #k "*64(%[q])%{1to8%}, %%ymm17, %%ymm" #k "\n\t"
#define YMM_VEX(k) \
  "vbroadcastss " #k "*64(%[q]), %%ymm14\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm" #k "\n\t"
#define XMM_BCAST(k) "vfmadd231ps " #k "*64(%[q])%{1to4%}, %%xmm17, %%xmm" #k "\n\t"
#define ZMM_PAIR(k) \
  "vbroadcastsd " #k "*64(%[q]), %%zmm16\n\tvfmadd231ps %%zmm16, %%zmm17, %%zmm" #k "\n\t"
#define ZMM_FULL(k) "vfmadd231ps " #k "*64(%[q]), %%zmm17, %%zmm" #k "\n\t"
// The 1x16 tile loop's per-tap loads, ahead of its broadcast FMAs (ZMM_BCAST).
#define TILE_LOADS "vmovaps (%[w]), %%zmm17\n\tmovslq 2048(%[q]), %%rax\n\t"

#define LOOP(name, isa, chains, form, ...)                                     \
  __attribute__((target(isa), noinline)) static void name(long iterations) { \
    for (long i = 0; i < iterations; ++i) {                                   \
      const float* q = buffer + (i & 63);                                     \
      __asm__ volatile(chains(form) : : [q] "r"(q) : __VA_ARGS__);           \
    }                                                                         \
  }
#define TILE_LOOP(name, chains)                                                   \
  __attribute__((target("avx512f"), noinline)) static void name(long iterations) { \
    for (long i = 0; i < iterations; ++i) {                                       \
      const float* q = buffer + (i & 63);                                         \
      const float* w = buffer + 2048 + ((i & 7) << 4); /* aligned, as packed */   \
      __asm__ volatile(TILE_LOADS chains(ZMM_BCAST) : : [q] "r"(q), [w] "r"(w)   \
                       : CLOBBERS_EVEX, "rax");                                    \
    }                                                                             \
  }

// One whole group pass of the 1x16 microkernel, as at high sparsity: the 8 accumulators start
// from the bias (zmm18); per kept tap vector its 64-byte weights and its 32-bit tap offset are
// loaded and each of 8 pixels (256 bytes apart, Cin 64) gets one broadcast FMA at pixel + tap;
// then each pixel's sum is clamped (ReLU against zmm19) and stored to its own output line
// (pixels 1 KiB apart, Cout 256; the 8 KiB tile stays in L1, the column moves by one group per
// iteration).
#define PASS_INIT(k) "vmovaps %%zmm18, %%zmm" #k "\n\t"
#define PASS_BCAST(k) "vfmadd231ps " #k "*256(%[q],%%rax,4)%{1to16%}, %%zmm17, %%zmm" #k "\n\t"
#define PASS_TAP                                                                          \
  "vmovaps (%[w]), %%zmm17\n\tmovslq (%[t]), %%rax\n\tadd $64, %[w]\n\tadd $4, %[t]\n\t" \
      C8(PASS_BCAST)
#define PASS_STORE(k) \
  "vmaxps %%zmm19, %%zmm" #k ", %%zmm" #k "\n\tvmovups %%zmm" #k ", " #k "*1024(%[o])\n\t"
#define TAPS7 PASS_TAP PASS_TAP PASS_TAP PASS_TAP PASS_TAP PASS_TAP PASS_TAP
#define TAPS16 TAPS7 TAPS7 PASS_TAP PASS_TAP
static float pass_output[8 * 256] __attribute__((aligned(64)));
static float pass_weights[16 * 16 * 16] __attribute__((aligned(64)));
static int pass_taps[16 * 16] = {3, 17, 29, 33, 41, 50, 62, 5, 9, 13, 21, 25, 37, 45, 53, 58};
#define PASS_LOOP(name, taps)                                                      \
  __attribute__((target("avx512f"), noinline)) static void name(long iterations) { \
    for (long i = 0; i < iterations; ++i) {                                       \
      const float* w = pass_weights + ((i & 15) << 8);                            \
      const int* t = pass_taps + ((i & 15) << 4);                                 \
      float* o = pass_output + ((i & 15) << 4);                                   \
      __asm__ volatile(C8(PASS_INIT) taps C8(PASS_STORE)                          \
                       : [w] "+r"(w), [t] "+r"(t)                                 \
                       : [q] "r"(buffer), [o] "r"(o)                              \
                       : CLOBBERS_EVEX, "xmm18", "xmm19", "rax");                 \
    }                                                                             \
  }

LOOP(ZmmRegister8, "avx512f", C8, ZMM_REG, CLOBBERS_EVEX)
LOOP(ZmmBroadcast8, "avx512f", C8, ZMM_BCAST, CLOBBERS_EVEX)
LOOP(YmmBroadcast8, "avx512f,avx512vl", C8, YMM_BCAST, CLOBBERS_EVEX)
LOOP(YmmBroadcast16, "avx512f,avx512vl", C16, YMM_BCAST, CLOBBERS_EVEX)
LOOP(YmmVex8, "avx2,fma", C8, YMM_VEX, CLOBBERS)
LOOP(XmmBroadcast8, "avx512f,avx512vl", C8, XMM_BCAST, CLOBBERS_EVEX)
LOOP(ZmmPair8, "avx512f", C8, ZMM_PAIR, CLOBBERS_EVEX)
LOOP(ZmmFull8, "avx512f", C8, ZMM_FULL, CLOBBERS_EVEX)
TILE_LOOP(Tile8, C8)
TILE_LOOP(Tile16, C16)
PASS_LOOP(Pass7, TAPS7)
PASS_LOOP(Pass16, TAPS16)

enum { kLayerFloats = 56 * 56 * 64 };
static float layer_input[kLayerFloats] __attribute__((aligned(64)));
static float layer_output[kLayerFloats] __attribute__((aligned(64)));

__attribute__((target("avx2"), noinline)) static void LayerPass(long passes) {
  for (long pass = 0; pass < passes; ++pass) {
    for (int i = 0; i < kLayerFloats; i += 8) {
      __m256 value = _mm256_load_ps(layer_input + i);
      _mm256_store_ps(layer_output + i, _mm256_max_ps(value, _mm256_setzero_ps()));
    }
    __asm__ volatile("" : : : "memory");
  }
}

// Best of 5 samples of `loop`, each about sample_ms long (calibrated first); seconds per
// iteration.
static double BestSeconds(void (*loop)(long), double sample_ms) {
  long iterations = 1;
  for (;;) {
    const double start = Now();
    loop(iterations);
    const double seconds = Now() - start;
    if (seconds * 1e3 >= sample_ms / 4) {
      iterations = (long)((double)iterations * sample_ms / (seconds * 1e3)) + 1;
      break;
    }
    iterations *= 4;
  }
  double best = 1e30;
  for (int sample = 0; sample < 5; ++sample) {
    const double start = Now();
    loop(iterations);
    const double seconds = Now() - start;
    if (seconds < best) best = seconds;
  }
  return best / (double)iterations;
}

struct Row {
  const char* form;
  const char* used_by;
  void (*loop)(long);
  int lanes;
  int chains;
  int avx512;  // 1: needs AVX-512F and VL; 0: AVX2 and FMA
  int taps;    // FMAs per chain per iteration
};

static const struct Row kRows[] = {
    {"zmm FMA, register operands", "fp32 peak", ZmmRegister8, 16, 8, 1, 1},
    {"zmm FMA, {1to16} broadcast", "1x16, 1x32 (AVX-512)", ZmmBroadcast8, 16, 8, 1, 1},
    {"ymm FMA, {1to8} broadcast (EVEX)", "1x8 (AVX-512)", YmmBroadcast8, 8, 8, 1, 1},
    {"ymm FMA, {1to8} broadcast (EVEX)", "(16 chains)", YmmBroadcast16, 8, 16, 1, 1},
    {"ymm vbroadcastss + FMA (VEX)", "1x8, 1x16 (AVX2)", YmmVex8, 8, 8, 0, 1},
    {"xmm FMA, {1to4} broadcast (EVEX)", "1x4 (AVX-512)", XmmBroadcast8, 4, 8, 1, 1},
    {"zmm vbroadcastsd + FMA", "1x16 pair (AVX-512)", ZmmPair8, 16, 8, 1, 1},
    {"zmm FMA, 64-byte memory operand", "channel-major panels", ZmmFull8, 16, 8, 1, 1},
    {"1x16 tile loop: weight + tap loads, 8 broadcast FMAs", "1x16 p8 (AVX-512)", Tile8, 16, 8, 1,
     1},
    {"1x16 tile loop with 16 pixels", "(not registered)", Tile16, 16, 16, 1, 1},
    {"1x16 group pass, 7 taps (Cin 64 at 90 %): bias, FMAs, ReLU, 8 stores", "1x16 p8",
     Pass7, 16, 8, 1, 7},
    {"1x16 group pass, 16 taps (Cin 64 at 75 %)", "1x16 p8", Pass16, 16, 8, 1, 16},
};

int main(int argc, char** argv) {
  const double sample_ms = argc > 1 ? atof(argv[1]) : 200.0;
  if (!(sample_ms > 0.0)) {
    fprintf(stderr, "usage: %s [milliseconds per sample > 0]\n", argv[0]);
    return 2;
  }
  __builtin_cpu_init();
  const int has_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
  const int has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  printf("| FMA form | microkernels | chains | GFLOP/s | FMA per ns |\n|---|---|---:|---:|---:|\n");
  for (size_t r = 0; r < sizeof(kRows) / sizeof(kRows[0]); ++r) {
    const struct Row* row = &kRows[r];
    if (!(row->avx512 ? has_avx512 : has_avx2)) {
      printf("| %s | %s | %d | (CPU lacks %s) | |\n", row->form, row->used_by, row->chains,
             row->avx512 ? "AVX-512F/VL" : "AVX2/FMA");
      continue;
    }
    const double seconds = BestSeconds(row->loop, sample_ms);  // per iteration
    const double fmas = (double)row->chains * row->taps;
    printf("| %s | %s | %d | %.1f | %.2f |\n", row->form, row->used_by, row->chains,
           2.0 * row->lanes * fmas / seconds * 1e-9, fmas / seconds * 1e-9);
  }
  printf("\n| memory pass | bytes read + written | us | GB/s |\n|---|---:|---:|---:|\n");
  if (!has_avx2) {
    printf("| 56x56x64 in, 56x56x64 out | %zu | (CPU lacks AVX2) | |\n", 2 * sizeof(layer_input));
    return 0;
  }
  for (int i = 0; i < kLayerFloats; ++i) layer_input[i] = (float)(i % 17) - 8.0f;
  const double seconds = BestSeconds(LayerPass, sample_ms);
  printf("| 56x56x64 in, 56x56x64 out | %zu | %.1f | %.1f |\n", 2 * sizeof(layer_input),
         seconds * 1e6, 2.0 * sizeof(layer_input) / seconds * 1e-9);
  return 0;
}
#endif
