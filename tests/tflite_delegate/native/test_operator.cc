// The sparse CONV_2D operator against a direct float64 convolution, on random shapes, widths,
// strides, dilations and paddings; outputs bitwise identical for 1, 2 and 3 threads.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common/aligned_buffer.h"
#include "operator/sparse_conv_operator.h"
#include "packing/block_pattern.h"
#include "packing/packing.h"
#include "runnable_isas.h"
#include "test_harness.h"
#include "threading/parallelize.h"

namespace {

using native_test::RunnableIsas;

using tflite_sparse::ConvGeometry;
using tflite_sparse::ConvParameters;
using tflite_sparse::FilterShape;
using tflite_sparse::Padding;

struct Layer {
  FilterShape shape;
  ConvParameters params;
  std::vector<float> filter;  // OHWI with 1xN tap-vector sparsity
  std::vector<float> bias;
  int block_n = 1;
  float low = 0.0f;  // the conv's activation range
  float high = 6.0f;
  float residual_low = 0.0f;  // a fused ADD's, where a test adds one
  float residual_high = 6.0f;
};

constexpr float kInfinity = std::numeric_limits<float>::infinity();

// A random OHWI filter for the layer's shape with 1 x block_n blocks: about half the tap
// vectors of a group kept, one group in six empty.
void FillRandomBlocks(Layer& layer, std::mt19937_64& rng) {
  const int64_t taps = layer.shape.TapsPerChannel();
  layer.filter.assign(static_cast<size_t>(layer.shape.out_channels * taps), 0.0f);
  const int groups = (layer.shape.out_channels + layer.block_n - 1) / layer.block_n;
  for (int group = 0; group < groups; ++group) {
    const bool empty = native_test::UniformInt(rng, 0, 5) == 0;
    for (int64_t tap = 0; tap < taps; ++tap) {
      const bool kept = !empty && native_test::UniformInt(rng, 0, 1) == 1;
      for (int lane = 0; lane < layer.block_n; ++lane) {
        const int channel = group * layer.block_n + lane;
        if (channel >= layer.shape.out_channels) break;
        layer.filter[channel * taps + tap] = kept ? native_test::UniformFloat(rng, -1.0f, 1.0f) : 0.0f;
      }
    }
  }
}

Layer RandomLayer(std::mt19937_64& rng) {
  Layer layer;
  const int widths[] = {1, 2, 4, 8, 16, 32};
  layer.block_n = widths[native_test::UniformInt(rng, 0, 5)];
  layer.shape.out_channels = native_test::UniformInt(rng, 1, 40);
  layer.shape.kernel_h = native_test::UniformInt(rng, 1, 3);
  layer.shape.kernel_w = native_test::UniformInt(rng, 1, 3);
  layer.shape.in_channels = native_test::UniformInt(rng, 1, 9);
  layer.params.padding = native_test::UniformInt(rng, 0, 1) ? Padding::kSame : Padding::kValid;
  layer.params.stride_h = native_test::UniformInt(rng, 1, 2);
  layer.params.stride_w = native_test::UniformInt(rng, 1, 2);
  layer.params.dilation_h = native_test::UniformInt(rng, 1, 2);
  layer.params.dilation_w = native_test::UniformInt(rng, 1, 2);
  FillRandomBlocks(layer, rng);
  for (int channel = 0; channel < layer.shape.out_channels; ++channel) {
    layer.bias.push_back(native_test::UniformFloat(rng, -0.5f, 0.5f));
  }
  // RELU6 (above), linear or RELU, the unbounded sides infinite as the delegate sets them
  // (ActivationRange) or +-FLT_MAX: every epilogue kind of microkernels/epilogue_clamps.h and
  // the general clamps.
  switch (native_test::UniformInt(rng, 0, 3)) {
    case 1:
      layer.low = -kInfinity;
      layer.high = kInfinity;
      break;
    case 2:
      layer.low = 0.0f;
      layer.high = kInfinity;
      break;
    case 3:
      layer.low = -3.4e38f;
      layer.high = 3.4e38f;
      break;
    default:
      break;
  }
  // The same choice for a fused ADD's range.
  switch (native_test::UniformInt(rng, 0, 2)) {
    case 1:
      layer.residual_low = 0.0f;
      layer.residual_high = kInfinity;
      break;
    case 2:
      layer.residual_low = -kInfinity;
      layer.residual_high = kInfinity;
      break;
    default:
      break;
  }
  return layer;
}

// An NHWC input of batch x height x width x the layer's input channels, uniform in [-1, 1].
std::vector<float> RandomInput(std::mt19937_64& rng, const Layer& layer, int batch, int height,
                               int width) {
  std::vector<float> input(static_cast<size_t>(batch) * height * width * layer.shape.in_channels);
  for (float& value : input) value = native_test::UniformFloat(rng, -1.0f, 1.0f);
  return input;
}

// The operator with the variant the delegate would choose for this shape class
// (SelectMicrokernel, pixel pairs allowed so that they run on every AVX-512 CPU, also where
// the option's default leaves them out), or with `forced` when given.
std::unique_ptr<tflite_sparse::SparseConvOperator> MakeOperator(
    const Layer& layer, tflite_sparse::Isa isa, std::shared_ptr<tflite_sparse::ThreadPool> pool,
    const tflite_sparse::MicrokernelVariant* forced = nullptr) {
  const tflite_sparse::BlockPattern pattern =
      tflite_sparse::AnalyzeBlockPattern(layer.filter.data(), layer.shape, layer.block_n);
  tflite_sparse::PackedFilter packed;
  std::string error;
  if (!tflite_sparse::PackFilter(layer.filter.data(), layer.bias.data(), layer.shape, pattern,
                                 &packed, &error)) {
    return nullptr;
  }
  const tflite_sparse::MicrokernelVariant* variant =
      forced != nullptr
          ? forced
          : tflite_sparse::SelectMicrokernel(
                isa, layer.block_n, layer.shape.kernel_h, layer.shape.kernel_w,
                tflite_sparse::KeptFlopsPerInputValue(pattern.kept_tap_vectors, layer.block_n,
                                                      layer.shape.in_channels),
                tflite_sparse::KeptFlopsPerOutputValue(pattern.kept_tap_vectors, layer.block_n,
                                                       layer.shape.out_channels),
                /*pixel_pairs=*/true);
  return std::make_unique<tflite_sparse::SparseConvOperator>(
      layer.params, layer.low, layer.high, std::move(packed), variant, std::move(pool));
}

// Direct NHWC convolution in float64 with TFLite's SAME padding (extra row/column at the end).
double Direct(const Layer& layer, const std::vector<float>& input, const ConvGeometry& g, int n,
              int y, int x, int o) {
  const FilterShape& s = layer.shape;
  double sum = layer.bias[o];
  for (int ky = 0; ky < s.kernel_h; ++ky) {
    for (int kx = 0; kx < s.kernel_w; ++kx) {
      const int iy = y * layer.params.stride_h + ky * layer.params.dilation_h - g.pad_top;
      const int ix = x * layer.params.stride_w + kx * layer.params.dilation_w - g.pad_left;
      if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) continue;
      for (int ci = 0; ci < s.in_channels; ++ci) {
        sum += static_cast<double>(
                   layer.filter[((static_cast<size_t>(o) * s.kernel_h + ky) * s.kernel_w + kx) *
                                    s.in_channels +
                                ci]) *
               input[((static_cast<size_t>(n) * g.in_h + iy) * g.in_w + ix) * s.in_channels + ci];
      }
    }
  }
  return std::fmin(std::fmax(sum, static_cast<double>(layer.low)), static_cast<double>(layer.high));
}

// Largest |output - direct convolution| over an NHWC output of geometry g.
double MaxErrorAgainstDirect(const Layer& layer, const std::vector<float>& input,
                             const ConvGeometry& g, const std::vector<float>& output) {
  double worst = 0.0;
  for (int n = 0; n < g.batch; ++n) {
    for (int y = 0; y < g.out_h; ++y) {
      for (int x = 0; x < g.out_w; ++x) {
        for (int o = 0; o < g.out_channels; ++o) {
          const double want = Direct(layer, input, g, n, y, x, o);
          const double got =
              output[((static_cast<size_t>(n) * g.out_h + y) * g.out_w + x) * g.out_channels + o];
          worst = std::fmax(worst, std::fabs(got - want));
        }
      }
    }
  }
  return worst;
}

// A 1x1 filter (layer.shape O x 1 x 1 x I) with 1xN blocks: block (group, input channel) gets
// random weights where keep(rng) says so, zeros elsewhere.
template <class Keep>
void FillOneByOneBlocks(Layer& layer, std::mt19937_64& rng, const Keep& keep) {
  const int64_t taps = layer.shape.in_channels;
  layer.filter.assign(static_cast<size_t>(layer.shape.out_channels * taps), 0.0f);
  const int groups = (layer.shape.out_channels + layer.block_n - 1) / layer.block_n;
  for (int group = 0; group < groups; ++group) {
    for (int64_t tap = 0; tap < taps; ++tap) {
      if (!keep(rng)) continue;
      for (int lane = 0; lane < layer.block_n; ++lane) {
        const int channel = group * layer.block_n + lane;
        if (channel < layer.shape.out_channels) {
          layer.filter[static_cast<size_t>(channel) * taps + tap] =
              native_test::UniformFloat(rng, -1.0f, 1.0f);
        }
      }
    }
  }
}

// The smallest input height (or width) the layer accepts along an axis with this kernel extent
// and dilation: the dilated kernel with VALID padding, 1 with SAME.
int MinInputExtent(const Layer& layer, int kernel, int dilation) {
  return layer.params.padding == Padding::kValid ? (kernel - 1) * dilation + 1 : 1;
}

