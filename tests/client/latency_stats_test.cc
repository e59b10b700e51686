#include "client/latency_stats.h"

#include <vector>

#include "gtest/gtest.h"

namespace attnserve::client {
namespace {

std::vector<absl::Duration> Millis(int from, int to) {
  std::vector<absl::Duration> samples;
  for (int ms = from; ms <= to; ++ms) samples.push_back(absl::Milliseconds(ms));
  return samples;
}

TEST(PercentileTest, NearestRank) {
  const std::vector<absl::Duration> sorted = Millis(1, 10);
  EXPECT_EQ(Percentile(sorted, 0), absl::Milliseconds(1));
  EXPECT_EQ(Percentile(sorted, 10), absl::Milliseconds(1));
  EXPECT_EQ(Percentile(sorted, 10.5), absl::Milliseconds(2));
  EXPECT_EQ(Percentile(sorted, 50), absl::Milliseconds(5));
  EXPECT_EQ(Percentile(sorted, 51), absl::Milliseconds(6));
  EXPECT_EQ(Percentile(sorted, 90), absl::Milliseconds(9));
  EXPECT_EQ(Percentile(sorted, 99), absl::Milliseconds(10));
  EXPECT_EQ(Percentile(sorted, 100), absl::Milliseconds(10));
}

TEST(PercentileTest, DecimalPercentilesDoNotRoundUp) {
  // 99.9 is not exact in binary; 99.9% of 1000 samples is still rank 999.
  const std::vector<absl::Duration> sorted = Millis(1, 1000);
  EXPECT_EQ(Percentile(sorted, 99.9), absl::Milliseconds(999));
  EXPECT_EQ(Percentile(sorted, 99), absl::Milliseconds(990));
  EXPECT_EQ(Percentile(Millis(1, 1001), 99.9), absl::Milliseconds(1000));
  EXPECT_EQ(Percentile(Millis(1, 100000), 99.99), absl::Milliseconds(99990));
}

TEST(PercentileTest, SingleSample) {
  const std::vector<absl::Duration> sorted = {absl::Microseconds(7)};
  for (double q : {0.0, 50.0, 99.9, 100.0}) {
    EXPECT_EQ(Percentile(sorted, q), absl::Microseconds(7));
  }
}

TEST(ComputeLatencyStatsTest, SortsAndSummarizes) {
  std::vector<absl::Duration> samples = Millis(1, 1000);
  // Reverse, so that the function has to sort.
  std::reverse(samples.begin(), samples.end());
  const LatencyStats stats = ComputeLatencyStats(samples);
  EXPECT_EQ(stats.count, 1000);
  EXPECT_EQ(stats.min, absl::Milliseconds(1));
  EXPECT_EQ(stats.max, absl::Milliseconds(1000));
  EXPECT_EQ(stats.mean, absl::Microseconds(500500));
  EXPECT_EQ(stats.p50, absl::Milliseconds(500));
  EXPECT_EQ(stats.p90, absl::Milliseconds(900));
  EXPECT_EQ(stats.p95, absl::Milliseconds(950));
  EXPECT_EQ(stats.p99, absl::Milliseconds(990));
  EXPECT_EQ(stats.p999, absl::Milliseconds(999));
}

TEST(ComputeLatencyStatsTest, EmptyIsAllZero) {
  const LatencyStats stats = ComputeLatencyStats({});
  EXPECT_EQ(stats.count, 0);
  EXPECT_EQ(stats.max, absl::ZeroDuration());
  EXPECT_EQ(stats.p50, absl::ZeroDuration());
}

}  // namespace
}  // namespace attnserve::client
