#pragma once
// The batching policy: a pure function of the queue, the running batch, the
// time and the options that says "admit these now" or "wait until T" (as
// Triton's GetDynamicBatch does). The batcher (batcher.h) applies it before
// every decode step; this file has no threads, no clock and no engine, so it is
// table-tested.

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/generator.h"

namespace attnserve::server {

enum class BatchingMode {
  // Iteration-level: before every decode step, waiting requests join the
  // running batch up to
  // the limits; finished sequences leave at once.
  kContinuous,
  // Classic dynamic batching: collect a batch, run it until its last sequence
  // finishes, then
  // collect the next one.
  kDynamic,
  // One request at a time (the baseline benchmarks compare against).
  kNone,
};
absl::StatusOr<BatchingMode> ParseBatchingMode(
    absl::string_view name);  // continuous|dynamic|none
const char* BatchingModeName(BatchingMode mode);

// The --max_queue_delay flag: a duration ("5ms", "0") or "auto", which is 0
// for continuous batching (a request arriving later joins the running batch at
// the next step, so waiting would only add latency) and 5ms for dynamic
// batching (a batch that starts too early locks later arrivals out until it
// finishes).
absl::StatusOr<absl::Duration> ParseQueueDelay(absl::string_view text,
                                               BatchingMode mode);

struct BatchingOptions {
  BatchingMode mode = BatchingMode::kContinuous;
  // Most sequences (sources) in the running batch at once; >= 1.
  int max_batch_size = 32;
  // Budget on the running batch's summed TokenCost; >= 1. A request that alone
  // exceeds it still runs, alone, so that no valid request waits forever.
  int max_batch_tokens = 32768;
  // How long an idle server lets a first batch fill, counted from the oldest
  // waiting request's arrival. Zero admits at once.
  absl::Duration max_queue_delay = absl::Milliseconds(5);
};

// The worst-case number of positions a request holds in the engine's caches:
// beam_size * (source tokens + max_new_tokens).
int TokenCost(int source_tokens, const engine::DecodeOptions& options);

// A waiting request as the policy sees it.
struct QueuedRequest {
  absl::Time arrival;
  int token_cost = 0;
  // Starts without waiting for a batch to fill (the server's own warm-up
  // request).
  bool urgent = false;
};

struct BatchState {
  absl::Span<const QueuedRequest> queue;  // oldest first
  int active_sequences = 0;               // in the running batch
  int active_token_cost = 0;              // their summed TokenCost
  // No new requests are being accepted (draining): a batch cannot fill any
  // further, so waiting requests start at once.
  bool draining = false;
};

struct BatchDecision {
  // Admit this many requests from the front of the queue now (FIFO: a request
  // that does not fit blocks the ones behind it, so large requests are not
  // starved).
  int admit = 0;
  // When admit == 0 and requests wait: the time at which the decision changes
  // by itself (the oldest request's max_queue_delay runs out). InfiniteFuture
  // when only an event (arrival, finish) can change it.
  absl::Time wake_at = absl::InfiniteFuture();

  friend bool operator==(const BatchDecision& a, const BatchDecision& b) {
    return a.admit == b.admit && a.wake_at == b.wake_at;
  }
};

BatchDecision DecideBatch(const BatchState& state, absl::Time now,
                          const BatchingOptions& options);

}  // namespace attnserve::server
