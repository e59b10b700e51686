#pragma once
// config.json of a model directory, as specified in docs/model-format.md.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace attnserve::engine {

// "gelu" is the exact (erf) form; "gelu_tanh" the tanh approximation
// (Hugging Face's gelu_new / gelu_pytorch_tanh, T5 v1.1's gated-gelu).
enum class Activation { kRelu, kGelu, kSwish, kGeluTanh };
enum class NormPlacement { kPost, kPre };
// kLayerNorm: (x - mean) / sqrt(var + eps) * weight + bias.
// kRmsNorm: x / sqrt(mean(x^2) + eps) * weight, no bias (T5).
enum class NormKind { kLayerNorm, kRmsNorm };
enum class PositionalEncoding {
  kSinusoidal,        // interleaved: PE[p,2i]=sin, PE[p,2i+1]=cos
  kSinusoidalConcat,  // first d/2 dims sin, last d/2 cos
  // fairseq's (M2M100, NLLB): [sin | cos] with frequencies
  // exp(-i ln(10000) / (d/2 - 1)), taken at position_offset + the count of
  // non-pad tokens so far; a pad_id token gets a zero vector.
  kSinusoidalFairseq,
  // Tables encoder.embed_positions.weight / decoder.embed_positions.weight,
  // [max_positions, d_model], row = position (BART, mBART; Marian's stored
  // sinusoid).
  kLearned,
  kNone,  // no absolute positions (T5: relative attention bias only)
};

struct ModelConfig {
  int d_model = 0;
  int num_heads = 0;
  int encoder_layers = 0;
  int decoder_layers = 0;
  int ffn_dim = 0;
  int vocab_size = 0;
  int max_positions = 1024;
  Activation activation = Activation::kRelu;
  NormPlacement norm_placement = NormPlacement::kPost;
  float layer_norm_eps = 1e-5f;
  bool scale_embedding = true;
  PositionalEncoding positional_encoding = PositionalEncoding::kSinusoidal;
  bool tie_output_embedding = true;
  int pad_id = 0;
  int bos_id = 1;
  int eos_id = 2;
  int decoder_start_id = 1;  // defaults to bos_id when absent
  bool add_eos_to_source = false;

  // Additions for Hugging Face architectures (docs/model-format.md); each
  // default is the paper's layer, so older configs mean what they meant.
  int attention_head_dim = 0;  // 0: d_model / num_heads (T5's d_kv otherwise)
  NormKind norm_kind = NormKind::kLayerNorm;
  bool linear_bias = true;      // attention and FFN linears have biases
  bool gated_ffn = false;       // fc2(act(fc1 x) * (fc1_linear x))
  bool scale_attention = true;  // scores / sqrt(head_dim); T5: false
  bool embedding_norm = false;  // a norm after embedding + position (BART)
  int position_offset = 0;      // kSinusoidalFairseq: pad_id + 1
  // > 0: T5's relative position bias, [buckets, num_heads] per stack, added
  // to every self-attention layer's scores.
  int relative_attention_num_buckets = 0;
  int relative_attention_max_distance = 128;
  // The decoder's final state is multiplied by this before the output
  // projection (T5 with a tied head: d_model^-0.5).
  float output_scale = 1.0f;

  int head_dim() const {
    return attention_head_dim > 0 ? attention_head_dim : d_model / num_heads;
  }
  // Width of the projected queries, keys and values (and of the KV caches):
  // num_heads * head_dim(), which is d_model unless attention_head_dim says
  // otherwise (the parser makes num_heads divide d_model then).
  int attention_dim() const {
    return attention_head_dim > 0 ? attention_head_dim * num_heads : d_model;
  }
};

// Parses and validates config.json text. Errors name the offending key (missing
// required key, wrong JSON type, out-of-range or inconsistent value such as
// d_model % num_heads != 0, special ids outside [0, vocab_size)). Unknown keys
// are not errors: each one adds a line to *warnings (when non-null).
absl::StatusOr<ModelConfig> ParseModelConfig(
    absl::string_view json_text, std::vector<std::string>* warnings);

// Every top-level key of config.json that attnserve reads: the engine's (this
// parser) and the server tokenizer's ("tokenizer", "vocab_file"). Any other key
// is ignored with a warning. The parser checks each key it reads against this
// list, and tests/docs checks that docs/model-format.md documents each one, so
// neither can drift from the code.
absl::Span<const char* const> KnownConfigKeys();

// The names a config file gives the keys that CheckModelConfig's messages
// mention: the attnserve format's by default; a Hugging Face layout passes its
// own ("encoder_attention_heads", "pad_token_id", ...), so each error names a
// key of the file the user has.
struct ConfigKeyNames {
  const char* file = "config.json";
  const char* d_model = "d_model";
  const char* num_heads = "num_heads";
  const char* attention_head_dim = "attention_head_dim";
  const char* position_offset = "position_offset";
  const char* relative_attention_num_buckets = "relative_attention_num_buckets";
  const char* relative_attention_max_distance =
      "relative_attention_max_distance";
  const char* pad_id = "pad_id";
  const char* bos_id = "bos_id";
  const char* eos_id = "eos_id";
  const char* decoder_start_id = "decoder_start_id";
};

// The checks across keys of a config whose single values are in range:
// num_heads divides d_model when attention_head_dim is 0 (else num_heads *
// attention_head_dim <= 65536); d_model even for the sinusoidal encodings
// (>= 4 for sinusoidal_fairseq); position_offset 0 unless sinusoidal;
// relative buckets 0 or >= 4 with max_distance > buckets / 2; special ids in
// [0, vocab_size). INVALID_ARGUMENT naming the key (as `keys` names it).
absl::Status CheckModelConfig(const ModelConfig& c, const ConfigKeyNames& keys);

const char* ActivationName(Activation a);
const char* NormPlacementName(NormPlacement n);
const char* PositionalEncodingName(PositionalEncoding p);
const char* NormKindName(NormKind n);

}  // namespace attnserve::engine
