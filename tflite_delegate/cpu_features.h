// Instruction-set variants of the convolution kernels and run-time detection of what the CPU has.
#ifndef TFLITE_DELEGATE_CPU_FEATURES_H_
#define TFLITE_DELEGATE_CPU_FEATURES_H_

#include <string>

namespace tflite_sparse {

enum class Isa { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// "generic", "avx2" or "avx512".
const char* IsaName(Isa isa);

// Parses "generic"/"avx2"/"avx512" (exact, lower case); false for anything else.
bool ParseIsaName(const std::string& text, Isa* isa);

// True if this build contains the kernels for `isa` and the CPU can execute them.
bool IsaSupported(Isa isa);

// The fastest variant this build and CPU support.
Isa BestSupportedIsa();

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CPU_FEATURES_H_
