#pragma once
// Widening of the 16-bit float formats that checkpoints store (IEEE binary16
// and bfloat16) to float32. Both are exact: every value of either format is a
// float32 value.

#include <cstdint>
#include <cstring>

namespace attnserve::engine {

inline float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float (a 10-bit integer
    // scaled by a power of two).
    float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    std::memcpy(&bits, &magnitude, sizeof(bits));
    bits |= sign;
  } else if (exponent == 0x1f) {
    // Inf or NaN; the payload is kept, so a NaN stays a NaN.
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else {
    // Rebias the exponent from 15 to 127.
    bits = sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// bfloat16 is the top half of a float32.
inline float BFloat16ToFloat(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

}  // namespace attnserve::engine
