#include "engine/decode/decode_defaults.h"

namespace attnserve::engine {

DecodeOptions DecodeOptionsFromGeneration(const GenerationConfig& generation) {
  DecodeOptions options;
  if (generation.max_length > 1)
    options.max_new_tokens = generation.max_length - 1;
  options.beam_size = generation.num_beams;
  options.length_penalty = generation.length_penalty;
  // A config without EOS ids is a default-constructed one, not a model's: its
  // start id 0 means nothing, so the model's stays.
  if (!generation.eos_ids.empty())
    options.decoder_start_id = generation.decoder_start_id;
  options.eos_ids = generation.eos_ids;
  options.forced_bos_id = generation.forced_bos_id;
  options.forced_eos_ids = generation.forced_eos_ids;
  options.bad_words = generation.bad_words_ids;
  options.min_length = generation.min_length;
  options.no_repeat_ngram_size = generation.no_repeat_ngram_size;
  options.early_stopping = generation.early_stopping;
  options.do_sample = generation.do_sample;
  options.temperature = generation.temperature;
  options.top_k = generation.top_k;
  options.top_p = generation.top_p;
  options.repetition_penalty = generation.repetition_penalty;
  options.min_new_tokens = generation.min_new_tokens;
  options.suppress_token_ids = generation.suppress_tokens;
  options.num_return_sequences = generation.num_return_sequences;
  return options;
}

}  // namespace attnserve::engine
