// Microbenchmark of the delegate's microkernels and of the sparse CONV_2D operator.
//
//   build/native/bench_kernels [--shapes HxWxCINxCOUTxK[xSTRIDE],...] [--block-n 16]
//       [--sparsity 0.5] [--threads 1,2] [--repeats 11] [--isa auto|avx512|avx2|generic]
//       [--min-sample-ms 20] [--layout auto|pixel_major|both] [--microkernels 1|0]
//       [--pools 1|0] [--pixel-pairs auto|1|0] [--window 3|1]
//
// Default: the stride-1 convolutions of ResNet-50's four stages at 224x224 input (output widths
// 56, 28, 14 and 7), 1x16 blocks at 50 % block sparsity (whole KxK windows, the same count kept in
// every group, as SUBP trains them), 1 and 2 threads.
//
// For each shape and thread count the operator runs on the sparse filter and on the same layer
// with a fully dense filter (every block kept), both with a ReLU, interleaved: each repeat times
// one sample of each, a sample repeats the call until it lasts at least --min-sample-ms, and the
// tables report medians. "dense GFLOP/s" is the layer's dense FLOPs (2 x pixels x Cout x KH x KW x Cin) over
// the dense time: the dense rate measured in this run. "effective GFLOP/s" is the same dense
// FLOPs over the sparse time; "speedup" is dense time / sparse time and "efficiency" the speedup
// over the ideal 1 / (1 - sparsity). The microkernel table times each registered pixel-major
// variant alone on an L2-resident problem (one full tile, all groups per call), variants
// interleaved; channel-major and pixel-pair variants need the operator's panel or pair image
// and are timed in the operator table only. Its window is 3x3 (--window 3, the default: 9 tap
// vectors per kept input channel, 54 per group at 90 %) or 1x1 (--window 1: 6 at 90 %, the
// short tap lists of the 56x56 1x1 layers at high sparsity).
//
// The max-pool table (--pools 1, the default) times the max-pool operator that runs a pool fused
// after a claimed conv (operator/max_pool_operator.h) on ResNet's stem pool (a 112x112x64 input
// padded by one zero on every side, 3x3 stride 2) and two other common pools, with every ISA
// this CPU runs, ISAs interleaved: median microseconds and input GB/s (input bytes / time).
//
// --layout: "auto" runs each shape with the variant the delegate selects (SelectMicrokernel: by
// shape class and kept work per input and output value, so channel-major or pixel-pair where
// the ISA has one for N and the filter keeps enough work); "pixel_major" forces the
// pixel-major variant; "both" times the selected variant and the pixel-major one interleaved in
// the same repeats (two extra columns: the pixel-major sparse kept-work GFLOP/s and
// selected-over-pixel-major speedup). The dense run uses the variant selected for the dense
// filter. --pixel-pairs is the delegate option pixel_pairs: whether "auto" and "both" may select
// pixel-pair variants ("auto", the default: where this CPU runs them faster,
// !CpuSplitsAvx512()).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/aligned_buffer.h"
#include "microkernels/microkernel.h"
#include "operator/max_pool_operator.h"
#include "operator/sparse_conv_operator.h"
#include "packing/block_pattern.h"
#include "packing/packing.h"

namespace {

using Clock = std::chrono::steady_clock;
using tflite_sparse::FilterShape;
using tflite_sparse::Isa;

struct Shape {
  int in_h, in_w, in_channels, out_channels, kernel, stride;
};

struct Flags {
  std::vector<Shape> shapes;
  int block_n = 16;
  double sparsity = 0.5;
  std::vector<int> threads = {1, 2};
  int repeats = 11;
  std::string isa = "auto";
  double min_sample_ms = 20.0;
  std::string layout = "auto";
  bool microkernels = true;  // --microkernels 0 skips the microkernels-alone table
  bool pools = true;         // --pools 0 skips the max-pool table
  int window = 3;            // --window: the microkernels-alone problem's KxK (3 or 1)
  bool pixel_pairs = !tflite_sparse::CpuSplitsAvx512();  // --pixel-pairs
};

// ResNet-50's stride-1 convolutions at 224x224 input (bottleneck 1x1 / 3x3 / 1x1 and the block
// input 1x1), per stage.
const Shape kResNet50Shapes[] = {
    {56, 56, 64, 64, 1, 1},    {56, 56, 64, 64, 3, 1},    {56, 56, 64, 256, 1, 1},
    {56, 56, 256, 64, 1, 1},   {28, 28, 128, 128, 3, 1},  {28, 28, 128, 512, 1, 1},
    {28, 28, 512, 128, 1, 1},  {14, 14, 256, 256, 3, 1},  {14, 14, 256, 1024, 1, 1},
    {14, 14, 1024, 256, 1, 1}, {7, 7, 512, 512, 3, 1},    {7, 7, 512, 2048, 1, 1},
    {7, 7, 2048, 512, 1, 1},
};

[[noreturn]] void Usage(const char* problem) {
  std::fprintf(stderr, "error: %s\nsee the comment at the top of tools/bench_kernels.cc\n",
               problem);
  std::exit(2);
}

std::vector<std::string> Split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t end; (end = text.find(separator, start)) != std::string::npos; start = end + 1) {
    parts.push_back(text.substr(start, end - start));
  }
  parts.push_back(text.substr(start));
  return parts;
}

