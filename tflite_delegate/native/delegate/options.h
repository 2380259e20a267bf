// Parsing and validation of the string options handed to tflite_plugin_create_delegate.
#ifndef TFLITE_DELEGATE_DELEGATE_OPTIONS_H_
#define TFLITE_DELEGATE_DELEGATE_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "claiming/claiming_policy.h"
#include "microkernels/microkernel.h"

namespace tflite_sparse {

// Environment variable that forces the microkernel ISA when the `isa` option is not given.
extern const char kIsaEnvironmentVariable[];

// min_sparsity when the option is not given: the default of each block width N
// (DefaultMinSparsity in claiming/claiming_policy.h).
constexpr double kMinSparsityPerBlockWidth = -1.0;
constexpr int kMaxThreads = 256;
// per_image_bytes when the option is not given or is "auto": DefaultLargeTensorBytes()
// (delegate/partition_schedule.h); "off" never runs steps image by image.
constexpr int64_t kPerImageBytesAuto = -1;
constexpr int64_t kPerImageBytesOff = -2;

struct DelegateOptions {
  int num_threads = 0;  // 0: use the interpreter's recommended_num_threads
  double min_sparsity = kMinSparsityPerBlockWidth;  // claim layers at least this tap-vector sparse
  int block_n = 0;                            // 0: detect per layer; else forced block width
  Isa isa = Isa::kGeneric;                    // resolved microkernel ISA (never "auto")
  // Offer the pixel-pair variants (SelectMicrokernel); "auto", the default, resolves to
  // !CpuSplitsAvx512().
  bool pixel_pairs = true;
  // Not an option: CpuSplitsAvx512(), which selects the default min_sparsity table.
  bool split_avx512 = false;
  bool fuse_add = true;   // run a claimed conv's residual ADD in its epilogue (add_fusion.h)
  bool fold_pad = true;   // run the PAD node feeding a claimed conv as its padding (pad_folding.h)
  bool fuse_pool = true;  // run the max pool after a claimed conv in its partition (pool_fusion.h)
  bool verbose = false;   // print claiming decisions to stderr
  bool profile = false;   // time each claimed conv per invoke (the report's runs, run_seconds)
  // At batch > 1, a partition runs its steps image by image up to the last reader of its last
  // internal tensor of at least this many bytes over the batch (partition_schedule.h).
  int64_t per_image_bytes = kPerImageBytesAuto;
};

// The claiming part of the options.
ClaimingOptions ClaimingOptionsOf(const DelegateOptions& options);

// Parses the options (keys/values are NUL-terminated UTF-8 strings) and resolves the ISA
// (option, else environment variable, else the best the CPU supports). Valid ISAs and block
// widths are those of the microkernel registry. Returns false and sets `error` to a message
// naming the offending option or value.
bool ParseDelegateOptions(const char* const* keys, const char* const* values, size_t count,
                          DelegateOptions* options, std::string* error);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_DELEGATE_OPTIONS_H_
