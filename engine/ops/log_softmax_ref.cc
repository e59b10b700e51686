// Reference log-softmax: subtract the row maximum so exp never overflows, sum
// in double.

#include <cmath>

#include "engine/ops/op_bodies.h"

namespace attnserve::engine::internal {

void LogSoftmaxRef(const float* x, int64_t rows, int64_t cols, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    double max = xr[0];
    for (int64_t c = 1; c < cols; ++c) max = std::fmax(max, xr[c]);
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(xr[c] - max);
    const double log_sum = max + std::log(sum);
    // In place is fine: every x[c] has been read by now.
    for (int64_t c = 0; c < cols; ++c)
      yr[c] = static_cast<float>(xr[c] - log_sum);
  }
}

}  // namespace attnserve::engine::internal
