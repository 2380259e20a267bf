#include "cpu_features.h"

namespace tflite_sparse {

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

bool IsaSupported(Isa isa) {
  if (isa == Isa::kGeneric) return true;
#if defined(__x86_64__)
  // The AVX-512 translation unit also uses 256- and 128-bit FMA for narrow blocks, so it needs
  // AVX2 and FMA as well (every AVX-512F CPU has them).
  const bool avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == Isa::kAvx2) return avx2_fma;
  if (isa == Isa::kAvx512) return avx2_fma && __builtin_cpu_supports("avx512f");
#endif
  return false;
}

Isa BestSupportedIsa() {
  if (IsaSupported(Isa::kAvx512)) return Isa::kAvx512;
  if (IsaSupported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kGeneric;
}

}  // namespace tflite_sparse
