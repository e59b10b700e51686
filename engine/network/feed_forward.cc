#include "engine/network/feed_forward.h"

#include <cstring>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/ops/gated_activation.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

// [a, k] + [b, k] -> [a + b, k] of `count` parts, part i of `shapes(i)` and
// fetched by `fetch(i)` (reading it when deferred) only once the output is
// allocated, and released once copied: a fused product is one matrix without a
// second copy of the model lingering.
absl::StatusOr<Tensor> ConcatRows(
    size_t count, absl::FunctionRef<const std::vector<int64_t>&(size_t)> shapes,
    absl::FunctionRef<absl::StatusOr<Tensor*>(size_t)> fetch) {
  std::vector<int64_t> shape = shapes(0);
  shape[0] = 0;
  for (size_t i = 0; i < count; ++i) shape[0] += shapes(i)[0];
  Tensor out;
  if (absl::Status s = out.TryReset(shape); !s.ok()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("fusing weights: ", s.message()));
  }
  float* dst = out.data();
  for (size_t i = 0; i < count; ++i) {
    ASSIGN_OR_RETURN(Tensor * t, fetch(i));
    std::memcpy(dst, t->data(), t->size() * sizeof(float));
    dst += t->size();
    t->Release();
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PackedLinear>> PackWeights(const OpContext& ctx,
                                                          LinearWeights& w,
                                                          ComputeType type) {
  RETURN_IF_ERROR(w.Materialize());
  return PackLinear(ctx, std::move(w.weight), std::move(w.bias), type);
}

absl::StatusOr<std::unique_ptr<PackedLinear>> PackFused(
    const OpContext& ctx, std::vector<LinearWeights*> parts, ComputeType type) {
  size_t with_bias = 0;
  for (const LinearWeights* p : parts) with_bias += p->bias.empty() ? 0 : 1;
  if (with_bias != 0 && with_bias != parts.size()) {
    return absl::InternalError("fusing linears of which only some have biases");
  }
  ASSIGN_OR_RETURN(Tensor weight,
                   ConcatRows(
                       parts.size(),
                       [&](size_t i) -> const std::vector<int64_t>& {
                         return parts[i]->weight_shape();
                       },
                       [&](size_t i) -> absl::StatusOr<Tensor*> {
                         RETURN_IF_ERROR(parts[i]->Materialize());
                         return &parts[i]->weight;
                       }));
  Tensor bias;
  if (with_bias != 0) {
    ASSIGN_OR_RETURN(bias, ConcatRows(
                               parts.size(),
                               [&](size_t i) -> const std::vector<int64_t>& {
                                 return parts[i]->bias.shape();
                               },
                               [&](size_t i) -> absl::StatusOr<Tensor*> {
                                 return &parts[i]->bias;
                               }));
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
    ASSIGN_OR_RETURN(ffn.fc1_, PackWeights(ctx, w.fc1, type));
  }
  ASSIGN_OR_RETURN(ffn.fc2_, PackWeights(ctx, w.fc2, type));
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
