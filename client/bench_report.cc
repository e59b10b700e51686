#include "client/bench_report.h"

#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/channel.h"

namespace attnserve::client {
namespace {

double Millis(absl::Duration duration) {
  return absl::ToDoubleMilliseconds(duration);
}

double PerSecond(int64_t count, absl::Duration elapsed) {
  const double seconds = absl::ToDoubleSeconds(elapsed);
  return seconds > 0 ? static_cast<double>(count) / seconds : 0.0;
}

std::optional<LatencyStats> StatsOrNullopt(std::vector<absl::Duration> samples,
                                           bool present) {
  if (!present || samples.empty()) return std::nullopt;
  return ComputeLatencyStats(std::move(samples));
}

nlohmann::json StatsToJson(const std::optional<LatencyStats>& stats) {
  if (!stats.has_value()) return nullptr;
  return {{"count", stats->count},       {"min", Millis(stats->min)},
          {"mean", Millis(stats->mean)}, {"p50", Millis(stats->p50)},
          {"p90", Millis(stats->p90)},   {"p95", Millis(stats->p95)},
          {"p99", Millis(stats->p99)},   {"p99.9", Millis(stats->p999)},
          {"max", Millis(stats->max)}};
}

// The label column fits the longest status code name (RESOURCE_EXHAUSTED).
std::string StatsHeader(absl::string_view label) {
  return absl::StrFormat("\n  %-18s %9s %9s %9s %9s %9s %9s %9s %9s\n", label,
                         "min", "mean", "p50", "p90", "p95", "p99", "p99.9",
                         "max");
}

std::string StatsRow(absl::string_view label,
                     const std::optional<LatencyStats>& stats) {
  if (!stats.has_value()) return "";
  return absl::StrFormat(
      "  %-18s %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f\n", label,
      Millis(stats->min), Millis(stats->mean), Millis(stats->p50),
      Millis(stats->p90), Millis(stats->p95), Millis(stats->p99),
      Millis(stats->p999), Millis(stats->max));
}

}  // namespace

BenchSummary Summarize(const LoadResult& result, bool stream) {
  BenchSummary summary;
  summary.count = static_cast<int64_t>(result.calls.size());
  summary.dropped = result.dropped;
  summary.warmup_calls = result.warmup_calls;
  summary.elapsed = result.elapsed;
  std::vector<absl::Duration> latencies;
  std::vector<absl::Duration> first_tokens;
  std::vector<absl::Duration> gaps;
  std::map<std::string, std::vector<absl::Duration>> failed;
  for (const CallRecord& call : result.calls) {
    ++summary.status_counts[StatusCodeName(call.code)];
    // Failures are usually fast rejections (a full queue, a bad request);
    // mixing them into the latency figures would make an overloaded server
    // look fast. They get their own figures, by code.
    if (call.code != grpc::StatusCode::OK) {
      failed[StatusCodeName(call.code)].push_back(call.latency);
      continue;
    }
    ++summary.ok;
    summary.generated_tokens += call.generated_tokens;
    latencies.push_back(call.latency);
    if (call.time_to_first_token.has_value()) {
      first_tokens.push_back(*call.time_to_first_token);
    }
    gaps.insert(gaps.end(), call.token_gaps.begin(), call.token_gaps.end());
  }
  summary.requests_per_second = PerSecond(summary.count, summary.elapsed);
  summary.generated_tokens_per_second =
      PerSecond(summary.generated_tokens, summary.elapsed);
  summary.latency = StatsOrNullopt(std::move(latencies), true);
  summary.time_to_first_token = StatsOrNullopt(std::move(first_tokens), stream);
  summary.inter_token = StatsOrNullopt(std::move(gaps), stream);
  for (auto& [code, latencies] : failed) {
    summary.failed_latency[code] = ComputeLatencyStats(std::move(latencies));
  }
  return summary;
}

std::string FormatSummary(const BenchSummary& summary) {
  std::string text = absl::StrFormat(
      "Summary:\n"
      "  Count:             %d (OK %d)\n"
      "  Elapsed:           %.3f s\n"
      "  Requests/s:        %.2f\n"
      "  Generated tokens:  %d (%.2f tokens/s)\n",
      summary.count, summary.ok, absl::ToDoubleSeconds(summary.elapsed),
      summary.requests_per_second, summary.generated_tokens,
      summary.generated_tokens_per_second);
  if (summary.dropped > 0) {
    absl::StrAppendFormat(&text, "  Dropped by client: %d\n", summary.dropped);
  }
  if (summary.warmup_calls > 0) {
    absl::StrAppendFormat(&text, "  Warmup calls:      %d (not counted)\n",
                          summary.warmup_calls);
  }
  if (summary.latency.has_value()) {
    absl::StrAppend(&text, StatsHeader("(ms, OK calls)"),
                    StatsRow("latency", summary.latency),
                    StatsRow("first token", summary.time_to_first_token),
                    StatsRow("inter-token", summary.inter_token));
  } else {
    absl::StrAppend(&text, "\n  no call succeeded: no latency figures\n");
  }
  if (!summary.failed_latency.empty()) {
    absl::StrAppend(&text, StatsHeader("(ms, failed calls)"));
    for (const auto& [code, stats] : summary.failed_latency) {
      absl::StrAppend(&text, StatsRow(code, stats));
    }
  }
  absl::StrAppend(&text, "\nStatus codes:\n");
  for (const auto& [name, count] : summary.status_counts) {
    absl::StrAppendFormat(&text, "  %-20s %d\n", name, count);
  }
  if (summary.dropped > 0) {
    absl::StrAppendFormat(&text, "  %-20s %d\n", "(dropped by client)",
                          summary.dropped);
  }
  return text;
}

nlohmann::json SummaryToJson(const BenchSummary& summary) {
  nlohmann::json failed_latency = nlohmann::json::object();
  for (const auto& [code, stats] : summary.failed_latency) {
    failed_latency[code] = StatsToJson(stats);
  }
  return {{"count", summary.count},
          {"ok", summary.ok},
          {"dropped_by_client", summary.dropped},
          {"warmup_calls", summary.warmup_calls},
          {"elapsed_s", absl::ToDoubleSeconds(summary.elapsed)},
          {"requests_per_s", summary.requests_per_second},
          {"generated_tokens", summary.generated_tokens},
          {"generated_tokens_per_s", summary.generated_tokens_per_second},
          {"latency_ms", StatsToJson(summary.latency)},
          {"time_to_first_token_ms", StatsToJson(summary.time_to_first_token)},
          {"inter_token_ms", StatsToJson(summary.inter_token)},
          {"status_codes", summary.status_counts},
          {"failed_latency_ms", failed_latency}};
}

}  // namespace attnserve::client
