#pragma once
// Decoding decisions as pure functions over log-probabilities, separate from
// the network (as CTranslate2's decoding.h): arg-max, beam candidate selection,
// length penalty.

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "engine/decode/generator.h"

namespace attnserve::engine {

// A token and its score (a logit or a log-probability).
struct TokenScore {
  int32_t token = 0;
  float score = 0;
};

// The best `keep` tokens of one row of scores that arrives in slices of
// ascending token ids: best first, the higher score, then the lower id
// (model-format.md's tie rule); NaN ranks below every number. One pass keeping
// a short sorted list, skipping blocks of scores that cannot enter it.
class TopTokens {
 public:
  explicit TopTokens(int keep) : keep_(keep) {}
  // scores[0, n) are those of tokens [first, first + n); `first` is past every
  // token added before.
  void Add(const float* scores, int32_t first, int64_t n);
  // Up to `keep` tokens, best first.
  const std::vector<TokenScore>& best() const { return best_; }

 private:
  void Insert(TokenScore t);

  int keep_;
  std::vector<TokenScore> best_;
};

// log(sum_i exp(log_sum_exps[i])): the log-sum-exp of a row from those of its
// slices.
float CombineLogSumExps(absl::Span<const float> log_sum_exps);

struct BeamCandidate {
  int hypothesis = 0;  // index of the parent among the live hypotheses
  int32_t token = 0;
  float log_prob = 0;       // log p(token | parent)
  double cum_log_prob = 0;  // parent's cumulative log-prob + log_prob
};

// The best `count` (parent, token) extensions by cumulative log-prob over every
// live hypothesis, from each hypothesis's best tokens with their log-probs
// (row_best[h], best first as TopTokens gives them: at least `count` of them,
// or the whole row). Order: higher cumulative log-prob first (NaN last); ties
// go to the lower hypothesis index, then the lower token id.
std::vector<BeamCandidate> TopBeamCandidates(
    absl::Span<const std::vector<TokenScore>> row_best,
    absl::Span<const double> cum_log_probs, int count);

// sum(log p) / length^penalty (length >= 1).
double LengthPenalisedScore(double cum_log_prob, size_t length, float penalty);

struct FinishedHypothesis {
  std::vector<int32_t> ids;
  std::vector<float> log_probs;
  double score = 0;  // length-penalised
  FinishReason finish_reason = FinishReason::kNone;
};

// Index of the best score; the earlier one wins a tie. `finished` must not be
// empty.
size_t BestFinished(const std::vector<FinishedHypothesis>& finished);

}  // namespace attnserve::engine
