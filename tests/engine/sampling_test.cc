// The sampler's parts against plain reference code: the counter-based
// random stream (SplitMix64's published outputs, independence of the
// counters, uniformity), the warpers (a sort-everything reference of HF's
// temperature, top_k and top_p) and the draw (a cumulative scan).

#include "engine/decode/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace attnserve::engine {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(SplitMix64Test, MatchesThePublishedSequence) {
  // splitmix64.c (Vigna) seeded with 1234567: next() returns
  // SplitMix64(state) and advances state by the golden gamma.
  EXPECT_EQ(SplitMix64(1234567), 6457827717110365317ULL);
  EXPECT_EQ(SplitMix64(1234567 + 0x9e3779b97f4a7c15ULL),
            3203168211198807973ULL);
}

TEST(UniformDrawTest, InUnitIntervalAndFixedByItsCounters) {
  EXPECT_EQ(UniformDraw(42, 3, 7), UniformDraw(42, 3, 7));
  // Values of the definition (three chained SplitMix64s, top 53 bits),
  // computed independently in Python.
  EXPECT_DOUBLE_EQ(UniformDraw(0, 0, 0), 0.13870941014555427);
  EXPECT_DOUBLE_EQ(UniformDraw(42, 3, 7), 0.6686949404958634);
  std::set<double> seen;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    for (uint64_t sample = 0; sample < 4; ++sample) {
      for (uint64_t step = 0; step < 4; ++step) {
        const double u = UniformDraw(seed, sample, step);
        EXPECT_GE(u, 0.0);
        EXPECT_LT(u, 1.0);
        seen.insert(u);
      }
    }
  }
  // Swapping counters gives other values: every (seed, sample, step) its
  // own.
  EXPECT_EQ(seen.size(), 64u);
}

TEST(UniformDrawTest, IsUniform) {
  // Chi-square over 20 bins of 200000 draws along the step counter (as a
  // sequence consumes them): 19 degrees of freedom, whose 99.99% quantile is
  // 47.0. Fixed counters, so a fixed outcome.
  constexpr int kBins = 20;
  constexpr int kDraws = 200000;
  std::vector<int> bins(kBins);
  for (int i = 0; i < kDraws; ++i)
    ++bins[static_cast<int>(UniformDraw(9, i % 7, i / 7) * kBins)];
  double chi2 = 0;
  const double expected = double(kDraws) / kBins;
  for (int b : bins) chi2 += (b - expected) * (b - expected) / expected;
  EXPECT_LT(chi2, 47.0);
}

// Reference warpers: every token ranked by (score desc, id asc) with a full
// sort, then each filter in HF's order.
std::vector<float> ReferenceWarp(std::vector<float> s, const WarpSettings& w) {
  for (float& v : s) v /= w.temperature;
  std::vector<int32_t> rank(s.size());
  std::iota(rank.begin(), rank.end(), 0);
  std::sort(rank.begin(), rank.end(), [&](int32_t a, int32_t b) {
    return s[a] != s[b] ? s[a] > s[b] : a < b;
  });
  if (w.top_k > 0) {
    for (size_t i = w.top_k; i < rank.size(); ++i) s[rank[i]] = -kInf;
  }
  if (w.top_p < 1.0f) {
    const double best = s[rank[0]];
    double total = 0;
    for (int32_t t : rank) total += std::exp(double(s[t]) - best);
    double before = 0;
    for (size_t i = 0; i < rank.size(); ++i) {
      if (i > 0 && before >= w.top_p * total) {
        s[rank[i]] = -kInf;
      } else {
        before += std::exp(double(s[rank[i]]) - best);
      }
    }
  }
  return s;
}

TEST(WarpScoresTest, MatchesTheReferenceOnRandomRows) {
  std::mt19937 rng(5);
  std::vector<int32_t> order;
  int cut = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    const int vocab = 1 + rng() % 40;
    std::vector<float> row(vocab);
    // Coarse values, so ties are common; some tokens already banned.
    for (float& v : row)
      v = rng() % 7 == 0 ? -kInf : static_cast<float>(rng() % 20) / 4 - 2;
    if (std::all_of(row.begin(), row.end(), [](float v) { return v == -kInf; }))
      row[0] = 0;
    WarpSettings w;
    w.temperature = std::vector<float>{1.0f, 0.5f, 0.7f, 2.0f}[rng() % 4];
    w.top_k = rng() % 3 == 0 ? 0 : 1 + rng() % vocab;
    w.top_p = rng() % 3 == 0 ? 1.0f : (1 + rng() % 100) / 100.0f;
    std::vector<float> fast = row;
    WarpScores(w, absl::MakeSpan(fast), &order);
    const std::vector<float> reference = ReferenceWarp(row, w);
    ASSERT_EQ(fast, reference) << "trial " << trial;
    cut += std::count(fast.begin(), fast.end(), -kInf) >
           std::count(row.begin(), row.end(), -kInf);
  }
  EXPECT_GT(cut, 1000);  // the filters did cut, often
}

