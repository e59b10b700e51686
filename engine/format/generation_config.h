#pragma once
// How a model decodes by default: generation_config.json (Hugging Face's
// GenerationConfig keys), falling back to config.json and then to the
// family's defaults, as docs/hf-reference.md ("Decoding") specifies. Requests
// override these; the decoding rules themselves live in engine/decode/.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace attnserve::engine {

// Beam search's stopping rule (transformers' early_stopping).
enum class EarlyStopping {
  kHeuristic,  // false: stop once the best running beam cannot win
  kTrue,       // stop once num_beams hypotheses are finished
  kNever,      // like kHeuristic, scored at the longest possible length
};

struct GenerationConfig {
  int32_t decoder_start_id = 0;
  std::vector<int32_t> eos_ids;  // at least one; eos_ids[0] == config.eos_id
  int32_t pad_id = 0;
  int32_t forced_bos_id = -1;           // -1: none
  std::vector<int32_t> forced_eos_ids;  // forced at the last allowed token
  std::vector<std::vector<int32_t>> bad_words_ids;  // never generated
  // Counts the decoder start token, so at most max_length - 1 tokens are
  // generated; 0: not set (the server's own limit applies).
  int max_length = 0;
  int min_length = 0;  // counts the start token too
  int no_repeat_ngram_size = 0;
  int num_beams = 1;
  float length_penalty = 1.0f;
  EarlyStopping early_stopping = EarlyStopping::kHeuristic;
  // The generation controls (docs/hf-reference.md "Generation controls"),
  // with transformers' GenerationConfig defaults: top_k is 50 there, and
  // applies whenever a request samples without setting its own.
  bool do_sample = false;
  float temperature = 1.0f;         // > 0
  int top_k = 50;                   // >= 0; 0 = off
  float top_p = 1.0f;               // (0, 1]
  float repetition_penalty = 1.0f;  // > 0
  int min_new_tokens = 0;           // 0: not set
  std::vector<int32_t> suppress_tokens;
  int num_return_sequences = 1;
};

// Resolves a model's decoding settings, key by key: generation_config.json
// (`generation_json`, "" when the directory has none), else the same key in a
// Hugging Face config.json (`config_json`, "" for attnserve directories), else
// `defaults` (the family's defaults, or an attnserve config's
// decoder_start_id / eos_id / pad_id; a layout whose family has no
// decoder_start_token_id default puts bos_token_id there, as HF falls back to
// it). max_new_tokens, when set,
// gives max_length = 1 + max_new_tokens. A bad_words_ids word that is a single
// EOS id is dropped (HF never bans EOS).
//
// Errors, INVALID_ARGUMENT naming the file and the key: a value of the wrong
// type or out of range (ids in [0, vocab_size), temperature > 0, top_p in
// (0, 1], repetition_penalty > 0, ...); do_sample with num_beams > 1 (beam
// sampling); a setting that would change the output but is not implemented
// (typical_p, num_beam_groups, diversity_penalty, begin_suppress_tokens, ...
// as docs/hf-reference.md "Decoding" lists) unless it holds its neutral
// value or null. Any other key is ignored.
absl::StatusOr<GenerationConfig> ParseGenerationConfig(
    absl::string_view generation_json, absl::string_view config_json,
    const GenerationConfig& defaults, int vocab_size);

}  // namespace attnserve::engine
