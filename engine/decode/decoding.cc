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

BeamSettings MakeBeamSettings(const DecodeOptions& options,
                              const std::vector<int32_t>& eos_ids) {
  BeamSettings s;
  s.beam_size = options.beam_size;
  s.max_new_tokens = options.max_new_tokens;
  s.length_penalty = options.length_penalty;
  s.early_stopping = options.early_stopping;
  s.candidates =
      std::max<int>(2, 1 + static_cast<int>(eos_ids.size())) * s.beam_size;
  if (!options.ignore_eos) s.eos_ids = eos_ids;
  s.legacy = options.legacy_beam_search;
  if (s.legacy) s.candidates = 2 * s.beam_size;
  return s;
}

namespace {

// `c` ending its parent's path: by EOS (the EOS token is kept apart from the
// ids) or by length (the token is the path's last). `generated` tokens count
// for the length penalty, the EOS included.
FinishedHypothesis FinishCandidate(
    const BeamSettings& settings, const BeamPath& parent,
    const BeamCandidate& c, bool eos, int generated,
    absl::Span<const std::vector<TokenLogProb>> row_top) {
  FinishedHypothesis f;
  f.ids = parent.ids;
  f.log_probs = parent.log_probs;
  f.top_log_probs = parent.top_log_probs;
  if (!eos && !row_top.empty())
    f.top_log_probs.push_back(row_top[c.hypothesis]);
  if (eos) {
    f.finish_reason = FinishReason::kEos;
    f.eos_id = c.token;
    f.eos_log_prob = c.log_prob;
  } else {
    f.finish_reason = FinishReason::kLength;
    f.ids.push_back(c.token);
    f.log_probs.push_back(c.log_prob);
  }
  f.score =
      LengthPenalisedScore(c.cum_log_prob, generated, settings.length_penalty);
  return f;
}

// Every live path finished by length, best first: the answer when no candidate
// was ever finite.
void FinishByLength(const BeamSettings& settings,
                    absl::Span<const BeamPath> live,
                    std::vector<FinishedHypothesis>* finished) {
  for (const BeamPath& p : live) {
    FinishedHypothesis f;
    f.ids = p.ids;
    f.log_probs = p.log_probs;
    f.top_log_probs = p.top_log_probs;
    f.score = LengthPenalisedScore(p.cum_log_prob, p.ids.size(),
                                   settings.length_penalty);
    f.finish_reason = FinishReason::kLength;
    finished->push_back(std::move(f));
  }
  std::stable_sort(
      finished->begin(), finished->end(),
      [](const FinishedHypothesis& a, const FinishedHypothesis& b) {
        return a.score > b.score;
      });
}

// DecodeOptions::legacy_beam_search's step.
BeamStepOutcome LegacyBeamSearchStep(
    const BeamSettings& settings, int step, absl::Span<const BeamPath> live,
    const std::vector<BeamCandidate>& candidates,
    std::vector<FinishedHypothesis>* finished,
    absl::Span<const std::vector<TokenLogProb>> row_top) {
  const size_t beam = static_cast<size_t>(settings.beam_size);
  const int generated = step + 1;
  auto finish = [&](const BeamCandidate& c, bool eos) {
    finished->push_back(FinishCandidate(settings, live[c.hypothesis], c, eos,
                                        generated, row_top));
  };
  BeamStepOutcome out;
  for (const BeamCandidate& c : candidates) {
    if (!std::isfinite(c.cum_log_prob)) break;
    if (std::binary_search(settings.eos_ids.begin(), settings.eos_ids.end(),
                           c.token)) {
      if (finished->size() < beam) finish(c, true);
    } else if (out.children.size() < beam) {
      out.children.push_back(c);
    }
  }
  out.done = finished->size() >= beam || out.children.empty() ||
             step + 1 >= settings.max_new_tokens;
  if (!out.done) return out;
  if (finished->size() < beam) {
    for (const BeamCandidate& c : out.children) finish(c, false);
  }
  if (!finished->empty()) {
    // The best first; the earliest finished wins a tie.
    const auto best = finished->begin() + BestFinished(*finished);
    std::rotate(finished->begin(), best, best + 1);
  }
  return out;
}

}  // namespace

BeamStepOutcome BeamSearchStep(
    const BeamSettings& settings, int step, absl::Span<const BeamPath> live,
    absl::Span<const std::vector<TokenScore>> row_best,
    std::vector<FinishedHypothesis>* finished,
    absl::Span<const std::vector<TokenLogProb>> row_top) {
  const size_t beam = static_cast<size_t>(settings.beam_size);
  std::vector<double> cum(live.size());
  for (size_t i = 0; i < live.size(); ++i) cum[i] = live[i].cum_log_prob;
  const std::vector<BeamCandidate> candidates =
      TopBeamCandidates(row_best, cum, settings.candidates);
  if (settings.legacy) {
    BeamStepOutcome out = LegacyBeamSearchStep(settings, step, live, candidates,
                                               finished, row_top);
    if (out.done && finished->empty()) FinishByLength(settings, live, finished);
    return out;
  }
  // This step writes token number step + 1: the last one allowed hits by
  // length (HF: the sequence reaches max_length).
  const bool last = step + 1 >= settings.max_new_tokens;
  const int generated = step + 1;  // with the EOS, for the score

  BeamStepOutcome out;
  std::vector<FinishedHypothesis> hits;
  for (size_t rank = 0; rank < candidates.size(); ++rank) {
    const BeamCandidate& c = candidates[rank];
    // -inf and NaN candidates rank last (TopBeamCandidates), so the ranks of
    // the finite ones are as HF's.
    if (!std::isfinite(c.cum_log_prob)) break;
    const bool eos = std::binary_search(settings.eos_ids.begin(),
                                        settings.eos_ids.end(), c.token);
    if (eos || last) {
      if (rank >= beam) continue;  // only the top B of the K may finish
      hits.push_back(FinishCandidate(settings, live[c.hypothesis], c, eos,
                                     generated, row_top));
    } else if (out.children.size() < beam) {
      out.children.push_back(c);
    }
  }
  // Keep the best B, best first; on a tie the one finished earlier (or ranked
  // higher in this step) stays ahead.
  for (FinishedHypothesis& f : hits) finished->push_back(std::move(f));
  std::stable_sort(
      finished->begin(), finished->end(),
      [](const FinishedHypothesis& a, const FinishedHypothesis& b) {
        return a.score > b.score;
      });
  if (finished->size() > beam) finished->resize(beam);

  const bool full = finished->size() >= beam;
  if (last || out.children.empty()) {
    out.done = true;
  } else if (full && settings.early_stopping == EarlyStopping::kTrue) {
    out.done = true;
  } else if (full) {
    // The best running beam, scored as if it ended now (or at the longest
    // possible length for kNever), cannot beat the worst finished one.
    const int length = settings.early_stopping == EarlyStopping::kNever &&
                               settings.length_penalty > 0
                           ? settings.max_new_tokens
                           : generated;
    const double best_running = LengthPenalisedScore(
        out.children[0].cum_log_prob, length, settings.length_penalty);
    out.done = best_running <= finished->back().score;
  }
  if (out.done && finished->empty()) FinishByLength(settings, live, finished);
  return out;
}

size_t BestFinished(const std::vector<FinishedHypothesis>& finished) {
  size_t best = 0;
  for (size_t i = 1; i < finished.size(); ++i) {
    if (finished[i].score > finished[best].score) best = i;
  }
  return best;
}

}  // namespace attnserve::engine
