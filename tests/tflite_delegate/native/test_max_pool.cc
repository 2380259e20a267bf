// The max-pool operator (operator/max_pool_operator.h) against a direct pool over an input padded
// by hand, on random shapes, strides, filters, paddings and activations; every ISA; outputs
// bitwise identical for 1, 2 and 3 threads.
#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "operator/max_pool_operator.h"
#include "runnable_isas.h"
#include "test_harness.h"

namespace {

using tflite_sparse::MaxPoolOperator;
using tflite_sparse::Padding;
using tflite_sparse::PoolParameters;

struct Shape {
  int batch, in_h, in_w, channels;
};

// TFLite's MAX_POOL_2D on the input with the explicit zeros written into it first (what a PAD
// node then the pool computes): padded positions of the pool's own SAME padding take no part.
std::vector<float> ReferencePool(const std::vector<float>& input, const Shape& shape,
                                 const PoolParameters& params, float low, float high, int* out_h,
                                 int* out_w) {
  const tflite_sparse::ConvParameters& window = params.window;
  const int h = shape.in_h + window.pad_top + window.pad_bottom;
  const int w = shape.in_w + window.pad_left + window.pad_right;
  const int c = shape.channels;
  std::vector<float> padded(static_cast<size_t>(shape.batch) * h * w * c, 0.0f);
  for (int n = 0; n < shape.batch; ++n) {
    for (int y = 0; y < shape.in_h; ++y) {
      for (int x = 0; x < shape.in_w; ++x) {
        for (int k = 0; k < c; ++k) {
          const size_t at =
              ((static_cast<size_t>(n) * h + y + window.pad_top) * w + x + window.pad_left) * c + k;
          padded[at] = input[((static_cast<size_t>(n) * shape.in_h + y) * shape.in_w + x) * c + k];
        }
      }
    }
  }
  int top = 0;
  int left = 0;
  if (window.padding == Padding::kSame) {
    *out_h = (h + window.stride_h - 1) / window.stride_h;
    *out_w = (w + window.stride_w - 1) / window.stride_w;
    top = std::max((*out_h - 1) * window.stride_h + params.filter_h - h, 0) / 2;
    left = std::max((*out_w - 1) * window.stride_w + params.filter_w - w, 0) / 2;
  } else {
    *out_h = h >= params.filter_h ? (h - params.filter_h) / window.stride_h + 1 : 0;
    *out_w = w >= params.filter_w ? (w - params.filter_w) / window.stride_w + 1 : 0;
  }
  std::vector<float> output(static_cast<size_t>(shape.batch) * *out_h * *out_w * c);
  for (int n = 0; n < shape.batch; ++n) {
    for (int oy = 0; oy < *out_h; ++oy) {
      for (int ox = 0; ox < *out_w; ++ox) {
        for (int k = 0; k < c; ++k) {
          float maximum = std::numeric_limits<float>::lowest();
          for (int fy = 0; fy < params.filter_h; ++fy) {
            for (int fx = 0; fx < params.filter_w; ++fx) {
              const int y = oy * window.stride_h - top + fy;
              const int x = ox * window.stride_w - left + fx;
              if (y < 0 || y >= h || x < 0 || x >= w) continue;
              const size_t at = ((static_cast<size_t>(n) * h + y) * w + x) * c + k;
              maximum = std::max(maximum, padded[at]);
            }
          }
          output[((static_cast<size_t>(n) * *out_h + oy) * *out_w + ox) * c + k] =
              std::min(std::max(maximum, low), high);
        }
      }
    }
  }
  return output;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](float x, float y) {
           return std::memcmp(&x, &y, sizeof(float)) == 0;
         });
}

std::vector<float> RunPool(const PoolParameters& params, float low, float high,
                           tflite_sparse::Isa isa, int threads, const Shape& shape,
                           const std::vector<float>& input, std::string* error) {
  MaxPoolOperator op(params, low, high, isa, std::make_shared<tflite_sparse::ThreadPool>(threads));
  if (!op.Prepare(shape.batch, shape.in_h, shape.in_w, shape.channels, error)) return {};
  const tflite_sparse::ConvGeometry& g = op.geometry();
  std::vector<float> output(static_cast<size_t>(g.batch) * g.out_h * g.out_w * g.out_channels,
                            -7.0f);
  if (!op.Run(input.data(), output.data())) *error = "Run failed";
  return output;
}

}  // namespace