TEST(OperatorMatchesDirectConvolutionAndIsBitwiseStableAcrossThreads) {
  auto rng = native_test::Random(2026);
  for (int trial = 0; trial < 60; ++trial) {
    const Layer layer = RandomLayer(rng);
    const int batch = native_test::UniformInt(rng, 1, 2);
    const int min_h = MinInputExtent(layer, layer.shape.kernel_h, layer.params.dilation_h);
    const int min_w = MinInputExtent(layer, layer.shape.kernel_w, layer.params.dilation_w);
    const int in_h = native_test::UniformInt(rng, min_h, min_h + 9);
    const int in_w = native_test::UniformInt(rng, min_w, min_w + 11);
    const std::vector<float> input = RandomInput(rng, layer, batch, in_h, in_w);
    for (tflite_sparse::Isa isa : RunnableIsas()) {
      std::vector<float> first;
      for (int threads = 1; threads <= 3; ++threads) {
        auto op = MakeOperator(layer, isa, std::make_shared<tflite_sparse::ThreadPool>(threads));
        op->set_min_parallel_flops(0);  // split these small layers between threads too
        EXPECT_TRUE(op != nullptr);
        if (op == nullptr) return;
        std::string error;
        EXPECT_TRUE(op->Prepare(batch, in_h, in_w, layer.shape.in_channels, &error)) << error;
        const ConvGeometry& g = op->geometry();
        std::vector<float> output(static_cast<size_t>(batch) * g.out_h * g.out_w *
                                  g.out_channels);
        EXPECT_TRUE(op->Run(input.data(), output.data()));
        // Run twice: the zero borders of the padded scratch must survive.
        EXPECT_TRUE(op->Run(input.data(), output.data()));
        if (threads == 1) {
          first = output;
          const double worst = MaxErrorAgainstDirect(layer, input, g, output);
          EXPECT_TRUE(worst <= 1e-5) << tflite_sparse::IsaName(isa) << " trial " << trial
                                     << " max |diff| " << worst;
        } else {
          EXPECT_TRUE(output.size() == first.size() &&
                      std::memcmp(output.data(), first.data(), output.size() * sizeof(float)) == 0)
              << tflite_sparse::IsaName(isa) << " trial " << trial << ": " << threads
              << " threads differ from 1";
        }
      }
    }
  }
}

// Explicit padding (a folded PAD node) on random layers: the same bits as the layer without it
// on an input padded by hand, which also matches the direct convolution; 1 and 2 threads.
TEST(ExplicitPaddingEqualsAnInputPaddedByHandBitwise) {
  auto rng = native_test::Random(2027);
  for (int trial = 0; trial < 40; ++trial) {
    const Layer layer = RandomLayer(rng);
    Layer folded = layer;
    folded.params.pad_top = native_test::UniformInt(rng, 0, 3);
    folded.params.pad_bottom = native_test::UniformInt(rng, 0, 3);
    folded.params.pad_left = native_test::UniformInt(rng, 0, 3);
    folded.params.pad_right = native_test::UniformInt(rng, 0, 3);
    const int top = folded.params.pad_top;
    const int left = folded.params.pad_left;
    const int extra_h = top + folded.params.pad_bottom;
    const int extra_w = left + folded.params.pad_right;
    const int min_h = MinInputExtent(layer, layer.shape.kernel_h, layer.params.dilation_h);
    const int min_w = MinInputExtent(layer, layer.shape.kernel_w, layer.params.dilation_w);
    const int batch = native_test::UniformInt(rng, 1, 2);
    const int in_h = native_test::UniformInt(rng, std::max(1, min_h - extra_h), min_h + 6);
    const int in_w = native_test::UniformInt(rng, std::max(1, min_w - extra_w), min_w + 8);
    const int channels = layer.shape.in_channels;
    const std::vector<float> input = RandomInput(rng, layer, batch, in_h, in_w);
    const int padded_h = in_h + extra_h;
    const int padded_w = in_w + extra_w;
    std::vector<float> padded(static_cast<size_t>(batch) * padded_h * padded_w * channels, 0.0f);
    for (int n = 0; n < batch; ++n) {
      for (int y = 0; y < in_h; ++y) {
        std::memcpy(&padded[((static_cast<size_t>(n) * padded_h + y + top) * padded_w + left) *
                            channels],
                    &input[(static_cast<size_t>(n) * in_h + y) * in_w * channels],
                    static_cast<size_t>(in_w) * channels * sizeof(float));
      }
    }
    for (tflite_sparse::Isa isa : RunnableIsas()) {
      auto by_hand = MakeOperator(layer, isa, std::make_shared<tflite_sparse::ThreadPool>(1));
      std::string error;
      EXPECT_TRUE(by_hand->Prepare(batch, padded_h, padded_w, channels, &error)) << error;
      const ConvGeometry& g = by_hand->geometry();
      std::vector<float> expected(static_cast<size_t>(batch) * g.out_h * g.out_w *
                                  g.out_channels);
      EXPECT_TRUE(by_hand->Run(padded.data(), expected.data()));
      const double worst = MaxErrorAgainstDirect(layer, padded, g, expected);
      EXPECT_TRUE(worst <= 1e-5) << "trial " << trial << " max |diff| " << worst;
      for (int threads = 1; threads <= 2; ++threads) {
        auto op = MakeOperator(folded, isa, std::make_shared<tflite_sparse::ThreadPool>(threads));
        op->set_min_parallel_flops(0);
        EXPECT_TRUE(op->Prepare(batch, in_h, in_w, channels, &error)) << error;
        const ConvGeometry& h = op->geometry();
        EXPECT_TRUE(h.out_h == g.out_h && h.out_w == g.out_w) << "trial " << trial;
        std::vector<float> output(expected.size(), -1.0f);
        EXPECT_TRUE(op->Run(input.data(), output.data()));
        EXPECT_TRUE(op->Run(input.data(), output.data()));  // the zero borders survive a run
        EXPECT_TRUE(std::memcmp(output.data(), expected.data(), output.size() * sizeof(float)) ==
                    0)
            << tflite_sparse::IsaName(isa) << " trial " << trial << ", " << threads
            << " thread(s): explicit padding differs from the input padded by hand";
      }
    }
  }
}

// The layer's output with the pixel-major variant of `isa` on 1 thread, checked against the
// direct convolution. With `rng`, also a random residual (into *residual) and the output of the
// conv with that fused ADD (activation 0..6) instead.
std::vector<float> PixelMajorReference(const Layer& layer, tflite_sparse::Isa isa, int batch,
                                       int in_h, int in_w, const std::vector<float>& input,
                                       std::mt19937_64* rng,
                                       std::vector<float>* residual = nullptr) {
  auto op = MakeOperator(layer, isa, std::make_shared<tflite_sparse::ThreadPool>(1),
                         tflite_sparse::FindMicrokernel(isa, layer.block_n));
  std::string error;
  EXPECT_TRUE(op->Prepare(batch, in_h, in_w, layer.shape.in_channels, &error)) << error;
  const ConvGeometry& g = op->geometry();
  std::vector<float> reference(static_cast<size_t>(batch) * g.out_h * g.out_w * g.out_channels);
  EXPECT_TRUE(op->Run(input.data(), reference.data()));
  const double worst = MaxErrorAgainstDirect(layer, input, g, reference);
  EXPECT_TRUE(worst <= 1e-5) << tflite_sparse::IsaName(isa) << " max |diff| " << worst;
  if (rng != nullptr) {
    residual->resize(reference.size());
    for (float& value : *residual) value = native_test::UniformFloat(*rng, -4.0f, 4.0f);
    op->set_residual_activation(layer.residual_low, layer.residual_high);
    EXPECT_TRUE(op->Run(input.data(), reference.data(), residual->data()));
  }
  return reference;
}

// The pixel-major results of a layer on two inputs, with fused-ADD residuals when `fused_add`,
// that a variant of another layout must reproduce bitwise.
struct PixelMajorPair {
  std::vector<float> reference, residual, other_reference, other_residual;
};

PixelMajorPair PixelMajorReferences(const Layer& layer, tflite_sparse::Isa isa, int batch,
                                    int in_h, int in_w, const std::vector<float>& input,
                                    const std::vector<float>& other_input, bool fused_add,
                                    std::mt19937_64& rng) {
  PixelMajorPair pair;
  pair.reference = PixelMajorReference(layer, isa, batch, in_h, in_w, input,
                                       fused_add ? &rng : nullptr, &pair.residual);
  pair.other_reference = PixelMajorReference(layer, isa, batch, in_h, in_w, other_input,
                                             fused_add ? &rng : nullptr, &pair.other_residual);
  return pair;
}

// Runs `op` on the other input, then `runs` times on the input, in the same buffer (a thread
// keeps a tile's panel or pairs for the next group chunk of that tile, never for the next
// Run), and expects each output bitwise equal to its pixel-major reference.
void ExpectPixelMajorBits(tflite_sparse::SparseConvOperator& op, const std::vector<float>& input,
                          const std::vector<float>& other_input, const PixelMajorPair& pair,
                          bool fused_add, int runs, const std::string& what) {
  std::vector<float> output(pair.reference.size(), -777.0f);
  std::vector<float> buffer = other_input;
  EXPECT_TRUE(op.Run(buffer.data(), output.data(),
                     fused_add ? pair.other_residual.data() : nullptr));
  EXPECT_TRUE(std::memcmp(output.data(), pair.other_reference.data(),
                          output.size() * sizeof(float)) == 0)
      << op.variant().name << " " << what << " differs from the pixel-major variant (other input)";
  buffer = input;
  for (int run = 0; run < runs; ++run) {
    EXPECT_TRUE(op.Run(buffer.data(), output.data(), fused_add ? pair.residual.data() : nullptr));
  }
  EXPECT_TRUE(std::memcmp(output.data(), pair.reference.data(), output.size() * sizeof(float)) ==
              0)
      << op.variant().name << " " << what << (fused_add ? " fused ADD" : "")
      << " differs from the pixel-major variant";
}

