#include "engine/decode/decoding.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace attnserve::engine {
namespace {

// Greedy decoding's choice: the best of one row through TopTokens.
int32_t ArgMax(const float* values, int64_t n) {
  TopTokens top(1);
  top.Add(values, 0, n);
  return top.best()[0].token;
}

// TopBeamCandidates over whole rows of log-probs [cum_log_probs.size(), vocab],
// each row's best `count` gathered through TopTokens as the generator does.
std::vector<BeamCandidate> TopBeamCandidates(
    const float* log_probs, int64_t vocab,
    const std::vector<double>& cum_log_probs, int count) {
  std::vector<std::vector<TokenScore>> row_best;
  for (size_t h = 0; h < cum_log_probs.size(); ++h) {
    TopTokens top(count);
    top.Add(log_probs + h * vocab, 0, vocab);
    row_best.push_back(top.best());
  }
  return engine::TopBeamCandidates(row_best, cum_log_probs, count);
}

TEST(ArgMaxTest, LowestIndexWinsTie) {
  const std::vector<float> v = {0.1f, 0.7f, 0.2f, 0.7f};
  EXPECT_EQ(ArgMax(v.data(), v.size()), 1);
}

TEST(ArgMaxTest, NanNeverWins) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> v = {nan, -3.0f, nan, -1.0f};
  EXPECT_EQ(ArgMax(v.data(), v.size()), 3);
}

// Against the definition, over values from a small set with NaNs (some rows
// all NaN), at lengths spanning many of the 16-value blocks TopTokens skips.
TEST(ArgMaxTest, MatchesAPlainScan) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float pool[] = {-1.0f, -2.0f, 0.5f, nan};
  std::mt19937 rng(3);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<float> v(1 + rng() % (trial % 5 ? 200 : 3));
    for (float& x : v) x = pool[rng() % (trial % 3 ? 3 : 4)];
    if (trial % 7 == 0) std::fill(v.begin(), v.end(), nan);
    // The first largest number; 0 when every value is NaN.
    int32_t expected = -1;
    for (size_t i = 0; i < v.size(); ++i) {
      if (!std::isnan(v[i]) && (expected < 0 || v[i] > v[expected]))
        expected = static_cast<int32_t>(i);
    }
    if (expected < 0) expected = 0;
    EXPECT_EQ(ArgMax(v.data(), v.size()), expected) << "trial " << trial;
  }
}

TEST(TopBeamCandidatesTest, RanksByCumulativeLogProbAcrossHypotheses) {
  // Two hypotheses over a vocab of 3.
  const std::vector<float> lp = {-0.1f, -2.0f, -3.0f,   // hyp 0
                                 -0.5f, -0.6f, -4.0f};  // hyp 1
  const std::vector<double> cum = {-1.0, -0.2};
  const auto c = TopBeamCandidates(lp.data(), 3, cum, 3);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].hypothesis, 1);  // -0.7
  EXPECT_EQ(c[0].token, 0);
  EXPECT_EQ(c[1].hypothesis, 1);  // -0.8
  EXPECT_EQ(c[1].token, 1);
  EXPECT_EQ(c[2].hypothesis, 0);  // -1.1
  EXPECT_EQ(c[2].token, 0);
  EXPECT_FLOAT_EQ(c[2].log_prob, -0.1f);
  EXPECT_DOUBLE_EQ(c[2].cum_log_prob, -1.0 + static_cast<double>(-0.1f));
}

TEST(TopBeamCandidatesTest, TiesGoToLowerHypothesisThenLowerToken) {
  const std::vector<float> lp = {-1.0f, -1.0f, -1.0f, -1.0f};
  const std::vector<double> cum = {0.0, 0.0};
  const auto c = TopBeamCandidates(lp.data(), 2, cum, 3);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].hypothesis, 0);
  EXPECT_EQ(c[0].token, 0);
  EXPECT_EQ(c[1].hypothesis, 0);
  EXPECT_EQ(c[1].token, 1);
  EXPECT_EQ(c[2].hypothesis, 1);
  EXPECT_EQ(c[2].token, 0);
}

TEST(TopBeamCandidatesTest, CountLargerThanVocabReturnsAll) {
  const std::vector<float> lp = {-1.0f, -2.0f};
  const std::vector<double> cum = {0.0};
  EXPECT_EQ(TopBeamCandidates(lp.data(), 2, cum, 8).size(), 2u);
}

