// Names of the ISAs and weight types, and run-time detection of what the CPU can execute.
#include <cstdlib>
#include <cstring>

#include "microkernels/microkernel.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace tflite_sparse {

const char kCpuWithoutEnvironmentVariable[] = "TFLITE_SPARSE_DELEGATE_CPU_WITHOUT";

namespace {

// True if `isa` is listed in $TFLITE_SPARSE_DELEGATE_CPU_WITHOUT (comma-separated ISA names):
// the delegate then behaves as on a CPU without that ISA, so the fallbacks and their error
// messages can be exercised on any machine.
bool IsaMaskedByEnvironment(Isa isa) {
  const char* list = std::getenv(kCpuWithoutEnvironmentVariable);
  if (list == nullptr) return false;
  const char* name = IsaName(isa);
  const size_t length = std::strlen(name);
  for (const char* item = list; *item != '\0';) {
    const char* end = std::strchr(item, ',');
    const size_t item_length = end != nullptr ? static_cast<size_t>(end - item) : std::strlen(item);
    if (item_length == length && std::strncmp(item, name, length) == 0) return true;
    if (end == nullptr) break;
    item = end + 1;
  }
  return false;
}

}  // namespace

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kGeneric:
      break;
  }
  return "generic";
}

const char* WeightTypeName(WeightType weight_type) {
  switch (weight_type) {
    case WeightType::kFloat32:
      break;
  }
  return "float32";
}

bool ParseIsaName(const std::string& text, Isa* isa) {
  if (text == "generic") {
    *isa = Isa::kGeneric;
  } else if (text == "avx2") {
    *isa = Isa::kAvx2;
  } else if (text == "avx512") {
    *isa = Isa::kAvx512;
  } else {
    return false;
  }
  return true;
}

const char* IsaRequirement(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "AVX-512F/VL/AVX2/FMA";
    case Isa::kAvx2:
      return "AVX2/FMA";
    case Isa::kGeneric:
      break;
  }
  return "nothing";
}

bool CpuSplitsAvx512() {
#if defined(__x86_64__)
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return false;
  // "AuthenticAMD" in EBX, EDX, ECX.
  const bool amd = ebx == 0x68747541u && edx == 0x69746e65u && ecx == 0x444d4163u;
  if (!amd || __get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  // Family: the base family field, plus the extended one when the base is 0xf.
  const unsigned int base_family = (eax >> 8) & 0xfu;
  const unsigned int family =
      base_family == 0xfu ? base_family + ((eax >> 20) & 0xffu) : base_family;
  return family == 0x19u;
#else
  return false;  // no AVX-512 off x86
#endif
}

bool IsaSupportedByCpu(Isa isa) {
  if (isa == Isa::kGeneric) return true;
  if (IsaMaskedByEnvironment(isa)) return false;
#if defined(__x86_64__)
  // The AVX-512 file also uses 256- and 128-bit FMA for narrow groups, EVEX-encoded (AVX-512VL)
  // so that they take their input as an embedded broadcast, and AVX2 and FMA (every AVX-512VL CPU
  // has all of these: Skylake-SP and later, Zen 4 and later).
  const bool avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == Isa::kAvx2) return avx2_fma;
  if (isa == Isa::kAvx512) {
    return avx2_fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
  }
#endif
  return false;
}

}  // namespace tflite_sparse
