#include "client/generation_control_flags.h"

#include <optional>

#include "absl/flags/flag.h"

// Help texts serve both tools; docs/client.md says what each does with them.
ABSL_FLAG(std::optional<bool>, do_sample, std::nullopt,
          "Sample (true) or not (false) whatever the model's default; unset = "
          "sample when --temperature, --top_k or --top_p is given.");
ABSL_FLAG(float, temperature, 0,
          "Sampling temperature (> 0); 0 = the model's default.");
ABSL_FLAG(int, top_k, 0,
          "Sample among the top_k most likely tokens; 0 = the model's "
          "default.");
ABSL_FLAG(float, top_p, 0,
          "Nucleus sampling, in (0, 1]; 0 = the model's default.");
ABSL_FLAG(float, repetition_penalty, 0,
          "> 0, 1 = off; penalises tokens already generated; 0 = the model's "
          "default.");
ABSL_FLAG(int, no_repeat_ngram_size, 0,
          "No n-gram of this size occurs twice; 0 = the model's default.");
ABSL_FLAG(int, min_new_tokens, 0,
          "No EOS before this many tokens; 0 = the model's default.");
ABSL_FLAG(std::string, suppress_token_ids, "",
          "Token ids never generated, comma-separated.");
ABSL_FLAG(std::string, bad_words, "",
          "Token sequences never generated: words separated by ';', their ids "
          "by ',' (e.g. \"5,6;9\").");
ABSL_FLAG(int, num_return_sequences, 0,
          "Hypotheses per request: the n best beams, or n samples (n decoder "
          "rows); 0 = the model's default (1). attnserve-cli prints each on "
          "its own output line; attnserve-bench counts their tokens in "
          "generated_tokens.");
ABSL_FLAG(int, top_log_probs, 0,
          "Also ask for the best N tokens and their log-probs at every step "
          "(attnserve-cli prints them on stderr); 0 = none.");

namespace attnserve::client {

GenerationControls GenerationControlsFromFlags() {
  GenerationControls controls;
  controls.do_sample = absl::GetFlag(FLAGS_do_sample);
  controls.temperature = absl::GetFlag(FLAGS_temperature);
  controls.top_k = absl::GetFlag(FLAGS_top_k);
  controls.top_p = absl::GetFlag(FLAGS_top_p);
  controls.repetition_penalty = absl::GetFlag(FLAGS_repetition_penalty);
  controls.no_repeat_ngram_size = absl::GetFlag(FLAGS_no_repeat_ngram_size);
  controls.min_new_tokens = absl::GetFlag(FLAGS_min_new_tokens);
  controls.suppress_token_ids = absl::GetFlag(FLAGS_suppress_token_ids);
  controls.bad_words = absl::GetFlag(FLAGS_bad_words);
  controls.num_return_sequences = absl::GetFlag(FLAGS_num_return_sequences);
  controls.top_log_probs = absl::GetFlag(FLAGS_top_log_probs);
  return controls;
}

std::vector<std::string> GenerationControlFlagNames(
    absl::string_view seed_flag) {
  return {"do_sample",
          "temperature",
          "top_k",
          "top_p",
          std::string(seed_flag),
          "repetition_penalty",
          "no_repeat_ngram_size",
          "min_new_tokens",
          "suppress_token_ids",
          "bad_words",
          "num_return_sequences",
          "top_log_probs"};
}

}  // namespace attnserve::client
