#pragma once
// The standard process metrics of Prometheus client libraries
// (process_cpu_seconds_total, process_resident_memory_bytes,
// process_start_time_seconds), read from /proc when scraped. prometheus-cpp
// has no process collector of its own.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace attnserve::server {

// What /proc/self/stat says about the process.
struct ProcessStat {
  double cpu_seconds = 0;      // utime + stime: user and system CPU time
  int64_t resident_pages = 0;  // rss
  int64_t start_ticks = 0;     // starttime: clock ticks after boot
};

// Parses the text of /proc/<pid>/stat (proc(5)). The command name is skipped
// up to its last ')', since it may itself hold spaces and parentheses.
absl::StatusOr<ProcessStat> ParseProcessStat(absl::string_view text,
                                             int64_t ticks_per_second);

// The boot time (seconds since the epoch) from the text of /proc/stat's
// "btime" line.
absl::StatusOr<int64_t> ParseBootTime(absl::string_view proc_stat);

// A prometheus-cpp Collectable: reads /proc/self/stat on every Collect(), so
// the values are current at scrape time and cost nothing in between.
// Thread-safe. On a system without /proc, Collect() returns nothing.
class ProcessCollector final : public prometheus::Collectable {
 public:
  ProcessCollector();
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const int64_t ticks_per_second_;
  const int64_t page_size_;
  double start_time_seconds_ = 0;  // 0: unknown
};

}  // namespace attnserve::server
