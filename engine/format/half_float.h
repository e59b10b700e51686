#pragma once
// The 16-bit float formats that checkpoints store (IEEE binary16 and
// bfloat16): widening to float32, exact (every value of either format is a
// float32 value), and rounding float32 to bfloat16, for the bfloat16 compute
// type and the converter's bfloat16 files.

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

// The bfloat16 nearest to `f`, ties to even, as PyTorch's .to(torch.bfloat16)
// (vcvtneps2bf16 agrees but for subnormals, which it flushes to zero). NaN
// stays a NaN (quiet, sign kept); values beyond bfloat16's largest round to
// infinity as IEEE rounding does.
inline uint16_t FloatToBFloat16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  const uint32_t lsb = (bits >> 16) & 1u;
  return static_cast<uint16_t>((bits + 0x7fffu + lsb) >> 16);
}

}  // namespace attnserve::engine
