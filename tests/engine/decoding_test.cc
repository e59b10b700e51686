#include "engine/decode/decoding.h"

#include <algorithm>
#include <cmath>
#include <limits>
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
