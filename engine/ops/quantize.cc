#include "engine/ops/quantize.h"

#include <cmath>
#include <limits>

#include "engine/format/half_float.h"

namespace attnserve::engine {

float QuantizeRowInt8(const float* v, int64_t cols, int8_t* q) {
  float amax = 0.0f;
  bool finite = true;  // NaN fails every comparison: track it apart
  for (int64_t i = 0; i < cols; ++i) {
    const float a = std::fabs(v[i]);
    finite = finite && std::isfinite(a);
    amax = a > amax ? a : amax;
  }
  // A subnormal amax would make 127 / amax infinite (and 0 * inf NaN): such a
  // row is zero for all a product can tell.
  if (!finite || amax < std::numeric_limits<float>::min()) {
    for (int64_t i = 0; i < cols; ++i) q[i] = 0;
    return finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  }
  const float inverse = kInt8Levels / amax;
  for (int64_t i = 0; i < cols; ++i) {
    // |v * inverse| <= 127 up to one rounding, so nearbyint stays in range;
    // the clamp only guards that last ulp.
    float r = std::nearbyint(v[i] * inverse);
    r = r > kInt8Levels ? kInt8Levels : (r < -kInt8Levels ? -kInt8Levels : r);
    q[i] = static_cast<int8_t>(r);
  }
  return amax / kInt8Levels;
}

void QuantizeRowsInt8(const float* v, int64_t rows, int64_t cols, int8_t* q,
                      float* scales) {
  for (int64_t r = 0; r < rows; ++r) {
    scales[r] = QuantizeRowInt8(v + r * cols, cols, q + r * cols);
  }
}

void DequantizeRowInt8(const int8_t* q, int64_t cols, float scale, float* out) {
  for (int64_t i = 0; i < cols; ++i) out[i] = q[i] * scale;
}

void RoundRowToBFloat16(const float* v, int64_t cols, uint16_t* out) {
  for (int64_t i = 0; i < cols; ++i) out[i] = FloatToBFloat16(v[i]);
}

void WidenRowFromBFloat16(const uint16_t* b, int64_t cols, float* out) {
  for (int64_t i = 0; i < cols; ++i) out[i] = BFloat16ToFloat(b[i]);
}

}  // namespace attnserve::engine
