#include "engine/decoding.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace attnserve::engine {
namespace {

TEST(ArgMaxTest, LowestIndexWinsTie) {
  const std::vector<float> v = {0.1f, 0.7f, 0.2f, 0.7f};
  EXPECT_EQ(ArgMax(v.data(), v.size()), 1);
}

TEST(ArgMaxTest, NanNeverWins) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> v = {nan, -3.0f, nan, -1.0f};
  EXPECT_EQ(ArgMax(v.data(), v.size()), 3);
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
