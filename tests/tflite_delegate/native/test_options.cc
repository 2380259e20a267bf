// Option parsing: valid values, the messages for bad ones, and the ISA and block widths coming
// from the microkernel registry.
#include <cstdlib>
#include <string>
#include <vector>

#include "delegate/options.h"
#include "test_harness.h"

namespace {

using tflite_sparse::DelegateOptions;

bool Parse(const std::vector<std::pair<std::string, std::string>>& pairs, DelegateOptions* options,
           std::string* error) {
  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& [key, value] : pairs) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  return tflite_sparse::ParseDelegateOptions(keys.data(), values.data(), pairs.size(), options,
                                             error);
}

TEST(ValidOptionsAreParsed) {
  DelegateOptions options;
  std::string error;
  EXPECT_TRUE(Parse({{"num_threads", "3"}, {"min_sparsity", "0.25"}, {"block_n", "16"},
                     {"isa", "generic"}, {"fuse_add", "0"}, {"fold_pad", "false"},
                     {"fuse_pool", "0"}, {"verbose", "True"}, {"per_image_bytes", "4194304"},
                     {"profile", "1"}, {"pixel_pairs", "0"}},
                    &options, &error))
      << error;
  EXPECT_EQ(options.per_image_bytes, 4194304);
  EXPECT_EQ(options.num_threads, 3);
  EXPECT_EQ(options.min_sparsity, 0.25);
  EXPECT_EQ(options.block_n, 16);
  EXPECT_TRUE(options.isa == tflite_sparse::Isa::kGeneric);
  EXPECT_TRUE(options.verbose);
  EXPECT_TRUE(options.profile);
  EXPECT_TRUE(!options.fuse_add);
  EXPECT_TRUE(!options.fold_pad);
  EXPECT_TRUE(!options.fuse_pool);
  EXPECT_TRUE(!options.pixel_pairs);
  EXPECT_TRUE(tflite_sparse::ClaimingOptionsOf(options).pixel_pairs == options.pixel_pairs);
  EXPECT_TRUE(Parse({{"pixel_pairs", "true"}}, &options, &error)) << error;
  EXPECT_TRUE(options.pixel_pairs);
  EXPECT_TRUE(tflite_sparse::ClaimingOptionsOf(options).pixel_pairs);
  EXPECT_TRUE(Parse({{"pixel_pairs", "auto"}}, &options, &error)) << error;
  EXPECT_TRUE(options.pixel_pairs == !tflite_sparse::CpuSplitsAvx512());
  EXPECT_TRUE(Parse({{"block_n", "auto"}, {"isa", "auto"}}, &options, &error)) << error;
  EXPECT_TRUE(options.pixel_pairs == !tflite_sparse::CpuSplitsAvx512());  // the default
  EXPECT_TRUE(options.split_avx512 == tflite_sparse::CpuSplitsAvx512());
  EXPECT_TRUE(tflite_sparse::ClaimingOptionsOf(options).split_avx512 == options.split_avx512);
  EXPECT_TRUE(options.fuse_add);  // the default
  EXPECT_TRUE(options.fold_pad);  // the default
  EXPECT_TRUE(options.fuse_pool);  // the default
  EXPECT_EQ(options.block_n, 0);
  EXPECT_TRUE(options.isa == tflite_sparse::BestSupportedIsa());
  EXPECT_EQ(options.per_image_bytes, tflite_sparse::kPerImageBytesAuto);  // the default
  EXPECT_TRUE(Parse({{"per_image_bytes", "off"}}, &options, &error)) << error;
  EXPECT_EQ(options.per_image_bytes, tflite_sparse::kPerImageBytesOff);
  EXPECT_TRUE(Parse({{"per_image_bytes", "0"}}, &options, &error)) << error;
  EXPECT_EQ(options.per_image_bytes, 0);
  EXPECT_TRUE(Parse({{"per_image_bytes", "auto"}}, &options, &error)) << error;
  EXPECT_EQ(options.per_image_bytes, tflite_sparse::kPerImageBytesAuto);
}

