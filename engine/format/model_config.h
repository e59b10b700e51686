#pragma once
// config.json of a model directory, as specified in docs/model-format.md.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace attnserve::engine {

enum class Activation { kRelu, kGelu, kSwish };
enum class NormPlacement { kPost, kPre };
enum class PositionalEncoding {
  kSinusoidal,        // interleaved: PE[p,2i]=sin, PE[p,2i+1]=cos
  kSinusoidalConcat,  // first d/2 dims sin, last d/2 cos
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

  int head_dim() const { return d_model / num_heads; }
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

const char* ActivationName(Activation a);
const char* NormPlacementName(NormPlacement n);
const char* PositionalEncodingName(PositionalEncoding p);

}  // namespace attnserve::engine