int ToInt(const std::string& text, const char* what) {
  char* end = nullptr;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || value < 1 || value > (1 << 20)) {
    Usage((std::string("bad ") + what + " '" + text + "'").c_str());
  }
  return static_cast<int>(value);
}

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  flags.shapes.assign(std::begin(kResNet50Shapes), std::end(kResNet50Shapes));
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) Usage(("flag " + flag + " needs a value").c_str());
    const std::string value = argv[++i];
    if (flag == "--shapes") {
      flags.shapes.clear();
      for (const std::string& item : Split(value, ',')) {
        const std::vector<std::string> fields = Split(item, 'x');
        if (fields.size() != 5 && fields.size() != 6) Usage(("bad shape '" + item + "'").c_str());
        flags.shapes.push_back({ToInt(fields[0], "H"), ToInt(fields[1], "W"),
                                ToInt(fields[2], "CIN"), ToInt(fields[3], "COUT"),
                                ToInt(fields[4], "K"),
                                fields.size() == 6 ? ToInt(fields[5], "STRIDE") : 1});
      }
    } else if (flag == "--block-n") {
      flags.block_n = ToInt(value, "block_n");
    } else if (flag == "--sparsity") {
      flags.sparsity = std::atof(value.c_str());
      if (!(flags.sparsity >= 0.0 && flags.sparsity < 1.0)) Usage("sparsity must be in [0, 1)");
    } else if (flag == "--threads") {
      flags.threads.clear();
      for (const std::string& item : Split(value, ',')) {
        flags.threads.push_back(ToInt(item, "threads"));
      }
    } else if (flag == "--repeats") {
      flags.repeats = ToInt(value, "repeats");
    } else if (flag == "--isa") {
      flags.isa = value;
    } else if (flag == "--microkernels") {
      if (value != "0" && value != "1") Usage("--microkernels takes 0 or 1");
      flags.microkernels = value == "1";
    } else if (flag == "--window") {
      if (value != "1" && value != "3") Usage("--window takes 1 or 3");
      flags.window = value == "1" ? 1 : 3;
    } else if (flag == "--pools") {
      if (value != "0" && value != "1") Usage("--pools takes 0 or 1");
      flags.pools = value == "1";
    } else if (flag == "--layout") {
      if (value != "auto" && value != "pixel_major" && value != "both") Usage("bad --layout");
      flags.layout = value;
    } else if (flag == "--pixel-pairs") {
      if (value != "auto" && value != "0" && value != "1") {
        Usage("--pixel-pairs takes auto, 0 or 1");
      }
      flags.pixel_pairs = value == "auto" ? !tflite_sparse::CpuSplitsAvx512() : value == "1";
    } else if (flag == "--min-sample-ms") {
      flags.min_sample_ms = std::atof(value.c_str());
    } else {
      Usage(("unknown flag " + flag).c_str());
    }
  }
  return flags;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : 0.5 * (values[middle - 1] + values[middle]);
}

// OHWI filter with whole-window blocks: every group of block_n output channels keeps the same
// number of input channels (chosen at random), all KxK taps of them.
std::vector<float> BlockSparseFilter(const FilterShape& shape, int block_n, double sparsity,
                                     std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 0.1f);
  const int64_t taps = shape.TapsPerChannel();
  std::vector<float> filter(static_cast<size_t>(shape.out_channels * taps), 0.0f);
  const int kept = std::max(1, static_cast<int>(shape.in_channels * (1.0 - sparsity) + 0.5));
  std::vector<int> channels(shape.in_channels);
  for (int group = 0; group * block_n < shape.out_channels; ++group) {
    for (int c = 0; c < shape.in_channels; ++c) channels[c] = c;
    std::shuffle(channels.begin(), channels.end(), rng);
    for (int o = group * block_n; o < std::min(shape.out_channels, (group + 1) * block_n); ++o) {
      for (int k = 0; k < kept; ++k) {
        for (int window = 0; window < shape.kernel_h * shape.kernel_w; ++window) {
          float value = normal(rng);
          if (value == 0.0f) value = 0.01f;
          filter[o * taps + window * shape.in_channels + channels[k]] = value;
        }
      }
    }
  }
  return filter;
}

