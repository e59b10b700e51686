// Reference layer norm: two-pass mean and biased variance in double, as
// torch.nn.LayerNorm defines them; RMS norm as T5's T5LayerNorm, in double.

#include <cmath>

#include "engine/ops/op_bodies.h"

namespace attnserve::engine::internal {

void LayerNormRef(const float* x, int64_t rows, int64_t cols,
                  const float* gamma, const float* beta, float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum += xr[c];
    const double mean = sum / cols;
    double squares = 0.0;
    for (int64_t c = 0; c < cols; ++c)
      squares += (xr[c] - mean) * (xr[c] - mean);
    const double inv_std = 1.0 / std::sqrt(squares / cols + eps);
    // In place is fine: each x[c] is read before y[c] is written.
    for (int64_t c = 0; c < cols; ++c) {
      yr[c] = static_cast<float>((xr[c] - mean) * inv_std * gamma[c] + beta[c]);
    }
  }
}

void RmsNormRef(const float* x, int64_t rows, int64_t cols, const float* gamma,
                float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    double squares = 0.0;
    for (int64_t c = 0; c < cols; ++c) squares += double{xr[c]} * xr[c];
    const double inv_rms = 1.0 / std::sqrt(squares / cols + eps);
    for (int64_t c = 0; c < cols; ++c) {
      yr[c] = static_cast<float>(xr[c] * inv_rms * gamma[c]);
    }
  }
}

}  // namespace attnserve::engine::internal
