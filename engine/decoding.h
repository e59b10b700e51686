#pragma once
// Decoding decisions as pure functions over log-probabilities, separate from
// the network (as CTranslate2's decoding.h): arg-max, beam candidate selection,
// length penalty.

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "engine/generator.h"

namespace attnserve::engine {

// Index of the largest value; the lowest index wins a tie (model-format.md).
// NaN never wins.
int32_t ArgMax(const float* values, int64_t n);

struct BeamCandidate {
  int hypothesis = 0;  // index of the parent among the live hypotheses
  int32_t token = 0;
  float log_prob = 0;       // log p(token | parent)
  double cum_log_prob = 0;  // parent's cumulative log-prob + log_prob
};

// The best `count` (parent, token) extensions by cumulative log-prob over every
// live hypothesis: log_probs is [cum_log_probs.size(), vocab]. Order: higher
// cumulative log-prob first; ties go to the lower hypothesis index, then the
// lower token id.
std::vector<BeamCandidate> TopBeamCandidates(
    const float* log_probs, int64_t vocab,
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
