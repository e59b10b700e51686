#pragma once
// Latency statistics over all samples of a run, exact: percentiles come from
// the sorted samples (nearest rank), not from a histogram or sketch, because a
// run holds at most a few million samples and exact figures are what people
// compare across runs.

#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"

namespace attnserve::client {

// The nearest-rank percentile: the smallest sample such that at least q% of
// the samples are <= it (q=0: the minimum, q=100: the maximum). `sorted` is
// ascending and non-empty; q in [0, 100].
absl::Duration Percentile(absl::Span<const absl::Duration> sorted, double q);

struct LatencyStats {
  int64_t count = 0;
  absl::Duration min;
  absl::Duration mean;
  absl::Duration p50;
  absl::Duration p90;
  absl::Duration p95;
  absl::Duration p99;
  absl::Duration p999;  // p99.9
  absl::Duration max;
};

// Statistics of `samples` (taken by value: they are sorted). All zero when
// there are none.
LatencyStats ComputeLatencyStats(std::vector<absl::Duration> samples);

}  // namespace attnserve::client