std::unique_ptr<tflite_sparse::SparseConvOperator> MakeOperator(
    const Shape& s, const std::vector<float>& filter, int block_n,
    const tflite_sparse::MicrokernelVariant* variant,
    std::shared_ptr<tflite_sparse::ThreadPool> pool) {
  FilterShape shape;
  shape.out_channels = s.out_channels;
  shape.kernel_h = shape.kernel_w = s.kernel;
  shape.in_channels = s.in_channels;
  const tflite_sparse::BlockPattern pattern =
      tflite_sparse::AnalyzeBlockPattern(filter.data(), shape, block_n);
  tflite_sparse::PackedFilter packed;
  std::string error;
  if (!tflite_sparse::PackFilter(filter.data(), nullptr, shape, pattern, &packed, &error)) {
    Usage(error.c_str());
  }
  tflite_sparse::ConvParameters params;
  params.padding = tflite_sparse::Padding::kSame;
  params.stride_h = params.stride_w = s.stride;
  // A ReLU, as in the single-conv models of scripts/benchmark_delegate.py and most convs of the
  // ResNets (its epilogue clamps once per register: microkernels/epilogue_clamps.h).
  auto op = std::make_unique<tflite_sparse::SparseConvOperator>(
      params, 0.0f, std::numeric_limits<float>::infinity(), std::move(packed), variant,
      std::move(pool));
  if (!op->Prepare(1, s.in_h, s.in_w, s.in_channels, &error)) Usage(error.c_str());
  return op;
}

// One timed sample: repeats `run` `iterations` times; returns seconds per call.
template <class Function>
double Sample(int iterations, const Function& run) {
  const auto start = Clock::now();
  for (int i = 0; i < iterations; ++i) run();
  return std::chrono::duration<double>(Clock::now() - start).count() / iterations;
}

// Calls per sample so that a sample lasts at least min_ms.
template <class Function>
int Calibrate(double min_ms, const Function& run) {
  run();  // warm-up
  int iterations = 1;
  while (Sample(iterations, run) * iterations * 1e3 < min_ms && iterations < (1 << 20)) {
    iterations *= 2;
  }
  return iterations;
}

