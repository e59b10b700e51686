// Hugging Face's BART family (model_type bart, mbart, marian, m2m100): the
// config.json mapping and the tensor names (docs/hf-reference.md), onto
// ModelConfig and the weight plan.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/format/config_reader.h"
#include "engine/format/hf_layout.h"
#include "engine/format/weight_plan.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

// What HF's config class assumes when a key is absent (BartConfig,
// MBartConfig, MarianConfig, M2M100Config), and what HF fixes per model_type
// regardless of any key (norm placement, final norms, positions).
struct Family {
  const char* model_type;
  const char* activation;
  bool scale_embedding;
  int pad_id;
  int bos_id;
  int eos_id;
  int decoder_start_id;  // -1: none, HF falls back to bos_token_id
  int forced_eos_id;     // -1: none
  NormPlacement norm_placement;
  bool final_norms;     // model.{enc,dec}oder.layer_norm
  bool embedding_norm;  // layernorm_embedding
  bool final_logits_bias;
};

constexpr Family kFamilies[] = {
    {"bart", "gelu", false, 1, 0, 2, 2, 2, NormPlacement::kPost, false, true,
     true},
    {"mbart", "gelu", false, 1, 0, 2, -1, 2, NormPlacement::kPre, true, true,
     true},
    // Marian's decoder_start_token_id and pad default to 58100 (Opus-MT's
    // pad); bos has no default (decoder_start then).
    {"marian", "gelu", false, 58100, -1, 0, 58100, 0, NormPlacement::kPost,
     false, false, true},
    {"m2m100", "relu", true, 1, 0, 2, 2, -1, NormPlacement::kPre, true, false,
     false},
};

const Family* FindFamily(absl::string_view model_type) {
  for (const Family& f : kFamilies) {
    if (model_type == f.model_type) return &f;
  }
  return nullptr;
}

