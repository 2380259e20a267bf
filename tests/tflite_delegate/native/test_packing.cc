// Packing, block-pattern detection and conv geometry on hand-built filters and shapes.
#include <cmath>
#include <string>
#include <vector>

#include "common/conv_geometry.h"
#include "packing/block_pattern.h"
#include "packing/packing.h"
#include "test_harness.h"

namespace {

using tflite_sparse::BlockPattern;
using tflite_sparse::ConvGeometry;
using tflite_sparse::ConvParameters;
using tflite_sparse::FilterShape;
using tflite_sparse::GeometryError;
using tflite_sparse::PackedFilter;
using tflite_sparse::Padding;

FilterShape Shape(int o, int kh, int kw, int i) {
  FilterShape shape;
  shape.out_channels = o;
  shape.kernel_h = kh;
  shape.kernel_w = kw;
  shape.in_channels = i;
  return shape;
}

// Dense OHWI filter with distinct non-zero values (1 + index).
std::vector<float> Dense(const FilterShape& shape) {
  std::vector<float> filter(static_cast<size_t>(shape.out_channels * shape.TapsPerChannel()));
  for (size_t i = 0; i < filter.size(); ++i) filter[i] = 1.0f + static_cast<float>(i);
  return filter;
}

float& At(std::vector<float>& filter, const FilterShape& shape, int o, int ky, int kx, int ci) {
  return filter[((static_cast<size_t>(o) * shape.kernel_h + ky) * shape.kernel_w + kx) *
                    shape.in_channels +
                ci];
}

TEST(PatternCountsTapVectorsAndBlocksWithPartialGroup) {
  // O=6, N=4: groups are channels 0-3 and 4-5; a 1x1 window over 3 input channels.
  const FilterShape shape = Shape(6, 1, 1, 3);
  std::vector<float> filter = Dense(shape);
  for (int o = 0; o < 4; ++o) At(filter, shape, o, 0, 0, 1) = 0.0f;
  for (int o = 4; o < 6; ++o) At(filter, shape, o, 0, 0, 0) = At(filter, shape, o, 0, 0, 2) = -0.0f;
  const BlockPattern pattern = tflite_sparse::AnalyzeBlockPattern(filter.data(), shape, 4);
  EXPECT_EQ(pattern.num_groups, 2);
  EXPECT_EQ(pattern.kept_tap_vectors_per_group[0], 2);
  EXPECT_EQ(pattern.kept_tap_vectors_per_group[1], 1);
  EXPECT_EQ(pattern.total_tap_vectors, 6);
  EXPECT_EQ(pattern.kept_blocks_min, 1);
  EXPECT_EQ(pattern.kept_blocks_max, 2);
  EXPECT_TRUE(std::fabs(pattern.block_sparsity - 0.5) < 1e-12);
  EXPECT_TRUE(std::fabs(pattern.balance_ratio - 2.0 / 1.5) < 1e-12);
  EXPECT_TRUE(tflite_sparse::BlockWidthHolds(filter.data(), shape, 4));
  EXPECT_TRUE(!tflite_sparse::BlockWidthHolds(filter.data(), shape, 8));
  EXPECT_EQ(tflite_sparse::DetectBlockWidth(filter.data(), shape, {1, 2, 4, 8, 16, 32}), 4);
}

TEST(BlocksAreWholeWindows) {
  // 3x3 window, 2 input channels, 2 groups of 4: group 0 drops one tap of block ci=0 and the
  // whole block ci=1; group 1 drops one tap of block ci=1.
  const FilterShape shape = Shape(8, 3, 3, 2);
  std::vector<float> filter = Dense(shape);
  for (int o = 0; o < 4; ++o) {
    At(filter, shape, o, 0, 0, 0) = 0.0f;
    for (int ky = 0; ky < 3; ++ky) {
      for (int kx = 0; kx < 3; ++kx) At(filter, shape, o, ky, kx, 1) = 0.0f;
    }
  }
  for (int o = 4; o < 8; ++o) At(filter, shape, o, 1, 2, 1) = 0.0f;
  const BlockPattern pattern = tflite_sparse::AnalyzeBlockPattern(filter.data(), shape, 4);
  EXPECT_EQ(pattern.kept_tap_vectors_per_group[0], 8);
  EXPECT_EQ(pattern.kept_tap_vectors_per_group[1], 17);
  EXPECT_EQ(pattern.kept_blocks_per_group[0], 1);
  EXPECT_EQ(pattern.kept_blocks_per_group[1], 2);
  EXPECT_TRUE(std::fabs(pattern.block_sparsity - 0.25) < 1e-12);
  EXPECT_TRUE(std::fabs(pattern.tap_vector_sparsity - 11.0 / 36.0) < 1e-12);
}

TEST(DetectionToleratesOneStrayZeroInThirtyTwo) {
  const FilterShape shape = Shape(64, 3, 3, 5);
  std::vector<float> filter = Dense(shape);
  for (int o = 0; o < 16; ++o) At(filter, shape, o, 1, 2, 3) = 0.0f;
  for (int o = 16; o < 32; ++o) At(filter, shape, o, 0, 0, 0) = 0.0f;
  const std::vector<int> widths = {32, 16, 8, 4, 2, 1};
  EXPECT_EQ(tflite_sparse::DetectBlockWidth(filter.data(), shape, widths), 16);
  At(filter, shape, 5, 0, 0, 4) = 0.0f;  // 1 stray zero in 33: tolerated
  EXPECT_EQ(tflite_sparse::DetectBlockWidth(filter.data(), shape, widths), 16);
  At(filter, shape, 40, 2, 1, 0) = 0.0f;  // 2 in 34: too many at every N > 1
  EXPECT_EQ(tflite_sparse::DetectBlockWidth(filter.data(), shape, widths), 1);
  // Only widths the registry offers are candidates; a dense filter takes the widest useful one.
  const std::vector<float> dense = Dense(Shape(6, 3, 3, 2));
  EXPECT_EQ(tflite_sparse::DetectBlockWidth(dense.data(), Shape(6, 3, 3, 2), widths), 8);
  EXPECT_EQ(tflite_sparse::DetectBlockWidth(dense.data(), Shape(6, 3, 3, 2), {1, 2, 4}), 4);
}

TEST(PackingStoresKeptTapVectorsInTapOrderWithPaddedLastGroup) {
  const FilterShape shape = Shape(6, 1, 2, 2);  // 4 taps per channel, N=4 -> groups of 4 and 2
  std::vector<float> filter = Dense(shape);
  for (int o = 0; o < 4; ++o) At(filter, shape, o, 0, 0, 1) = 0.0f;  // group 0 drops tap 1
  for (int o = 4; o < 6; ++o) {
    At(filter, shape, o, 0, 0, 0) = 0.0f;  // group 1 drops taps 0 and 3
    At(filter, shape, o, 0, 1, 1) = 0.0f;
  }
  const std::vector<float> bias = {1, 2, 3, 4, 5, 6};
  const BlockPattern pattern = tflite_sparse::AnalyzeBlockPattern(filter.data(), shape, 4);
  PackedFilter packed;
  std::string error;
  EXPECT_TRUE(tflite_sparse::PackFilter(filter.data(), bias.data(), shape, pattern, &packed, &error))
      << error;
  EXPECT_EQ(packed.num_groups, 2);
  EXPECT_TRUE((packed.group_begin == std::vector<int32_t>{0, 3, 5}));
  EXPECT_TRUE((packed.tap_index == std::vector<int32_t>{0, 2, 3, 1, 2}));
  // Kept tap vector 1 of group 0 is tap 2 (kx=1, ci=0): weights of channels 0-3 there.
  for (int lane = 0; lane < 4; ++lane) {
    EXPECT_EQ(packed.weights.data()[1 * 4 + lane], At(filter, shape, lane, 0, 1, 0));
  }
  // Group 1 has 2 real channels: lanes 2 and 3 stay zero, in weights and bias.
  EXPECT_EQ(packed.weights.data()[3 * 4 + 0], At(filter, shape, 4, 0, 0, 1));
  EXPECT_EQ(packed.weights.data()[3 * 4 + 2], 0.0f);
  EXPECT_EQ(packed.weights.data()[3 * 4 + 3], 0.0f);
  EXPECT_EQ(packed.bias.data()[5], 6.0f);
  EXPECT_EQ(packed.bias.data()[6], 0.0f);
  EXPECT_EQ(packed.bias.data()[7], 0.0f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(packed.weights.data()) % 64, 0u);
}

TEST(TapOffsetsFollowThePaddedInputLayout) {
  const FilterShape shape = Shape(4, 3, 3, 2);
  const std::vector<float> filter = Dense(shape);
  const BlockPattern pattern = tflite_sparse::AnalyzeBlockPattern(filter.data(), shape, 4);
  PackedFilter packed;
  std::string error;
  EXPECT_TRUE(tflite_sparse::PackFilter(filter.data(), nullptr, shape, pattern, &packed, &error));
  ConvParameters params;
  params.padding = Padding::kSame;
  params.dilation_h = 2;
  ConvGeometry geometry;
  std::string reason;
  EXPECT_TRUE(tflite_sparse::ComputeConvGeometry(1, 5, 7, 2, shape, params, &geometry, &reason));
  std::vector<int32_t> offsets;
  EXPECT_TRUE(tflite_sparse::ComputeTapOffsets(packed, geometry, &offsets));
  EXPECT_EQ(offsets.size(), 18u);
  // Tap (ky, kx, ci) sits ky * dilation_h padded rows and kx columns from the origin.
  for (int ky = 0; ky < 3; ++ky) {
    for (int kx = 0; kx < 3; ++kx) {
      for (int ci = 0; ci < 2; ++ci) {
        const int tap = (ky * 3 + kx) * 2 + ci;
        EXPECT_EQ(offsets[tap], ky * 2 * geometry.padded_w * 2 + kx * 2 + ci) << "tap " << tap;
      }
    }
  }
}

TEST(GeometryFollowsTfLitePaddingRules) {
  ConvParameters params;
  params.padding = Padding::kSame;
  params.stride_h = params.stride_w = 2;
  ConvGeometry g;
  std::string reason;
  // SAME, stride 2, 3x3 on 7x8: out 4x4; total padding 2 rows (1 + 1), 1 column (0 + 1).
  EXPECT_TRUE(tflite_sparse::ComputeConvGeometry(2, 7, 8, 3, Shape(5, 3, 3, 3), params, &g, &reason));
  EXPECT_EQ(g.out_h, 4);
  EXPECT_EQ(g.out_w, 4);
  EXPECT_EQ(g.pad_top, 1);
  EXPECT_EQ(g.pad_left, 0);
  EXPECT_EQ(g.padded_h, 9);
  EXPECT_EQ(g.padded_w, 9);
  EXPECT_TRUE(g.needs_padding);
  params.padding = Padding::kValid;
  params.dilation_h = params.dilation_w = 2;  // effective kernel 5
  EXPECT_TRUE(tflite_sparse::ComputeConvGeometry(1, 7, 8, 3, Shape(5, 3, 3, 3), params, &g, &reason));
  EXPECT_EQ(g.out_h, 2);
  EXPECT_EQ(g.out_w, 2);
  EXPECT_TRUE(!g.needs_padding);
}

TEST(GeometryAddsExplicitPaddingBeforeTheConvsOwnRule) {
  ConvParameters params;
  ConvGeometry g;
  std::string reason;
  // A folded PAD of 3 then VALID 7x7 stride 2 (ResNet's stem): 230 - 7 = 223, out 112.
  params.stride_h = params.stride_w = 2;
  params.pad_top = params.pad_bottom = params.pad_left = params.pad_right = 3;
  EXPECT_TRUE(
      tflite_sparse::ComputeConvGeometry(1, 224, 224, 3, Shape(64, 7, 7, 3), params, &g, &reason));
  EXPECT_EQ(g.out_h, 112);
  EXPECT_EQ(g.out_w, 112);
  EXPECT_EQ(g.pad_top, 3);
  EXPECT_EQ(g.pad_left, 3);
  EXPECT_EQ(g.padded_h, 230);
  EXPECT_EQ(g.padded_w, 230);
  EXPECT_TRUE(g.needs_padding);
  // Asymmetric explicit pads, then SAME stride 2 3x3 on the 8 x 11 padded image: out 4 x 6;
  // SAME adds 1 row (0 before, 1 after) and 2 columns (1 before, 1 after).
  params.padding = Padding::kSame;
  params.pad_top = 1;
  params.pad_bottom = 0;
  params.pad_left = 2;
  params.pad_right = 1;
  EXPECT_TRUE(tflite_sparse::ComputeConvGeometry(1, 7, 8, 3, Shape(5, 3, 3, 3), params, &g, &reason));
  EXPECT_EQ(g.out_h, 4);
  EXPECT_EQ(g.out_w, 6);
  EXPECT_EQ(g.pad_top, 1);
  EXPECT_EQ(g.pad_left, 3);
  EXPECT_EQ(g.padded_h, 9);
  EXPECT_EQ(g.padded_w, 13);
  // Only bottom padding: the image still needs its zero rows.
  params = ConvParameters();
  params.pad_bottom = 2;
  EXPECT_TRUE(tflite_sparse::ComputeConvGeometry(1, 4, 4, 1, Shape(1, 3, 3, 1), params, &g, &reason));
  EXPECT_EQ(g.out_h, 4);
  EXPECT_EQ(g.out_w, 2);
  EXPECT_EQ(g.pad_top, 0);
  EXPECT_TRUE(g.needs_padding);
}

TEST(GeometryRefusesWithAnErrorCode) {
  ConvParameters params;
  ConvGeometry g;
  std::string reason;
  GeometryError error = GeometryError::kNone;
  params.stride_h = 0;
  EXPECT_TRUE(!tflite_sparse::ComputeConvGeometry(1, 5, 5, 1, Shape(1, 1, 1, 1), params, &g,
                                                  &reason, &error));
  EXPECT_TRUE(error == GeometryError::kInvalidParameters) << reason;
  params = ConvParameters();
  params.pad_left = -1;
  EXPECT_TRUE(!tflite_sparse::ComputeConvGeometry(1, 5, 5, 1, Shape(1, 1, 1, 1), params, &g,
                                                  &reason, &error));
  EXPECT_TRUE(error == GeometryError::kInvalidParameters) << reason;
  params = ConvParameters();
  EXPECT_TRUE(!tflite_sparse::ComputeConvGeometry(1, 2, 2, 1, Shape(1, 3, 3, 1), params, &g,
                                                  &reason, &error));
  EXPECT_TRUE(error == GeometryError::kZeroSized) << reason;
  EXPECT_TRUE(!tflite_sparse::ComputeConvGeometry(1, 65536, 65536, 4, Shape(8, 3, 3, 4), params,
                                                  &g, &reason, &error));
  EXPECT_TRUE(error == GeometryError::kIndexOverflow) << reason;
  EXPECT_TRUE(reason.find("overflow 32-bit") != std::string::npos) << reason;
}

}  // namespace
