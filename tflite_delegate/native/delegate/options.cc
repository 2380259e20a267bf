#include "delegate/options.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace tflite_sparse {

const char kIsaEnvironmentVariable[] = "TFLITE_SPARSE_DELEGATE_ISA";

namespace {

const char kKnownOptions[] =
    "num_threads, min_sparsity, block_n, isa, pixel_pairs, fuse_add, fold_pad, fuse_pool, "
    "verbose, per_image_bytes, profile";

// Strict integer parse: the whole string must be a base-10 integer (Python passes str(value)).
bool ParseInteger(const std::string& text, long* value) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long parsed = std::strtol(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size() || text[0] == ' ') return false;
  *value = parsed;
  return true;
}

bool ParseReal(const std::string& text, double* value) {
  if (text.empty() || text[0] == ' ') return false;
  errno = 0;
  char* end = nullptr;
  const double parsed = std::strtod(text.c_str(), &end);
  if (errno != 0 || end != text.c_str() + text.size() || !std::isfinite(parsed)) return false;
  *value = parsed;
  return true;
}

bool ParseBoolean(const std::string& text, bool* value) {
  if (text == "1" || text == "true" || text == "True") {
    *value = true;
  } else if (text == "0" || text == "false" || text == "False") {
    *value = false;
  } else {
    return false;
  }
  return true;
}

// "auto, avx512, avx2 or generic": every ISA of the registry, in its preference order.
std::string IsaChoicesText() {
  std::string text = "auto";
  size_t count = 0;
  const MicrokernelVariant* variants = RegisteredMicrokernels(&count);
  std::string names[3];
  int found = 0;
  for (size_t i = 0; i < count; ++i) {
    const std::string name = IsaName(variants[i].isa);
    bool seen = false;
    for (int k = 0; k < found; ++k) seen |= names[k] == name;
    if (!seen && found < 3) names[found++] = name;
  }
  for (int k = 0; k < found; ++k) text += (k + 1 == found ? " or " : ", ") + names[k];
  return text;
}

// Resolves "auto" or an ISA name into an ISA that is registered and that this CPU can run.
bool ResolveIsa(const std::string& text, const std::string& source, Isa* isa,
                std::string* error) {
  if (text == "auto") {
    *isa = BestSupportedIsa();
    return true;
  }
  Isa requested;
  if (!ParseIsaName(text, &requested)) {
    *error = source + " has invalid value '" + text + "' (expected " + IsaChoicesText() + ")";
    return false;
  }
  if (!IsaRegistered(requested)) {
    *error = source + " requests '" + text +
             "' but this build has no microkernels for it (built for another CPU architecture); "
             "use isa=auto or generic";
    return false;
  }
  if (!IsaSupportedByCpu(requested)) {
    *error = source + " requests '" + text + "' but this CPU lacks " + IsaRequirement(requested) +
             "; use isa=auto or generic";
    return false;
  }
  *isa = requested;
  return true;
}

}  // namespace

bool ParseDelegateOptions(const char* const* keys, const char* const* values, size_t count,
                          DelegateOptions* options, std::string* error) {
  *options = DelegateOptions();
  options->split_avx512 = CpuSplitsAvx512();
  options->pixel_pairs = !options->split_avx512;
  bool isa_given = false;
  for (size_t i = 0; i < count; ++i) {
    if (keys == nullptr || values == nullptr || keys[i] == nullptr || values[i] == nullptr) {
      *error = "option " + std::to_string(i) + " has a NULL key or value";
      return false;
    }
    const std::string key = keys[i];
    const std::string value = values[i];
    const std::string quoted = "option " + key + "='" + value + "'";
    if (key == "num_threads") {
      long threads = 0;
      if (!ParseInteger(value, &threads) || threads < 1 || threads > kMaxThreads) {
        *error = quoted + " is invalid: expected an integer in [1, " +
                 std::to_string(kMaxThreads) + "]";
        return false;
      }
      options->num_threads = static_cast<int>(threads);
    } else if (key == "min_sparsity") {
      double sparsity = 0.0;
      if (!ParseReal(value, &sparsity) || sparsity < 0.0 || sparsity > 1.0) {
        *error = quoted + " is invalid: expected a number in [0, 1]";
        return false;
      }
      options->min_sparsity = sparsity;
    } else if (key == "block_n") {
      long block_n = 0;
      if (value == "auto") {
        options->block_n = 0;
      } else if (ParseInteger(value, &block_n) && block_n > 0 && block_n <= 1024 &&
                 BlockWidthRegistered(static_cast<int>(block_n))) {
        options->block_n = static_cast<int>(block_n);
      } else {
        *error = quoted + " is invalid: expected auto, " +
                 RegisteredBlockWidthsText(Isa::kGeneric);
        return false;
      }
    } else if (key == "isa") {
      if (!ResolveIsa(value, "option isa", &options->isa, error)) return false;
      isa_given = true;
    } else if (key == "pixel_pairs") {
      if (value == "auto") {
        options->pixel_pairs = !options->split_avx512;
      } else if (!ParseBoolean(value, &options->pixel_pairs)) {
        *error = quoted + " is invalid: expected auto, 1, 0, true, false, True or False";
        return false;
      }
    } else if (key == "verbose" || key == "fuse_add" || key == "fold_pad" || key == "fuse_pool" ||
               key == "profile") {
      bool* flag = key == "verbose"     ? &options->verbose
                   : key == "fuse_add"  ? &options->fuse_add
                   : key == "fold_pad"  ? &options->fold_pad
                   : key == "fuse_pool" ? &options->fuse_pool
                                        : &options->profile;
      if (!ParseBoolean(value, flag)) {
        *error = quoted + " is invalid: expected 1, 0, true, false, True or False";
        return false;
      }
    } else if (key == "per_image_bytes") {
      long bytes = 0;
      if (value == "auto") {
        options->per_image_bytes = kPerImageBytesAuto;
      } else if (value == "off") {
        options->per_image_bytes = kPerImageBytesOff;
      } else if (ParseInteger(value, &bytes) && bytes >= 0) {
        options->per_image_bytes = bytes;
      } else {
        *error = quoted + " is invalid: expected auto, off or a number of bytes >= 0";
        return false;
      }
    } else {
      *error = "unknown option '" + key + "' (known options: " + kKnownOptions + ")";
      return false;
    }
  }
  if (!isa_given) {
    const char* forced = std::getenv(kIsaEnvironmentVariable);
    const std::string source = std::string("environment variable ") + kIsaEnvironmentVariable;
    if (forced != nullptr && forced[0] != '\0') {
      if (!ResolveIsa(forced, source, &options->isa, error)) return false;
    } else {
      options->isa = BestSupportedIsa();
    }
  }
  if (options->block_n > 0 && FindMicrokernel(options->isa, options->block_n) == nullptr) {
    *error = "option block_n='" + std::to_string(options->block_n) + "' has no " +
             IsaName(options->isa) + " microkernel (available: " +
             RegisteredBlockWidthsText(options->isa) + ")";
    return false;
  }
  return true;
}

ClaimingOptions ClaimingOptionsOf(const DelegateOptions& options) {
  ClaimingOptions claiming;
  claiming.min_sparsity = options.min_sparsity;
  claiming.block_n = options.block_n;
  claiming.isa = options.isa;
  claiming.pixel_pairs = options.pixel_pairs;
  claiming.split_avx512 = options.split_avx512;
  return claiming;
}

}  // namespace tflite_sparse
