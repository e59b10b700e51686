// Layer norm for the oneDNN backend, as a vectorised loop rather than oneDNN's
// layer_normalization_forward: measured on this 2-core AVX2 host (cols 512),
// the primitive costs ~24 us per call at 1 row where this loop takes ~1 us, and
// it needs a primitive per row count (no runtime dims for normalisation
// primitives). The loop is memory bound beyond a few hundred rows, where the
// primitive has nothing to add.

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
  // Summing x - x[0] rather than x keeps a large common offset (a row of values
  // near 100, say) from eating the float sum's precision.
  const float shift = x[0];
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t c = 0; c < cols; ++c) sum += x[c] - shift;
  const float mean = shift + sum / static_cast<float>(cols);
  // Two passes (not E[x^2] - mean^2), so rows with a large mean keep their
  // precision.
  float squares = 0.0f;
#pragma omp simd reduction(+ : squares)
  for (int64_t c = 0; c < cols; ++c) squares += (x[c] - mean) * (x[c] - mean);
  const float inv_std =
      1.0f / std::sqrt(squares / static_cast<float>(cols) + eps);
  // y may alias x: each element is read before it is written.
#pragma omp simd
  for (int64_t c = 0; c < cols; ++c)
    y[c] = (x[c] - mean) * inv_std * gamma[c] + beta[c];
}

}  // namespace

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
