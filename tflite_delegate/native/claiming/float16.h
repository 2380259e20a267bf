// IEEE 754 half-precision to single-precision conversion (fp16-weight models store filters and
// biases as float16 constants behind DEQUANTIZE nodes).
#ifndef TFLITE_DELEGATE_CLAIMING_FLOAT16_H_
#define TFLITE_DELEGATE_CLAIMING_FLOAT16_H_

#include <cstdint>
#include <cstring>

namespace tflite_sparse {

inline float HalfToFloat(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  uint32_t mantissa = half & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {  // infinity or NaN
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {  // normal
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {  // signed zero
    bits = sign;
  } else {  // subnormal: renormalise
    uint32_t shifted_exponent = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --shifted_exponent;
    }
    bits = sign | (shifted_exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CLAIMING_FLOAT16_H_