TEST(TopBeamCandidatesTest, NanRanksBelowEveryNumber) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> lp = {nan, -3.0f, nan, -1.0f};
  const std::vector<double> cum = {0.0};
  const auto c = TopBeamCandidates(lp.data(), 4, cum, 3);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].token, 3);
  EXPECT_EQ(c[1].token, 1);
  EXPECT_TRUE(std::isnan(c[2].log_prob));
}

// Against the definition: every (hypothesis, token) ranked by cumulative
// log-prob (NaN last), then hypothesis, then token; the first `count`. Values
// from a small set, so ties abound.
TEST(TopBeamCandidatesTest, MatchesRankingEveryCandidate) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const float pool[] = {-1.0f, -2.0f, -3.0f, -inf, nan};
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int hyps = 1 + trial % 4;
    // Small vocabularies and ones spanning many of TopTokens' 16-value blocks.
    const int64_t vocab =
        1 + static_cast<int64_t>(rng() % (trial % 2 ? 40 : 300));
    const int count = 1 + trial % 9;
    std::vector<float> lp(hyps * vocab);
    for (float& v : lp) v = pool[rng() % 5];
    std::vector<double> cum(hyps);
    for (double& c : cum) c = -static_cast<double>(rng() % 3);

    std::vector<BeamCandidate> all;
    for (int h = 0; h < hyps; ++h) {
      for (int32_t t = 0; t < vocab; ++t) {
        BeamCandidate c;
        c.hypothesis = h;
        c.token = t;
        c.log_prob = lp[h * vocab + t];
        c.cum_log_prob = cum[h] + c.log_prob;
        all.push_back(c);
      }
    }
    std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
      if (std::isnan(a.cum_log_prob)) return false;
      return std::isnan(b.cum_log_prob) || a.cum_log_prob > b.cum_log_prob;
    });
    all.resize(std::min<size_t>(all.size(), count));

    const auto got = TopBeamCandidates(lp.data(), vocab, cum, count);
    ASSERT_EQ(got.size(), all.size()) << "trial " << trial;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].hypothesis, all[i].hypothesis) << trial << " " << i;
      EXPECT_EQ(got[i].token, all[i].token) << trial << " " << i;
    }
  }
}

TEST(LengthPenalisedScoreTest, DividesByLengthToThePenalty) {
  EXPECT_DOUBLE_EQ(LengthPenalisedScore(-6.0, 4, 1.0f), -1.5);
  EXPECT_DOUBLE_EQ(LengthPenalisedScore(-6.0, 4, 0.0f), -6.0);
  EXPECT_NEAR(LengthPenalisedScore(-6.0, 4, 0.5f), -3.0, 1e-12);
}

TEST(BestFinishedTest, EarlierWinsTie) {
  std::vector<FinishedHypothesis> f(3);
  f[0].score = -2;
  f[1].score = -1;
  f[2].score = -1;
  EXPECT_EQ(BestFinished(f), 1u);
}

}  // namespace
}  // namespace attnserve::engine

namespace attnserve::engine {
namespace {

// A row fed to TopTokens in slices keeps what one whole-row pass keeps.
TEST(TopTokensTest, SlicesKeepWhatOneRowKeeps) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float pool[] = {-1.0f, -2.0f, 0.5f, -3.0f, nan};
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> row(1 + rng() % 300);
    for (float& v : row) v = pool[rng() % 5];
    const int keep = 1 + trial % 9;
    TopTokens whole(keep), sliced(keep);
    whole.Add(row.data(), 0, row.size());
    for (size_t first = 0; first < row.size();) {
      const size_t width = std::min<size_t>(1 + rng() % 50, row.size() - first);
      sliced.Add(row.data() + first, static_cast<int32_t>(first), width);
      first += width;
    }
    ASSERT_EQ(sliced.best().size(), whole.best().size()) << trial;
    for (size_t i = 0; i < whole.best().size(); ++i) {
      EXPECT_EQ(sliced.best()[i].token, whole.best()[i].token) << trial;
    }
  }
}

TEST(CombineLogSumExpsTest, EqualsTheWholeRows) {
  // Slices {1, 2} and {3}: log(e + e^2 + e^3) from log(e + e^2) and 3.
  const float a = static_cast<float>(std::log(std::exp(1.0) + std::exp(2.0)));
  EXPECT_NEAR(CombineLogSumExps({a, 3.0f}),
              std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)), 1e-6);
  EXPECT_EQ(CombineLogSumExps({2.5f}), 2.5f);
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(CombineLogSumExps({-inf, -inf}), -inf);
  EXPECT_NEAR(CombineLogSumExps({-inf, 1.0f}), 1.0f, 1e-6);
}

}  // namespace
}  // namespace attnserve::engine

