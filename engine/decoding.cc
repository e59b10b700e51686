#include "engine/decoding.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace attnserve::engine {
namespace {

// Values per block of the scans below that skip blocks which cannot matter.
constexpr int64_t kBlock = 16;

}  // namespace

int32_t ArgMax(const float* values, int64_t n) {
  int32_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    // Skip whole blocks that hold nothing larger (a branch-free test GCC
    // vectorises): a batch-32 step takes the arg-max of 32 x 32000 logits.
    if (!std::isnan(values[best])) {
      const float current = values[best];
      while (i + kBlock <= n) {
        bool any = false;
        for (int64_t j = 0; j < kBlock; ++j) any |= values[i + j] > current;
        if (any) break;
        i += kBlock;
      }
      if (i >= n) break;
    }
    // Strictly greater keeps the lowest index on ties; `!(best >= v)` would let
    // NaN win.
    if (values[i] > values[best] || std::isnan(values[best]))
      best = static_cast<int32_t>(i);
  }
  return best;
}

namespace {

// The `count` (<= n) best indices of values[0, n), best first: higher value,
// then lower index; NaN ranks below every number. One pass keeping a small
// sorted list; once it is full, a value has to beat its last entry's, which
// nearly every value fails at one comparison, 16 at a time (4 rows of 32000:
// 60 us, where a partial sort of all ids took 130 us).
void TopTokens(const float* values, int64_t n, int64_t count,
               std::vector<int32_t>* best) {
  // Indices arrive in ascending order, so an equal value never outranks an
  // earlier one: ties keep the lower index.
  auto outranks = [values](int32_t a, int32_t b) {
    return !std::isnan(values[a]) &&
           (std::isnan(values[b]) || values[a] > values[b]);
  };
  auto insert = [&](int32_t i) {
    best->push_back(i);
    for (size_t j = best->size() - 1; j > 0 && outranks(i, (*best)[j - 1]);
         --j) {
      std::swap((*best)[j], (*best)[j - 1]);
    }
  };
  best->clear();
  if (count <= 0) return;
  const int32_t fill = static_cast<int32_t>(std::min(count, n));
  for (int32_t i = 0; i < fill; ++i) insert(i);
  // `values[i] > last` is false for a NaN value, as it must be; a NaN last
  // entry loses to any number, so it stands as -inf with `last_nan` set.
  float last = 0.0f;
  bool last_nan = false;
  auto update_last = [&] {
    last = values[best->back()];
    last_nan = std::isnan(last);
    if (last_nan) last = -std::numeric_limits<float>::infinity();
  };
  update_last();
  for (int32_t i = fill; i < n; ++i) {
    // Skip whole blocks that cannot enter: a branch-free test GCC vectorises.
    while (!last_nan && i + kBlock <= n) {
      bool any = false;
      for (int32_t j = 0; j < kBlock; ++j) any |= values[i + j] > last;
      if (any) break;
      i += kBlock;
    }
    if (i >= n) break;
    const float v = values[i];
    if (v > last || (last_nan && !std::isnan(v))) {
      best->pop_back();
      insert(i);
      update_last();
    }
  }
}

}  // namespace

std::vector<BeamCandidate> TopBeamCandidates(
    const float* log_probs, int64_t vocab,
    absl::Span<const double> cum_log_probs, int count) {
  auto better = [](const BeamCandidate& a, const BeamCandidate& b) {
    // NaN last, as in TopTokens, so that the order stays strict and weak.
    const bool a_nan = std::isnan(a.cum_log_prob);
    if (a_nan != std::isnan(b.cum_log_prob)) return !a_nan;
    if (!a_nan && a.cum_log_prob != b.cum_log_prob)
      return a.cum_log_prob > b.cum_log_prob;
    if (a.hypothesis != b.hypothesis) return a.hypothesis < b.hypothesis;
    return a.token < b.token;
  };
  std::vector<BeamCandidate> all;
  const int64_t per_row = std::min<int64_t>(count, vocab);
  std::vector<int32_t> ids;
  for (size_t h = 0; h < cum_log_probs.size(); ++h) {
    const float* row = log_probs + h * vocab;
    // A row's best `count` tokens suffice: the global top `count` cannot use
    // more of them.
    TopTokens(row, vocab, per_row, &ids);
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