TEST(MaxPoolWithFoldedZerosEqualsPaddingThenPoolingBitwise) {
  std::mt19937_64 rng = native_test::Random(2026120401);
  for (int trial = 0; trial < 60; ++trial) {
    PoolParameters params;
    params.filter_h = native_test::UniformInt(rng, 1, 4);
    params.filter_w = native_test::UniformInt(rng, 1, 4);
    params.window.stride_h = native_test::UniformInt(rng, 1, 3);
    params.window.stride_w = native_test::UniformInt(rng, 1, 3);
    params.window.padding =
        native_test::UniformInt(rng, 0, 1) == 0 ? Padding::kSame : Padding::kValid;
    params.window.pad_top = native_test::UniformInt(rng, 0, 2);
    params.window.pad_bottom = native_test::UniformInt(rng, 0, 2);
    params.window.pad_left = native_test::UniformInt(rng, 0, 2);
    params.window.pad_right = native_test::UniformInt(rng, 0, 2);
    Shape shape;
    shape.batch = native_test::UniformInt(rng, 1, 2);
    shape.in_h = native_test::UniformInt(rng, 4, 12);
    shape.in_w = native_test::UniformInt(rng, 4, 12);
    shape.channels = native_test::UniformInt(rng, 1, 80);  // vector tails and 4-vector chunks
    const bool relu6 = native_test::UniformInt(rng, 0, 1) == 1;
    const float low = relu6 ? 0.0f : std::numeric_limits<float>::lowest();
    const float high = relu6 ? 6.0f : std::numeric_limits<float>::max();
    // Mostly negative values, so that the zeros of the explicit padding often win.
    std::vector<float> input(static_cast<size_t>(shape.batch) * shape.in_h * shape.in_w *
                             shape.channels);
    for (float& value : input) value = native_test::UniformFloat(rng, -8.0f, 3.0f);
    int out_h = 0;
    int out_w = 0;
    const std::vector<float> expected =
        ReferencePool(input, shape, params, low, high, &out_h, &out_w);
    for (tflite_sparse::Isa isa : native_test::RunnableIsas()) {
      for (int threads = 1; threads <= 3; ++threads) {
        std::string error;
        const std::vector<float> output =
            RunPool(params, low, high, isa, threads, shape, input, &error);
        EXPECT_TRUE(error.empty()) << error;
        EXPECT_TRUE(SameBits(output, expected))
            << "trial " << trial << " isa " << tflite_sparse::IsaName(isa) << " threads "
            << threads << " filter " << params.filter_h << "x" << params.filter_w << " out "
            << out_h << "x" << out_w << " channels " << shape.channels;
      }
    }
  }
}

TEST(MaxPoolHandComputedWindows) {
  // A 3x3 stride-2 pool after one zero row and column on every side (ResNet's pool1_pad and
  // pool1_pool) on a 3x3 single-channel image: windows of the padded 5x5 image start at rows
  // and columns 0 and 2.
  PoolParameters params;
  params.filter_h = params.filter_w = 3;
  params.window.stride_h = params.window.stride_w = 2;
  params.window.pad_top = params.window.pad_bottom = 1;
  params.window.pad_left = params.window.pad_right = 1;
  const std::vector<float> input = {-1, -2, -3,  //
                                    -4, 5, -6,   //
                                    -7, -8, -9};
  const Shape shape = {1, 3, 3, 1};
  for (tflite_sparse::Isa isa : native_test::RunnableIsas()) {
    std::string error;
    const float lowest = std::numeric_limits<float>::lowest();
    const float highest = std::numeric_limits<float>::max();
    // Every window holds the 5 or a padding zero.
    EXPECT_TRUE(SameBits(RunPool(params, lowest, highest, isa, 1, shape, input, &error),
                         {5, 5, 5, 5}));
    // Without the explicit zeros (VALID on the 3x3 image): one window, the whole image.
    PoolParameters valid = params;
    valid.window.pad_top = valid.window.pad_bottom = 0;
    valid.window.pad_left = valid.window.pad_right = 0;
    const std::vector<float> negative = {-1, -2, -3, -4, -5, -6, -7, -8, -9};
    EXPECT_TRUE(SameBits(RunPool(valid, lowest, highest, isa, 1, shape, negative, &error),
                         {-1}));
    // SAME on the 3x3 image: a 2x2 output and two ignored rows and columns, one on each side,
    // so windows cover rows and columns {0, 1} and {1, 2}.
    valid.window.padding = Padding::kSame;
    EXPECT_TRUE(SameBits(RunPool(valid, lowest, highest, isa, 1, shape, negative, &error),
                         {-1, -2, -4, -5}));
    // The explicit zeros again, clamped to [0.5, 6] (RELU6-like range with a raised floor).
    EXPECT_TRUE(SameBits(RunPool(params, 0.5f, 4.0f, isa, 1, shape, input, &error),
                         {4, 4, 4, 4}));
    EXPECT_TRUE(error.empty()) << error;
  }
}
