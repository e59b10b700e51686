#pragma once
// How a model decodes by default: generation_config.json (Hugging Face's
// GenerationConfig keys), falling back to config.json and then to the
// family's defaults, as docs/hf-reference.md ("Decoding") specifies. Requests
// override these; the decoding rules themselves live in engine/decode/.

#include <cstdint>
#include <vector>

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
};

}  // namespace attnserve::engine
