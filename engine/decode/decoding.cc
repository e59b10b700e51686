#include "engine/decode/decoding.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace attnserve::engine {
namespace {

// Scores per block of TopTokens::Add's skipping test.
constexpr int64_t kBlock = 16;

// a ranks before b: the higher score, NaN below every number. (Ids arrive in
// ascending order, so an equal score never ranks before an earlier one: ties
// keep the lower id.)
bool Outranks(float a, float b) {
  return !std::isnan(a) && (std::isnan(b) || a > b);
}

}  // namespace

void TopTokens::Insert(TokenScore t) {
  best_.push_back(t);
  for (size_t j = best_.size() - 1;
       j > 0 && Outranks(t.score, best_[j - 1].score); --j) {
    std::swap(best_[j], best_[j - 1]);
  }
}

void TopTokens::Add(const float* scores, int32_t first, int64_t n) {
  if (keep_ <= 0) return;
  int64_t i = 0;
  for (; i < n && static_cast<int>(best_.size()) < keep_; ++i) {
    Insert({first + static_cast<int32_t>(i), scores[i]});
  }
  for (; i < n; ++i) {
    // A NaN last entry loses to any number; NaN scores never enter a full list
    // (`v > last` is false for them).
    const float last = best_.back().score;
    if (!std::isnan(last)) {
      // Skip whole blocks that cannot enter: a branch-free test GCC
      // vectorises, so most scores cost one vector comparison.
      while (i + kBlock <= n) {
        bool any = false;
        for (int64_t j = 0; j < kBlock; ++j) any |= scores[i + j] > last;
        if (any) break;
        i += kBlock;
      }
      if (i >= n) break;
    }
    if (Outranks(scores[i], last)) {
      best_.pop_back();
      Insert({first + static_cast<int32_t>(i), scores[i]});
    }
  }
}

float CombineLogSumExps(absl::Span<const float> log_sum_exps) {
  if (log_sum_exps.size() == 1) return log_sum_exps[0];
  float max = log_sum_exps[0];
  for (float v : log_sum_exps) max = std::fmax(max, v);
  // All -inf (every logit -inf) or +inf: nothing to rescale.
  if (std::isinf(max)) return max;
  double sum = 0.0;
  for (float v : log_sum_exps) sum += std::exp(static_cast<double>(v) - max);
  return static_cast<float>(max + std::log(sum));
}

std::vector<BeamCandidate> TopBeamCandidates(
    absl::Span<const std::vector<TokenScore>> row_best,
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
  for (size_t h = 0; h < cum_log_probs.size(); ++h) {
    // A row's best `count` tokens suffice: the global top `count` cannot use
    // more of them.
    const size_t per_row = std::min<size_t>(count, row_best[h].size());
    for (size_t i = 0; i < per_row; ++i) {
      BeamCandidate c;
      c.hypothesis = static_cast<int>(h);
      c.token = row_best[h][i].token;
      c.log_prob = row_best[h][i].score;
      c.cum_log_prob = cum_log_probs[h] + c.log_prob;
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
