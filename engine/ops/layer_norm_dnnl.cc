// Layer norm for the oneDNN backend, as a vectorised loop rather than oneDNN's
// layer_normalization_forward, which would need one primitive per row count
// (normalisation primitives have no runtime dims). Measured on one thread,
// rows of 512: 1 us against the primitive's 3 us at 1 row (decode steps), 14
// against 13 us at 64 rows, 460 against 370 us at 2048 rows (encoder).
// oneDNN 2.6 has no RMS norm at all, so RmsNorm is a loop of the same kind.

#include <cmath>

#include "engine/ops/op_bodies.h"
#include "engine/ops/simd.h"

namespace attnserve::engine::internal {
namespace {

// Below this many elements a parallel region costs more than it saves (~0.3 us
// per row of 512 on one thread against a few us to wake the team).
constexpr int64_t kMinParallelElements = 32 * 1024;

ATTNSERVE_SIMD_CLONES
void LayerNormRow(const float* x, int64_t cols, const float* gamma,
                  const float* beta, float eps, float* y) {
  // Explicit vector sums, two accumulators each: with omp simd reductions (see
  // HorizontalSums in simd.h) the loop took 1.3x longer.
  const int64_t c16 = cols - cols % 16;
  // Summing x - x[0] rather than x keeps a large common offset (a row of
  // values near 100, say) from eating the float sum's precision.
  const float shift = x[0];
  V8 s0 = {}, s1 = {};
  for (int64_t c = 0; c < c16; c += 16) {
    s0 += Load8(x + c) - shift;
    s1 += Load8(x + c + 8) - shift;
  }
  float sum = HorizontalSum(s0 + s1);
  for (int64_t c = c16; c < cols; ++c) sum += x[c] - shift;
  const float mean = shift + sum / static_cast<float>(cols);
  // Two passes (not E[x^2] - mean^2), so rows with a large mean keep their
  // precision; the row is in L1 by now.
  V8 q0 = {}, q1 = {};
  for (int64_t c = 0; c < c16; c += 16) {
    const V8 d0 = Load8(x + c) - mean;
    const V8 d1 = Load8(x + c + 8) - mean;
    q0 += d0 * d0;
    q1 += d1 * d1;
  }
  float squares = HorizontalSum(q0 + q1);
  for (int64_t c = c16; c < cols; ++c) squares += (x[c] - mean) * (x[c] - mean);
  const float inv_std =
      1.0f / std::sqrt(squares / static_cast<float>(cols) + eps);
  // y may alias x: each element is read before it is written.
#pragma omp simd
  for (int64_t c = 0; c < cols; ++c) {
    y[c] = (x[c] - mean) * inv_std * gamma[c] + beta[c];
  }
}

// y = x / sqrt(mean(x^2) + eps) * gamma. One pass for the sum of squares
// (there is no mean to subtract), sixteen lanes of partial sums.
ATTNSERVE_SIMD_CLONES
void RmsNormRow(const float* x, int64_t cols, const float* gamma, float eps,
                float* y) {
  const int64_t c16 = cols - cols % 16;
  V8 q0 = {}, q1 = {};
  for (int64_t c = 0; c < c16; c += 16) {
    const V8 a = Load8(x + c);
    const V8 b = Load8(x + c + 8);
    q0 += a * a;
    q1 += b * b;
  }
  float squares = HorizontalSum(q0 + q1);
  for (int64_t c = c16; c < cols; ++c) squares += x[c] * x[c];
  const float inv_rms =
      1.0f / std::sqrt(squares / static_cast<float>(cols) + eps);
  // y may alias x: each element is read before it is written.
#pragma omp simd
  for (int64_t c = 0; c < cols; ++c) y[c] = x[c] * inv_rms * gamma[c];
}

}  // namespace

absl::Status RmsNormDnnl(const OpContext& ctx, const float* x, int64_t rows,
                         int64_t cols, const float* gamma, float eps,
                         float* y) {
#pragma omp parallel for num_threads(ctx.threads()) \
    schedule(static) if (rows > 1 && rows * cols >= kMinParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    RmsNormRow(x + r * cols, cols, gamma, eps, y + r * cols);
  }
  return absl::OkStatus();
}

absl::Status LayerNormDnnl(const OpContext& ctx, const float* x, int64_t rows,
                           int64_t cols, const float* gamma, const float* beta,
                           float eps, float* y) {
#pragma omp parallel for num_threads(ctx.threads()) \
    schedule(static) if (rows > 1 && rows * cols >= kMinParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    LayerNormRow(x + r * cols, cols, gamma, beta, eps, y + r * cols);
  }
  return absl::OkStatus();
}

}  // namespace attnserve::engine::internal