void BenchOperators(const Flags& flags, Isa isa) {
  const tflite_sparse::MicrokernelVariant* pixel_major =
      tflite_sparse::FindMicrokernel(isa, flags.block_n);
  if (pixel_major == nullptr) Usage("no microkernel for this ISA and block width");
  const bool both = flags.layout == "both";
  std::printf("\n## Conv operator: 1x%d blocks, %.0f %% block sparsity, --layout %s "
              "(pixel-major variant %s)\n\n",
              flags.block_n, 100.0 * flags.sparsity, flags.layout.c_str(), pixel_major->name);
  std::printf("| shape (HxW, Cin->Cout, KxK) | threads | microkernel | dense ms | dense GFLOP/s "
              "| sparse ms | sparse GFLOP/s | effective GFLOP/s | speedup | efficiency |%s\n",
              both ? " pixel-major sparse GFLOP/s | vs pixel-major |" : "");
  std::printf("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|%s\n", both ? "---:|---:|" : "");
  std::mt19937_64 rng(2026);
  const double ideal = 1.0 / (1.0 - flags.sparsity);
  for (const Shape& s : flags.shapes) {
    FilterShape shape;
    shape.out_channels = s.out_channels;
    shape.kernel_h = shape.kernel_w = s.kernel;
    shape.in_channels = s.in_channels;
    const std::vector<float> sparse = BlockSparseFilter(shape, flags.block_n, flags.sparsity, rng);
    const std::vector<float> dense = BlockSparseFilter(shape, flags.block_n, 0.0, rng);
    // As claiming selects: by shape class and kept work per input value, each filter its own.
    auto select = [&](const std::vector<float>& filter) {
      if (flags.layout == "pixel_major") return pixel_major;
      const tflite_sparse::BlockPattern pattern =
          tflite_sparse::AnalyzeBlockPattern(filter.data(), shape, flags.block_n);
      return tflite_sparse::SelectMicrokernel(
          isa, flags.block_n, s.kernel, s.kernel,
          tflite_sparse::KeptFlopsPerInputValue(pattern.kept_tap_vectors, flags.block_n,
                                                s.in_channels),
          tflite_sparse::KeptFlopsPerOutputValue(pattern.kept_tap_vectors, flags.block_n,
                                                 s.out_channels),
          flags.pixel_pairs);
    };
    const tflite_sparse::MicrokernelVariant* variant = select(sparse);
    const tflite_sparse::MicrokernelVariant* dense_variant = select(dense);
    std::vector<float> input(static_cast<size_t>(s.in_h) * s.in_w * s.in_channels);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& value : input) value = normal(rng);
    for (int threads : flags.threads) {
      auto pool = std::make_shared<tflite_sparse::ThreadPool>(threads);
      auto sparse_op = MakeOperator(s, sparse, flags.block_n, variant, pool);
      auto dense_op = MakeOperator(s, dense, flags.block_n, dense_variant, pool);
      auto old_op = MakeOperator(s, sparse, flags.block_n, pixel_major, pool);
      const tflite_sparse::ConvGeometry& g = sparse_op->geometry();
      std::vector<float> output(static_cast<size_t>(g.out_h) * g.out_w * g.out_channels);
      auto run_sparse = [&] { sparse_op->Run(input.data(), output.data()); };
      auto run_dense = [&] { dense_op->Run(input.data(), output.data()); };
      auto run_old = [&] { old_op->Run(input.data(), output.data()); };
      const int sparse_iterations = Calibrate(flags.min_sample_ms, run_sparse);
      const int dense_iterations = Calibrate(flags.min_sample_ms, run_dense);
      const int old_iterations = both ? Calibrate(flags.min_sample_ms, run_old) : 0;
      std::vector<double> sparse_times, dense_times, old_times;
      for (int repeat = 0; repeat < flags.repeats; ++repeat) {  // interleaved
        dense_times.push_back(Sample(dense_iterations, run_dense));
        sparse_times.push_back(Sample(sparse_iterations, run_sparse));
        if (both) old_times.push_back(Sample(old_iterations, run_old));
      }
      const double dense_seconds = Median(dense_times);
      const double sparse_seconds = Median(sparse_times);
      const double dense_flops =
          2.0 * g.out_h * g.out_w * s.out_channels * s.kernel * s.kernel * s.in_channels;
      const double kept = static_cast<double>(sparse_op->packed().group_begin.back()) /
                          dense_op->packed().group_begin.back();
      const double speedup = dense_seconds / sparse_seconds;
      std::printf("| %dx%d, %d->%d, %dx%d%s | %d | %s | %.3f | %.1f | %.3f | %.1f | %.1f | %.2f "
                  "| %.2f |",
                  g.out_h, g.out_w, s.in_channels, s.out_channels, s.kernel, s.kernel,
                  s.stride > 1 ? ", stride 2" : "", threads, sparse_op->variant().name,
                  dense_seconds * 1e3, dense_flops / dense_seconds * 1e-9, sparse_seconds * 1e3,
                  kept * dense_flops / sparse_seconds * 1e-9, dense_flops / sparse_seconds * 1e-9,
                  speedup, speedup / ideal);
      if (both) {
        const double old_seconds = Median(old_times);
        std::printf(" %.1f | %.2f |", kept * dense_flops / old_seconds * 1e-9,
                    old_seconds / sparse_seconds);
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
}

// One microkernel variant set up on its own L2-resident problem.
struct KernelProblem {
  const tflite_sparse::MicrokernelVariant* variant = nullptr;
  std::unique_ptr<tflite_sparse::SparseConvOperator> op;  // owns the packed filter
  std::vector<float> input;
  std::vector<int64_t> pixel_offsets;
  std::vector<int32_t> tap_offsets;
  std::vector<float> output;
  tflite_sparse::SparseTileArgs args;
  double flops = 0.0;
  int iterations = 1;
  std::vector<double> times;
};

void BenchMicrokernels(const Flags& flags) {
  // L2-resident problem: 64 input channels, a KxK window (--window), 4 groups; one full tile per
  // call, all groups. Variants are timed interleaved: each repeat takes one sample of every
  // variant.
  constexpr int kChannels = 64;
  const int window = flags.window;
  const int padded = 16 + window - 1;  // a 16x16 image pre-padded for SAME KxK
  std::printf("\n## Microkernels alone (1 thread, one full tile of P pixels x 4 groups per call, "
              "%dx%d window, Cin %d, %.0f %% block sparsity)\n\n",
              window, window, kChannels, 100.0 * flags.sparsity);
  std::printf("| variant | N | P | GFLOP/s |\n|---|---:|---:|---:|\n");
  size_t count = 0;
  const tflite_sparse::MicrokernelVariant* variants = tflite_sparse::RegisteredMicrokernels(&count);
  std::mt19937_64 rng(7);
  std::vector<KernelProblem> problems(count);
  for (size_t v = 0; v < count; ++v) {
    KernelProblem& k = problems[v];
    k.variant = &variants[v];
    if (!tflite_sparse::IsaSupportedByCpu(k.variant->isa)) continue;
    if (k.variant->layout != tflite_sparse::InputLayout::kPixelMajor) continue;
    FilterShape shape;
    shape.out_channels = 4 * k.variant->block_n;
    shape.kernel_h = shape.kernel_w = window;
    shape.in_channels = kChannels;
    const std::vector<float> filter =
        BlockSparseFilter(shape, k.variant->block_n, flags.sparsity, rng);
    const Shape s{16, 16, kChannels, shape.out_channels, window, 1};
    k.op = MakeOperator(s, filter, k.variant->block_n, k.variant,
                        std::make_shared<tflite_sparse::ThreadPool>(1));
    const tflite_sparse::PackedFilter& packed = k.op->packed();
    k.input.resize(static_cast<size_t>(padded) * padded * kChannels);
    for (float& value : k.input) value = std::normal_distribution<float>(0.0f, 1.0f)(rng);
    for (int p = 0; p < k.variant->tile_pixels; ++p) {
      k.pixel_offsets.push_back(((p / 16) * padded + p % 16) * kChannels);
    }
    for (const int32_t tap : packed.tap_index) {
      const int ci = tap % kChannels, kx = tap / kChannels % window,
                ky = tap / (window * kChannels);
      k.tap_offsets.push_back((ky * padded + kx) * kChannels + ci);
    }
    k.output.resize(static_cast<size_t>(k.variant->tile_pixels) * shape.out_channels);
    tflite_sparse::SparseTileArgs& args = k.args;
    args.input = k.input.data();
    args.pixel_offsets = k.pixel_offsets.data();
    args.num_pixels = k.variant->tile_pixels;
    args.first_group = 0;
    args.end_group = packed.num_groups;
    args.group_begin = packed.group_begin.data();
    args.weights = packed.weights.data();
    args.tap_offsets = k.tap_offsets.data();
    args.bias = packed.bias.data();
    args.output = k.output.data();
    args.output_pixel_stride = shape.out_channels;
    args.out_channels = shape.out_channels;
    args.activation_min = 0.0f;  // a ReLU, as in the operator table
    args.activation_max = std::numeric_limits<float>::infinity();
    k.flops = 2.0 * k.variant->tile_pixels * packed.group_begin.back() * k.variant->block_n;
    k.iterations = Calibrate(flags.min_sample_ms / 4, [&k] { k.variant->function(k.args); });
  }
  for (int repeat = 0; repeat < flags.repeats; ++repeat) {
    for (KernelProblem& k : problems) {
      if (k.op == nullptr) continue;
      k.times.push_back(Sample(k.iterations, [&k] { k.variant->function(k.args); }));
    }
  }
  for (const KernelProblem& k : problems) {
    if (k.variant->layout != tflite_sparse::InputLayout::kPixelMajor) {
      std::printf("| %s | %d | %d | %s: see the operator table |\n", k.variant->name,
                  k.variant->block_n, k.variant->tile_pixels,
                  tflite_sparse::InputLayoutName(k.variant->layout));
    } else if (k.op == nullptr) {
      std::printf("| %s | %d | %d | skipped: CPU lacks %s |\n", k.variant->name,
                  k.variant->block_n, k.variant->tile_pixels,
                  tflite_sparse::IsaRequirement(k.variant->isa));
    } else {
      std::printf("| %s | %d | %d | %.1f |\n", k.variant->name, k.variant->block_n,
                  k.variant->tile_pixels, k.flops / Median(k.times) * 1e-9);
    }
  }
}

void BenchMaxPools(const Flags& flags) {
  struct PoolShape {
    const char* name;
    int in_h, in_w, channels;
    tflite_sparse::PoolParameters params;
  };
  tflite_sparse::PoolParameters stem;  // ResNet's pool1_pad + pool1_pool
  stem.filter_h = stem.filter_w = 3;
  stem.window.stride_h = stem.window.stride_w = 2;
  stem.window.pad_top = stem.window.pad_bottom = 1;
  stem.window.pad_left = stem.window.pad_right = 1;
  tflite_sparse::PoolParameters same = stem;  // the same window with TFLite's SAME padding
  same.window = tflite_sparse::ConvParameters();
  same.window.stride_h = same.window.stride_w = 2;
  same.window.padding = tflite_sparse::Padding::kSame;
  tflite_sparse::PoolParameters two;  // VGG's 2x2 stride-2 pools
  two.filter_h = two.filter_w = two.window.stride_h = two.window.stride_w = 2;
  const PoolShape shapes[] = {{"112x112x64, 3x3/2, zero pad 1", 112, 112, 64, stem},
                              {"112x112x64, 3x3/2, SAME", 112, 112, 64, same},
                              {"56x56x256, 2x2/2, VALID", 56, 56, 256, two}};
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kGeneric}) {
    if (tflite_sparse::IsaRegistered(isa) && tflite_sparse::IsaSupportedByCpu(isa)) {
      isas.push_back(isa);
    }
  }
  std::printf("\n## Max-pool operator (ISAs interleaved)\n\n| pool | threads |");
  for (Isa isa : isas) std::printf(" %s us | %s GB/s |", tflite_sparse::IsaName(isa),
                                   tflite_sparse::IsaName(isa));
  std::printf("\n|---|---:|");
  for (size_t i = 0; i < isas.size(); ++i) std::printf("---:|---:|");
  std::printf("\n");
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (const PoolShape& shape : shapes) {
    std::vector<float> input(static_cast<size_t>(shape.in_h) * shape.in_w * shape.channels);
    for (float& value : input) value = uniform(rng);
    for (int threads : flags.threads) {
      auto pool = std::make_shared<tflite_sparse::ThreadPool>(threads);
      std::vector<std::unique_ptr<tflite_sparse::MaxPoolOperator>> ops;
      std::vector<std::vector<float>> outputs;
      std::vector<int> iterations;
      std::vector<std::vector<double>> times(isas.size());
      for (Isa isa : isas) {
        ops.push_back(std::make_unique<tflite_sparse::MaxPoolOperator>(
            shape.params, std::numeric_limits<float>::lowest(), std::numeric_limits<float>::max(),
            isa, pool));
        std::string error;
        if (!ops.back()->Prepare(1, shape.in_h, shape.in_w, shape.channels, &error)) {
          Usage(error.c_str());
        }
        const tflite_sparse::ConvGeometry& g = ops.back()->geometry();
        outputs.emplace_back(static_cast<size_t>(g.out_h) * g.out_w * g.out_channels);
        tflite_sparse::MaxPoolOperator* op = ops.back().get();
        float* output = outputs.back().data();
        iterations.push_back(
            Calibrate(flags.min_sample_ms, [&] { op->Run(input.data(), output); }));
      }
      for (int repeat = 0; repeat < flags.repeats; ++repeat) {
        for (size_t k = 0; k < isas.size(); ++k) {
          tflite_sparse::MaxPoolOperator* op = ops[k].get();
          float* output = outputs[k].data();
          times[k].push_back(Sample(iterations[k], [&] { op->Run(input.data(), output); }));
        }
      }
      std::printf("| %s | %d |", shape.name, threads);
      const double bytes = static_cast<double>(input.size()) * sizeof(float);
      for (size_t k = 0; k < isas.size(); ++k) {
        const double seconds = Median(times[k]);
        std::printf(" %.1f | %.1f |", seconds * 1e6, bytes / seconds * 1e-9);
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  Isa isa = tflite_sparse::BestSupportedIsa();
  if (flags.isa != "auto" && !tflite_sparse::ParseIsaName(flags.isa, &isa)) Usage("bad --isa");
  if (!tflite_sparse::IsaSupportedByCpu(isa)) Usage("this CPU cannot run that ISA");
  std::string command = "build/native/bench_kernels";
  for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) < 0) load[0] = -1;
  std::printf("# %s\n# isa %s, %d repeats (medians, interleaved), load average %.2f at start\n",
              command.c_str(), tflite_sparse::IsaName(isa), flags.repeats, load[0]);
  if (flags.microkernels) BenchMicrokernels(flags);
  BenchOperators(flags, isa);
  if (flags.pools) BenchMaxPools(flags);
  return 0;
}
