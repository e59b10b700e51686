#pragma once
// The generation controls the tools send (GenerateRequest's fields of the same
// names: sampling, penalties, bans, hypotheses, top log-probs), as their flags
// give them. attnserve-cli sends them with its one request, attnserve-bench
// with every request of its mix. The server checks their bounds; these checks
// catch only what a flag cannot mean (a negative count, a list that does not
// parse), naming the flag.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "attnserve/v1/attnserve.pb.h"

namespace attnserve::client {

struct GenerationControls {
  // 0 (and empty) = unset: the model's defaults.
  float temperature = 0;
  int top_k = 0;
  float top_p = 0;
  uint64_t seed = 0;  // 0: the server picks one (and reports it)
  float repetition_penalty = 0;
  int no_repeat_ngram_size = 0;
  int min_new_tokens = 0;
  std::string suppress_token_ids;  // "5,17,42"
  std::string bad_words;           // words by ';', their ids by ',': "5,6;9"
  int num_return_sequences = 0;
  int top_log_probs = 0;
  std::optional<bool> do_sample;  // unset: as the other fields say
};

// Copies the controls into `request`. INVALID_ARGUMENT naming the flag (as
// --name) when a count is negative or a list does not parse; `request` is
// then partly filled.
absl::Status ApplyGenerationControls(const GenerationControls& controls,
                                     v1::GenerateRequest* request);

// One line describing the set controls, for a tool's report ("temperature=0.7
// top_k=50 num_return_sequences=2"); empty when none is set.
std::string DescribeGenerationControls(const GenerationControls& controls);

}  // namespace attnserve::client
