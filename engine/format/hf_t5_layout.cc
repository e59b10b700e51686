// Hugging Face's T5 (model_type t5: v1.0 and v1.1 / Flan): the config.json
// mapping and the tensor names (docs/hf-reference.md), onto ModelConfig and
// the weight plan.

#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/format/config_reader.h"
#include "engine/format/hf_layout.h"
#include "engine/format/weight_plan.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

// feed_forward_proj: "ACT" or "gated-ACT" (T5Config's parsing); "gated-gelu"
// means gelu_new, HF's special case for T5 v1.1.
absl::Status ParseFeedForward(ConfigReader& r, const std::string& value,
                              ModelConfig* c) {
  const std::vector<std::string> parts = absl::StrSplit(value, '-');
  const bool gated = parts.size() == 2 && parts[0] == "gated";
  if (!(parts.size() == 1 || gated)) {
    return r.KeyError(
        "feed_forward_proj",
        absl::StrCat("= \"", value, "\" is not \"ACT\" or \"gated-ACT\""));
  }
  c->gated_ffn = gated;
  if (value == "gated-gelu") {
    c->activation = Activation::kGeluTanh;
    return absl::OkStatus();
  }
  absl::StatusOr<Activation> activation =
      HfActivation("feed_forward_proj", parts.back());
  if (!activation.ok()) {
    return r.KeyError(
        "feed_forward_proj",
        absl::StrCat("= \"", value, "\": activation \"", parts.back(),
                     "\" is not supported (relu, gelu, "
                     "gelu_new, gelu_pytorch_tanh, swish, silu)"));
  }
  c->activation = *activation;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<HfModelConfig> ParseHfT5Config(ConfigReader& r) {
  HfModelConfig hf;
  hf.model_type = "t5";
  hf.layout = "hf-t5";
  ModelConfig& c = hf.config;

  RETURN_IF_ERROR(r.RequiredInt("d_model", 1, kMaxWidth, &c.d_model));
  RETURN_IF_ERROR(r.RequiredInt("vocab_size", 1, kMaxVocab, &c.vocab_size));
  RETURN_IF_ERROR(
      r.RequiredInt("num_layers", 1, kMaxLayers, &c.encoder_layers));
  c.decoder_layers = c.encoder_layers;
  RETURN_IF_ERROR(
      r.OptionalInt("num_decoder_layers", 1, kMaxLayers, &c.decoder_layers));
  c.num_heads = 8;
  RETURN_IF_ERROR(r.OptionalInt("num_heads", 1, kMaxWidth, &c.num_heads));
  c.attention_head_dim = 64;
  RETURN_IF_ERROR(r.OptionalInt("d_kv", 1, kMaxWidth, &c.attention_head_dim));
  // HF's default 2048 belongs to t5-small only; a file without it is not one
  // we can size honestly.
  RETURN_IF_ERROR(r.RequiredInt("d_ff", 1, kMaxWidth, &c.ffn_dim));
  c.relative_attention_num_buckets = 32;
  RETURN_IF_ERROR(r.OptionalInt("relative_attention_num_buckets", 1,
                                kMaxBuckets,
                                &c.relative_attention_num_buckets));
  c.relative_attention_max_distance = 128;
  RETURN_IF_ERROR(r.OptionalInt("relative_attention_max_distance", 1,
                                kMaxPositions,
                                &c.relative_attention_max_distance));
  c.layer_norm_eps = 1e-6f;
  RETURN_IF_ERROR(
      r.OptionalPositiveFloat("layer_norm_epsilon", &c.layer_norm_eps));
  std::string feed_forward = "relu";
  RETURN_IF_ERROR(r.OptionalString("feed_forward_proj", &feed_forward));
  RETURN_IF_ERROR(ParseFeedForward(r, feed_forward, &c));
  c.tie_output_embedding = true;
  RETURN_IF_ERROR(
      r.OptionalBool("tie_word_embeddings", &c.tie_output_embedding));
  c.max_positions = 512;
  RETURN_IF_ERROR(
      r.OptionalInt("n_positions", 2, kMaxPositions, &c.max_positions));

  c.pad_id = 0;
  c.eos_id = 1;
  c.decoder_start_id = 0;
  RETURN_IF_ERROR(ReadHfTokenIds(r, &c.pad_id, &c.eos_id, &c.decoder_start_id));
  c.bos_id = c.decoder_start_id;  // T5 has no BOS token

  // Fixed by the architecture, whatever the file says.
  c.norm_kind = NormKind::kRmsNorm;
  c.norm_placement = NormPlacement::kPre;
  c.linear_bias = false;
  c.scale_attention = false;
  c.scale_embedding = false;
  c.positional_encoding = PositionalEncoding::kNone;
  c.embedding_norm = false;
  // A tied head rescales the decoder state by d_model^-0.5 (T5's
  // "rescale output before projecting on vocab").
  c.output_scale = c.tie_output_embedding
                       ? static_cast<float>(1.0 / std::sqrt(c.d_model))
                       : 1.0f;

  ConfigKeyNames keys = HfKeyNames();
  keys.attention_head_dim = "d_kv";
  keys.bos_id = "decoder_start_token_id";
  RETURN_IF_ERROR(FinishHfConfig(keys, &hf));
  return hf;
}

absl::StatusOr<ModelWeights> LoadHfT5Weights(
    const TensorSource& source, HfModelConfig* hf,
    std::shared_ptr<const TensorSource> keep_open) {
  const ModelConfig& c = hf->config;
  const int64_t d = c.d_model;
  const int64_t a = c.attention_dim();
  const std::vector<int64_t> embed_shape = {c.vocab_size, d};
  WeightPlan plan(source, c);
  ModelWeights w;

  // The encoder's and decoder's embed_tokens are always tied to shared; the
  // head too when tie_word_embeddings.
  std::vector<std::string> tied = {"shared.weight",
                                   "encoder.embed_tokens.weight",
                                   "decoder.embed_tokens.weight"};
  if (c.tie_output_embedding) {
    tied.push_back("lm_head.weight");
  } else {
    plan.Require("lm_head.weight", embed_shape, &w.lm_head_weight,
                 "required because tie_word_embeddings is false");
  }
  w.shared_embedding = true;
  plan.RequireTied(tied, embed_shape, &w.encoder_embed);

  auto attention = [&](const std::string& prefix, AttentionWeights* att) {
    plan.Linear(prefix + ".q", a, d, &att->q);
    plan.Linear(prefix + ".k", a, d, &att->k);
    plan.Linear(prefix + ".v", a, d, &att->v);
    plan.Linear(prefix + ".o", d, a, &att->o);
  };
  auto ffn = [&](const std::string& prefix, FfnWeights* f) {
    if (c.gated_ffn) {
      plan.Linear(prefix + ".wi_0", c.ffn_dim, d, &f->fc1);
      plan.Linear(prefix + ".wi_1", c.ffn_dim, d, &f->fc1_linear);
    } else {
      plan.Linear(prefix + ".wi", c.ffn_dim, d, &f->fc1);
    }
    plan.Linear(prefix + ".wo", d, c.ffn_dim, &f->fc2);
  };
  const std::vector<int64_t> bias_shape = {c.relative_attention_num_buckets,
                                           c.num_heads};
  plan.Require(
      "encoder.block.0.layer.0.SelfAttention.relative_attention_bias."
      "weight",
      bias_shape, &w.encoder_relative_bias);
  plan.Require(
      "decoder.block.0.layer.0.SelfAttention.relative_attention_bias."
      "weight",
      bias_shape, &w.decoder_relative_bias);
  // Old checkpoints (the original t5-small) carry a cross-attention bias that
  // HF's T5 never uses (_keys_to_ignore_on_load_unexpected).
  plan.Ignore(
      "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight");

  w.encoder_layers.resize(c.encoder_layers);
  w.decoder_layers.resize(c.decoder_layers);
  for (int i = 0; i < c.encoder_layers; ++i) {
    const std::string prefix = absl::StrCat("encoder.block.", i, ".layer.");
    EncoderLayerWeights& layer = w.encoder_layers[i];
    attention(prefix + "0.SelfAttention", &layer.self_attn);
    plan.Norm(prefix + "0.layer_norm", &layer.self_attn_norm);
    ffn(prefix + "1.DenseReluDense", &layer.ffn);
    plan.Norm(prefix + "1.layer_norm", &layer.ffn_norm);
  }
  plan.Norm("encoder.final_layer_norm", &w.encoder_final_norm);
  for (int i = 0; i < c.decoder_layers; ++i) {
    const std::string prefix = absl::StrCat("decoder.block.", i, ".layer.");
    DecoderLayerWeights& layer = w.decoder_layers[i];
    attention(prefix + "0.SelfAttention", &layer.self_attn);
    plan.Norm(prefix + "0.layer_norm", &layer.self_attn_norm);
    attention(prefix + "1.EncDecAttention", &layer.cross_attn);
    plan.Norm(prefix + "1.layer_norm", &layer.cross_attn_norm);
    ffn(prefix + "2.DenseReluDense", &layer.ffn);
    plan.Norm(prefix + "2.layer_norm", &layer.ffn_norm);
  }
  plan.Norm("decoder.final_layer_norm", &w.decoder_final_norm);

  RETURN_IF_ERROR(plan.Validate());
  RETURN_IF_ERROR(plan.CheckNoUnknownTensors());
  RETURN_IF_ERROR(plan.Read(std::move(keep_open)));
  return w;
}

}  // namespace attnserve::engine