TEST(BadOptionsAreNamedInTheError) {
  const std::vector<std::pair<std::pair<std::string, std::string>, std::string>> cases = {
      {{"bogus", "1"}, "unknown option 'bogus' (known options: num_threads, min_sparsity, "
                       "block_n, isa, pixel_pairs, fuse_add, fold_pad, fuse_pool, verbose, "
                       "per_image_bytes, profile)"},
      {{"num_threads", "0"}, "option num_threads='0' is invalid: expected an integer in [1, 256]"},
      {{"num_threads", " 2"}, "option num_threads=' 2' is invalid"},
      {{"min_sparsity", "nan"}, "option min_sparsity='nan' is invalid: expected a number in [0, 1]"},
      {{"block_n", "3"}, "option block_n='3' is invalid: expected auto, 1, 2, 4, 8, 16 or 32"},
      {{"block_n", "64"}, "option block_n='64' is invalid"},
      {{"isa", "sse2"}, "option isa has invalid value 'sse2' (expected auto, "},
      {{"verbose", "perhaps"}, "option verbose='perhaps' is invalid"},
      {{"fuse_add", "2"}, "option fuse_add='2' is invalid: expected 1, 0, true, false"},
      {{"fold_pad", "-1"}, "option fold_pad='-1' is invalid: expected 1, 0, true, false"},
      {{"fuse_pool", "no"}, "option fuse_pool='no' is invalid: expected 1, 0, true, false"},
      {{"pixel_pairs", "on"},
       "option pixel_pairs='on' is invalid: expected auto, 1, 0, true, false, True or False"},
      {{"profile", "yes"}, "option profile='yes' is invalid: expected 1, 0, true, false"},
      {{"per_image_bytes", "-1"},
       "option per_image_bytes='-1' is invalid: expected auto, off or a number of bytes >= 0"},
      {{"per_image_bytes", "8M"}, "option per_image_bytes='8M' is invalid"},
  };
  for (const auto& [pair, expected] : cases) {
    DelegateOptions options;
    std::string error;
    EXPECT_TRUE(!Parse({pair}, &options, &error)) << pair.first;
    EXPECT_TRUE(error.rfind(expected, 0) == 0) << "'" << error << "' does not start with '"
                                                << expected << "'";
  }
}

// Sets an environment variable for one scope and restores its previous value.
class ScopedEnvironment {
 public:
  ScopedEnvironment(const char* name, const char* value) : name_(name) {
    const char* previous = std::getenv(name);
    had_value_ = previous != nullptr;
    if (had_value_) previous_ = previous;
    Set(value);
  }
  ~ScopedEnvironment() { Set(had_value_ ? previous_.c_str() : nullptr); }
  void Set(const char* value) {
    if (value == nullptr) {
      unsetenv(name_);
    } else {
      setenv(name_, value, 1);
    }
  }

 private:
  const char* name_;
  bool had_value_ = false;
  std::string previous_;
};

TEST(IsaEnvironmentVariableAndMissingCpuFeatures) {
  DelegateOptions options;
  std::string error;
  ScopedEnvironment isa_variable(tflite_sparse::kIsaEnvironmentVariable, nullptr);
  ScopedEnvironment cpu_without(tflite_sparse::kCpuWithoutEnvironmentVariable, nullptr);
  isa_variable.Set("generic");
  EXPECT_TRUE(Parse({}, &options, &error)) << error;
  EXPECT_TRUE(options.isa == tflite_sparse::Isa::kGeneric);
  isa_variable.Set("fast");
  EXPECT_TRUE(!Parse({}, &options, &error));
  EXPECT_TRUE(error.rfind("environment variable TFLITE_SPARSE_DELEGATE_ISA has invalid value "
                          "'fast'",
                          0) == 0)
      << error;
  // The option wins over the variable.
  EXPECT_TRUE(Parse({{"isa", "generic"}}, &options, &error)) << error;
  isa_variable.Set(nullptr);
#if defined(__x86_64__)
  // A CPU without AVX-512, emulated: forcing it fails with the reason, auto falls back.
  cpu_without.Set("avx512");
  EXPECT_TRUE(!Parse({{"isa", "avx512"}}, &options, &error));
  EXPECT_EQ(error, std::string("option isa requests 'avx512' but this CPU lacks "
                               "AVX-512F/VL/AVX2/FMA; use isa=auto or generic"));
  EXPECT_TRUE(Parse({{"isa", "auto"}}, &options, &error)) << error;
  EXPECT_TRUE(options.isa != tflite_sparse::Isa::kAvx512);
#endif
}

}  // namespace