// Stride-1 layers at N = 4 and 8, run with the ISA's channel-major variant for N when it has
// one (forced: these small layers are below SelectMicrokernel's work threshold): against the
// direct convolution, bitwise across 1, 2 and 3 threads, and bitwise equal to the pixel-major
// variant of the same ISA (both are bias + one fused multiply-add per kept tap vector in packed
// order), with and without a fused ADD. Half the trials are 1x1 layers (per-tile panels; pixel
// counts cover partial pixel vectors and tiles crossing rows and images; one in four of all
// trials strided, each output row's pixels gathered at the stride), half KxK ones with either
// padding, dilation and, one in four of all trials, strides (the planes of the padded input or
// its phases, tiles crossing rows, lanes in the padding columns, images in one batch), built in
// a workspace that holds garbage first; out_channels cover partial groups.
TEST(ChannelMajorOperatorMatchesPixelMajorBitwise) {
  auto rng = native_test::Random(4242);
  int channel_major_runs = 0;
  int plane_runs = 0;
  int strided_runs = 0;
  int strided_plane_runs = 0;
  for (int trial = 0; trial < 60; ++trial) {
    Layer layer = RandomLayer(rng);
    layer.block_n = native_test::UniformInt(rng, 0, 1) ? 4 : 8;
    const bool one_by_one = trial % 2 == 0;
    if (one_by_one) {
      layer.shape.kernel_h = layer.shape.kernel_w = 1;
      layer.params.dilation_h = layer.params.dilation_w = 1;
    }
    layer.shape.in_channels = native_test::UniformInt(rng, 1, one_by_one ? 40 : 20);
    layer.shape.out_channels = native_test::UniformInt(rng, 1, 40);
    layer.params.stride_h = layer.params.stride_w = 1;
    if (trial % 4 >= 2) {  // strided 1x1 and KxK layers
      layer.params.stride_h = 1 + (trial / 4) % 3;
      layer.params.stride_w = 2 + (trial / 4) % 2;
    }
    // A third of the blocks pruned.
    if (one_by_one) {
      FillOneByOneBlocks(layer, rng,
                         [](auto& r) { return native_test::UniformInt(r, 0, 2) != 0; });
    } else {
      FillRandomBlocks(layer, rng);
    }
    layer.bias.resize(static_cast<size_t>(layer.shape.out_channels), 0.25f);
    const int batch = native_test::UniformInt(rng, 1, 3);
    const int min_h = (layer.shape.kernel_h - 1) * layer.params.dilation_h + 1;
    const int min_w = (layer.shape.kernel_w - 1) * layer.params.dilation_w + 1;
    const int in_h = native_test::UniformInt(rng, min_h, min_h + 11);
    const int in_w = native_test::UniformInt(rng, min_w, min_w + 20);
    const std::vector<float> input = RandomInput(rng, layer, batch, in_h, in_w);
    const std::vector<float> other_input = RandomInput(rng, layer, batch, in_h, in_w);
    const bool fused_add = native_test::UniformInt(rng, 0, 1) == 1;
    for (tflite_sparse::Isa isa : RunnableIsas()) {
      const PixelMajorPair references = PixelMajorReferences(layer, isa, batch, in_h, in_w, input,
                                                             other_input, fused_add, rng);
      const tflite_sparse::MicrokernelVariant* panel = tflite_sparse::FindMicrokernel(
          isa, layer.block_n, tflite_sparse::WeightType::kFloat32,
          tflite_sparse::InputLayout::kChannelMajor);
      for (int threads = 1; threads <= 3; ++threads) {
        auto op = MakeOperator(layer, isa, std::make_shared<tflite_sparse::ThreadPool>(threads),
                               panel != nullptr ? panel
                                                : tflite_sparse::FindMicrokernel(isa,
                                                                                 layer.block_n));
        op->set_min_parallel_flops(0);
        auto workspace = std::make_shared<tflite_sparse::AlignedBuffer>();
        workspace->ResizeZeroed(1 << 16);
        for (size_t i = 0; i < workspace->size(); ++i) workspace->data()[i] = -555.0f;
        op->set_workspace(workspace);
        if (fused_add) op->set_residual_activation(layer.residual_low, layer.residual_high);
        std::string error;
        EXPECT_TRUE(op->Prepare(batch, in_h, in_w, layer.shape.in_channels, &error)) << error;
        EXPECT_TRUE(panel == nullptr || &op->variant() == panel) << op->variant().name;
        channel_major_runs += panel != nullptr;
        plane_runs += panel != nullptr && !one_by_one;
        strided_runs += panel != nullptr && trial % 4 == 2;
        strided_plane_runs += panel != nullptr && trial % 4 == 3;
        // (With 2 and 3 threads these layers of a few tiles are cut into up to a dozen chunks.)
        ExpectPixelMajorBits(*op, input, other_input, references, fused_add, 1,
                             "trial " + std::to_string(trial) + " threads " +
                                 std::to_string(threads));
      }
    }
  }
  if (channel_major_runs == 0) {
    native_test::SkipNotes().push_back("channel-major operator test: no channel-major variant "
                                       "on this CPU");
  } else {
    EXPECT_TRUE(plane_runs > 0 && strided_runs > 0 && strided_plane_runs > 0);
  }
}

// A 1x1 channel-major layer runs in tiles of 16 pixels (one AVX-512 vector, two AVX2 ones;
// kPanelTilePixels) however many input channels (40, and 520: a 33 KiB panel, past L1): the
// tile counts of 80 output pixels at stride 1 and 2, and the outputs bitwise equal to the
// pixel-major variant's on 1 and 2 threads.
TEST(ChannelMajorOneByOneTilesHoldSixteenPixels) {
  auto rng = native_test::Random(515);
  int checked = 0;
  for (int in_channels : {40, 520}) {
    for (int stride : {1, 2}) {
      Layer layer = RandomLayer(rng);
      layer.block_n = 4;
      layer.shape.kernel_h = layer.shape.kernel_w = 1;
      layer.shape.in_channels = in_channels;
      layer.shape.out_channels = 12;
      layer.params.stride_h = layer.params.stride_w = stride;
      layer.params.dilation_h = layer.params.dilation_w = 1;
      FillOneByOneBlocks(layer, rng,
                         [](auto& r) { return native_test::UniformInt(r, 0, 3) == 0; });
      layer.bias.assign(static_cast<size_t>(layer.shape.out_channels), 0.25f);
      const int in_h = 8 * stride;
      const int in_w = 10 * stride;  // 8 x 10 output pixels with either padding
      const std::vector<float> input = RandomInput(rng, layer, 1, in_h, in_w);
      const std::vector<float> other_input = RandomInput(rng, layer, 1, in_h, in_w);
      for (tflite_sparse::Isa isa : RunnableIsas()) {
        const tflite_sparse::MicrokernelVariant* panel = tflite_sparse::FindMicrokernel(
            isa, layer.block_n, tflite_sparse::WeightType::kFloat32,
            tflite_sparse::InputLayout::kChannelMajor);
        if (panel == nullptr) continue;
        const PixelMajorPair references =
            PixelMajorReferences(layer, isa, 1, in_h, in_w, input, other_input, false, rng);
        for (int threads = 1; threads <= 2; ++threads) {
          auto op = MakeOperator(layer, isa, std::make_shared<tflite_sparse::ThreadPool>(threads),
                                 panel);
          op->set_min_parallel_flops(0);
          std::string error;
          EXPECT_TRUE(op->Prepare(1, in_h, in_w, in_channels, &error)) << error;
          EXPECT_TRUE(&op->variant() == panel) << op->variant().name;
          const std::string what = std::to_string(in_channels) + " input channels, stride " +
                                   std::to_string(stride) + ", " + std::to_string(threads) +
                                   " thread(s)";
          EXPECT_EQ(op->pixel_tiles(), 5) << panel->name << " " << what;
          ExpectPixelMajorBits(*op, input, other_input, references, false, 1, what);
          ++checked;
        }
      }
    }
  }
  if (checked == 0) {
    native_test::SkipNotes().push_back("channel-major tile test: no channel-major variant on "
                                       "this CPU");
  }
}

// KxK and 1x1 stride-1 layers at N = 8 and 16, run with the ISA's pixel-pair variant where it
// has one:
// against the direct convolution, and bitwise equal to the pixel-major variant of the same ISA
// at 1, 2 and 3 threads, with and without a fused ADD (both are bias + one fused multiply-add
// per kept tap vector in packed order, then the same clamps). Odd and even output widths (a
// row's last pixel alone in its pair; for 1x1, an odd pixel count), strides, dilations, both
// paddings, batches up to 3 (tiles crossing rows and images), out_channels with partial groups,
// run twice (the pair image's zero borders must survive).
TEST(PixelPairOperatorMatchesPixelMajorBitwise) {
  auto rng = native_test::Random(5151);
  int pair_runs = 0;
  int whole_image_runs = 0;  // 1x1 stride-1 layers in several chunks: paired once per Run
  int strided_vertical_runs = 0;  // strided 1x1 layers with an odd output width: vertical pairs
  for (int trial = 0; trial < 40; ++trial) {
    Layer layer = RandomLayer(rng);
    layer.block_n = trial % 2 == 0 ? 16 : 8;
    // A third of the trials 1x1 stride-1 (consecutive pixels paired tile by tile), a sixth
    // strided 1x1 (the output rows a tile covers paired tile by tile, the last column of an
    // odd-width output vertically).
    if (trial % 3 == 0) {
      layer.shape.kernel_h = layer.shape.kernel_w = 1;
      layer.params.stride_h = layer.params.stride_w = 1;
    } else if (trial % 6 == 1) {
      layer.shape.kernel_h = layer.shape.kernel_w = 1;
      layer.params.stride_h = 1 + (trial / 6) % 3;
      layer.params.stride_w = 2 + (trial / 6) % 2;
    }
    if (trial % 4 == 0) layer.shape.out_channels += 16;  // several groups
    FillRandomBlocks(layer, rng);
    layer.bias.resize(static_cast<size_t>(layer.shape.out_channels), 0.25f);
    const int batch = native_test::UniformInt(rng, 1, 3);
    const int min_h = (layer.shape.kernel_h - 1) * layer.params.dilation_h + 1;
    const int min_w = (layer.shape.kernel_w - 1) * layer.params.dilation_w + 1;
    const int in_h = native_test::UniformInt(rng, min_h, min_h + 8);
    const int in_w = native_test::UniformInt(rng, min_w, min_w + 12);
    const std::vector<float> input = RandomInput(rng, layer, batch, in_h, in_w);
    const std::vector<float> other_input = RandomInput(rng, layer, batch, in_h, in_w);
    const bool fused_add = native_test::UniformInt(rng, 0, 1) == 1;
    for (tflite_sparse::Isa isa : RunnableIsas()) {
      const tflite_sparse::MicrokernelVariant* pair =
          tflite_sparse::FindMicrokernel(isa, layer.block_n, tflite_sparse::WeightType::kFloat32,
                                         tflite_sparse::InputLayout::kPixelPair);
      if (pair == nullptr) continue;
      const PixelMajorPair references = PixelMajorReferences(layer, isa, batch, in_h, in_w, input,
                                                             other_input, fused_add, rng);
      for (int threads = 1; threads <= 3; ++threads) {
        // Forced: SelectMicrokernel leaves 1x1 layers this small to the pixel-major variant.
        auto op =
            MakeOperator(layer, isa, std::make_shared<tflite_sparse::ThreadPool>(threads), pair);
        op->set_min_parallel_flops(0);
        op->set_pixel_pair_fallback(false);
        if (fused_add) op->set_residual_activation(layer.residual_low, layer.residual_high);
        std::string error;
        EXPECT_TRUE(op->Prepare(batch, in_h, in_w, layer.shape.in_channels, &error)) << error;
        EXPECT_TRUE(&op->variant() == pair) << op->variant().name;
        ++pair_runs;
        if (trial % 3 == 0 && op->group_chunks() > 1) ++whole_image_runs;
        if (trial % 6 == 1 && op->geometry().out_w % 2 == 1 && op->geometry().out_h >= 2) {
          ++strided_vertical_runs;
        }
        // Twice on the input: the pair image's zero borders must survive.
        ExpectPixelMajorBits(*op, input, other_input, references, fused_add, 2,
                             "trial " + std::to_string(trial) + " threads " +
                                 std::to_string(threads));
      }
    }
  }
  if (pair_runs == 0) {
    native_test::SkipNotes().push_back("pixel-pair operator test: no pixel-pair variant on this "
                                       "CPU");
  } else {
    EXPECT_TRUE(whole_image_runs > 0);
    EXPECT_TRUE(strided_vertical_runs > 0);
  }
}

