// Reference log-softmax: subtract the row maximum so exp never overflows, sum
// in double.

#include <cmath>

#include "engine/ops/op_bodies.h"

namespace attnserve::engine::internal {

namespace {

double RowLogSumExp(const float* x, int64_t cols) {
  double max = x[0];
  for (int64_t c = 1; c < cols; ++c) max = std::fmax(max, x[c]);
  double sum = 0.0;
  for (int64_t c = 0; c < cols; ++c) sum += std::exp(x[c] - max);
  return max + std::log(sum);
}

}  // namespace

void LogSoftmaxRef(const float* x, int64_t rows, int64_t cols, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    const double log_sum = RowLogSumExp(xr, cols);
    // In place is fine: every x[c] has been read by now.
    for (int64_t c = 0; c < cols; ++c)
      yr[c] = static_cast<float>(xr[c] - log_sum);
  }
}

void LogSumExpRef(const float* x, int64_t rows, int64_t cols, float* lse) {
  for (int64_t r = 0; r < rows; ++r)
    lse[r] = static_cast<float>(RowLogSumExp(x + r * cols, cols));
}

}  // namespace attnserve::engine::internal
