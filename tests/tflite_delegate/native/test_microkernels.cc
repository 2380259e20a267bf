// Every registered microkernel against a scalar reference, on random problems: every tile size
// from 1 to P pixels (short tiles run as sub-tiles), partial last groups, empty groups, group
// sub-ranges, runs of 1 to 4 full pixel-major tiles with evenly spaced pixels
// (SparseTileArgs::pixel_spacing; half of them with the same tap vector count in every group,
// SparseTileArgs::group_taps), with and without a fused ADD (a residual added after the clamp,
// then clamped to the ADD's range), pixel-major sums split in two calls at a random tap vector per
// group (the input-channel blocking: the first stores partial sums, the second continues them, and
// the result must be the one of a single call) and every width N of the registry. Channel-major
// variants read a random panel (their pixel p of tap k is panel[tap_offsets[k] + p]); their panel
// builders are checked against a scalar transposition. Pixel-pair variants read the pair image of
// the random input for a random neighbour distance, with random pair widths (some 1); their
// pair-row builders are checked against a scalar construction. Variants the CPU cannot run are
// skipped and listed at the end of the run.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common/aligned_buffer.h"
#include "microkernels/microkernel.h"
#include "test_harness.h"

namespace {

using tflite_sparse::AlignedBuffer;
using tflite_sparse::MicrokernelVariant;
using tflite_sparse::SparseTileArgs;

constexpr float kSentinel = -12345.0f;

// A random packed problem for one variant: groups, kept tap vectors (some groups empty), an
// input buffer and random per-pixel and per-tap offsets into it.
struct Problem {
  int block_n = 0;
  int num_groups = 0;
  int out_channels = 0;
  std::vector<int32_t> group_begin;
  AlignedBuffer weights;
  std::vector<int32_t> tap_offsets;
  AlignedBuffer bias;
  AlignedBuffer input;                  // NHWC-like values, or the panel (64-byte aligned)
  std::vector<int64_t> pixel_offsets;   // channel-major: pixel p is column p of the panel
  // Pixel-pair: pixels come in pairs of pair_widths[j] pixels (the second one `distance` floats
  // after the first), and the variant reads pair_image, pair_offsets and pair_taps.
  std::vector<uint8_t> pair_widths;
  std::vector<int32_t> pair_pixels;  // per pair its two output pixels (a random permutation)
  int64_t distance = 0;
  AlignedBuffer pair_image;
  std::vector<int64_t> pair_offsets;
  std::vector<int32_t> pair_taps;
  float activation_min = 0.0f;
  float activation_max = 0.0f;
  std::vector<float> residual;  // empty: no fused ADD; else laid out like the output
  float residual_min = 0.0f;
  float residual_max = 0.0f;
};

// A random activation range: none, RELU6 or RELU_N1_TO_1.
void RandomRange(std::mt19937_64& rng, float* low, float* high) {
  switch (native_test::UniformInt(rng, 0, 2)) {
    case 0:
      *low = std::numeric_limits<float>::lowest();
      *high = std::numeric_limits<float>::max();
      break;
    case 1:
      *low = 0.0f;
      *high = 6.0f;
      break;
    default:
      *low = -1.0f;
      *high = 1.0f;
  }
}

// The pixel-pair form of a problem with `pixels` pixels: pairs of width 2 (one of width 1 when
// `pixels` is odd; sometimes a pair split into two of width 1, at most 8 pairs), each at a random
// origin with its second pixel `distance` floats further, their pixels stored at output pixels
// in random order (pair_pixels; pixel_offsets is then indexed by output pixel); the pair image
// of the input for that distance (zero past the input's end, as past a row's end in the
// operator's) and the tap offsets doubled.
void MakePairs(int pixels, std::mt19937_64& rng, Problem* problem) {
  std::vector<uint8_t>& widths = problem->pair_widths;
  widths.assign(static_cast<size_t>(pixels / 2), 2);
  if (pixels % 2 == 1) widths.push_back(1);
  while (widths.size() < 8 && native_test::UniformInt(rng, 0, 1) == 1) {
    const int last = static_cast<int>(widths.size()) - 1;
    const size_t at = static_cast<size_t>(native_test::UniformInt(rng, 0, last));
    if (widths[at] != 2) break;
    widths[at] = 1;
    widths.insert(widths.begin() + static_cast<int64_t>(at), uint8_t{1});
  }
  problem->distance = native_test::UniformInt(rng, 1, 64);
  std::vector<int32_t> order(static_cast<size_t>(pixels));
  for (int p = 0; p < pixels; ++p) order[p] = p;
  std::shuffle(order.begin(), order.end(), rng);
  problem->pixel_offsets.assign(static_cast<size_t>(pixels), 0);
  int next = 0;
  for (const uint8_t width : widths) {
    const int64_t origin = native_test::UniformInt(rng, 0, 64 * pixels);
    problem->pair_offsets.push_back(2 * origin);
    const int32_t first = order[next++];
    const int32_t second = width == 2 ? order[next++] : first;
    problem->pair_pixels.push_back(first);
    problem->pair_pixels.push_back(second);
    problem->pixel_offsets[first] = origin;
    if (width == 2) problem->pixel_offsets[second] = origin + problem->distance;
  }
  const int64_t floats = static_cast<int64_t>(problem->input.size());
  problem->pair_image.ResizeZeroed(static_cast<size_t>(2 * floats));
  for (int64_t i = 0; i < floats; ++i) {
    problem->pair_image.data()[2 * i] = problem->input.data()[i];
    problem->pair_image.data()[2 * i + 1] =
        i + problem->distance < floats ? problem->input.data()[i + problem->distance] : 0.0f;
  }
  for (const int32_t offset : problem->tap_offsets) problem->pair_taps.push_back(2 * offset);
}

// group_taps: 0, or -1 for the same random tap vector count in every group, or that count.
Problem MakeProblem(int block_n, int pixels, tflite_sparse::InputLayout layout,
                    std::mt19937_64& rng, int group_taps = 0) {
  Problem problem;
  const bool panel = layout == tflite_sparse::InputLayout::kChannelMajor;
  const bool pairs = layout == tflite_sparse::InputLayout::kPixelPair;
  problem.block_n = block_n;
  problem.num_groups = native_test::UniformInt(rng, 1, 4);
  // Partial last group about half the time.
  const int missing = native_test::UniformInt(rng, 0, 1) ? native_test::UniformInt(rng, 0, block_n - 1) : 0;
  problem.out_channels = problem.num_groups * block_n - missing;
  const int taps = std::max(group_taps, native_test::UniformInt(rng, 1, 40));
  // Channel-major: `taps` panel rows of a stride rounded up to the panel alignment (sometimes
  // one more), values up to the real pixels, zeros past them, as the operator builds it.
  const int64_t stride = (pixels + tflite_sparse::kPanelPixelAlignment - 1) /
                             tflite_sparse::kPanelPixelAlignment *
                             tflite_sparse::kPanelPixelAlignment +
                         native_test::UniformInt(rng, 0, 1) * tflite_sparse::kPanelPixelAlignment;
  problem.input.ResizeZeroed(panel ? static_cast<size_t>(taps * stride)
                                   : static_cast<size_t>(taps + 64 * pixels + 72));
  for (size_t i = 0; i < problem.input.size(); ++i) {
    if (panel && static_cast<int64_t>(i) % stride >= pixels) continue;
    problem.input.data()[i] = native_test::UniformFloat(rng, -2.0f, 2.0f);
  }
  problem.group_begin.push_back(0);
  std::vector<int32_t> kept_taps;
  // The same count in every group, as SUBP trains them (SparseTileArgs::group_taps).
  const int uniform_kept = group_taps < 0 ? native_test::UniformInt(rng, 1, taps) : group_taps;
  for (int group = 0; group < problem.num_groups; ++group) {
    // Empty groups happen (a group whose filter is all zero).
    const int kept = uniform_kept > 0                        ? uniform_kept
                     : native_test::UniformInt(rng, 0, 4) == 0 ? 0
                                                               : native_test::UniformInt(rng, 1, taps);
    for (int k = 0; k < kept; ++k) kept_taps.push_back(native_test::UniformInt(rng, 0, taps - 1));
    problem.group_begin.push_back(static_cast<int32_t>(kept_taps.size()));
  }
  problem.tap_offsets = kept_taps;
  if (panel) {
    for (int32_t& offset : problem.tap_offsets) offset = static_cast<int32_t>(offset * stride);
  }
  problem.weights.ResizeZeroed(kept_taps.size() * block_n);
  for (size_t i = 0; i < kept_taps.size() * block_n; ++i) {
    problem.weights.data()[i] = native_test::UniformFloat(rng, -1.0f, 1.0f);
  }
  problem.bias.ResizeZeroed(static_cast<size_t>(problem.num_groups) * block_n);
  for (int channel = 0; channel < problem.out_channels; ++channel) {
    problem.bias.data()[channel] = native_test::UniformFloat(rng, -0.5f, 0.5f);
  }
  if (pairs) {
    MakePairs(pixels, rng, &problem);
  } else {
    for (int p = 0; p < pixels; ++p) {
      problem.pixel_offsets.push_back(panel ? p : native_test::UniformInt(rng, 0, 64 * pixels));
    }
  }
  RandomRange(rng, &problem.activation_min, &problem.activation_max);
  return problem;
}

float Clamp(float value, float low, float high) {
  const float above = value < low ? low : value;
  return above > high ? high : above;
}

// The per-element arithmetic every variant must reproduce exactly: the bias, then one
// multiply-add per kept tap vector in packed order; fused (one rounding, SIMD FMA) or not.
float Reference(const Problem& problem, int pixel, int channel, int64_t stride, bool fused) {
  const int group = channel / problem.block_n;
  const int lane = channel % problem.block_n;
  float sum = problem.bias.data()[channel];
  for (int32_t k = problem.group_begin[group]; k < problem.group_begin[group + 1]; ++k) {
    const float weight = problem.weights.data()[static_cast<size_t>(k) * problem.block_n + lane];
    const float value =
        problem.input.data()[problem.pixel_offsets[pixel] + problem.tap_offsets[k]];
    if (fused) {
      sum = std::fma(value, weight, sum);
    } else {
      const volatile float product = value * weight;  // rounded on its own
      sum = sum + product;
    }
  }
  const float convolved = Clamp(sum, problem.activation_min, problem.activation_max);
  if (problem.residual.empty()) return convolved;
  return Clamp(convolved + problem.residual[pixel * stride + channel], problem.residual_min,
               problem.residual_max);
}

// Runs one variant on pixels [0, pixels) and groups [first, end); checks every element against
// both references (all elements must agree with the same one) and that nothing else is written.
// A channel-major variant gets a lane table half the time (as for a KxK layer's planes): lane l
// of the panel goes to a random output pixel, or nowhere (-1) for about one lane in five, whose
// pixel must then stay unwritten.
void CheckVariant(const MicrokernelVariant& variant, int pixels, std::mt19937_64& rng,
                  int group_taps = 0) {
  // A full pixel-major tile: half the time (always with `group_taps`) a run of 1 to 4 full tiles
  // whose pixels are evenly spaced (SparseTileArgs::pixel_spacing, the operator's 1x1 stride-1
  // tiles and their runs).
  const bool pixel_major = variant.layout == tflite_sparse::InputLayout::kPixelMajor;
  const bool spaced = pixel_major && pixels == variant.tile_pixels &&
                      (group_taps > 0 || native_test::UniformInt(rng, 0, 1) == 1);
  if (spaced) pixels *= native_test::UniformInt(rng, 1, 4);
  // ... and half of those with the same tap vector count in every group, passed as group_taps.
  if (spaced && group_taps == 0 && native_test::UniformInt(rng, 0, 1) == 1) group_taps = -1;
  const bool uniform = spaced && group_taps != 0;
  Problem problem =
      MakeProblem(variant.block_n, pixels, variant.layout, rng, uniform ? group_taps : 0);
  const bool panel = variant.layout == tflite_sparse::InputLayout::kChannelMajor;
  const bool pairs = variant.layout == tflite_sparse::InputLayout::kPixelPair;
  std::vector<int64_t> lane_pixels;
  std::vector<bool> written(static_cast<size_t>(pixels), true);
  if (panel && native_test::UniformInt(rng, 0, 1) == 1) {
    const int vector = variant.vector_pixels;
    lane_pixels.assign(static_cast<size_t>((pixels + vector - 1) / vector * vector), -1);
    std::vector<int32_t> order(static_cast<size_t>(pixels));
    for (int p = 0; p < pixels; ++p) order[p] = p;
    std::shuffle(order.begin(), order.end(), rng);
    for (int lane = 0; lane < pixels; ++lane) {
      const int pixel = order[lane];
      if (native_test::UniformInt(rng, 0, 4) == 0) {
        written[pixel] = false;
        continue;
      }
      lane_pixels[lane] = pixel;
      problem.pixel_offsets[pixel] = lane;  // the reference's input of that pixel
    }
  }
  const int first = native_test::UniformInt(rng, 0, problem.num_groups - 1);
  const int end = native_test::UniformInt(rng, first + 1, problem.num_groups);
  const int64_t stride = problem.out_channels + native_test::UniformInt(rng, 0, 3);
  std::vector<float> output(static_cast<size_t>(stride * pixels), kSentinel);
  if (native_test::UniformInt(rng, 0, 1)) {
    // A fused ADD; past the last pixel's channels the residual ends, so a variant that reads
    // beyond its real channels shows up under ASan.
    problem.residual.resize(static_cast<size_t>(stride * (pixels - 1) + problem.out_channels));
    for (float& value : problem.residual) value = native_test::UniformFloat(rng, -3.0f, 3.0f);
    RandomRange(rng, &problem.residual_min, &problem.residual_max);
  }
  // Evenly spaced pixels, sometimes with a weight prefetch address (prefetches change no
  // result).
  int64_t spacing = 0;
  if (spaced) {
    spacing = native_test::UniformInt(rng, 1, 64);
    const int64_t origin = native_test::UniformInt(rng, 0, 64 * pixels - spacing * (pixels - 1));
    for (int p = 0; p < pixels; ++p) problem.pixel_offsets[p] = origin + p * spacing;
  }
  SparseTileArgs args;
  args.pixel_spacing = spacing;
  if (uniform) args.group_taps = problem.group_begin[1] - problem.group_begin[0];
  if (spacing != 0 && native_test::UniformInt(rng, 0, 1) == 1) {
    args.prefetch_address = reinterpret_cast<uintptr_t>(problem.weights.data());
    args.prefetch_first_tap = 0;
    args.prefetch_step = 64;
  }
  args.input = problem.input.data();
  args.pixel_offsets = panel ? (lane_pixels.empty() ? nullptr : lane_pixels.data())
                             : problem.pixel_offsets.data();
  args.num_pixels = pixels;
  args.first_group = first;
  args.end_group = end;
  args.group_begin = problem.group_begin.data();
  args.weights = problem.weights.data();
  args.tap_offsets = problem.tap_offsets.data();
  args.bias = problem.bias.data();
  args.output = output.data();
  args.output_pixel_stride = stride;
  args.out_channels = problem.out_channels;
  args.activation_min = problem.activation_min;
  args.activation_max = problem.activation_max;
  args.residual = problem.residual.empty() ? nullptr : problem.residual.data();
  args.residual_min = problem.residual_min;
  args.residual_max = problem.residual_max;
  if (pairs) {
    args.input = problem.pair_image.data();
    args.pixel_offsets = problem.pair_offsets.data();
    args.num_pairs = static_cast<int>(problem.pair_widths.size());
    args.pair_widths = problem.pair_widths.data();
    args.pair_pixels = problem.pair_pixels.data();
    args.tap_offsets = problem.pair_taps.data();
  }
  // (Input-channel blocks are a pixel-major feature.)
  const bool split = variant.layout == tflite_sparse::InputLayout::kPixelMajor &&
                     native_test::UniformInt(rng, 0, 1) == 1;
  if (split) {
    std::vector<int32_t> middle(static_cast<size_t>(problem.num_groups));
    for (int g = 0; g < problem.num_groups; ++g) {
      middle[g] = native_test::UniformInt(rng, problem.group_begin[g], problem.group_begin[g + 1]);
    }
    SparseTileArgs first_part = args;
    first_part.group_taps = 0;  // the parts' counts differ from group to group
    first_part.group_end = middle.data();
    first_part.store_partial = true;
    variant.function(first_part);
    SparseTileArgs second_part = args;
    second_part.group_taps = 0;
    second_part.group_begin = middle.data();
    second_part.group_end = problem.group_begin.data() + 1;
    second_part.accumulate = true;
    variant.function(second_part);
  } else {
    variant.function(args);
  }
  int unfused_mismatches = 0;
  int fused_mismatches = 0;
  int stray_writes = 0;
  for (int p = 0; p < pixels; ++p) {
    for (int64_t c = 0; c < stride; ++c) {
      const float got = output[p * stride + c];
      const bool computed = written[p] && c < problem.out_channels &&
                            c / variant.block_n >= first && c / variant.block_n < end;
      if (!computed) {
        stray_writes += std::memcmp(&got, &kSentinel, sizeof(float)) != 0;
        continue;
      }
      const float unfused = Reference(problem, p, static_cast<int>(c), stride, false);
      const float fused = Reference(problem, p, static_cast<int>(c), stride, true);
      unfused_mismatches += std::memcmp(&got, &unfused, sizeof(float)) != 0;
      fused_mismatches += std::memcmp(&got, &fused, sizeof(float)) != 0;
    }
  }
  EXPECT_TRUE(unfused_mismatches == 0 || fused_mismatches == 0)
      << variant.name << " pixels=" << pixels << " groups [" << first << ", " << end
      << ") of " << problem.num_groups << ", O=" << problem.out_channels
      << (problem.residual.empty() ? "" : ", fused ADD") << (split ? ", split sums" : "")
      << (pairs ? ", " + std::to_string(problem.pair_widths.size()) + " pairs" : std::string())
      << (lane_pixels.empty() ? "" : ", lane table")
      << (spacing == 0 ? std::string() : ", evenly spaced by " + std::to_string(spacing))
      << (args.group_taps == 0 ? std::string()
                               : ", " + std::to_string(args.group_taps) + " taps per group")
      << ": "
      << unfused_mismatches << " elements differ from the unfused and " << fused_mismatches
      << " from the fused reference";
  EXPECT_EQ(stray_writes, 0) << variant.name << " wrote outside its groups or channels";
}

TEST(EveryRegisteredMicrokernelMatchesTheScalarReference) {
  size_t count = 0;
  const MicrokernelVariant* variants = tflite_sparse::RegisteredMicrokernels(&count);
  EXPECT_TRUE(count > 0);
  int checked = 0;
  for (size_t i = 0; i < count; ++i) {
    const MicrokernelVariant& variant = variants[i];
    if (!tflite_sparse::IsaSupportedByCpu(variant.isa)) {
      native_test::SkipNotes().push_back(std::string(variant.name) + " (CPU lacks " +
                                         tflite_sparse::IsaRequirement(variant.isa) + ")");
      continue;
    }
    auto rng = native_test::Random(1000 + i);
    for (int pixels = 1; pixels <= variant.tile_pixels; ++pixels) {
      // More repeats of the full tile, which is also checked evenly spaced.
      const int repeats = pixels == variant.tile_pixels ? 16 : 6;
      for (int repeat = 0; repeat < repeats; ++repeat) CheckVariant(variant, pixels, rng);
    }
    // Every tap count an unrolled loop exists for, and the first one without.
    if (variant.layout == tflite_sparse::InputLayout::kPixelMajor) {
      for (int taps = 1; taps <= tflite_sparse::kMaxUnrolledGroupTaps + 1; ++taps) {
        CheckVariant(variant, variant.tile_pixels, rng, taps);
      }
    }
    ++checked;
  }
  EXPECT_TRUE(checked > 0);
}

// Panel builders against a scalar transposition: random channels (tails of every width), pixel
// counts, pixel strides (the first channels of wider pixels, as for a KxK layer's planes) and
// panel starts (aligned, or anywhere, as a plane row); every column before the start and from
// the last pixel on must stay untouched (the next plane row may be another thread's).
TEST(EveryPanelTransposeMatchesAScalarTransposition) {
  size_t count = 0;
  const MicrokernelVariant* variants = tflite_sparse::RegisteredMicrokernels(&count);
  constexpr int64_t kAlign = tflite_sparse::kPanelPixelAlignment;
  for (size_t i = 0; i < count; ++i) {
    const MicrokernelVariant& variant = variants[i];
    if (variant.layout != tflite_sparse::InputLayout::kChannelMajor) {
      EXPECT_TRUE(variant.transpose == nullptr && variant.vector_pixels == 1 &&
                  variant.min_kept_flops_per_input == 0.0 &&
                  variant.min_kept_flops_per_input_split == 0.0 &&
                  variant.min_kept_flops_per_output == 0.0 &&
                  variant.min_kept_flops_per_output_split == 0.0 &&
                  variant.min_kept_flops_per_transposed_value == 0.0 &&
                  variant.min_kept_flops_per_transposed_value_split == 0.0)
          << variant.name;
      continue;
    }
    EXPECT_TRUE(variant.transpose != nullptr) << variant.name;
    EXPECT_TRUE(variant.vector_pixels >= 1 && kAlign % variant.vector_pixels == 0 &&
                variant.tile_pixels % variant.vector_pixels == 0)
        << variant.name;
    if (!tflite_sparse::IsaSupportedByCpu(variant.isa)) continue;
    auto rng = native_test::Random(77 + i);
    for (int trial = 0; trial < 60; ++trial) {
      const int channels = native_test::UniformInt(rng, 1, 40);
      const int64_t pixels = native_test::UniformInt(rng, 1, 70);
      const int64_t written = (pixels + kAlign - 1) / kAlign * kAlign;
      const int64_t pixel_stride = channels + native_test::UniformInt(rng, 0, 1) *
                                                  native_test::UniformInt(rng, 1, 20);
      const int64_t start = native_test::UniformInt(rng, 0, 1) * native_test::UniformInt(rng, 1, 15);
      const int64_t stride = start + written + native_test::UniformInt(rng, 0, 1) * kAlign;
      std::vector<float> input(static_cast<size_t>(pixels * pixel_stride));
      for (float& value : input) value = native_test::UniformFloat(rng, -1.0f, 1.0f);
      AlignedBuffer panel;
      panel.ResizeZeroed(static_cast<size_t>(stride * channels));
      for (size_t j = 0; j < panel.size(); ++j) panel.data()[j] = kSentinel;
      variant.transpose(input.data(), channels, pixel_stride, pixels, panel.data() + start,
                        stride);
      int wrong = 0;
      for (int c = 0; c < channels; ++c) {
        for (int64_t q = 0; q < stride; ++q) {
          const int64_t p = q - start;
          const float got = panel.data()[c * stride + q];
          const float want = p < 0 || p >= pixels ? kSentinel : input[p * pixel_stride + c];
          wrong += std::memcmp(&got, &want, sizeof(float)) != 0;
        }
      }
      EXPECT_EQ(wrong, 0) << variant.name << " channels=" << channels << " pixels=" << pixels
                          << " pixel_stride=" << pixel_stride << " start=" << start;
    }
  }
}

// Pair-row builders against a scalar construction of the padded row: random channels (tails of
// every width below 16 and whole vectors), widths, padding, strides and column steps (every
// column, or disjoint pairs); nothing written past the pairs of the columns built.
TEST(EveryPairRowBuilderMatchesAScalarConstruction) {
  size_t count = 0;
  const MicrokernelVariant* variants = tflite_sparse::RegisteredMicrokernels(&count);
  int checked = 0;
  for (size_t i = 0; i < count; ++i) {
    const MicrokernelVariant& variant = variants[i];
    if (variant.layout != tflite_sparse::InputLayout::kPixelPair) {
      EXPECT_TRUE(variant.build_pair_row == nullptr) << variant.name;
      continue;
    }
    EXPECT_TRUE(variant.build_pair_row != nullptr && variant.tile_pixels % 2 == 0)
        << variant.name;
    if (!tflite_sparse::IsaSupportedByCpu(variant.isa)) continue;
    auto rng = native_test::Random(91 + i);
    for (int trial = 0; trial < 80; ++trial) {
      const int channels = native_test::UniformInt(rng, 1, 40);
      const int in_w = native_test::UniformInt(rng, 1, 9);
      const int pad_left = native_test::UniformInt(rng, 0, 3);
      const int padded_w = pad_left + in_w + native_test::UniformInt(rng, 0, 3);
      const int stride_w = native_test::UniformInt(rng, 1, 3);
      std::vector<float> input(static_cast<size_t>(in_w * channels));
      for (float& value : input) value = native_test::UniformFloat(rng, -1.0f, 1.0f);
      std::vector<float> row(static_cast<size_t>(2 * padded_w * channels) + 16, kSentinel);
      const int column_step = native_test::UniformInt(rng, 1, 2);
      variant.build_pair_row(input.data(), in_w, channels, pad_left, padded_w, stride_w,
                             column_step, row.data());
      auto padded = [&](int x, int c) {
        const int column = x - pad_left;
        return column >= 0 && column < in_w ? input[static_cast<size_t>(column * channels + c)]
                                            : 0.0f;
      };
      int wrong = 0;
      const int columns = (padded_w + column_step - 1) / column_step;
      for (int x = 0; x < padded_w; x += column_step) {
        for (int c = 0; c < channels; ++c) {
          for (int s = 0; s < 2; ++s) {
            const float want = padded(x + s * stride_w, c);
            const float got = row[static_cast<size_t>(2 * (x / column_step * channels + c) + s)];
            wrong += std::memcmp(&got, &want, sizeof(float)) != 0;
          }
        }
      }
      for (size_t j = static_cast<size_t>(2 * columns * channels); j < row.size(); ++j) {
        wrong += std::memcmp(&row[j], &kSentinel, sizeof(float)) != 0;
      }
      EXPECT_EQ(wrong, 0) << variant.name << " channels=" << channels << " in_w=" << in_w
                          << " pad_left=" << pad_left << " padded_w=" << padded_w
                          << " stride_w=" << stride_w << " column_step=" << column_step;
    }
    ++checked;
  }
  // At least one pair row exists where AVX-512 is registered (x86-64 builds).
  EXPECT_TRUE(checked > 0 || !tflite_sparse::IsaSupportedByCpu(tflite_sparse::Isa::kAvx512));
}

TEST(RegistryHasEveryWidthForEveryIsaAndUniqueNames) {
  size_t count = 0;
  const MicrokernelVariant* variants = tflite_sparse::RegisteredMicrokernels(&count);
  for (size_t i = 0; i < count; ++i) {
    for (size_t j = i + 1; j < count; ++j) {
      EXPECT_TRUE(std::strcmp(variants[i].name, variants[j].name) != 0) << variants[i].name;
    }
    const tflite_sparse::InputLayout layout = variants[i].layout;
    const std::string expected_prefix =
        "f32_1x" + std::to_string(variants[i].block_n) + "_p" +
        std::to_string(variants[i].tile_pixels) +
        (layout == tflite_sparse::InputLayout::kChannelMajor ? "_panel__"
         : layout == tflite_sparse::InputLayout::kPixelPair  ? "_pair__"
                                                             : "__");
    EXPECT_EQ(std::string(variants[i].name).rfind(expected_prefix, 0), 0u) << variants[i].name;
    EXPECT_TRUE(variants[i].tile_pixels >= 1);
  }
  for (tflite_sparse::Isa isa :
       {tflite_sparse::Isa::kGeneric, tflite_sparse::Isa::kAvx2, tflite_sparse::Isa::kAvx512}) {
    if (!tflite_sparse::IsaRegistered(isa)) continue;
    for (int block_n : {1, 2, 4, 8, 16, 32}) {
      const MicrokernelVariant* found = tflite_sparse::FindMicrokernel(isa, block_n);
      EXPECT_TRUE(found != nullptr) << tflite_sparse::IsaName(isa) << " N=" << block_n;
      if (found != nullptr) {
        EXPECT_EQ(found->block_n, block_n);
        EXPECT_TRUE(found->layout == tflite_sparse::InputLayout::kPixelMajor);
      }
      // Selection by kernel (every layout runs every stride): a KxK convolution gets the
      // pixel-pair row where the ISA has one for this N (whatever the work per value), else the
      // channel-major row where the ISA has one and there is enough work per value, else the
      // pixel-major row; a 1x1 one the pixel-pair row with enough work per paired value, else
      // the channel-major row with enough work per value, else the
      // pixel-major row. (Where an ISA has both, the pair row comes first in the registry.)
      // Below the row's MinKeptFlopsPerInput (kPixelPairMinKeptFlopsPerInput) too little
      // work shares each transposed (paired) input value, and below its MinKeptFlopsPerOutput
      // each transposed output value, so the pixel-major row is chosen then too. Without
      // pixel_pairs (a CPU where they are slower) no pair row is chosen: everything above holds
      // with no pair row.
      constexpr double kMuchWork = 1e6;
      const MicrokernelVariant* pair_row = tflite_sparse::FindMicrokernel(
          isa, block_n, tflite_sparse::WeightType::kFloat32,
          tflite_sparse::InputLayout::kPixelPair);
      EXPECT_TRUE(pair_row == nullptr ||
                  (isa == tflite_sparse::Isa::kAvx512 && (block_n == 8 || block_n == 16)));
      const MicrokernelVariant* panel = tflite_sparse::FindMicrokernel(
          isa, block_n, tflite_sparse::WeightType::kFloat32,
          tflite_sparse::InputLayout::kChannelMajor);
      EXPECT_TRUE(panel == nullptr || pair_row == nullptr || pair_row < panel);
      const double input_limit = panel != nullptr
                                     ? tflite_sparse::MinKeptFlopsPerInput(*panel)
                                     : tflite_sparse::kChannelMajorMinKeptFlopsPerInput;
      const double little_work =
          std::min(input_limit, tflite_sparse::kPixelPairMinKeptFlopsPerInput) / 2;
      for (const bool pixel_pairs : {true, false}) {
        const MicrokernelVariant* pair = pixel_pairs ? pair_row : nullptr;
        const auto select = [&](int kernel_h, int kernel_w, double per_input,
                                double per_output) {
          return tflite_sparse::SelectMicrokernel(isa, block_n, kernel_h, kernel_w, per_input,
                                                  per_output, pixel_pairs);
        };
        const MicrokernelVariant* paired_or_found = pair != nullptr ? pair : found;
        for (const int kernel : {3, 5}) {
          EXPECT_TRUE(select(kernel, 3, kMuchWork, kMuchWork) ==
                      (pair == nullptr && panel != nullptr ? panel : paired_or_found));
          EXPECT_TRUE(select(kernel, 3, 0.0, 0.0) == paired_or_found);
        }
        const MicrokernelVariant* one_by_one =
            pair != nullptr ? pair : panel != nullptr ? panel : found;
        EXPECT_TRUE(select(1, 1, 0.0, kMuchWork) == found);
        EXPECT_TRUE(select(1, 1, little_work, kMuchWork) == found);
        EXPECT_TRUE(select(1, 1, kMuchWork, kMuchWork) == one_by_one);
        if (pair != nullptr) {
          // Exactly at the work threshold it is taken; just below it is not.
          constexpr double kThreshold = tflite_sparse::kPixelPairMinKeptFlopsPerInput;
          EXPECT_TRUE(select(1, 1, kThreshold, 0.0) == pair);
          EXPECT_TRUE(select(1, 1, kThreshold * 0.99, 0.0) == found);
        }
        if (panel != nullptr && pair == nullptr) {
          // Exactly at the row's limit it is taken; just below it is not (where the row has
          // one).
          const double limit = tflite_sparse::MinKeptFlopsPerOutput(*panel);
          EXPECT_TRUE(limit == (tflite_sparse::CpuSplitsAvx512()
                                    ? panel->min_kept_flops_per_output_split
                                    : panel->min_kept_flops_per_output));
          EXPECT_TRUE(input_limit == (tflite_sparse::CpuSplitsAvx512()
                                          ? panel->min_kept_flops_per_input_split
                                          : panel->min_kept_flops_per_input));
          const double transposed = tflite_sparse::MinKeptFlopsPerTransposedValue(*panel);
          EXPECT_TRUE(transposed == (tflite_sparse::CpuSplitsAvx512()
                                         ? panel->min_kept_flops_per_transposed_value_split
                                         : panel->min_kept_flops_per_transposed_value));
          EXPECT_TRUE(select(1, 1, input_limit, kMuchWork) == panel);
          EXPECT_TRUE(select(1, 1, input_limit * 0.99, kMuchWork) == found);
          // (Per transposed value, kMuchWork and x give just below x.)
          EXPECT_TRUE(select(1, 1, kMuchWork, std::max(limit, 2 * transposed)) == panel);
          if (limit > 0) {
            EXPECT_TRUE(select(1, 1, kMuchWork, limit * 0.99) == found);
          }
          if (transposed > 0) {
            // Equal work per input and per output value v: v / 2 per transposed value.
            const double both = 2 * transposed;
            EXPECT_TRUE(both >= input_limit && both >= limit) << panel->name;
            EXPECT_TRUE(select(1, 1, both, both) == panel);
            EXPECT_TRUE(select(1, 1, both * 0.99, both * 0.99) == found);
          }
        } else {
          EXPECT_TRUE(select(1, 1, kMuchWork, 0.0) == one_by_one);
        }
      }
    }
    EXPECT_EQ(tflite_sparse::RegisteredBlockWidthsText(isa), std::string("1, 2, 4, 8, 16 or 32"));
  }
  EXPECT_TRUE(tflite_sparse::FindMicrokernel(tflite_sparse::Isa::kGeneric, 3) == nullptr);
  EXPECT_TRUE(tflite_sparse::IsaSupportedByCpu(tflite_sparse::BestSupportedIsa()));
  EXPECT_TRUE(tflite_sparse::KeptFlopsPerInputValue(64 * 16, 4, 256) == 32.0);
  EXPECT_TRUE(tflite_sparse::KeptFlopsPerInputValue(10, 4, 0) == 0.0);
  // 1/(1/a + 1/b): 56x56 1x1 64->64 at 75 % (32 per input and per output value) is 16 per
  // transposed value, 28x28 128->512 at 90 % (102.4 and 25.6) 20.48.
  EXPECT_TRUE(tflite_sparse::KeptFlopsPerTransposedValue(32.0, 32.0) == 16.0);
  EXPECT_TRUE(std::fabs(tflite_sparse::KeptFlopsPerTransposedValue(102.4, 25.6) - 20.48) < 1e-9);
  EXPECT_TRUE(tflite_sparse::KeptFlopsPerTransposedValue(0.0, 32.0) == 0.0);
  EXPECT_TRUE(tflite_sparse::KeptFlopsPerTransposedValue(32.0, -1.0) == 0.0);
  // 56x56 1x1 64->256 at 90 %: 64 groups of 4 keep 6.4 of 64 tap vectors on average (410 in
  // all): 2 x 410 x 4 / 256 = 12.8 kept FLOPs per output value, against 51.25 per input value.
  EXPECT_TRUE(tflite_sparse::KeptFlopsPerOutputValue(410, 4, 256) == 12.8125);
  EXPECT_TRUE(tflite_sparse::KeptFlopsPerInputValue(410, 4, 64) == 51.25);
  EXPECT_TRUE(tflite_sparse::KeptFlopsPerOutputValue(10, 4, 0) == 0.0);
}

TEST(MicrokernelsJsonListsEveryRow) {
  size_t count = 0;
  const MicrokernelVariant* variants = tflite_sparse::RegisteredMicrokernels(&count);
  const std::string json = tflite_sparse::MicrokernelsJson();
  EXPECT_TRUE(json.front() == '[' && json.back() == ']');
  for (size_t i = 0; i < count; ++i) {
    EXPECT_TRUE(json.find(std::string("\"name\": \"") + variants[i].name + "\"") !=
                std::string::npos)
        << variants[i].name;
  }
  size_t rows = 0;
  for (size_t at = json.find("\"supported_by_cpu\""); at != std::string::npos;
       at = json.find("\"supported_by_cpu\"", at + 1)) {
    ++rows;
  }
  EXPECT_EQ(rows, count);
  EXPECT_TRUE(json.find("\"layout\": \"pixel_major\"") != std::string::npos);
}

}  // namespace
