// The L3 size behind SparseConvOperator::StreamingOutputBytes: sysfs parsing and the value read.
#include <cstdio>

#include "common/cache_size.h"
#include "operator/sparse_conv_operator.h"
#include "test_harness.h"

namespace {

TEST(SysfsCacheSizesParseWithTheirUnits) {
  EXPECT_EQ(tflite_sparse::ParseCacheSize("32768K"), int64_t{32} << 20);
  EXPECT_EQ(tflite_sparse::ParseCacheSize("1M"), int64_t{1} << 20);
  EXPECT_EQ(tflite_sparse::ParseCacheSize("2G"), int64_t{2} << 30);
  EXPECT_EQ(tflite_sparse::ParseCacheSize("512"), 512);
  EXPECT_EQ(tflite_sparse::ParseCacheSize(""), 0);
  EXPECT_EQ(tflite_sparse::ParseCacheSize(nullptr), 0);
  EXPECT_EQ(tflite_sparse::ParseCacheSize("K"), 0);
  EXPECT_EQ(tflite_sparse::ParseCacheSize("32768KB"), 0);
  EXPECT_EQ(tflite_sparse::ParseCacheSize("-1M"), 0);
  EXPECT_EQ(tflite_sparse::ParseCacheSize("99999999999999999999"), 0);
}

TEST(TheStreamingThresholdIsHalfTheReportedL3) {
  const int64_t l3 = tflite_sparse::L3CacheBytes();
  EXPECT_TRUE(l3 >= 0);
  EXPECT_EQ(tflite_sparse::L3CacheBytes(), l3);  // read once
  // Where sysfs reports an L3, it is the one lscpu shows; the fallback is 16 MiB.
  std::FILE* file = std::fopen("/sys/devices/system/cpu/cpu0/cache/index3/level", "r");
  if (file != nullptr) {
    std::fclose(file);
    EXPECT_TRUE(l3 > 0);
  }
  EXPECT_EQ(tflite_sparse::SparseConvOperator::StreamingOutputBytes(),
            l3 > 0 ? l3 / 2 : int64_t{16} << 20);
}

}  // namespace