TEST(WarpScoresTest, TopKKeepsExactlyKWithTiesToTheLowerId) {
  std::vector<float> row = {1, 3, 3, 3, 0};
  std::vector<int32_t> order;
  WarpScores({1.0f, 2, 1.0f}, absl::MakeSpan(row), &order);
  EXPECT_EQ(row, (std::vector<float>{-kInf, 3, 3, -kInf, -kInf}));
}

TEST(WarpScoresTest, TopPKeepsTheSmallestSetReachingIt) {
  // softmax(log .5, log .3, log .2): top_p .49 keeps the first alone (.5
  // before the second), .79 two, .81 all three.
  const std::vector<float> row = {std::log(0.5f), std::log(0.3f),
                                  std::log(0.2f)};
  std::vector<int32_t> order;
  for (auto [p, kept] : {std::pair{0.49f, 1}, {0.79f, 2}, {0.81f, 3}}) {
    std::vector<float> r = row;
    WarpScores({1.0f, 0, p}, absl::MakeSpan(r), &order);
    EXPECT_EQ(
        std::count_if(r.begin(), r.end(), [](float v) { return v > -kInf; }),
        kept)
        << p;
  }
}

// Reference draw: the first token whose cumulative probability exceeds u.
int32_t ReferenceDraw(const std::vector<float>& s, double u) {
  double best = -kInf;
  for (float v : s) best = std::max<double>(best, v);
  double total = 0;
  for (float v : s) total += std::exp(double(v) - best);
  double cum = 0;
  int32_t last = 0;
  for (size_t t = 0; t < s.size(); ++t) {
    if (s[t] == -kInf) continue;
    cum += std::exp(double(s[t]) - best) / total;
    last = static_cast<int32_t>(t);
    if (cum > u) return last;
  }
  return last;
}

TEST(DrawTokenTest, MatchesTheReferenceAndNeverDrawsABannedToken) {
  std::mt19937 rng(8);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  int mismatches = 0;
  for (int trial = 0; trial < 5000; ++trial) {
    std::vector<float> row(1 + rng() % 30);
    for (float& v : row)
      v = rng() % 4 == 0 ? -kInf : static_cast<float>(rng() % 1000) / 100;
    row[rng() % row.size()] = 1.0f;  // at least one finite
    const double u = uniform(rng);
    const int32_t t = DrawToken(row, u);
    ASSERT_GT(row[t], -kInf);
    // The reference normalises before accumulating; the two can part only
    // when u falls within rounding of a boundary.
    mismatches += t != ReferenceDraw(row, u);
  }
  EXPECT_LE(mismatches, 2);
}

TEST(DrawTokenTest, FrequenciesFollowTheSoftmax) {
  const std::vector<float> row = {std::log(0.1f), -kInf, std::log(0.6f),
                                  std::log(0.3f)};
  std::vector<int> counts(row.size());
  constexpr int kDraws = 100000;
  for (int i = 0; i < kDraws; ++i)
    ++counts[DrawToken(row, UniformDraw(3, 0, i))];
  EXPECT_EQ(counts[1], 0);
  // Binomial standard deviations are at most 0.0016 here: 5 of them.
  EXPECT_NEAR(counts[0] / double(kDraws), 0.1, 0.008);
  EXPECT_NEAR(counts[2] / double(kDraws), 0.6, 0.008);
  EXPECT_NEAR(counts[3] / double(kDraws), 0.3, 0.008);
}

TEST(DrawTokenTest, ARowWithNothingFiniteGivesTheLowestId) {
  EXPECT_EQ(DrawToken(std::vector<float>{-kInf, -kInf}, 0.5), 0);
  EXPECT_EQ(DrawToken(std::vector<float>{-kInf, 2.0f}, 0.99), 1);
}

}  // namespace
}  // namespace attnserve::engine