namespace attnserve::engine {
namespace {

// Beam search on a scripted model: the next-token probabilities are a table
// keyed by the tokens generated so far (tokens not listed get probability 0,
// so log-prob -inf, like a banned token). Vocabulary: 0 = EOS, 1 = a, 2 = b,
// 3 = c, 4 = second EOS where a case makes it one.
using Script = std::map<std::vector<int32_t>, std::map<int32_t, double>>;
constexpr int kScriptVocab = 5;

struct BeamRun {
  FinishedHypothesis best;
  int steps = 0;
};

BeamRun RunBeam(const BeamSettings& settings, const Script& script) {
  std::vector<BeamPath> live(1);  // the start token alone
  std::vector<FinishedHypothesis> finished;
  for (int step = 0;; ++step) {
    std::vector<std::vector<TokenScore>> rows;
    for (const BeamPath& p : live) {
      std::vector<float> lp(kScriptVocab,
                            -std::numeric_limits<float>::infinity());
      const auto it = script.find(p.ids);
      if (it != script.end()) {
        for (const auto& [t, prob] : it->second)
          lp[t] = static_cast<float>(std::log(prob));
      }
      TopTokens top(settings.candidates);
      top.Add(lp.data(), 0, kScriptVocab);
      rows.push_back(top.best());
    }
    const BeamStepOutcome out =
        BeamSearchStep(settings, step, live, rows, &finished);
    if (out.done) {
      EXPECT_FALSE(finished.empty());
      return {finished.empty() ? FinishedHypothesis{} : finished[0], step + 1};
    }
    std::vector<BeamPath> next;
    for (const BeamCandidate& c : out.children) {
      BeamPath p = live[c.hypothesis];
      p.ids.push_back(c.token);
      p.log_probs.push_back(c.log_prob);
      p.cum_log_prob = c.cum_log_prob;
      next.push_back(std::move(p));
    }
    live = std::move(next);
  }
}

BeamSettings Settings(int beam, int max_new_tokens, float length_penalty,
                      EarlyStopping early_stopping,
                      std::vector<int32_t> eos_ids = {0}, bool legacy = false) {
  DecodeOptions o;
  o.beam_size = beam;
  o.max_new_tokens = max_new_tokens;
  o.length_penalty = length_penalty;
  o.early_stopping = early_stopping;
  o.legacy_beam_search = legacy;
  return MakeBeamSettings(o, eos_ids);
}

TEST(BeamSearchStepTest, CandidateCountGrowsWithTheEosIds) {
  EXPECT_EQ(Settings(3, 8, 1, EarlyStopping::kHeuristic).candidates, 6);
  EXPECT_EQ(Settings(3, 8, 1, EarlyStopping::kHeuristic, {0, 4}).candidates, 9);
  EXPECT_EQ(
      Settings(3, 8, 1, EarlyStopping::kHeuristic, {0, 4}, true).candidates, 6);
}

// Step 0: a .6, EOS .4 (ranked 1 of K = 2, so >= B = 1: not finished).
// After a: EOS .6, b .4.
const Script kRankScript = {
    {{}, {{1, .6}, {0, .4}}}, {{1}, {{0, .6}, {2, .4}}}, {{1, 2}, {{0, 1.0}}}};

TEST(BeamSearchStepTest, AHitRankedAtOrBelowBeamSizeDoesNotFinish) {
  const BeamRun run =
      RunBeam(Settings(1, 4, 1.0f, EarlyStopping::kHeuristic), kRankScript);
  // [a] EOS: log(.36) / 2 beats the running [a b]: log(.24) / 2, so the
  // heuristic stops after step 2.
  EXPECT_EQ(run.best.ids, std::vector<int32_t>({1}));
  EXPECT_EQ(run.best.finish_reason, FinishReason::kEos);
  EXPECT_EQ(run.best.eos_id, 0);
  EXPECT_NEAR(run.best.score, std::log(.36) / 2, 1e-6);
  EXPECT_EQ(run.steps, 2);
  // The old procedure finished the EOS ranked 1 at step 1 and stopped there.
  const BeamRun legacy = RunBeam(
      Settings(1, 4, 1.0f, EarlyStopping::kHeuristic, {0}, true), kRankScript);
  EXPECT_TRUE(legacy.best.ids.empty());
  EXPECT_NEAR(legacy.best.score, std::log(.4), 1e-6);
  EXPECT_EQ(legacy.steps, 1);
}

// B = 2. Step 0: a .5, EOS .3 (ranked 1: finished, score log .3), b .2.
// After a: EOS .6 (finished: log(.3) / 2), c .4. After b: c .9, EOS .1.
// Then two finished; the best running [a c] scores log(.2) / 2 > log .3.
// After a c: EOS .95 -> log(.19) / 3 = -0.553, better than [a] EOS (-0.602).
const Script kEarlyStoppingScript = {{{}, {{1, .5}, {0, .3}, {2, .2}}},
                                     {{1}, {{0, .6}, {3, .4}}},
                                     {{2}, {{3, .9}, {0, .1}}},
                                     {{1, 3}, {{0, .95}, {1, .05}}},
                                     {{2, 3}, {{0, .95}, {1, .05}}},
                                     {{1, 3, 1}, {{0, 1.0}}},
                                     {{2, 3, 1}, {{0, 1.0}}}};

TEST(BeamSearchStepTest, EarlyStoppingTrueStopsOnceBeamSizeAreFinished) {
  const BeamRun run =
      RunBeam(Settings(2, 6, 1.0f, EarlyStopping::kTrue), kEarlyStoppingScript);
  EXPECT_EQ(run.best.ids, std::vector<int32_t>({1}));
  EXPECT_NEAR(run.best.score, std::log(.3) / 2, 1e-6);
  EXPECT_EQ(run.steps, 2);
}

TEST(BeamSearchStepTest, TheHeuristicGoesOnWhileTheBestRunningBeamCanWin) {
  const BeamRun run = RunBeam(Settings(2, 6, 1.0f, EarlyStopping::kHeuristic),
                              kEarlyStoppingScript);
  EXPECT_EQ(run.best.ids, std::vector<int32_t>({1, 3}));
  EXPECT_EQ(run.best.finish_reason, FinishReason::kEos);
  EXPECT_NEAR(run.best.score, std::log(.5 * .4 * .95) / 3, 1e-6);
  // After step 3 the best running beam ([a c a], log(.01) / 3) cannot win.
  EXPECT_EQ(run.steps, 3);
}

// B = 1, length_penalty 2. Step 0: a .9, EOS .1 (ranked 1: not finished).
// After a: EOS .55 (finished: log(.495) / 4 = -0.176), b .45. The heuristic
// scores [a b] at its length 2: log(.405) / 4 = -0.226 <= -0.176, stop;
// "never" at max_new_tokens 4: log(.405) / 16 = -0.057, go on. After a b:
// EOS .9 -> log(.3645) / 9 = -0.112, the better answer.
const Script kNeverScript = {{{}, {{1, .9}, {0, .1}}},
                             {{1}, {{0, .55}, {2, .45}}},
                             {{1, 2}, {{0, .9}, {3, .1}}},
                             {{1, 2, 3}, {{0, 1.0}}}};

TEST(BeamSearchStepTest, NeverScoresTheRunningBeamAtTheLongestLength) {
  const BeamRun heuristic =
      RunBeam(Settings(1, 4, 2.0f, EarlyStopping::kHeuristic), kNeverScript);
  EXPECT_EQ(heuristic.best.ids, std::vector<int32_t>({1}));
  EXPECT_EQ(heuristic.steps, 2);
  const BeamRun never =
      RunBeam(Settings(1, 4, 2.0f, EarlyStopping::kNever), kNeverScript);
  EXPECT_EQ(never.best.ids, std::vector<int32_t>({1, 2}));
  EXPECT_NEAR(never.best.score, std::log(.9 * .45 * .9) / 9, 1e-6);
  EXPECT_EQ(never.steps, 3);
}

// Two EOS ids, B = 1, so K = 3. Step 0: EOS .4 (finished, log .4), second
// EOS .35 (ranked 1: not finished), a .2 (ranked 2: the running beam only
// because K counts both EOS ids). "never" keeps it: log(.2) / 4 > log .4.
// After a: EOS .99 -> log(.198) / 2, the answer.
TEST(BeamSearchStepTest, TheCandidateCountMakesRoomForEveryEos) {
  const Script script = {{{}, {{0, .4}, {4, .35}, {2, .2}, {3, .05}}},
                         {{2}, {{0, .99}, {1, .01}}},
                         {{2, 1}, {{0, 1.0}}}};
  const BeamRun run =
      RunBeam(Settings(1, 4, 1.0f, EarlyStopping::kNever, {0, 4}), script);
  EXPECT_EQ(run.best.ids, std::vector<int32_t>({2}));
  EXPECT_NEAR(run.best.score, std::log(.2 * .99) / 2, 1e-6);
  // With K = 2 there would be no running beam after step 0.
  BeamSettings two = Settings(1, 4, 1.0f, EarlyStopping::kNever, {0, 4});
  two.candidates = 2;
  EXPECT_TRUE(RunBeam(two, script).best.ids.empty());
}

// Finished by length: scored over max_new_tokens tokens, and only the top B
// of the K candidates of the last step (here the EOS-ending one ranks below).
TEST(BeamSearchStepTest, LengthFinishedHypothesesDivideByMaxNewTokens) {
  const Script script = {{{}, {{1, .7}, {2, .3}}},
                         {{1}, {{1, .8}, {0, .2}}},
                         {{2}, {{2, .9}, {0, .1}}}};
  const BeamRun run =
      RunBeam(Settings(2, 2, 0.5f, EarlyStopping::kHeuristic), script);
  EXPECT_EQ(run.best.ids, std::vector<int32_t>({1, 1}));
  EXPECT_EQ(run.best.finish_reason, FinishReason::kLength);
  EXPECT_NEAR(run.best.score, std::log(.7 * .8) / std::sqrt(2.0), 1e-6);
  EXPECT_EQ(run.steps, 2);
}

// A forced step (one finite token per row) leaves one running beam: -inf
// candidates neither run nor finish.
TEST(BeamSearchStepTest, MinusInfinityCandidatesNeitherRunNorFinish) {
  std::vector<BeamPath> live(1);
  std::vector<FinishedHypothesis> finished;
  const std::vector<std::vector<TokenScore>> rows = {
      {{3, 0.0f},
       {0, -std::numeric_limits<float>::infinity()},
       {1, -std::numeric_limits<float>::infinity()}}};
  const BeamStepOutcome out =
      BeamSearchStep(Settings(2, 5, 1.0f, EarlyStopping::kHeuristic), 0, live,
                     rows, &finished);
  ASSERT_EQ(out.children.size(), 1u);
  EXPECT_EQ(out.children[0].token, 3);
  EXPECT_TRUE(finished.empty());
  EXPECT_FALSE(out.done);
}

}  // namespace
}  // namespace attnserve::engine

