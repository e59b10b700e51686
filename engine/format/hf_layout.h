#pragma once
// Hugging Face checkpoints as downloaded (docs/hf-reference.md): config.json
// with "model_type" mapped onto ModelConfig, and the checkpoint's tensor names
// mapped onto the weight plan, one layout per family:
//   hf_bart_layout.cc  model_type bart, mbart, marian, m2m100
//   hf_t5_layout.cc    model_type t5
// The mapping is FORMAT_SPEC's "Mapping HF -> attnserve", the same one
// scripts/attnserve-convert writes out.

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/format/generation_config.h"
#include "engine/format/model_config.h"
#include "engine/format/model_weights.h"
#include "engine/format/tensor_source.h"

namespace attnserve::engine {

class ConfigReader;  // config_reader.h (engine-internal: includes nlohmann)

struct HfModelConfig {
  std::string model_type;  // "bart", "mbart", "marian", "m2m100", "t5"
  std::string layout;      // "hf-bart", "hf-mbart", "hf-marian", ...
  ModelConfig config;
  // The family's decoding defaults with config.json's ids applied: what
  // ParseGenerationConfig falls back to after generation_config.json and
  // config.json.
  GenerationConfig generation_defaults;
  // marian: share_encoder_decoder_embeddings.
  bool shared_embedding = true;
};

// config.json of a Hugging Face checkpoint. INVALID_ARGUMENT naming the key
// (and value): a missing required key, a wrong type, an unsupported
// model_type / activation_function / feed_forward_proj, and any option that
// would silently give a different model (encoder and decoder heads or FFN
// widths that differ, marian's decoder_vocab_size != vocab_size, ...).
absl::StatusOr<HfModelConfig> ParseHfConfig(absl::string_view config_json);

// The tensors of `source` under the family's names. Unknown tensors are an
// error naming them (a weight nobody reads would be a different model),
// except the legacy buffers docs/hf-reference.md lists; a tied group may be
// stored under any non-empty subset of its names, equal when several. May
// refine hf->config from what is stored (marian: a stored sinusoid table
// makes positional_encoding "learned", its absence "sinusoidal_concat").
// `keep_open` as LoadAttnserveWeights' (model_weights.h): linear weights
// deferred.
absl::StatusOr<ModelWeights> LoadHfWeights(
    const TensorSource& source, HfModelConfig* hf,
    std::shared_ptr<const TensorSource> keep_open = nullptr);

// An HF activation name (ACT2FN) as attnserve's: relu, gelu (exact),
// gelu_new / gelu_pytorch_tanh (tanh form), swish / silu. INVALID_ARGUMENT
// "config.json: "<key>" = "<name>" is not supported ..." otherwise.
absl::StatusOr<Activation> HfActivation(absl::string_view key,
                                        absl::string_view name);

// The two families (hf_bart_layout.cc, hf_t5_layout.cc); ParseHfConfig and
// LoadHfWeights dispatch on model_type. `r` reads config.json's top-level
// object (ParseHfConfig has parsed it and read "model_type").
absl::StatusOr<HfModelConfig> ParseHfBartConfig(ConfigReader& r,
                                                absl::string_view model_type);
absl::StatusOr<ModelWeights> LoadHfBartWeights(
    const TensorSource& source, HfModelConfig* hf,
    std::shared_ptr<const TensorSource> keep_open = nullptr);
absl::StatusOr<HfModelConfig> ParseHfT5Config(ConfigReader& r);
absl::StatusOr<ModelWeights> LoadHfT5Weights(
    const TensorSource& source, HfModelConfig* hf,
    std::shared_ptr<const TensorSource> keep_open = nullptr);

// What the families share.

// pad_token_id, eos_token_id and decoder_start_token_id, each an integer in
// [0, kMaxVocab] (config_reader.h) or a list whose first is taken; each
// out-parameter holds the family's default and is left so when its key is
// absent or null.
absl::Status ReadHfTokenIds(ConfigReader& r, int* pad_id, int* eos_id,
                            int* decoder_start_id);

// ConfigKeyNames with the names every family gives the token ids
// (pad_token_id, eos_token_id, decoder_start_token_id); a family sets the
// rest.
ConfigKeyNames HfKeyNames();

// The last step of every family's parse, once hf->config is filled in:
// CheckModelConfig (its errors name the keys as `keys` does), then
// hf->generation_defaults from the config's ids (decoder start, EOS, pad)
// and transformers' max_length of 20.
absl::Status FinishHfConfig(const ConfigKeyNames& keys, HfModelConfig* hf);

}  // namespace attnserve::engine
