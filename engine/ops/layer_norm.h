#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "engine/ops/op_context.h"

namespace attnserve::engine {

// y[r, :] = (x[r, :] - mean) / sqrt(var + eps) * gamma + beta for each of
// `rows` rows of `cols` floats (biased variance, as torch.nn.LayerNorm). y may
// equal x (in place).
absl::Status LayerNorm(const OpContext& ctx, const float* x, int64_t rows,
                       int64_t cols, const float* gamma, const float* beta,
                       float eps, float* y);

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * gamma: root-mean-square
// norm without mean or bias (T5's T5LayerNorm). y may equal x (in place).
absl::Status RmsNorm(const OpContext& ctx, const float* x, int64_t rows,
                     int64_t cols, const float* gamma, float eps, float* y);

}  // namespace attnserve::engine
