// The attnserve format's tensor names (docs/model-format.md "Tensors") onto
// the weight plan.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/format/model_weights.h"
#include "engine/format/weight_plan.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

absl::Status PlanEmbeddings(const ModelConfig& c, WeightPlan* plan,
                            ModelWeights* w) {
  const std::vector<int64_t> shape = {c.vocab_size, c.d_model};
  const bool shared = plan->Has("shared.embed.weight");
  const bool separate =
      plan->Has("encoder.embed.weight") || plan->Has("decoder.embed.weight");
  if (shared && separate) {
    // Which table would the model use? Refuse rather than guess.
    return absl::InvalidArgumentError(absl::StrCat(
        plan->path(),
        ": tensor \"shared.embed.weight\" and \"encoder.embed.weight\"/"
        "\"decoder.embed.weight\" are both present; a model has either one "
        "shared table or two separate ones"));
  }
  if (!shared && !separate) {
    return absl::InvalidArgumentError(absl::StrCat(
        plan->path(),
        ": missing tensor \"shared.embed.weight\" (or \"encoder.embed.weight\" "
        "and \"decoder.embed.weight\")"));
  }
  w->shared_embedding = shared;
  if (shared) {
    plan->Require("shared.embed.weight", shape, &w->encoder_embed);
    plan->AllowInt8();
  } else {
    plan->Require("encoder.embed.weight", shape, &w->encoder_embed);
    plan->AllowInt8();
    plan->Require("decoder.embed.weight", shape, &w->decoder_embed);
    plan->AllowInt8();
  }
  return absl::OkStatus();
}

void PlanAttention(const std::string& prefix, WeightPlan* plan,
                   AttentionWeights* w) {
  const ModelConfig& c = plan->config();
  const int64_t d = c.d_model;
  const int64_t a = c.attention_dim();
  plan->Linear(prefix + ".q_proj", a, d, &w->q);
  plan->Linear(prefix + ".k_proj", a, d, &w->k);
  plan->Linear(prefix + ".v_proj", a, d, &w->v);
  plan->Linear(prefix + ".o_proj", d, a, &w->o);
}

void PlanFfn(const std::string& prefix, WeightPlan* plan, FfnWeights* w) {
  const ModelConfig& c = plan->config();
  plan->Linear(prefix + ".fc1", c.ffn_dim, c.d_model, &w->fc1);
  if (c.gated_ffn) {
    plan->Linear(prefix + ".fc1_linear", c.ffn_dim, c.d_model, &w->fc1_linear);
  }
  plan->Linear(prefix + ".fc2", c.d_model, c.ffn_dim, &w->fc2);
}

// Everything a stack has besides its layers, in both stacks alike.
void PlanStackExtras(const std::string& stack, WeightPlan* plan,
                     Tensor* positions, NormWeights* embed_norm,
                     Tensor* relative_bias, NormWeights* final_norm) {
  const ModelConfig& c = plan->config();
  if (c.positional_encoding == PositionalEncoding::kLearned) {
    plan->Require(stack + ".embed_positions.weight",
                  {c.max_positions, c.d_model}, positions,
                  "required for positional_encoding \"learned\"");
  }
  if (c.embedding_norm) {
    plan->Norm(stack + ".embed_norm", embed_norm,
               "required because embedding_norm is true");
  }
  if (c.relative_attention_num_buckets > 0) {
    plan->Require(stack + ".relative_attention_bias.weight",
                  {c.relative_attention_num_buckets, c.num_heads},
                  relative_bias,
                  "required because relative_attention_num_buckets > 0");
  }
  // Pre-norm needs the final norm; post-norm applies it only when present,
  // and then it must be whole (a lone weight or bias is a broken export, not
  // "absent").
  const std::string prefix = stack + ".final_norm";
  if (c.norm_placement == NormPlacement::kPre) {
    plan->Norm(prefix, final_norm, "required for norm_placement \"pre\"");
  } else if (plan->HasNorm(prefix)) {
    plan->Norm(prefix, final_norm, "a final_norm must be whole or absent");
  }
}

}  // namespace

absl::StatusOr<ModelWeights> LoadAttnserveWeights(
    const TensorSource& source, const ModelConfig& config,
    std::shared_ptr<const TensorSource> keep_open) {
  const ModelConfig& c = config;
  WeightPlan plan(source, c);
  ModelWeights w;

  RETURN_IF_ERROR(PlanEmbeddings(c, &plan, &w));

  // Sized once, before the plan takes pointers into them.
  w.encoder_layers.resize(c.encoder_layers);
  w.decoder_layers.resize(c.decoder_layers);
  for (int i = 0; i < c.encoder_layers; ++i) {
    const std::string prefix = absl::StrCat("encoder.layers.", i);
    EncoderLayerWeights& layer = w.encoder_layers[i];
    PlanAttention(prefix + ".self_attn", &plan, &layer.self_attn);
    plan.Norm(prefix + ".self_attn_norm", &layer.self_attn_norm);
    PlanFfn(prefix + ".ffn", &plan, &layer.ffn);
    plan.Norm(prefix + ".ffn_norm", &layer.ffn_norm);
  }
  PlanStackExtras("encoder", &plan, &w.encoder_positions, &w.encoder_embed_norm,
                  &w.encoder_relative_bias, &w.encoder_final_norm);
  for (int i = 0; i < c.decoder_layers; ++i) {
    const std::string prefix = absl::StrCat("decoder.layers.", i);
    DecoderLayerWeights& layer = w.decoder_layers[i];
    PlanAttention(prefix + ".self_attn", &plan, &layer.self_attn);
    plan.Norm(prefix + ".self_attn_norm", &layer.self_attn_norm);
    PlanAttention(prefix + ".cross_attn", &plan, &layer.cross_attn);
    plan.Norm(prefix + ".cross_attn_norm", &layer.cross_attn_norm);
    PlanFfn(prefix + ".ffn", &plan, &layer.ffn);
    plan.Norm(prefix + ".ffn_norm", &layer.ffn_norm);
  }
  PlanStackExtras("decoder", &plan, &w.decoder_positions, &w.decoder_embed_norm,
                  &w.decoder_relative_bias, &w.decoder_final_norm);

  // A tied model ignores any lm_head.weight in the file (some exporters write
  // the tied matrix twice).
  if (!c.tie_output_embedding) {
    plan.Require("lm_head.weight", {c.vocab_size, c.d_model}, &w.lm_head_weight,
                 "required because tie_output_embedding is false");
    plan.AllowInt8();
  }
  if (plan.Has("lm_head.bias")) {
    plan.Require("lm_head.bias", {c.vocab_size}, &w.lm_head_bias);
  }

  // Tensors the config does not use are ignored (docs/model-format.md).
  RETURN_IF_ERROR(plan.Validate());
  RETURN_IF_ERROR(plan.Read(std::move(keep_open)));
  return w;
}

}  // namespace attnserve::engine
