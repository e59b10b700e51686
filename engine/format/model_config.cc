#include "engine/format/model_config.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/format/config_reader.h"
#include "engine/format/json_util.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

using Json = nlohmann::json;

constexpr char kFile[] = "config.json";
constexpr char kArchitecture[] = "transformer-encoder-decoder";

// KnownConfigKeys(), in the order the parser reads them.
constexpr const char* kKnownKeys[] = {
    "architecture", "d_model", "num_heads", "encoder_layers", "decoder_layers",
    "ffn_dim", "vocab_size", "max_positions", "activation", "norm_placement",
    "layer_norm_eps", "scale_embedding", "positional_encoding",
    "tie_output_embedding", "pad_id", "bos_id", "eos_id", "decoder_start_id",
    "add_eos_to_source",
    // Additions for the Hugging Face architectures (issue 16).
    "attention_head_dim", "norm_kind", "linear_bias", "gated_ffn",
    "scale_attention", "embedding_norm", "position_offset",
    "relative_attention_num_buckets", "relative_attention_max_distance",
    "output_scale",
    // Read by the server's tokenizer (server/tokenizers/tokenizer.h), not by
    // the engine.
    "tokenizer", "vocab_file"};

bool IsKnownKey(absl::string_view key) {
  for (const char* known : kKnownKeys) {
    if (key == known) return true;
  }
  return false;
}

// One line per key that KnownConfigKeys() does not list.
void AppendUnknownKeyWarnings(const Json& root,
                              std::vector<std::string>* warnings) {
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (!IsKnownKey(it.key())) {
      warnings->push_back(
          absl::StrCat(kFile, ": unknown key \"", it.key(), "\" ignored"));
    }
  }
}

// A key that some lookup read but KnownConfigKeys() lacks is a bug of ours:
// such a key would be used and reported as ignored at once, and would be
// missing from the documentation. Every successful parse checks it, so any
// test that loads a config catches it.
absl::Status CheckReadKeysAreListed(const ConfigReader& reader) {
  for (const char* key : reader.read()) {
    if (!IsKnownKey(key)) {
      return absl::InternalError(
          absl::StrCat(kFile, ": the parser reads \"", key,
                       "\", which KnownConfigKeys() does not list "
                       "(engine/format/model_config.cc)"));
    }
  }
  return absl::OkStatus();
}

constexpr EnumName<Activation> kActivations[] = {
    {Activation::kRelu, "relu"},
    {Activation::kGelu, "gelu"},
    {Activation::kSwish, "swish"},
    {Activation::kGeluTanh, "gelu_tanh"},
};
constexpr EnumName<NormPlacement> kNormPlacements[] = {
    {NormPlacement::kPost, "post"},
    {NormPlacement::kPre, "pre"},
};
constexpr EnumName<PositionalEncoding> kPositionalEncodings[] = {
    {PositionalEncoding::kSinusoidal, "sinusoidal"},
    {PositionalEncoding::kSinusoidalConcat, "sinusoidal_concat"},
    {PositionalEncoding::kSinusoidalFairseq, "sinusoidal_fairseq"},
    {PositionalEncoding::kLearned, "learned"},
    {PositionalEncoding::kNone, "none"},
};
constexpr EnumName<NormKind> kNormKinds[] = {
    {NormKind::kLayerNorm, "layer_norm"},
    {NormKind::kRmsNorm, "rms_norm"},
};

absl::Status CheckSpecialId(absl::string_view file, const char* key, int id,
                            int vocab_size) {
  if (id < 0 || id >= vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": \"", key, "\" must be in [0, vocab_size) = [0, ",
                     vocab_size, "), got ", id));
  }
  return absl::OkStatus();
}

bool IsSinusoidal(PositionalEncoding p) {
  return p == PositionalEncoding::kSinusoidal ||
         p == PositionalEncoding::kSinusoidalConcat ||
         p == PositionalEncoding::kSinusoidalFairseq;
}

}  // namespace

