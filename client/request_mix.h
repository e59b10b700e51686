#pragma once
// What attnserve-bench sends: source lengths and max_new_tokens drawn from
// distributions, random source ids from the model's vocabulary (or sources
// from a file), all from one seeded generator so that a run's requests are
// reproducible.

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "attnserve/v1/attnserve.pb.h"
#include "client/generation_controls.h"

namespace attnserve::client {

// A distribution over non-negative integers (lengths, token counts):
//   "16"                 always 16
//   "8:32"               uniform over [8, 32]
//   "4:16@3,64:128@1"    a mixture: a component picked with probability
//                        proportional to its weight (default 1), then uniform
//                        over its range; e.g. 3/4 short and 1/4 long requests.
class LengthDistribution {
 public:
  // Always `value`.
  explicit LengthDistribution(int value = 0);
  // INVALID_ARGUMENT names the part of `spec` at fault.
  static absl::StatusOr<LengthDistribution> Parse(absl::string_view spec);

  int Sample(std::mt19937_64& rng) const;
  int min() const;
  int max() const;
  // The canonical spec, e.g. "8:32" or "4:16@3,64:128@1".
  std::string ToString() const;

 private:
  struct Range {
    int min;
    int max;
    double weight;
  };
  explicit LengthDistribution(std::vector<Range> ranges);

  std::vector<Range> ranges_;  // non-empty; weights > 0
};

// One source sequence: ids, or text for a model with a tokenizer.
struct Source {
  std::vector<int32_t> ids;
  std::string text;
};

// One source per non-blank line: comma-separated ids ("5,17,42"), or with
// `text` the line itself. INVALID_ARGUMENT names the line at fault; no sources
// at all is an error too.
absl::StatusOr<std::vector<Source>> ParseSources(absl::string_view contents,
                                                 bool text);
absl::StatusOr<std::vector<Source>> ReadSourcesFile(const std::string& path,
                                                    bool text);

// What random sources need from the model's config.json
// (GetModelInfoResponse.config_json): the vocabulary size and the special ids
// (pad, bos, eos, decoder start) that a real source would not contain.
struct ModelVocab {
  int vocab_size = 0;
  std::vector<int32_t> special_ids;
};
absl::StatusOr<ModelVocab> ParseModelVocab(absl::string_view config_json);

struct RequestMixOptions {
  LengthDistribution src_len{16};         // random sources; each >= 1
  LengthDistribution max_new_tokens{16};  // 0 = the server's default
  // When non-empty, sources are taken from here in order (wrapping around)
  // instead of random ones.
  std::vector<Source> sources;
  // Random source ids are uniform over [0, vocab_size) minus `excluded_ids`.
  int vocab_size = 0;
  std::vector<int32_t> excluded_ids;
  int beam_size = 0;
  // Sent with every request (sampling, penalties, hypotheses, ...).
  GenerationControls controls;
  uint64_t seed = 1;  // of the mix's random draws, not of sampling
};

// Makes the bench's requests. Not thread-safe (the load generator calls it
// under its lock).
class RequestMix {
 public:
  // INVALID_ARGUMENT when random sources are asked for without a usable
  // vocabulary, or src_len allows 0, or a count is negative, or the controls
  // do not parse (naming the flag).
  static absl::StatusOr<RequestMix> Create(RequestMixOptions options);

  v1::GenerateRequest Next();

 private:
  RequestMix(RequestMixOptions options, v1::GenerateRequest controls);

  int32_t RandomId();

  RequestMixOptions options_;
  // options_.controls as request fields, which every request starts from.
  v1::GenerateRequest controls_;
  std::mt19937_64 rng_;
  size_t next_source_ = 0;
};

}  // namespace attnserve::client
