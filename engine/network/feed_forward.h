#pragma once
// The position-wise feed-forward sublayer, plain (fc2(act(fc1 x))) or gated
// as T5 v1.1 (fc2(act(fc1 x) * (fc1_linear x))), biases optional. A gated
// FFN's two first linears are one fused product of twice the width.

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "engine/format/model_weights.h"
#include "engine/memory/tensor.h"
#include "engine/ops/linear.h"
#include "engine/ops/op_context.h"

namespace attnserve::engine {

class FeedForward {
 public:
  // Packs `w` for ctx's backend in `type`, releasing its plain tensors.
  static absl::StatusOr<FeedForward> Pack(const OpContext& ctx, FfnWeights& w,
                                          bool gated,
                                          LinearActivation activation,
                                          ComputeType type);

  size_t bytes() const;
  // out[rows, d_model] += FFN(in[rows, d_model]); `hidden` and `gated` are
  // scratch, resized here.
  absl::Status Run(const OpContext& ctx, const float* in, int64_t rows,
                   Tensor* hidden, Tensor* gated, float* out) const;

 private:
  bool gated_ = false;
  LinearActivation activation_ = LinearActivation::kRelu;
  std::unique_ptr<PackedLinear> fc1_;  // [ffn, d], gated: [2 ffn, d]
  std::unique_ptr<PackedLinear> fc2_;  // [d, ffn]
};

// Packs one linear in `type`, reading its weight first when it is deferred
// (LinearWeights::Materialize); the plain tensors are released.
absl::StatusOr<std::unique_ptr<PackedLinear>> PackWeights(const OpContext& ctx,
                                                          LinearWeights& w,
                                                          ComputeType type);

// Stacks the weights (and the biases, when they have any) of `parts`
// row-wise into one linear and packs it: q|k|v, a gated FFN's fc1|fc1_linear,
// every decoder layer's cross-attention k|v, in `type`. A deferred part is
// read just before it is copied in; the parts are released.
absl::StatusOr<std::unique_ptr<PackedLinear>> PackFused(
    const OpContext& ctx, std::vector<LinearWeights*> parts, ComputeType type);

}  // namespace attnserve::engine