namespace attnserve::engine {
namespace {

// A hypothesis that finishes carries its path's top log-probs, plus this
// step's row when it ends by length (the token is its last output id); one
// that ends with EOS does not (the EOS is not an output id).
TEST(BeamSearchStepTest, FinishedHypothesesKeepTheirTopLogProbs) {
  DecodeOptions o;
  o.beam_size = 1;
  o.max_new_tokens = 2;
  const BeamSettings settings = MakeBeamSettings(o, {0});
  BeamPath path;
  path.ids = {3};
  path.log_probs = {-0.5f};
  path.cum_log_prob = -0.5;
  path.top_log_probs = {{{3, -0.5f}}};
  const std::vector<std::vector<TokenLogProb>> row_top = {{{4, -0.2f}}};
  for (int32_t token : {4, 0}) {  // by length at the last step; by EOS
    SCOPED_TRACE(token);
    const std::vector<std::vector<TokenScore>> rows = {
        {{token, -0.2f}, {token == 0 ? 4 : 0, -3.0f}}};
    std::vector<FinishedHypothesis> finished;
    const BeamStepOutcome out =
        BeamSearchStep(settings, 1, {path}, rows, &finished, row_top);
    EXPECT_TRUE(out.done);
    ASSERT_FALSE(finished.empty());
    const FinishedHypothesis& f = finished[0];
    ASSERT_EQ(f.top_log_probs.size(), f.ids.size());
    EXPECT_EQ(f.top_log_probs[0][0].token, 3);
    if (token == 4) {
      EXPECT_EQ(f.finish_reason, FinishReason::kLength);
      EXPECT_EQ(f.top_log_probs[1][0].token, 4);
    } else {
      EXPECT_EQ(f.finish_reason, FinishReason::kEos);
    }
  }
}

}  // namespace
}  // namespace attnserve::engine
