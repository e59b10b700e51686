#include "engine/decoding.h"

#include <algorithm>
#include <cmath>

namespace attnserve::engine {

int32_t ArgMax(const float* values, int64_t n) {
  int32_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    // Strictly greater keeps the lowest index on ties; `!(best >= v)` would let
    // NaN win.
    if (values[i] > values[best] || std::isnan(values[best]))
      best = static_cast<int32_t>(i);
  }
  return best;
}

std::vector<BeamCandidate> TopBeamCandidates(
    const float* log_probs, int64_t vocab,
    absl::Span<const double> cum_log_probs, int count) {
  auto better = [](const BeamCandidate& a, const BeamCandidate& b) {
    if (a.cum_log_prob != b.cum_log_prob)
      return a.cum_log_prob > b.cum_log_prob;
    if (a.hypothesis != b.hypothesis) return a.hypothesis < b.hypothesis;
    return a.token < b.token;
  };
  std::vector<BeamCandidate> all;
  const int64_t per_row = std::min<int64_t>(count, vocab);
  std::vector<int32_t> ids(vocab);
  for (size_t h = 0; h < cum_log_probs.size(); ++h) {
    const float* row = log_probs + h * vocab;
    // A row's best `count` tokens suffice: the global top `count` cannot use
    // more of them.
    for (int64_t i = 0; i < vocab; ++i) ids[i] = static_cast<int32_t>(i);
    std::partial_sort(ids.begin(), ids.begin() + per_row, ids.end(),
                      [row](int32_t a, int32_t b) {
                        return row[a] != row[b] ? row[a] > row[b] : a < b;
                      });
    for (int64_t i = 0; i < per_row; ++i) {
      BeamCandidate c;
      c.hypothesis = static_cast<int>(h);
      c.token = ids[i];
      c.log_prob = row[ids[i]];
      c.cum_log_prob = cum_log_probs[h] + row[ids[i]];
      all.push_back(c);
    }
  }
  std::sort(all.begin(), all.end(), better);
  if (static_cast<int>(all.size()) > count) all.resize(count);
  return all;
}

double LengthPenalisedScore(double cum_log_prob, size_t length, float penalty) {
  return cum_log_prob /
         std::pow(static_cast<double>(std::max<size_t>(length, 1)), penalty);
}

size_t BestFinished(const std::vector<FinishedHypothesis>& finished) {
  size_t best = 0;
  for (size_t i = 1; i < finished.size(); ++i) {
    if (finished[i].score > finished[best].score) best = i;
  }
  return best;
}

}  // namespace attnserve::engine
