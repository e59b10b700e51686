#include "engine/network/norm.h"

#include <utility>

#include "engine/ops/layer_norm.h"

namespace attnserve::engine {

Norm::Norm(NormKind kind, float eps, NormWeights weights)
    : kind_(kind),
      eps_(eps),
      gamma_(std::move(weights.gamma)),
      beta_(std::move(weights.beta)) {}

absl::Status Norm::Apply(const OpContext& ctx, const float* in, int64_t rows,
                         float* out) const {
  const int64_t d = gamma_.size();
  if (kind_ == NormKind::kRmsNorm) {
    return RmsNorm(ctx, in, rows, d, gamma_.data(), eps_, out);
  }
  return LayerNorm(ctx, in, rows, d, gamma_.data(), beta_.data(), eps_, out);
}

}  // namespace attnserve::engine
