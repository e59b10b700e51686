#pragma once
// attnserve-bench's load: many Generate (or GenerateStream) calls in flight on
// one channel through gRPC's callback API, in a closed loop (a fixed number of
// calls in flight, the next sent when one finishes) or an open loop (calls
// arrive at a rate, whether or not earlier ones have finished).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "attnserve/v1/attnserve.grpc.pb.h"
#include "client/request_mix.h"

namespace attnserve::client {

enum class Arrivals {
  kPoisson,  // exponential gaps: independent clients
  kUniform,  // equal gaps: a metronome
};
absl::StatusOr<Arrivals> ParseArrivals(absl::string_view name);
const char* ArrivalsName(Arrivals arrivals);

struct LoadOptions {
  // Closed loop (rps == 0): calls kept in flight.
  int concurrency = 1;
  // Open loop: arrivals per second. An arrival that finds max_in_flight calls
  // in flight is not sent; it counts as dropped by the client.
  double rps = 0;
  Arrivals arrivals = Arrivals::kPoisson;
  int max_in_flight = 1000;
  // How long to measure, or how many calls to measure (exactly one is
  // non-zero). Open loop: `requests` counts arrivals, sent or dropped.
  absl::Duration duration;
  int64_t requests = 0;
  // Load before the measured part; calls started during it are not counted.
  absl::Duration warmup;
  bool stream = false;
  absl::Duration timeout = absl::Seconds(60);  // deadline of each call
  uint64_t seed = 1;                           // open loop arrivals
};

// INVALID_ARGUMENT naming the flag at fault.
absl::Status ValidateLoadOptions(const LoadOptions& options);
// "closed loop, concurrency 32, unary, 2000 requests after 2s warmup".
std::string DescribeLoad(const LoadOptions& options);

// One measured call.
struct CallRecord {
  grpc::StatusCode code = grpc::StatusCode::OK;
  absl::Duration latency;  // sent -> final status
  // Tokens received, the other hypotheses' (num_return_sequences) included
  // (for a failed stream: those that arrived before it failed).
  int64_t generated_tokens = 0;
  // Streaming: sent -> the first message with tokens, and the gaps between
  // consecutive messages with tokens.
  std::optional<absl::Duration> time_to_first_token;
  std::vector<absl::Duration> token_gaps;
};

struct LoadResult {
  std::vector<CallRecord> calls;  // measured calls, in order of completion
  int64_t dropped = 0;            // measured arrivals not sent (open loop)
  int64_t warmup_calls = 0;       // calls started during the warmup
  // Start of the measured part -> end of the last measured call (the window
  // when no call was measured).
  absl::Duration elapsed;
};

// Runs the load and returns when every call it started has finished. `stub`
// and `mix` must outlive the call. INVALID_ARGUMENT for invalid options.
absl::StatusOr<LoadResult> RunLoad(v1::Seq2Seq::Stub& stub, RequestMix& mix,
                                   const LoadOptions& options);

}  // namespace attnserve::client