absl::Status CheckModelConfig(const ModelConfig& c,
                              const ConfigKeyNames& keys) {
  auto error = [&](const char* key, absl::string_view problem) {
    return absl::InvalidArgumentError(
        absl::StrCat(keys.file, ": \"", key, "\" ", problem));
  };
  if (c.attention_head_dim == 0) {
    if (c.d_model % c.num_heads != 0) {
      return error(keys.num_heads,
                   absl::StrCat("must divide \"", keys.d_model, "\" (",
                                c.d_model, " % ", c.num_heads, " != 0)"));
    }
  } else if (int64_t{c.num_heads} * c.attention_head_dim > kMaxWidth) {
    // The attention width sizes every projection and KV cache.
    return error(
        keys.attention_head_dim,
        absl::StrCat("times \"", keys.num_heads, "\" must be <= ", kMaxWidth,
                     ", got ", c.attention_head_dim, " * ", c.num_heads));
  }
  if (IsSinusoidal(c.positional_encoding)) {
    // Every sinusoidal layout pairs each sin dimension with a cos dimension.
    if (c.d_model % 2 != 0) {
      return error(keys.d_model,
                   absl::StrCat("must be even for \"positional_encoding\" \"",
                                PositionalEncodingName(c.positional_encoding),
                                "\", got ", c.d_model));
    }
    // fairseq's frequencies divide by d_model / 2 - 1.
    if (c.positional_encoding == PositionalEncoding::kSinusoidalFairseq &&
        c.d_model < 4) {
      return error(keys.d_model,
                   absl::StrCat("must be >= 4 for \"positional_encoding\" "
                                "\"sinusoidal_fairseq\", got ",
                                c.d_model));
    }
  } else if (c.position_offset != 0) {
    return error(keys.position_offset,
                 absl::StrCat("applies to the sinusoidal encodings only; "
                              "\"positional_encoding\" is \"",
                              PositionalEncodingName(c.positional_encoding),
                              "\", so it must be 0, got ", c.position_offset));
  }
  if (c.relative_attention_num_buckets > 0) {
    // T5's bucket formula divides by log(max_distance / exact), exact being
    // buckets / 4 (encoder) or buckets / 2 (decoder): both must be >= 1 and
    // below max_distance, or the bucket is NaN.
    if (c.relative_attention_num_buckets < 4) {
      return error(keys.relative_attention_num_buckets,
                   absl::StrCat("must be 0 (none) or at least 4, got ",
                                c.relative_attention_num_buckets));
    }
    if (c.relative_attention_max_distance <=
        c.relative_attention_num_buckets / 2) {
      return error(
          keys.relative_attention_max_distance,
          absl::StrCat("must be greater than \"",
                       keys.relative_attention_num_buckets,
                       "\" / 2 = ", c.relative_attention_num_buckets / 2,
                       ", got ", c.relative_attention_max_distance));
    }
  }
  RETURN_IF_ERROR(
      CheckSpecialId(keys.file, keys.pad_id, c.pad_id, c.vocab_size));
  RETURN_IF_ERROR(
      CheckSpecialId(keys.file, keys.bos_id, c.bos_id, c.vocab_size));
  RETURN_IF_ERROR(
      CheckSpecialId(keys.file, keys.eos_id, c.eos_id, c.vocab_size));
  RETURN_IF_ERROR(CheckSpecialId(keys.file, keys.decoder_start_id,
                                 c.decoder_start_id, c.vocab_size));
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ParseModelConfig(
    absl::string_view json_text, std::vector<std::string>* warnings) {
  ASSIGN_OR_RETURN(const Json root, ParseJson(json_text, kFile));
  if (!root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        kFile, ": top level must be a JSON object, got ", JsonSnippet(root)));
  }
  ConfigReader reader(root, kFile);
  ModelConfig c;

  std::string architecture;
  RETURN_IF_ERROR(reader.RequiredString("architecture", &architecture));
  if (architecture != kArchitecture) {
    return reader.KeyError(
        "architecture", absl::StrCat("must be \"", kArchitecture, "\", got \"",
                                     architecture, "\""));
  }

  RETURN_IF_ERROR(reader.RequiredInt("d_model", 1, kMaxWidth, &c.d_model));
  RETURN_IF_ERROR(reader.RequiredInt("num_heads", 1, kMaxWidth, &c.num_heads));
  RETURN_IF_ERROR(
      reader.RequiredInt("encoder_layers", 1, kMaxLayers, &c.encoder_layers));
  RETURN_IF_ERROR(
      reader.RequiredInt("decoder_layers", 1, kMaxLayers, &c.decoder_layers));
  RETURN_IF_ERROR(reader.RequiredInt("ffn_dim", 1, kMaxWidth, &c.ffn_dim));
  RETURN_IF_ERROR(
      reader.RequiredInt("vocab_size", 1, kMaxVocab, &c.vocab_size));
  RETURN_IF_ERROR(
      reader.OptionalInt("max_positions", 2, kMaxPositions, &c.max_positions));
  RETURN_IF_ERROR(
      reader.OptionalEnum("activation", kActivations, &c.activation));
  RETURN_IF_ERROR(reader.OptionalEnum("norm_placement", kNormPlacements,
                                      &c.norm_placement));
  RETURN_IF_ERROR(
      reader.OptionalPositiveFloat("layer_norm_eps", &c.layer_norm_eps));
  RETURN_IF_ERROR(reader.OptionalBool("scale_embedding", &c.scale_embedding));
  RETURN_IF_ERROR(reader.OptionalEnum(
      "positional_encoding", kPositionalEncodings, &c.positional_encoding));
  RETURN_IF_ERROR(
      reader.OptionalBool("tie_output_embedding", &c.tie_output_embedding));
  // Ids are range-checked against vocab_size below, where the message can say
  // so.
  RETURN_IF_ERROR(reader.OptionalInt("pad_id", 0, kMaxVocab, &c.pad_id));
  RETURN_IF_ERROR(reader.OptionalInt("bos_id", 0, kMaxVocab, &c.bos_id));
  RETURN_IF_ERROR(reader.OptionalInt("eos_id", 0, kMaxVocab, &c.eos_id));
  c.decoder_start_id = c.bos_id;
  RETURN_IF_ERROR(reader.OptionalInt("decoder_start_id", 0, kMaxVocab,
                                     &c.decoder_start_id));
  RETURN_IF_ERROR(
      reader.OptionalBool("add_eos_to_source", &c.add_eos_to_source));

  RETURN_IF_ERROR(reader.OptionalInt("attention_head_dim", 1, kMaxWidth,
                                     &c.attention_head_dim));
  RETURN_IF_ERROR(reader.OptionalEnum("norm_kind", kNormKinds, &c.norm_kind));
  RETURN_IF_ERROR(reader.OptionalBool("linear_bias", &c.linear_bias));
  RETURN_IF_ERROR(reader.OptionalBool("gated_ffn", &c.gated_ffn));
  RETURN_IF_ERROR(reader.OptionalBool("scale_attention", &c.scale_attention));
  RETURN_IF_ERROR(reader.OptionalBool("embedding_norm", &c.embedding_norm));
  RETURN_IF_ERROR(reader.OptionalInt("position_offset", 0, kMaxPositions,
                                     &c.position_offset));
  RETURN_IF_ERROR(reader.OptionalInt("relative_attention_num_buckets", 0,
                                     kMaxBuckets,
                                     &c.relative_attention_num_buckets));
  RETURN_IF_ERROR(reader.OptionalInt("relative_attention_max_distance", 1,
                                     kMaxPositions,
                                     &c.relative_attention_max_distance));
  RETURN_IF_ERROR(
      reader.OptionalPositiveFloat("output_scale", &c.output_scale));

  RETURN_IF_ERROR(CheckModelConfig(c, ConfigKeyNames{}));

  RETURN_IF_ERROR(CheckReadKeysAreListed(reader));
  if (warnings != nullptr) AppendUnknownKeyWarnings(root, warnings);
  return c;
}

absl::Span<const char* const> KnownConfigKeys() { return kKnownKeys; }

const char* ActivationName(Activation a) { return NameOf(kActivations, a); }

const char* NormPlacementName(NormPlacement n) {
  return NameOf(kNormPlacements, n);
}

const char* PositionalEncodingName(PositionalEncoding p) {
  return NameOf(kPositionalEncodings, p);
}

const char* NormKindName(NormKind n) { return NameOf(kNormKinds, n); }

}  // namespace attnserve::engine