// KxK layers with an odd output width pair the last column vertically ((y, W - 1) with (y + 1,
// W - 1), from columns appended to the pair image): bitwise the pixel-major result, with and
// without a fused ADD, 1 and 2 threads, for strides, dilations, one-column outputs, odd heights
// (a lone last pixel) and batches whose tiles cross images.
TEST(PixelPairOddWidthsMatchPixelMajorBitwise) {
  auto rng = native_test::Random(7373);
  struct Case {
    int kernel_h, kernel_w, stride, dilation, in_h, in_w, batch;
    Padding padding;
  };
  const Case cases[] = {
      {3, 3, 1, 1, 7, 7, 1, Padding::kSame},    // ResNet's 7x7 3x3 layers
      {3, 3, 2, 1, 13, 13, 2, Padding::kSame},  // stride 2 to a 7x7 output
      {3, 3, 1, 2, 11, 9, 1, Padding::kValid},  // dilated: 7x5
      {1, 3, 1, 1, 2, 5, 3, Padding::kValid},   // two rows of 3
      {3, 3, 1, 1, 6, 3, 2, Padding::kValid},   // one column, four rows
      {3, 1, 1, 1, 5, 5, 2, Padding::kSame},    // odd height: the last row's pixel alone
      {5, 5, 2, 1, 9, 17, 1, Padding::kSame},   // 5x9
  };
  int runs = 0;
  for (const Case& c : cases) {
    for (int block_n : {16, 8}) {
      Layer layer;
      layer.block_n = block_n;
      layer.shape.out_channels = block_n == 16 ? 40 : 24;  // a partial last group
      layer.shape.kernel_h = c.kernel_h;
      layer.shape.kernel_w = c.kernel_w;
      layer.shape.in_channels = 19;
      layer.params.padding = c.padding;
      layer.params.stride_h = layer.params.stride_w = c.stride;
      layer.params.dilation_h = layer.params.dilation_w = c.dilation;
      FillRandomBlocks(layer, rng);
      layer.bias.assign(static_cast<size_t>(layer.shape.out_channels), 0.125f);
      const std::vector<float> input = RandomInput(rng, layer, c.batch, c.in_h, c.in_w);
      for (tflite_sparse::Isa isa : RunnableIsas()) {
        const tflite_sparse::MicrokernelVariant* pair = tflite_sparse::FindMicrokernel(
            isa, block_n, tflite_sparse::WeightType::kFloat32,
            tflite_sparse::InputLayout::kPixelPair);
        if (pair == nullptr) continue;
        for (bool fused_add : {false, true}) {
          std::vector<float> residual;
          const std::vector<float> reference =
              PixelMajorReference(layer, isa, c.batch, c.in_h, c.in_w, input,
                                  fused_add ? &rng : nullptr, &residual);
          for (int threads : {1, 2}) {
            auto op = MakeOperator(layer, isa,
                                   std::make_shared<tflite_sparse::ThreadPool>(threads), pair);
            op->set_min_parallel_flops(0);
            if (fused_add) op->set_residual_activation(layer.residual_low, layer.residual_high);
            std::string error;
            EXPECT_TRUE(op->Prepare(c.batch, c.in_h, c.in_w, 19, &error)) << error;
            EXPECT_TRUE(&op->variant() == pair) << op->variant().name;
            EXPECT_TRUE(op->geometry().out_w % 2 == 1);
            std::vector<float> output(reference.size(), -777.0f);
            EXPECT_TRUE(
                op->Run(input.data(), output.data(), fused_add ? residual.data() : nullptr));
            EXPECT_TRUE(std::memcmp(output.data(), reference.data(),
                                    output.size() * sizeof(float)) == 0)
                << pair->name << " " << c.kernel_h << "x" << c.kernel_w << " stride " << c.stride
                << " dilation " << c.dilation << " input " << c.in_h << "x" << c.in_w
                << " batch " << c.batch << " threads " << threads
                << (fused_add ? " fused ADD" : "");
            ++runs;
          }
        }
      }
    }
  }
  if (runs == 0) {
    native_test::SkipNotes().push_back("pixel-pair odd-width test: no pixel-pair variant on this "
                                       "CPU");
  }
}

// Where pixel pairs at N = 16 measured slower inside models the operator runs the pixel-major
// variant instead (set_pixel_pair_fallback): a 3x3 layer with an odd output width below 16, a
// 1x1 layer with little kept work per paired input value, a strided 1x1 layer with an odd output
// width below 16; N = 8 keeps its pairs.
TEST(PixelPairGivesWayWhereItMeasuredSlower) {
  if (!tflite_sparse::IsaSupportedByCpu(tflite_sparse::Isa::kAvx512)) return;
  auto rng = native_test::Random(6161);
  struct Case {
    int block_n, kernel, size, in_channels, out_channels;
    bool paired;
    int stride = 1;
  };
  const Case cases[] = {
      {16, 3, 7, 32, 32, true},     // KxK layers keep their pairs at any width (odd: a lone
      {16, 3, 15, 32, 32, true},    // pixel per row)
      {16, 3, 8, 32, 32, true},
      {8, 3, 7, 32, 32, true},      // N = 8 keeps its pairs
      {16, 1, 8, 64, 64, false},    // 1x1: 2 x 4 x 32 x 16 / 64 = 64 kept FLOPs per input value
      {16, 1, 8, 64, 128, true},    // 128
      {16, 1, 8, 64, 256, true},    // 256
      {16, 1, 14, 64, 256, true, 2},   // strided 1x1, 7-wide output rows
      {16, 1, 16, 64, 64, false, 2},   // strided 1x1 with 64 kept FLOPs per input value
      {8, 1, 14, 64, 256, true, 2},    // N = 8 keeps its pairs
  };
  for (const Case& c : cases) {
    Layer layer;
    layer.block_n = c.block_n;
    layer.shape.out_channels = c.out_channels;
    layer.shape.kernel_h = layer.shape.kernel_w = c.kernel;
    layer.shape.in_channels = c.in_channels;
    layer.params.padding = Padding::kSame;
    layer.params.stride_h = layer.params.stride_w = c.stride;
    layer.params.dilation_h = layer.params.dilation_w = 1;
    // Half of each group's input channels kept at every tap (uniform, as SUBP trains).
    const int64_t taps = layer.shape.TapsPerChannel();
    layer.filter.assign(static_cast<size_t>(c.out_channels * taps), 0.0f);
    for (int o = 0; o < c.out_channels; ++o) {
      for (int64_t tap = 0; tap < taps; ++tap) {
        if (tap % c.in_channels < c.in_channels / 2) {
          layer.filter[o * taps + tap] = native_test::UniformFloat(rng, -1.0f, 1.0f);
        }
      }
    }
    layer.bias.assign(static_cast<size_t>(c.out_channels), 0.0f);
    const tflite_sparse::MicrokernelVariant* pair = tflite_sparse::FindMicrokernel(
        tflite_sparse::Isa::kAvx512, c.block_n, tflite_sparse::WeightType::kFloat32,
        tflite_sparse::InputLayout::kPixelPair);
    auto op = MakeOperator(layer, tflite_sparse::Isa::kAvx512,
                           std::make_shared<tflite_sparse::ThreadPool>(1), pair);
    std::string error;
    EXPECT_TRUE(op->Prepare(1, c.size, c.size, c.in_channels, &error)) << error;
    EXPECT_EQ(&op->variant() == pair, c.paired)
        << "N=" << c.block_n << " " << c.kernel << "x" << c.kernel << " " << c.size << "x"
        << c.size << " " << c.in_channels << "->" << c.out_channels << ": "
        << op->variant().name;
    op->set_pixel_pair_fallback(false);
    EXPECT_TRUE(op->Prepare(1, c.size, c.size, c.in_channels, &error)) << error;
    EXPECT_TRUE(&op->variant() == pair) << op->variant().name;
  }
}

