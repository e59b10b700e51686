#include "server/process_metrics.h"

#include <cstdint>
#include <ctime>
#include <map>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace attnserve::server {
namespace {

// A /proc/<pid>/stat line (proc(5)) whose command name holds spaces and a ')'.
constexpr char kStat[] =
    "4242 (my (weird) cmd) S 1 4242 4242 0 -1 4194560 12345 0 0 0 "
    "250 150 0 0 20 0 9 0 123400 987654321 5120 18446744073709551615 1 1 0 0 "
    "0 0 0 4096 17922 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

TEST(ProcessMetricsTest, ParsesTheStatLine) {
  absl::StatusOr<ProcessStat> stat = ParseProcessStat(kStat, 100);
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_DOUBLE_EQ(stat->cpu_seconds, 4.0);  // (250 + 150) ticks / 100 Hz
  EXPECT_EQ(stat->start_ticks, 123400);
  EXPECT_EQ(stat->resident_pages, 5120);
}

TEST(ProcessMetricsTest, RejectsWhatIsNotAStatLine) {
  EXPECT_FALSE(ParseProcessStat("", 100).ok());
  EXPECT_FALSE(ParseProcessStat("1 (x) S 1 2 3", 100).ok());
  EXPECT_FALSE(ParseProcessStat(kStat, 0).ok());
}

TEST(ProcessMetricsTest, FindsTheBootTime) {
  EXPECT_EQ(ParseBootTime("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocs 3\n")
                .value_or(-1),
            1700000000);
  EXPECT_FALSE(ParseBootTime("cpu 1 2 3\n").ok());
}

TEST(ProcessMetricsTest, CollectsThisProcess) {
  // Spend CPU time first (more than one 10 ms clock tick), so that the
  // counter's value says something: a fresh process may have used none yet.
  const std::clock_t begin = std::clock();
  volatile uint64_t sink = 0;
  while (std::clock() - begin < CLOCKS_PER_SEC / 20) sink = sink + 1;
  ProcessCollector collector;
  std::map<std::string, prometheus::MetricFamily> families;
  for (prometheus::MetricFamily& family : collector.Collect()) {
    families[family.name] = std::move(family);
  }
  ASSERT_EQ(families.size(), 3u);
  const auto& cpu = families["process_cpu_seconds_total"];
  EXPECT_EQ(cpu.type, prometheus::MetricType::Counter);
  EXPECT_GE(cpu.metric.at(0).counter.value, 0.04);
  const auto& memory = families["process_resident_memory_bytes"];
  EXPECT_EQ(memory.type, prometheus::MetricType::Gauge);
  EXPECT_GT(memory.metric.at(0).gauge.value, 1 << 20);
  // Started before now, and not before the test binary could have.
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  const double start =
      families["process_start_time_seconds"].metric.at(0).gauge.value;
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 3600);
}

}  // namespace
}  // namespace attnserve::server
