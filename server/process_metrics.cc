#include "server/process_metrics.h"

#include <unistd.h>

#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/format/small_file.h"

namespace attnserve::server {
namespace {

// proc(5) numbers the fields of /proc/<pid>/stat from 1: pid, (comm), state,
// ...; these are the ones we read.
constexpr int kUtimeField = 14;
constexpr int kStimeField = 15;
constexpr int kStartTimeField = 22;
constexpr int kRssField = 24;
// The first field after the command name.
constexpr int kStateField = 3;

// A /proc file, or "" when it cannot be read (the parsers then report none).
std::string ReadFile(const char* path) {
  return engine::ReadSmallFile(path, int64_t{1} << 20).value_or("");
}

prometheus::MetricFamily Family(std::string name, std::string help,
                                prometheus::MetricType type, double value) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

absl::StatusOr<ProcessStat> ParseProcessStat(absl::string_view text,
                                             int64_t ticks_per_second) {
  const size_t comm_end = text.rfind(')');
  if (comm_end == absl::string_view::npos || ticks_per_second <= 0) {
    return absl::InvalidArgumentError("not a /proc/<pid>/stat line");
  }
  const std::vector<absl::string_view> fields =
      absl::StrSplit(text.substr(comm_end + 1), ' ', absl::SkipWhitespace());
  auto field = [&](int number, int64_t* value) {
    const int index = number - kStateField;
    return index < static_cast<int>(fields.size()) &&
           absl::SimpleAtoi(fields[index], value);
  };
  int64_t utime = 0, stime = 0;
  ProcessStat stat;
  if (!field(kUtimeField, &utime) || !field(kStimeField, &stime) ||
      !field(kStartTimeField, &stat.start_ticks) ||
      !field(kRssField, &stat.resident_pages)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "/proc/<pid>/stat has too few or non-numeric fields: ", text));
  }
  stat.cpu_seconds = static_cast<double>(utime + stime) / ticks_per_second;
  return stat;
}

absl::StatusOr<int64_t> ParseBootTime(absl::string_view proc_stat) {
  for (absl::string_view line : absl::StrSplit(proc_stat, '\n')) {
    int64_t boot_time = 0;
    if (absl::ConsumePrefix(&line, "btime ") &&
        absl::SimpleAtoi(line, &boot_time)) {
      return boot_time;
    }
  }
  return absl::NotFoundError("/proc/stat has no btime line");
}

ProcessCollector::ProcessCollector()
    : ticks_per_second_(sysconf(_SC_CLK_TCK)),
      page_size_(sysconf(_SC_PAGESIZE)) {
  // The start time never changes: work it out once.
  const absl::StatusOr<ProcessStat> stat =
      ParseProcessStat(ReadFile("/proc/self/stat"), ticks_per_second_);
  const absl::StatusOr<int64_t> boot_time =
      ParseBootTime(ReadFile("/proc/stat"));
  if (stat.ok() && boot_time.ok()) {
    start_time_seconds_ =
        static_cast<double>(*boot_time) +
        static_cast<double>(stat->start_ticks) / ticks_per_second_;
  }
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  const absl::StatusOr<ProcessStat> stat =
      ParseProcessStat(ReadFile("/proc/self/stat"), ticks_per_second_);
  if (!stat.ok()) return families;
  families.push_back(Family("process_cpu_seconds_total",
                            "Total user and system CPU time spent in seconds.",
                            prometheus::MetricType::Counter,
                            stat->cpu_seconds));
  families.push_back(
      Family("process_resident_memory_bytes", "Resident memory size in bytes.",
             prometheus::MetricType::Gauge,
             static_cast<double>(stat->resident_pages * page_size_)));
  if (start_time_seconds_ > 0) {
    families.push_back(
        Family("process_start_time_seconds",
               "Start time of the process since unix epoch in seconds.",
               prometheus::MetricType::Gauge, start_time_seconds_));
  }
  return families;
}

}  // namespace attnserve::server