// Ranges with an infinite side (ActivationRange: as XNNPACK sets them) make the microkernels
// skip those clamps (microkernels/epilogue_clamps.h): on finite values the same bits as the same
// ranges with +-FLT_MAX, which clamp, for every ISA, the pixel-major and the pixel-pair variants,
// with and without a fused ADD, 1 and 2 threads; an output that overflows stays infinite.
TEST(InfiniteRangesSkipClampsWithTheSameBits) {
  auto rng = native_test::Random(7117);
  constexpr float kMax = std::numeric_limits<float>::max();
  // {activation low, high, ADD low, high} with infinities and the same with +-FLT_MAX.
  const float ranges[][4] = {{0.0f, kInfinity, 0.0f, kInfinity},        // RELU, ADD + RELU
                             {-kInfinity, kInfinity, 0.0f, kInfinity},  // linear, ADD + RELU
                             {-kInfinity, kInfinity, -kInfinity, kInfinity}};
  int runs = 0;
  int64_t infinite_outputs = 0;
  for (int trial = 0; trial < 24; ++trial) {
    Layer layer = RandomLayer(rng);
    const int widths[] = {16, 32, 8};
    layer.block_n = widths[trial % 3];
    layer.shape.out_channels = layer.block_n * native_test::UniformInt(rng, 1, 2);
    layer.params.stride_h = layer.params.stride_w = 1;
    layer.params.padding = Padding::kSame;
    FillRandomBlocks(layer, rng);
    layer.bias.resize(static_cast<size_t>(layer.shape.out_channels), 0.25f);
    const int in_h = native_test::UniformInt(rng, 4, 7);
    const int in_w = native_test::UniformInt(rng, 16, 20);  // full tiles of 8 pixels or pairs
    std::vector<float> input = RandomInput(rng, layer, 1, in_h, in_w);
    const float* range = ranges[trial % 3];
    for (tflite_sparse::Isa isa : RunnableIsas()) {
      const tflite_sparse::MicrokernelVariant* variants[] = {
          tflite_sparse::FindMicrokernel(isa, layer.block_n),
          tflite_sparse::FindMicrokernel(isa, layer.block_n, tflite_sparse::WeightType::kFloat32,
                                         tflite_sparse::InputLayout::kPixelPair)};
      for (const tflite_sparse::MicrokernelVariant* variant : variants) {
        if (variant == nullptr) continue;
        for (int threads = 1; threads <= 2; ++threads) {
          Layer infinite = layer;
          infinite.low = range[0];
          infinite.high = range[1];
          Layer finite = infinite;
          finite.low = std::max(range[0], -kMax);
          finite.high = std::min(range[1], kMax);
          auto pool = std::make_shared<tflite_sparse::ThreadPool>(threads);
          auto skipping = MakeOperator(infinite, isa, pool, variant);
          auto clamping = MakeOperator(finite, isa, pool, variant);
          std::string error;
          for (auto* op : {skipping.get(), clamping.get()}) {
            op->set_min_parallel_flops(0);
            op->set_pixel_pair_fallback(false);
            EXPECT_TRUE(op->Prepare(1, in_h, in_w, layer.shape.in_channels, &error)) << error;
          }
          skipping->set_residual_activation(range[2], range[3]);
          clamping->set_residual_activation(std::max(range[2], -kMax), std::min(range[3], kMax));
          const ConvGeometry& g = skipping->geometry();
          const size_t size = static_cast<size_t>(g.out_h) * g.out_w * g.out_channels;
          std::vector<float> residual(size);
          for (float& value : residual) value = native_test::UniformFloat(rng, -4.0f, 4.0f);
          const float* const addends[] = {nullptr, residual.data()};
          for (const float* add : addends) {
            std::vector<float> skipped(size, -777.0f), clamped(size, -777.0f);
            EXPECT_TRUE(skipping->Run(input.data(), skipped.data(), add));
            EXPECT_TRUE(clamping->Run(input.data(), clamped.data(), add));
            EXPECT_TRUE(std::memcmp(skipped.data(), clamped.data(), size * sizeof(float)) == 0)
                << variant->name << " trial " << trial << " threads " << threads
                << (add ? " with" : " without") << " a fused ADD: infinite ranges differ";
            ++runs;
          }
          // Overflow: huge inputs make some outputs infinite; they stay so where the range is
          // unbounded and stop at +-FLT_MAX where it is +-FLT_MAX, as in TFLite's built-in
          // kernels.
          if (range[0] < 0.0f) {
            const std::vector<float> huge(input.size(), 3e38f);
            std::vector<float> skipped(size), clamped(size);
            EXPECT_TRUE(skipping->Run(huge.data(), skipped.data()));
            EXPECT_TRUE(clamping->Run(huge.data(), clamped.data()));
            for (size_t i = 0; i < size; ++i) {
              if (std::isinf(skipped[i])) {
                ++infinite_outputs;
                EXPECT_TRUE(std::fabs(clamped[i]) == kMax) << variant->name << " " << clamped[i];
              } else {
                EXPECT_TRUE(std::memcmp(&skipped[i], &clamped[i], sizeof(float)) == 0);
              }
            }
          }
        }
      }
    }
  }
  EXPECT_TRUE(runs > 0);
  EXPECT_TRUE(infinite_outputs > 0);
}

// A fused ADD (Run with a residual) equals the unfused convolution followed by TFLite's ADD with
// its fused activation (sum, then clamp), bitwise, for every ISA, both layouts (1x1 stride-1
// layers at N = 4 and 8 take the channel-major variant where the ISA has one) and 1-3 threads.
TEST(FusedAddEqualsConvolutionThenAddBitwise) {
  auto rng = native_test::Random(777);
  for (int trial = 0; trial < 40; ++trial) {
    Layer layer = RandomLayer(rng);
    const bool pointwise = trial % 2 == 1;
    if (pointwise) {
      layer.block_n = native_test::UniformInt(rng, 0, 1) ? 4 : 8;
      layer.shape.kernel_h = layer.shape.kernel_w = 1;
      layer.params.stride_h = layer.params.stride_w = 1;
      layer.filter.assign(static_cast<size_t>(layer.shape.out_channels) * layer.shape.in_channels,
                          0.5f);
    }
    const int batch = native_test::UniformInt(rng, 1, 2);
    // At least the largest dilated kernel (3 taps, dilation 2) for VALID padding.
    const int in_h = native_test::UniformInt(rng, 5, 10);
    const int in_w = native_test::UniformInt(rng, 5, 12);
    const std::vector<float> input = RandomInput(rng, layer, batch, in_h, in_w);
    const float lows[] = {0.0f, -3.4e38f, -kInfinity};
    const float highs[] = {6.0f, 3.4e38f, kInfinity};
    const float low = lows[native_test::UniformInt(rng, 0, 2)];
    const float high = highs[native_test::UniformInt(rng, 0, 2)];
    for (tflite_sparse::Isa isa : RunnableIsas()) {
      const tflite_sparse::MicrokernelVariant* panel =
          pointwise ? tflite_sparse::FindMicrokernel(isa, layer.block_n,
                                                     tflite_sparse::WeightType::kFloat32,
                                                     tflite_sparse::InputLayout::kChannelMajor)
                    : nullptr;
      for (int threads = 1; threads <= 3; ++threads) {
        auto op = MakeOperator(layer, isa, std::make_shared<tflite_sparse::ThreadPool>(threads),
                               panel);
        op->set_min_parallel_flops(0);
        std::string error;
        EXPECT_TRUE(op->Prepare(batch, in_h, in_w, layer.shape.in_channels, &error)) << error;
        const ConvGeometry& g = op->geometry();
        const size_t size = static_cast<size_t>(batch) * g.out_h * g.out_w * g.out_channels;
        std::vector<float> residual(size);
        for (float& value : residual) value = native_test::UniformFloat(rng, -4.0f, 4.0f);
        std::vector<float> convolved(size);
        EXPECT_TRUE(op->Run(input.data(), convolved.data()));
        std::vector<float> expected(size);
        for (size_t i = 0; i < size; ++i) {
          const float sum = convolved[i] + residual[i];
          expected[i] = std::fmin(std::fmax(sum, low), high);
        }
        op->set_residual_activation(low, high);
        std::vector<float> fused(size, -777.0f);
        EXPECT_TRUE(op->Run(input.data(), fused.data(), residual.data()));
        EXPECT_TRUE(std::memcmp(fused.data(), expected.data(), size * sizeof(float)) == 0)
            << op->variant().name << " trial " << trial << " threads " << threads
            << ": fused ADD differs from convolution then ADD";
        // In place (the output over the residual's bytes, as a partition schedules it where the
        // operator allows): the same bits. Only the channel-major variant refuses.
        const bool channel_major =
            op->variant().layout == tflite_sparse::InputLayout::kChannelMajor;
        EXPECT_TRUE(op->output_may_overwrite_residual() == !channel_major) << op->variant().name;
        if (op->output_may_overwrite_residual()) {
          std::vector<float> in_place = residual;
          EXPECT_TRUE(op->Run(input.data(), in_place.data(), in_place.data()));
          EXPECT_TRUE(std::memcmp(in_place.data(), expected.data(), size * sizeof(float)) == 0)
              << op->variant().name << " trial " << trial << " threads " << threads
              << ": the fused ADD in place differs";
        }
      }
    }
  }
}

// Sparse 1x1 layers with enough input channels that the operator computes them in blocks of
// input channels (a tile's input above its L1 budget, few kept tap vectors): against the direct
// convolution, bitwise across 1, 2 and 3 threads, with and without a fused ADD, partial last
// groups and stride 2.
TEST(ChannelBlockedOneByOneLayersMatchDirectConvolution) {
  auto rng = native_test::Random(31337);
  for (int trial = 0; trial < 6; ++trial) {
    Layer layer = RandomLayer(rng);
    layer.block_n = trial % 2 == 0 ? 16 : 8;
    layer.shape.kernel_h = layer.shape.kernel_w = 1;
    layer.shape.in_channels = native_test::UniformInt(rng, 520, 1300);
    layer.shape.out_channels = native_test::UniformInt(rng, 9, 40);
    layer.bias.resize(static_cast<size_t>(layer.shape.out_channels), 0.25f);  // O floats
    layer.params.stride_h = layer.params.stride_w = native_test::UniformInt(rng, 1, 2);
    layer.params.dilation_h = layer.params.dilation_w = 1;
    // ~92 % of the blocks pruned.
    FillOneByOneBlocks(layer, rng, [](auto& r) { return native_test::UniformInt(r, 0, 11) == 0; });
    const int batch = native_test::UniformInt(rng, 1, 2);
    const int in_h = native_test::UniformInt(rng, 2, 9);
    const int in_w = native_test::UniformInt(rng, 2, 9);
    const std::vector<float> input = RandomInput(rng, layer, batch, in_h, in_w);
    for (tflite_sparse::Isa isa : RunnableIsas()) {
      std::vector<float> first;
      std::vector<float> residual;
      for (int threads = 1; threads <= 3; ++threads) {
        auto op = MakeOperator(layer, isa, std::make_shared<tflite_sparse::ThreadPool>(threads),
                               tflite_sparse::FindMicrokernel(isa, layer.block_n));
        op->set_min_parallel_flops(0);
        std::string error;
        EXPECT_TRUE(op->Prepare(batch, in_h, in_w, layer.shape.in_channels, &error)) << error;
        const ConvGeometry& g = op->geometry();
        const size_t size = static_cast<size_t>(batch) * g.out_h * g.out_w * g.out_channels;
        if (residual.empty()) {
          residual.resize(size);
          for (float& value : residual) value = native_test::UniformFloat(rng, -2.0f, 2.0f);
        }
        std::vector<float> output(size, -777.0f);
        EXPECT_TRUE(op->Run(input.data(), output.data()));
        if (threads == 1) {
          const double worst = MaxErrorAgainstDirect(layer, input, g, output);
          EXPECT_TRUE(worst <= 1e-4) << tflite_sparse::IsaName(isa) << " trial " << trial
                                     << " Cin " << layer.shape.in_channels << " max |diff| "
                                     << worst;
          first = output;
        } else {
          EXPECT_TRUE(std::memcmp(output.data(), first.data(), size * sizeof(float)) == 0)
              << tflite_sparse::IsaName(isa) << " trial " << trial << ": " << threads
              << " threads differ from 1";
        }
        // With a fused ADD: the blocked sums, then the residual, as conv then ADD.
        std::vector<float> fused(size, -777.0f);
        EXPECT_TRUE(op->Run(input.data(), fused.data(), residual.data()));
        int mismatches = 0;
        for (size_t i = 0; i < size; ++i) {
          const float want = output[i] + residual[i];
          mismatches += std::memcmp(&fused[i], &want, sizeof(float)) != 0;
        }
        EXPECT_EQ(mismatches, 0) << tflite_sparse::IsaName(isa) << " trial " << trial;
      }
    }
  }
}

