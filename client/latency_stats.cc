#include "client/latency_stats.h"

#include <algorithm>
#include <cmath>

namespace attnserve::client {

absl::Duration Percentile(absl::Span<const absl::Duration> sorted, double q) {
  const double n = static_cast<double>(sorted.size());
  // rank = ceil(q/100 * n). The slack keeps a rank that is an integer in
  // decimal (99.9% of 1000 = 999) from rounding up because 99.9 is not exact
  // in binary; it is far below the gap to the next integer for percentiles
  // with a few decimals.
  const double rank = std::ceil(q / 100.0 * n - 1e-7);
  const size_t index = static_cast<size_t>(std::clamp(rank, 1.0, n)) - 1;
  return sorted[index];
}

LatencyStats ComputeLatencyStats(std::vector<absl::Duration> samples) {
  LatencyStats stats;
  if (samples.empty()) return stats;
  std::sort(samples.begin(), samples.end());
  absl::Duration sum;
  for (absl::Duration sample : samples) sum += sample;
  stats.count = static_cast<int64_t>(samples.size());
  stats.min = samples.front();
  stats.max = samples.back();
  stats.mean = sum / stats.count;
  stats.p50 = Percentile(samples, 50);
  stats.p90 = Percentile(samples, 90);
  stats.p95 = Percentile(samples, 95);
  stats.p99 = Percentile(samples, 99);
  stats.p999 = Percentile(samples, 99.9);
  return stats;
}

}  // namespace attnserve::client
