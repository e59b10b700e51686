// Reference log-sum-exp: subtract the row maximum so exp never overflows, sum
// in double.

#include <cmath>

#include "engine/ops/op_bodies.h"

namespace attnserve::engine::internal {

void LogSumExpRef(const float* x, int64_t rows, int64_t cols, float* lse) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    double max = xr[0];
    for (int64_t c = 1; c < cols; ++c) max = std::fmax(max, xr[c]);
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(xr[c] - max);
    lse[r] = static_cast<float>(max + std::log(sum));
  }
}

}  // namespace attnserve::engine::internal
