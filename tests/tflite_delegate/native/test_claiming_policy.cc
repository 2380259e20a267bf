// The default claiming thresholds (DefaultMinSparsity): one table per ISA, with AVX-512 one per
// kind of CPU (two 512-bit FMA pipes, or 512-bit operations split into 256-bit halves as on Zen
// 4), against the values claiming_policy.h derives from its measurements. The Python tests check
// the table of the CPU they run on end to end; this checks both on any machine.
#include "claiming/claiming_policy.h"
#include "test_harness.h"

namespace {

using tflite_sparse::DefaultMinSparsity;
using tflite_sparse::InputLayout;
using tflite_sparse::Isa;

constexpr InputLayout kLayouts[] = {InputLayout::kPixelMajor, InputLayout::kChannelMajor,
                                    InputLayout::kPixelPair};

TEST(Avx512HasOneTablePerKindOfCpu) {
  for (const InputLayout layout : kLayouts) {
    const bool pair = layout == InputLayout::kPixelPair;
    // Two 512-bit FMA pipes (Zen 5): XNNPACK's dense kernels use both.
    EXPECT_EQ(DefaultMinSparsity(32, layout, Isa::kAvx512, false), 0.3);
    EXPECT_EQ(DefaultMinSparsity(16, layout, Isa::kAvx512, false), 0.45);
    EXPECT_EQ(DefaultMinSparsity(8, layout, Isa::kAvx512, false), pair ? 0.6 : 0.75);
    EXPECT_EQ(DefaultMinSparsity(4, layout, Isa::kAvx512, false), 0.88);
    // 512-bit operations split into halves (Zen 4): lower for every N from 4, whatever the
    // layout from N = 16; N = 8 and 4 lowest with their channel-major variants.
    EXPECT_EQ(DefaultMinSparsity(32, layout, Isa::kAvx512, true), 0.2);
    EXPECT_EQ(DefaultMinSparsity(16, layout, Isa::kAvx512, true), 0.2);
    EXPECT_EQ(DefaultMinSparsity(8, layout, Isa::kAvx512, true),
              layout == InputLayout::kChannelMajor ? 0.4 : 0.5);
    EXPECT_EQ(DefaultMinSparsity(4, layout, Isa::kAvx512, true),
              layout == InputLayout::kChannelMajor ? 0.4 : 0.75);
  }
}

TEST(OtherIsasAndScalarWidthsIgnoreTheCpuKind) {
  for (const InputLayout layout : kLayouts) {
    for (const bool split : {false, true}) {
      for (const Isa isa : {Isa::kAvx2, Isa::kGeneric}) {
        EXPECT_EQ(DefaultMinSparsity(32, layout, isa, split), 0.3);
        EXPECT_EQ(DefaultMinSparsity(16, layout, isa, split), 0.3);
        EXPECT_EQ(DefaultMinSparsity(8, layout, isa, split), 0.55);
        EXPECT_EQ(DefaultMinSparsity(4, layout, isa, split),
                  layout == InputLayout::kChannelMajor ? 0.75 : 0.8);
      }
      for (const Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kGeneric}) {
        EXPECT_EQ(DefaultMinSparsity(2, layout, isa, split), 0.98);
        EXPECT_EQ(DefaultMinSparsity(1, layout, isa, split), 1.0);
      }
    }
  }
}

}  // namespace
