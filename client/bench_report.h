#pragma once
// attnserve-bench's summary of a run, in the spirit of ghz: counts, rates,
// latency percentiles (of the calls that succeeded), time to first token and
// inter-token gaps (streaming), and how many calls ended with each status.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "client/latency_stats.h"
#include "client/load_generator.h"
#include "nlohmann/json.hpp"

namespace attnserve::client {

struct BenchSummary {
  int64_t count = 0;  // measured calls sent, whatever their status
  int64_t ok = 0;
  int64_t dropped = 0;       // open loop: arrivals the client did not send
  int64_t warmup_calls = 0;  // not counted anywhere else
  absl::Duration elapsed;
  double requests_per_second = 0;  // count / elapsed
  int64_t generated_tokens = 0;    // of OK calls
  double generated_tokens_per_second = 0;
  // Of OK calls; nullopt when there is none (or, for the streaming figures,
  // when the run was unary).
  std::optional<LatencyStats> latency;
  std::optional<LatencyStats> time_to_first_token;
  std::optional<LatencyStats> inter_token;
  std::map<std::string, int64_t> status_counts;  // "OK" -> n, ...
  // Latencies of the failed calls, by status code ("RESOURCE_EXHAUSTED" ->
  // ...): how fast an overloaded server sheds load.
  std::map<std::string, LatencyStats> failed_latency;
};

BenchSummary Summarize(const LoadResult& result, bool stream);

// The human report: a block of totals, a table of latencies in milliseconds,
// the status counts.
std::string FormatSummary(const BenchSummary& summary);

// The machine report: durations in milliseconds (latency_ms.p50, ...),
// rates per second, status_codes {"OK": n}, failed_latency_ms {"CODE": {...}};
// streaming blocks are null when absent. Keys are documented in
// docs/client.md.
nlohmann::json SummaryToJson(const BenchSummary& summary);

}  // namespace attnserve::client
