#pragma once
// A model's decoding defaults as DecodeOptions: what a request that leaves a
// setting unset decodes with.

#include "engine/decode/generator.h"
#include "engine/format/generation_config.h"

namespace attnserve::engine {

// The rules of `generation` (docs/hf-reference.md, "Decoding") as
// DecodeOptions: decoder_start_id, eos_ids, forced_bos_id, forced_eos_ids,
// bad_words (bad_words_ids), min_length, no_repeat_ngram_size, beam_size
// (num_beams), length_penalty and early_stopping, and the generation
// controls do_sample, temperature, top_k (HF's default 50 unless the config
// sets it: it applies when sampling), top_p, repetition_penalty,
// min_new_tokens, suppress_token_ids (suppress_tokens) and
// num_return_sequences. max_new_tokens is
// max_length - 1 when max_length > 1 (HF's max_length counts the start token),
// else DecodeOptions' default; callers with a limit of their own (the server's
// max_new_tokens_limit) cap it. target_prefix stays empty: it is per request.
DecodeOptions DecodeOptionsFromGeneration(const GenerationConfig& generation);

}  // namespace attnserve::engine