// Outputs written with non-temporal stores (the operator's choice for outputs larger than half
// the L3; forced here with a threshold of 0) equal plain stores bitwise, with and without a fused
// ADD, for 1 to 3 threads and every ISA; and the operator streams only where every stored line
// is whole.
TEST(StreamedOutputsEqualPlainStoresBitwise) {
  auto rng = native_test::Random(4242);
  EXPECT_TRUE(tflite_sparse::SparseConvOperator::StreamingOutputBytes() > 0);
  for (int trial = 0; trial < 40; ++trial) {
    Layer layer = RandomLayer(rng);
    const int widths[] = {8, 16, 32};
    layer.block_n = widths[trial % 3];
    // Whole groups and 16-float pixel rows in most trials; every fifth trial has 8 more
    // channels (rows no longer whole lines: not streamed), every fifth one more 16 more (a
    // partial last group for N = 32, written with plain stores while the others stream).
    const int groups = native_test::UniformInt(rng, 1, 4);
    layer.shape.out_channels = groups * 32 + (trial % 5 == 4 ? 8 : trial % 5 == 3 ? 16 : 0);
    const int64_t taps = layer.shape.TapsPerChannel();
    layer.filter.assign(static_cast<size_t>(layer.shape.out_channels * taps), 0.0f);
    for (int64_t tap = 0; tap < taps; ++tap) {
      if (native_test::UniformInt(rng, 0, 1) == 0) continue;
      for (int channel = 0; channel < layer.shape.out_channels; ++channel) {
        layer.filter[channel * taps + tap] = native_test::UniformFloat(rng, -1.0f, 1.0f);
      }
    }
    layer.bias.assign(static_cast<size_t>(layer.shape.out_channels), 0.25f);
    const int batch = native_test::UniformInt(rng, 1, 2);
    const int in_h = native_test::UniformInt(rng, 5, 10);
    const int in_w = native_test::UniformInt(rng, 5, 12);
    const std::vector<float> input = RandomInput(rng, layer, batch, in_h, in_w);
    for (tflite_sparse::Isa isa : RunnableIsas()) {
      for (int threads = 1; threads <= 3; ++threads) {
        auto plain = MakeOperator(layer, isa, std::make_shared<tflite_sparse::ThreadPool>(threads));
        auto streamed =
            MakeOperator(layer, isa, std::make_shared<tflite_sparse::ThreadPool>(threads));
        EXPECT_TRUE(plain != nullptr && streamed != nullptr);
        if (plain == nullptr || streamed == nullptr) return;
        plain->set_min_parallel_flops(0);
        streamed->set_min_parallel_flops(0);
        streamed->set_streaming_output_bytes(0);
        std::string error;
        EXPECT_TRUE(plain->Prepare(batch, in_h, in_w, layer.shape.in_channels, &error)) << error;
        EXPECT_TRUE(streamed->Prepare(batch, in_h, in_w, layer.shape.in_channels, &error))
            << error;
        EXPECT_TRUE(!plain->streams_output());
        const bool whole_lines = layer.block_n >= 16 && layer.shape.out_channels % 16 == 0;
        EXPECT_EQ(streamed->streams_output(), whole_lines);
        const ConvGeometry& g = plain->geometry();
        const size_t size = static_cast<size_t>(batch) * g.out_h * g.out_w * g.out_channels;
        std::vector<float> residual(size);
        for (float& value : residual) value = native_test::UniformFloat(rng, -4.0f, 4.0f);
        tflite_sparse::AlignedBuffer expected, actual;  // 64-byte aligned, as streaming needs
        expected.ResizeZeroed(size);
        actual.ResizeZeroed(size);
        const float* const addends[] = {nullptr, residual.data()};
        for (const float* add : addends) {
          plain->set_residual_activation(layer.residual_low, layer.residual_high);
          streamed->set_residual_activation(layer.residual_low, layer.residual_high);
          EXPECT_TRUE(plain->Run(input.data(), expected.data(), add));
          EXPECT_TRUE(streamed->Run(input.data(), actual.data(), add));
          EXPECT_TRUE(std::memcmp(actual.data(), expected.data(), size * sizeof(float)) == 0)
              << streamed->variant().name << " trial " << trial << " threads " << threads
              << (add ? " with" : " without") << " a fused ADD: streamed output differs";
        }
        // A misaligned output is written with plain stores, still the same values.
        if (size > 1) {
          tflite_sparse::AlignedBuffer shifted;
          shifted.ResizeZeroed(size + 1);
          EXPECT_TRUE(streamed->Run(input.data(), shifted.data() + 1));
          EXPECT_TRUE(plain->Run(input.data(), expected.data()));
          EXPECT_TRUE(std::memcmp(shifted.data() + 1, expected.data(), size * sizeof(float)) == 0)
              << streamed->variant().name << " trial " << trial << ": misaligned output differs";
        }
      }
    }
  }
}

// A dense 1x1 layer in 1x16 blocks (every weight 0.5, zero bias): its kept work is exact.
Layer DenseOneByOneLayer(int in_channels, int out_channels) {
  Layer layer;
  layer.shape.out_channels = out_channels;
  layer.shape.kernel_h = 1;
  layer.shape.kernel_w = 1;
  layer.shape.in_channels = in_channels;
  layer.block_n = 16;
  layer.filter.assign(static_cast<size_t>(out_channels) * in_channels, 0.5f);
  layer.bias.assign(static_cast<size_t>(out_channels), 0.0f);
  return layer;
}

TEST(LayersBelowMinParallelFlopsRunOnTheCallingThread) {
  // A dense 1x1 16->16 layer in one group of 16: 2 x 16 x 16 = 512 kept FLOPs per output pixel,
  // so 1953 pixels (999,936 FLOPs) fall below the default 1 MFLOP and 1954 (1,000,448) do not.
  const Layer layer = DenseOneByOneLayer(16, 16);
  EXPECT_EQ(tflite_sparse::SparseConvOperator::kDefaultMinParallelFlops, 1000 * 1000);
  for (int threads : {1, 2}) {
    for (int width : {1953, 1954}) {
      auto op = MakeOperator(layer, tflite_sparse::Isa::kGeneric,
                             std::make_shared<tflite_sparse::ThreadPool>(threads));
      EXPECT_TRUE(op != nullptr);
      if (op == nullptr) return;
      std::string error;
      EXPECT_TRUE(op->Prepare(1, 1, width, 16, &error)) << error;
      EXPECT_EQ(op->splits_between_threads(), threads == 2 && width == 1954);
      op->set_min_parallel_flops(0);
      EXPECT_TRUE(op->Prepare(1, 1, width, 16, &error)) << error;
      EXPECT_EQ(op->splits_between_threads(), threads == 2);
    }
  }
}

// The generic ISA's operator for `layer` on `threads` threads, splitting layers of any size
// between them (min_parallel_flops 0); null if the layer cannot be packed.
std::unique_ptr<tflite_sparse::SparseConvOperator> GenericOperatorSplitFromZeroFlops(
    const Layer& layer, int threads) {
  auto op = MakeOperator(layer, tflite_sparse::Isa::kGeneric,
                         std::make_shared<tflite_sparse::ThreadPool>(threads));
  if (op != nullptr) op->set_min_parallel_flops(0);
  return op;
}

TEST(FewTilesAreSplitIntoJustEnoughGroupChunks) {
  // A dense 1x1 16->64 layer: 4 groups of 16, 4 KiB of weights (one chunk by the cache budget).
  // With 2 threads every thread needs 6 work items (tiles x chunks): 12 or more tiles keep the
  // groups in one chunk, 7 tiles need 2 chunks, 4 tiles 3, 1 tile all 4 groups in chunks of
  // their own.
  const Layer layer = DenseOneByOneLayer(16, 64);
  for (int threads : {1, 2}) {
    auto op = GenericOperatorSplitFromZeroFlops(layer, threads);
    EXPECT_TRUE(op != nullptr);
    if (op == nullptr) return;
    const int tile = op->variant().tile_pixels;
    const struct {
      int tiles, chunks_at_2_threads;
    } cases[] = {{12, 1}, {40, 1}, {11, 2}, {7, 2}, {4, 3}, {2, 4}, {1, 4}};
    for (const auto& c : cases) {
      std::string error;
      EXPECT_TRUE(op->Prepare(1, 1, c.tiles * tile, 16, &error)) << error;
      EXPECT_EQ(op->pixel_tiles(), c.tiles);
      EXPECT_EQ(op->group_chunks(), threads == 2 ? c.chunks_at_2_threads : 1)
          << c.tiles << " tiles, " << threads << " threads";
    }
  }
}

// Calls fn(isa, block_n, pixel_major) for every runnable ISA and N = 4, 8 and 16, with that
// ISA's pixel-major variant for N.
template <class Function>
void ForEachPixelMajorVariant(const Function& fn) {
  for (tflite_sparse::Isa isa : RunnableIsas()) {
    for (int block_n : {4, 8, 16}) {
      const tflite_sparse::MicrokernelVariant* pixel_major = tflite_sparse::FindMicrokernel(
          isa, block_n, tflite_sparse::WeightType::kFloat32,
          tflite_sparse::InputLayout::kPixelMajor);
      EXPECT_TRUE(pixel_major != nullptr);
      if (pixel_major != nullptr) fn(isa, block_n, pixel_major);
    }
  }
}

