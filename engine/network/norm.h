#pragma once
// A norm of the network (a sublayer's, the embedding's or a stack's final
// one) of either kind the config names: LayerNorm with weight and bias, or
// T5's RMSNorm with weight only. Empty (absent) when its weights are.

#include <cstdint>

#include "absl/status/status.h"
#include "engine/format/model_config.h"
#include "engine/format/model_weights.h"
#include "engine/ops/op_context.h"

namespace attnserve::engine {

class Norm {
 public:
  Norm() = default;
  Norm(NormKind kind, float eps, NormWeights weights);

  bool present() const { return !gamma_.empty(); }
  size_t bytes() const { return gamma_.bytes() + beta_.bytes(); }
  // out[rows, d] = norm(in[rows, d]); out may equal in.
  absl::Status Apply(const OpContext& ctx, const float* in, int64_t rows,
                     float* out) const;

 private:
  NormKind kind_ = NormKind::kLayerNorm;
  float eps_ = 0;
  Tensor gamma_;
  Tensor beta_;  // empty for kRmsNorm
};

}  // namespace attnserve::engine
