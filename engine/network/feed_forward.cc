#include "engine/network/feed_forward.h"

#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/ops/gated_activation.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

// [a, k] + [b, k] -> [a + b, k], releasing the parts, so that a fused product
// is one matrix without a second copy of the model lingering.
absl::StatusOr<Tensor> ConcatRows(const std::vector<Tensor*>& parts) {
  int64_t rows = 0;
  for (const Tensor* t : parts) rows += t->dim(0);
  std::vector<int64_t> shape = parts[0]->shape();
  shape[0] = rows;
  Tensor out;
  if (absl::Status s = out.TryReset(shape); !s.ok()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("fusing weights: ", s.message()));
  }
  float* dst = out.data();
  for (Tensor* t : parts) {
    std::memcpy(dst, t->data(), t->size() * sizeof(float));
    dst += t->size();
    t->Release();
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PackedLinear>> PackFused(
    const OpContext& ctx, std::vector<LinearWeights*> parts, ComputeType type) {
  std::vector<Tensor*> weights, biases;
  for (LinearWeights* p : parts) {
    weights.push_back(&p->weight);
    if (!p->bias.empty()) biases.push_back(&p->bias);
  }
  if (!biases.empty() && biases.size() != parts.size()) {
    return absl::InternalError("fusing linears of which only some have biases");
  }
  ASSIGN_OR_RETURN(Tensor weight, ConcatRows(weights));
  Tensor bias;
  if (!biases.empty()) {
    ASSIGN_OR_RETURN(bias, ConcatRows(biases));
  }
  return PackLinear(ctx, std::move(weight), std::move(bias), type);
}

absl::StatusOr<FeedForward> FeedForward::Pack(const OpContext& ctx,
                                              FfnWeights& w, bool gated,
                                              LinearActivation activation,
                                              ComputeType type) {
  FeedForward ffn;
  ffn.gated_ = gated;
  ffn.activation_ = activation;
  if (gated) {
    ASSIGN_OR_RETURN(ffn.fc1_, PackFused(ctx, {&w.fc1, &w.fc1_linear}, type));
  } else {
    ASSIGN_OR_RETURN(ffn.fc1_, PackLinear(ctx, std::move(w.fc1.weight),
                                          std::move(w.fc1.bias), type));
  }
  ASSIGN_OR_RETURN(ffn.fc2_, PackLinear(ctx, std::move(w.fc2.weight),
                                        std::move(w.fc2.bias), type));
  return ffn;
}

size_t FeedForward::bytes() const { return fc1_->bytes() + fc2_->bytes(); }

absl::Status FeedForward::Run(const OpContext& ctx, const float* in,
                              int64_t rows, Tensor* hidden, Tensor* gated,
                              float* out) const {
  const int64_t width = fc1_->out_features();
  hidden->Reset({rows, width});
  const LinearEpilogue add{LinearActivation::kNone, true};
  if (!gated_) {
    RETURN_IF_ERROR(
        Linear(ctx, *fc1_, in, rows, hidden->data(), {activation_, false}));
    return Linear(ctx, *fc2_, hidden->data(), rows, out, add);
  }
  // Row r of the fused product is [fc1 x | fc1_linear x].
  RETURN_IF_ERROR(Linear(ctx, *fc1_, in, rows, hidden->data()));
  gated->Reset({rows, width / 2});
  RETURN_IF_ERROR(GatedActivation(ctx, activation_, hidden->data(), rows,
                                  width / 2, gated->data()));
  return Linear(ctx, *fc2_, gated->data(), rows, out, add);
}

}  // namespace attnserve::engine