// Which pixel-major tiles run with SparseTileArgs::pixel_spacing: full 8-pixel tiles whose
// pixels are evenly spaced (all of a 1x1 stride-1 layer's; within one output row of a 3x3 one),
// on layers with at most 32 kept tap vectors per group with AVX-512 and 16 with other ISAs;
// variants of other tile sizes never. Consecutive spaced tiles merge into runs (one tile each)
// of up to 4 that leave at least 12 tiles per thread, never across an output row.
TEST(EvenlySpacedTilesAreFullOnesOnLayersWithShortTapLists) {
  const struct {
    int kernel, in_channels, height, width, spaced_avx512, spaced_other, merged_tiles;
  } cases[] = {
      {1, 16, 1, 64, 8, 8, 0},  // 8 full tiles, too few to merge
      {1, 16, 1, 61, 5, 5, 0},  // tiles of 7, 8, 7, 8, 8, 7, 8, 8 pixels
      {1, 24, 1, 64, 8, 0, 0},  // 24 tap vectors per group
      {1, 64, 1, 64, 0, 0, 0},  // 64
      {3, 1, 2, 12, 2, 2, 0},   // pixels 0-7 (row 0), 8-15 (rows 0 and 1), 16-23 (row 1)
      {1, 16, 1, 256, 16, 16, 16},  // 32 full tiles: runs of 2 leave 16
      {3, 1, 8, 48, 16, 16, 16},    // 6 tiles per row: runs of 4 and 2 in every row
  };
  ForEachPixelMajorVariant([&](tflite_sparse::Isa isa, int block_n,
                               const tflite_sparse::MicrokernelVariant* pixel_major) {
    for (const auto& c : cases) {
      Layer layer = DenseOneByOneLayer(c.in_channels, 2 * block_n);
      layer.block_n = block_n;
      layer.shape.kernel_h = c.kernel;
      layer.shape.kernel_w = c.kernel;
      layer.params.padding = Padding::kSame;
      layer.filter.assign(static_cast<size_t>(layer.shape.out_channels) *
                              layer.shape.TapsPerChannel(),
                          0.5f);
      auto op = MakeOperator(layer, isa, std::make_shared<tflite_sparse::ThreadPool>(1),
                             pixel_major);
      EXPECT_TRUE(op != nullptr);
      if (op == nullptr) return;
      std::string error;
      EXPECT_TRUE(op->Prepare(1, c.height, c.width, c.in_channels, &error)) << error;
      const int expected = pixel_major->tile_pixels != 8 ? 0
                           : isa == tflite_sparse::Isa::kAvx512 ? c.spaced_avx512
                                                                 : c.spaced_other;
      EXPECT_EQ(op->evenly_spaced_tiles(), expected)
          << pixel_major->name << ", " << c.kernel << "x" << c.kernel << " " << c.in_channels
          << " channels, " << c.height << "x" << c.width;
      const int pixels = c.height * c.width;
      const int tile = pixel_major->tile_pixels;
      EXPECT_EQ(op->pixel_tiles(), expected > 0 && c.merged_tiles > 0 ? c.merged_tiles
                                                                       : (pixels + tile - 1) / tile)
          << pixel_major->name << ", " << c.kernel << "x" << c.kernel << " " << c.in_channels
          << " channels, " << c.height << "x" << c.width;
    }
  });
}

// After set_next_weights(next): every run of `op`'s work items must prefetch, spread over its
// items of each chunk, every line of the run's next chunk, and during its last chunk every line
// of next[run] (what the caller runs next on that thread); no address may fall before what it
// aims at or past it by more than one item's share and the rounding of its step. An item's
// prefetches are at address + k x step for k < count.
void ExpectRunsPrefetchWhatTheyReadNext(const tflite_sparse::SparseConvOperator& op,
                                        const std::vector<tflite_sparse::WeightRange>& next) {
  const int64_t items = op.group_chunks() * op.pixel_tiles();
  const int runs = static_cast<int>(next.size());
  for (int run = 0; run < runs; ++run) {
    const int64_t run_begin = tflite_sparse::FirstTileOfThread(items, run, runs);
    const int64_t run_end = tflite_sparse::FirstTileOfThread(items, run + 1, runs);
    // The run's items, segment by segment (the tiles one chunk sweeps: PlaceOf).
    for (int64_t first_item = run_begin; first_item < run_end;) {
      const auto place = op.PlaceOf(first_item);
      const int64_t chunk = place.chunk;
      const int64_t end_item = std::min(run_end, place.segment_end);
      const bool last = end_item >= run_end;
      const tflite_sparse::WeightRange target =
          last ? next[run] : op.ChunkWeights(op.PlaceOf(end_item).chunk);
      const uintptr_t begin = reinterpret_cast<uintptr_t>(target.data);
      const uintptr_t end = begin + static_cast<uintptr_t>(target.bytes);
      std::vector<bool> line_seen(static_cast<size_t>((target.bytes + 63) / 64), false);
      uintptr_t furthest = 0;
      int64_t most = 0;
      const int64_t share = (target.bytes + end_item - first_item - 1) / (end_item - first_item);
      for (int64_t item = first_item; item < end_item; ++item) {
        const auto prefetch = op.Prefetch(item);
        EXPECT_TRUE(prefetch.address != 0 && prefetch.step > 0 && prefetch.step <= 64 &&
                    prefetch.count > 0);
        most = std::max(most, prefetch.count);
        for (int64_t k = 0; k < prefetch.count; ++k) {
          const uintptr_t address = prefetch.address + static_cast<uintptr_t>(k * prefetch.step);
          EXPECT_TRUE(address >= begin);
          if (address >= begin && address < end) line_seen[(address - begin) / 64] = true;
          furthest = std::max(furthest, address);
        }
      }
      int missing = 0;
      for (bool seen : line_seen) missing += seen ? 0 : 1;
      EXPECT_EQ(missing, 0) << "run " << run << " chunk " << chunk;
      EXPECT_TRUE(furthest < end + static_cast<uintptr_t>(share + most))
          << "run " << run << " chunk " << chunk;
      first_item = end_item;
    }
  }
}

TEST(EachRunPrefetchesTheWeightsItReadsNext) {
  // A dense 1x1 1024->512 layer in 1x16 blocks: 2 MiB of weights, 8 group chunks, on a 7x7
  // input. Every run of work items must prefetch, spread over its items of each chunk, every
  // line of the run's next chunk, and during its last chunk every line of the weights the
  // caller runs next on that thread; no address may fall before what it aims at or far past it.
  Layer layer = DenseOneByOneLayer(1024, 512);
  tflite_sparse::AlignedBuffer later;
  later.ResizeZeroed(40000);  // two "next layers" of 80,000 bytes, one per run
  auto rng = native_test::Random(17);
  std::vector<float> input(7 * 7 * 1024);
  for (float& value : input) value = native_test::UniformFloat(rng, -1.0f, 1.0f);
  for (int threads : {1, 2}) {
    auto op = GenericOperatorSplitFromZeroFlops(layer, threads);
    EXPECT_TRUE(op != nullptr);
    if (op == nullptr) return;
    std::string error;
    EXPECT_TRUE(op->Prepare(1, 7, 7, 1024, &error)) << error;
    const int64_t tiles = op->pixel_tiles();
    const int64_t items = op->group_chunks() * tiles;
    const int runs = threads;
    EXPECT_TRUE(op->group_chunks() >= 8) << op->group_chunks();
    const std::vector<tflite_sparse::WeightRange> first = op->FirstWeightsOfRuns();
    EXPECT_EQ(static_cast<int>(first.size()), runs);
    std::vector<tflite_sparse::WeightRange> next;
    for (int run = 0; run < runs; ++run) {
      const int64_t item = tflite_sparse::FirstTileOfThread(items, run, runs);
      const tflite_sparse::WeightRange chunk = op->ChunkWeights(op->PlaceOf(item).chunk);
      EXPECT_TRUE(first[run].data == chunk.data && first[run].bytes == chunk.bytes) << run;
      next.push_back({reinterpret_cast<const char*>(later.data()) + 80000 * run, 80000});
    }
    op->set_next_weights(next);
    ExpectRunsPrefetchWhatTheyReadNext(*op, next);
    for (int64_t item = 0; item < items; ++item) {
      EXPECT_EQ(op->Prefetch(item).count, op->ChunkWeights(op->PlaceOf(item).chunk).bytes / 64);
    }
    // A successor too small to be worth a prefetch per kept tap vector gets none.
    op->set_next_weights(std::vector<tflite_sparse::WeightRange>(runs, {later.data(), 64}));
    EXPECT_EQ(op->Prefetch(items - 1).address, uintptr_t{0});
    // Prefetching changes no result.
    op->set_next_weights(next);
    std::vector<float> output(7 * 7 * 512);
    EXPECT_TRUE(op->Run(input.data(), output.data()));
    EXPECT_TRUE(MaxErrorAgainstDirect(layer, input, op->geometry(), output) < 1e-3);
  }
}