// Two keys that HF keeps apart but attnserve's one stack width shares.
absl::Status RequireEqual(ConfigReader& reader, const char* key, int value,
                          const char* other_key, int other) {
  if (value != other) {
    return reader.KeyError(
        key,
        absl::StrCat("= ", value, " differs from \"", other_key, "\" = ", other,
                     "; attnserve needs encoder and decoder to agree"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<HfModelConfig> ParseHfBartConfig(ConfigReader& r,
                                                absl::string_view model_type) {
  const Family* family = FindFamily(model_type);
  if (family == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: \"model_type\" = \"", model_type,
                     "\" is not a BART-family model"));
  }
  HfModelConfig hf;
  hf.model_type = family->model_type;
  hf.layout = absl::StrCat("hf-", family->model_type);
  ModelConfig& c = hf.config;

  RETURN_IF_ERROR(r.RequiredInt("d_model", 1, kMaxWidth, &c.d_model));
  RETURN_IF_ERROR(r.RequiredInt("vocab_size", 1, kMaxVocab, &c.vocab_size));
  RETURN_IF_ERROR(r.RequiredInt("max_position_embeddings", 2, kMaxPositions,
                                &c.max_positions));
  RETURN_IF_ERROR(
      r.RequiredInt("encoder_layers", 1, kMaxLayers, &c.encoder_layers));
  RETURN_IF_ERROR(
      r.RequiredInt("decoder_layers", 1, kMaxLayers, &c.decoder_layers));
  int decoder_heads = 0, decoder_ffn = 0;
  RETURN_IF_ERROR(
      r.RequiredInt("encoder_attention_heads", 1, kMaxWidth, &c.num_heads));
  RETURN_IF_ERROR(
      r.RequiredInt("decoder_attention_heads", 1, kMaxWidth, &decoder_heads));
  RETURN_IF_ERROR(r.RequiredInt("encoder_ffn_dim", 1, kMaxWidth, &c.ffn_dim));
  RETURN_IF_ERROR(r.RequiredInt("decoder_ffn_dim", 1, kMaxWidth, &decoder_ffn));
  RETURN_IF_ERROR(RequireEqual(r, "decoder_attention_heads", decoder_heads,
                               "encoder_attention_heads", c.num_heads));
  RETURN_IF_ERROR(RequireEqual(r, "decoder_ffn_dim", decoder_ffn,
                               "encoder_ffn_dim", c.ffn_dim));

  std::string activation = family->activation;
  RETURN_IF_ERROR(r.OptionalString("activation_function", &activation));
  ASSIGN_OR_RETURN(c.activation,
                   HfActivation("activation_function", activation));
  c.scale_embedding = family->scale_embedding;
  RETURN_IF_ERROR(r.OptionalBool("scale_embedding", &c.scale_embedding));
  c.tie_output_embedding = true;
  RETURN_IF_ERROR(
      r.OptionalBool("tie_word_embeddings", &c.tie_output_embedding));

  if (hf.model_type == "marian") {
    RETURN_IF_ERROR(r.OptionalBool("share_encoder_decoder_embeddings",
                                   &hf.shared_embedding));
    int decoder_vocab = c.vocab_size;
    RETURN_IF_ERROR(
        r.OptionalInt("decoder_vocab_size", 1, kMaxVocab, &decoder_vocab));
    if (decoder_vocab != c.vocab_size) {
      return r.KeyError(
          "decoder_vocab_size",
          absl::StrCat("= ", decoder_vocab,
                       " differs from \"vocab_size\" = ", c.vocab_size,
                       "; attnserve needs one vocabulary for both sides"));
    }
  }

  // Ids: range-checked against vocab_size by FinishHfConfig below.
  c.pad_id = family->pad_id;
  c.eos_id = family->eos_id;
  int decoder_start = family->decoder_start_id;
  RETURN_IF_ERROR(ReadHfTokenIds(r, &c.pad_id, &c.eos_id, &decoder_start));
  c.bos_id = family->bos_id;
  RETURN_IF_ERROR(
      r.OptionalIntOrFirst("bos_token_id", 0, kMaxVocab, &c.bos_id));
  if (c.bos_id < 0) c.bos_id = decoder_start;
  c.decoder_start_id = decoder_start >= 0 ? decoder_start : c.bos_id;
  if (c.decoder_start_id < 0) {
    return r.MissingKey("decoder_start_token_id");
  }
  // Marian's 58100 defaults are Opus-MT's; a smaller vocabulary must say its
  // ids, which the check below asks for by name.

  c.norm_placement = family->norm_placement;
  c.norm_kind = NormKind::kLayerNorm;
  c.layer_norm_eps = 1e-5f;  // nn.LayerNorm's default; no key for it
  c.embedding_norm = family->embedding_norm;
  if (hf.model_type == "bart" || hf.model_type == "mbart") {
    c.positional_encoding = PositionalEncoding::kLearned;
  } else if (hf.model_type == "marian") {
    // LoadHfBartWeights makes it kLearned when the table is stored.
    c.positional_encoding = PositionalEncoding::kSinusoidalConcat;
  } else {
    c.positional_encoding = PositionalEncoding::kSinusoidalFairseq;
    c.position_offset = c.pad_id + 1;
  }

  ConfigKeyNames keys = HfKeyNames();
  keys.num_heads = "encoder_attention_heads";
  keys.bos_id = "bos_token_id";
  keys.position_offset = "pad_token_id";
  RETURN_IF_ERROR(FinishHfConfig(keys, &hf));
  if (family->forced_eos_id >= 0 && family->forced_eos_id < c.vocab_size) {
    hf.generation_defaults.forced_eos_ids = {family->forced_eos_id};
  }
  return hf;
}

absl::StatusOr<ModelWeights> LoadHfBartWeights(
    const TensorSource& source, HfModelConfig* hf,
    std::shared_ptr<const TensorSource> keep_open) {
  const Family* family = FindFamily(hf->model_type);
  if (family == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(source.path(), ": model_type \"", hf->model_type,
                     "\" is not a BART-family model"));
  }
  ModelConfig& c = hf->config;
  const int64_t d = c.d_model;
  const std::vector<int64_t> embed_shape = {c.vocab_size, d};

  // Marian's positions: the stored sinusoid table when there is one (HF uses
  // the file's), else computed; both stacks alike.
  if (hf->model_type == "marian") {
    const bool enc = source.Find("model.encoder.embed_positions.weight");
    const bool dec = source.Find("model.decoder.embed_positions.weight");
    c.positional_encoding = enc || dec ? PositionalEncoding::kLearned
                                       : PositionalEncoding::kSinusoidalConcat;
    if (!enc && !dec && c.d_model % 2 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json: \"d_model\" must be even for Marian's computed "
          "sinusoid (no embed_positions table stored), got ",
          c.d_model));
    }
  }

  WeightPlan plan(source, c);
  ModelWeights w;
  const std::vector<std::string> head =
      c.tie_output_embedding ? std::vector<std::string>{"lm_head.weight"}
                             : std::vector<std::string>{};
  auto with_head = [&](std::vector<std::string> names) {
    names.insert(names.end(), head.begin(), head.end());
    return names;
  };
  if (hf->shared_embedding) {
    w.shared_embedding = true;
    plan.RequireTied(
        with_head({"model.shared.weight", "model.encoder.embed_tokens.weight",
                   "model.decoder.embed_tokens.weight"}),
        embed_shape, &w.encoder_embed);
  } else {
    // Marian with share_encoder_decoder_embeddings false: the head is tied
    // to the decoder's table.
    w.shared_embedding = false;
    plan.Require("model.encoder.embed_tokens.weight", embed_shape,
                 &w.encoder_embed);
    plan.RequireTied(with_head({"model.decoder.embed_tokens.weight"}),
                     embed_shape, &w.decoder_embed);
  }
  if (!c.tie_output_embedding) {
    plan.Require("lm_head.weight", embed_shape, &w.lm_head_weight,
                 "required because tie_word_embeddings is false");
  }
  if (family->final_logits_bias && plan.Has("final_logits_bias")) {
    // HF registers a zero buffer when absent: no bias is the same model.
    plan.RequireReshaped("final_logits_bias", {1, c.vocab_size}, {c.vocab_size},
                         &w.lm_head_bias);
  }

  auto attention = [&](const std::string& prefix, AttentionWeights* a) {
    plan.Linear(prefix + ".q_proj", d, d, &a->q);
    plan.Linear(prefix + ".k_proj", d, d, &a->k);
    plan.Linear(prefix + ".v_proj", d, d, &a->v);
    plan.Linear(prefix + ".out_proj", d, d, &a->o);
  };
  auto ffn = [&](const std::string& prefix, FfnWeights* f) {
    plan.Linear(prefix + ".fc1", c.ffn_dim, d, &f->fc1);
    plan.Linear(prefix + ".fc2", d, c.ffn_dim, &f->fc2);
  };
  auto stack = [&](const std::string& name, Tensor* positions,
                   NormWeights* embed_norm, NormWeights* final_norm) {
    const std::string prefix = "model." + name;
    if (hf->model_type == "bart" || hf->model_type == "mbart") {
      // Rows [2, P + 2): BART's learned positions start at offset 2.
      plan.RequireRows(prefix + ".embed_positions.weight", 2,
                       {c.max_positions, d}, positions);
    } else if (c.positional_encoding == PositionalEncoding::kLearned) {
      plan.Require(prefix + ".embed_positions.weight", {c.max_positions, d},
                   positions,
                   "Marian stores both stacks' sinusoid tables or neither");
    } else if (hf->model_type == "m2m100") {
      // Non-persistent buffers very old files carry; the table is computed.
      plan.Ignore(prefix + ".embed_positions.weights");
      plan.Ignore(prefix + ".embed_positions._float_tensor");
    }
    if (family->embedding_norm) {
      plan.Norm(prefix + ".layernorm_embedding", embed_norm);
    }
    if (family->final_norms) plan.Norm(prefix + ".layer_norm", final_norm);
  };

  w.encoder_layers.resize(c.encoder_layers);
  w.decoder_layers.resize(c.decoder_layers);
  stack("encoder", &w.encoder_positions, &w.encoder_embed_norm,
        &w.encoder_final_norm);
  stack("decoder", &w.decoder_positions, &w.decoder_embed_norm,
        &w.decoder_final_norm);
  for (int i = 0; i < c.encoder_layers; ++i) {
    const std::string prefix = absl::StrCat("model.encoder.layers.", i);
    EncoderLayerWeights& layer = w.encoder_layers[i];
    attention(prefix + ".self_attn", &layer.self_attn);
    plan.Norm(prefix + ".self_attn_layer_norm", &layer.self_attn_norm);
    ffn(prefix, &layer.ffn);
    plan.Norm(prefix + ".final_layer_norm", &layer.ffn_norm);
  }
  for (int i = 0; i < c.decoder_layers; ++i) {
    const std::string prefix = absl::StrCat("model.decoder.layers.", i);
    DecoderLayerWeights& layer = w.decoder_layers[i];
    attention(prefix + ".self_attn", &layer.self_attn);
    plan.Norm(prefix + ".self_attn_layer_norm", &layer.self_attn_norm);
    attention(prefix + ".encoder_attn", &layer.cross_attn);
    plan.Norm(prefix + ".encoder_attn_layer_norm", &layer.cross_attn_norm);
    ffn(prefix, &layer.ffn);
    plan.Norm(prefix + ".final_layer_norm", &layer.ffn_norm);
  }

  RETURN_IF_ERROR(plan.Validate());
  RETURN_IF_ERROR(plan.CheckNoUnknownTensors());
  RETURN_IF_ERROR(plan.Read(std::move(keep_open)));
  return w;
}

}  // namespace attnserve::engine