// A pixel-major layer in several group chunks, split between 2 or 3 threads: the chunk-major
// items are blocked by thread (thread_tiles), each run's block holding its share of the pixel
// tiles for every chunk, chunk by chunk, so that each thread writes whole output pixels of its
// own; every (chunk, tile) item exactly once; the results bitwise those of one thread (which
// does not block), and those of the direct convolution. A dense 1x1 1024->512 layer in 1x16
// blocks on 7x7 and 9x9 inputs (2 MiB of weights, 8 chunks; tile counts that the thread counts
// divide and do not), and a sparse 3x3 layer.
TEST(ThreadsWriteWholePixelsOfTheirOwn) {
  auto rng = native_test::Random(41);
  // 3x3 SAME 24->100 in 1x8 blocks (a partial last group), about half the tap vectors kept.
  Layer sparse3x3;
  sparse3x3.block_n = 8;
  sparse3x3.shape.out_channels = 100;
  sparse3x3.shape.kernel_h = 3;
  sparse3x3.shape.kernel_w = 3;
  sparse3x3.shape.in_channels = 24;
  FillRandomBlocks(sparse3x3, rng);
  for (int channel = 0; channel < 100; ++channel) {
    sparse3x3.bias.push_back(native_test::UniformFloat(rng, -0.5f, 0.5f));
  }
  struct Case {
    const char* name;
    Layer layer;
    int height, width;
  };
  const Case cases[] = {{"1x1 1024->512 7x7", DenseOneByOneLayer(1024, 512), 7, 7},
                        {"1x1 1024->512 9x9", DenseOneByOneLayer(1024, 512), 9, 9},
                        {"random 3x3", sparse3x3, 6, 11}};
  for (const Case& c : cases) {
    const int in_channels = c.layer.shape.in_channels;
    std::vector<float> input(static_cast<size_t>(c.height) * c.width * in_channels);
    for (float& value : input) value = native_test::UniformFloat(rng, -1.0f, 1.0f);
    std::vector<float> reference;
    for (int threads : {1, 2, 3}) {
      auto op = GenericOperatorSplitFromZeroFlops(c.layer, threads);
      EXPECT_TRUE(op != nullptr) << c.name;
      if (op == nullptr) return;
      std::string error;
      EXPECT_TRUE(op->Prepare(1, c.height, c.width, in_channels, &error)) << error;
      const int64_t tiles = op->pixel_tiles();
      const int64_t chunks = op->group_chunks();
      const int64_t items = chunks * tiles;
      // By the cache budget (2 MiB of weights) or, on few tiles, for work items per thread.
      EXPECT_TRUE(chunks > 1 || threads == 1) << c.name;
      EXPECT_EQ(op->thread_tiles(), threads > 1 && tiles >= threads)
          << c.name << ", " << threads << " threads, " << tiles << " tiles";
      std::vector<int> seen(static_cast<size_t>(items), 0);
      for (int run = 0; run < threads; ++run) {
        const int64_t first_tile = tflite_sparse::FirstTileOfThread(tiles, run, threads);
        const int64_t end_tile = tflite_sparse::FirstTileOfThread(tiles, run + 1, threads);
        const int64_t block_begin = op->thread_tiles() ? chunks * first_tile : 0;
        const int64_t block_end = op->thread_tiles() ? chunks * end_tile : items;
        int64_t previous_chunk = 0;
        for (int64_t item = block_begin; item < block_end; ++item) {
          const auto place = op->PlaceOf(item);
          EXPECT_TRUE(place.chunk >= previous_chunk && place.chunk < chunks) << item;
          previous_chunk = place.chunk;
          if (op->thread_tiles()) {
            EXPECT_TRUE(place.tile >= first_tile && place.tile < end_tile)
                << c.name << " run " << run << " item " << item;
          }
          EXPECT_TRUE(place.segment_begin <= item && item < place.segment_end);
          if (place.chunk >= 0 && place.chunk < chunks && place.tile >= 0 && place.tile < tiles) {
            ++seen[static_cast<size_t>(place.chunk * tiles + place.tile)];
          }
        }
        if (!op->thread_tiles()) break;  // one chunk-major block: checked once
      }
      for (int64_t pair = 0; pair < items; ++pair) {
        EXPECT_EQ(seen[static_cast<size_t>(pair)], 1) << c.name << " (chunk, tile) " << pair;
      }
      std::vector<float> output(static_cast<size_t>(c.height) * c.width *
                                c.layer.shape.out_channels);
      EXPECT_TRUE(op->Run(input.data(), output.data()));
      if (threads == 1) {
        reference = output;
        EXPECT_TRUE(MaxErrorAgainstDirect(c.layer, input, op->geometry(), output) < 1e-3)
            << c.name;
      } else {
        EXPECT_TRUE(output == reference) << c.name << ", " << threads << " threads";
      }
    }
  }
}

// Runs of spaced tiles (1x1 stride-1 and 3x3 SAME layers with short tap lists, one 1x1 with the
// same tap vector count in every group, whose calls pass it as group_taps, N = 4, 8 and 16 on
// the ISA's pixel-major variant, partial last groups, two images): against the direct
// convolution, bitwise across 1, 2 and 3 threads (whose runs differ in length), with a fused ADD
// bitwise equal to the convolution then the ADD, and with the next weights prefetched (which
// changes no bit, every line of them prefetched).
TEST(SpacedRunsMatchDirectConvolutionAndAreBitwiseStableAcrossThreads) {
  auto rng = native_test::Random(8080);
  int merged = 0;
  ForEachPixelMajorVariant([&](tflite_sparse::Isa isa, int block_n,
                               const tflite_sparse::MicrokernelVariant* pixel_major) {
    for (int trial = 0; trial < 3; ++trial) {
      // 1x1 with random blocks, 1x1 with the same count kept in every group (group_taps), 3x3.
      const int kernel = trial < 2 ? 1 : 3;
      const bool uniform = trial == 1;
      Layer layer;
      layer.block_n = block_n;
      layer.shape.out_channels = 2 * block_n + native_test::UniformInt(rng, 1, block_n - 1);
      layer.shape.kernel_h = layer.shape.kernel_w = kernel;
      layer.shape.in_channels = kernel == 1 ? native_test::UniformInt(rng, 8, 24) : 2;
      layer.params.padding = Padding::kSame;
      FillRandomBlocks(layer, rng);
      const int kept = native_test::UniformInt(rng, 1, layer.shape.in_channels);
      if (uniform) {
        // Exactly `kept` of each group's input channels, at random (selection sampling).
        int left = 0;
        int needed = 0;
        FillOneByOneBlocks(layer, rng, [&](std::mt19937_64& r) {
          if (left == 0) {
            left = layer.shape.in_channels;
            needed = kept;
          }
          const bool keep = native_test::UniformInt(r, 1, left) <= needed;
          --left;
          needed -= keep ? 1 : 0;
          return keep;
        });
      }
      for (int channel = 0; channel < layer.shape.out_channels; ++channel) {
        layer.bias.push_back(native_test::UniformFloat(rng, -0.5f, 0.5f));
      }
      layer.low = -kInfinity;
      layer.high = kInfinity;
      const int batch = 2;
      const int in_h = 12;
      const int in_w = 40;
      const std::vector<float> input = RandomInput(rng, layer, batch, in_h, in_w);
      std::vector<float> first;
      for (int threads = 1; threads <= 3; ++threads) {
        auto op = MakeOperator(layer, isa, std::make_shared<tflite_sparse::ThreadPool>(threads),
                               pixel_major);
        EXPECT_TRUE(op != nullptr);
        if (op == nullptr) return;
        op->set_min_parallel_flops(0);
        std::string error;
        EXPECT_TRUE(op->Prepare(batch, in_h, in_w, layer.shape.in_channels, &error)) << error;
        const ConvGeometry& g = op->geometry();
        const int64_t pixels = static_cast<int64_t>(batch) * g.out_h * g.out_w;
        if (op->pixel_tiles() < (pixels + pixel_major->tile_pixels - 1) / pixel_major->tile_pixels) {
          ++merged;
        }
        // group_taps: the count when every group keeps the same (by chance, too, for the
        // random filters).
        const std::vector<int32_t>& begin = op->packed().group_begin;
        bool same = true;
        for (size_t group = 1; group + 1 < begin.size(); ++group) {
          same = same && begin[group + 1] - begin[group] == begin[1] - begin[0];
        }
        EXPECT_TRUE(!uniform || same);
        EXPECT_EQ(op->group_taps(), same ? begin[1] - begin[0] : 0) << pixel_major->name;
        EXPECT_TRUE(!uniform || op->group_taps() == kept) << pixel_major->name;
        const size_t size = static_cast<size_t>(pixels) * g.out_channels;
        std::vector<float> output(size, -777.0f);
        EXPECT_TRUE(op->Run(input.data(), output.data()));
        const std::string what = std::string(pixel_major->name) + " " +
                                 std::to_string(kernel) + "x" + std::to_string(kernel) + ", " +
                                 std::to_string(threads) + " threads";
        if (threads == 1) {
          first = output;
          const double worst = MaxErrorAgainstDirect(layer, input, g, output);
          EXPECT_TRUE(worst <= 1e-5) << what << ": max |diff| " << worst;
        } else {
          EXPECT_TRUE(std::memcmp(output.data(), first.data(), size * sizeof(float)) == 0)
              << what << " differ from 1 thread";
        }
        // A next layer of about 16 bytes per prefetch (one per kept tap vector of each
        // 8-pixel tile), so that the prefetches of a run can reach every line of it.
        const int64_t bytes = 16 * static_cast<int64_t>(op->packed().group_begin.back()) *
                              ((pixels + 7) / 8) / threads;
        tflite_sparse::AlignedBuffer later;
        later.ResizeZeroed(static_cast<size_t>(bytes * threads / 4 + 16));
        std::vector<tflite_sparse::WeightRange> next;
        for (int run = 0; run < threads; ++run) {
          next.push_back({reinterpret_cast<const char*>(later.data()) + bytes * run, bytes});
        }
        op->set_next_weights(next);
        EXPECT_TRUE(op->prefetches()) << what;
        ExpectRunsPrefetchWhatTheyReadNext(*op, next);
        std::vector<float> residual(size);
        for (float& value : residual) value = native_test::UniformFloat(rng, -4.0f, 4.0f);
        op->set_residual_activation(0.0f, 6.0f);
        std::vector<float> fused(size, -777.0f);
        EXPECT_TRUE(op->Run(input.data(), fused.data(), residual.data()));
        int wrong = 0;
        for (size_t i = 0; i < size; ++i) {
          const float want = std::fmin(std::fmax(first[i] + residual[i], 0.0f), 6.0f);
          wrong += std::memcmp(&fused[i], &want, sizeof(float)) != 0;
        }
        EXPECT_EQ(wrong, 0) << what << ": fused ADD with prefetches";
      }
    }
  });
  // Runs need an 8-pixel variant, which every ISA but the generic one has.
  EXPECT_TRUE(merged > 0 || RunnableIsas().size() == 1);
}

TEST(OperatorRefusesBadShapesAndHandlesAnEmptyBatch) {
  auto rng = native_test::Random(5);
  Layer layer = RandomLayer(rng);
  layer.params = ConvParameters();
  auto op = MakeOperator(layer, tflite_sparse::Isa::kGeneric,
                         std::make_shared<tflite_sparse::ThreadPool>(2));
  std::string error;
  std::vector<float> output(1);
  EXPECT_TRUE(!op->Run(nullptr, output.data()));  // not prepared yet
  EXPECT_TRUE(!op->Prepare(1, 8, 8, layer.shape.in_channels + 1, &error));
  EXPECT_TRUE(error.find("channels") != std::string::npos) << error;
  EXPECT_TRUE(!op->Prepare(1, 65536, 65536, layer.shape.in_channels, &error));
  EXPECT_TRUE(error.find("overflow 32-bit") != std::string::npos) << error;
  EXPECT_TRUE(op->Prepare(0, 8, 8, layer.shape.in_channels, &error)) << error;
  EXPECT_EQ(op->geometry().batch, 0);
  EXPECT_TRUE(op->Run(nullptr, nullptr));  // nothing to compute
}

}  // namespace
