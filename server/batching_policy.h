#pragma once
// The batching policy: a pure function of the queue, the running batch, the
// time and the options that says "admit these now" or "wait until T" (as
// Triton's GetDynamicBatch does). The batcher (batcher.h) applies it before
// every decode step; this file has no threads, no clock and no engine, so it is
// table-tested.
//
// Budgets. Every request has a worst-case cost: tokens (TokenCost, the
// positions it can hold in the engine's caches) and memory bytes
// (BatchEngine::EstimateBytes), and a worst-case number of decode steps
// (max_new_tokens). The running batch's summed costs stay within
// max_batch_tokens and max_batch_memory_bytes. A request that does not fit the
// budgets even alone is refused when it arrives (CheckFitsAlone), so every
// queued request fits an empty batch and nothing ever runs alone by exception.
//
// Order. Admission is first-in-first-out, with one exception (continuous
// batching only): when the oldest waiting request does not fit beside the
// running batch yet, later requests that fit may pass it if, at worst, they
// finish no later than the step at which the running batch will have freed
// enough room for it (its "shadow" step, computed from the running requests'
// worst-case remaining steps). Passing it then never delays it, so it is not
// starved however many short requests arrive, while short requests keep
// flowing beside a long one (EASY backfilling, as batch schedulers do).

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/decode/generator.h"

namespace attnserve::server {

enum class BatchingMode {
  // Iteration-level: before every decode step, waiting requests join the
  // running batch up to the limits; finished sequences leave at once.
  kContinuous,
  // Classic dynamic batching: collect a batch, run it until its last sequence
  // finishes, then collect the next one.
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
  // Budget on the running batch's summed TokenCost; >= 1.
  int max_batch_tokens = 32768;
  // Budget on the running batch's summed worst-case engine memory, in bytes
  // (the --memory_budget flag); 0: none.
  int64_t max_batch_memory_bytes = 0;
  // How long an idle server lets a first batch fill, counted from the oldest
  // waiting request's arrival. Zero admits at once.
  absl::Duration max_queue_delay = absl::Milliseconds(5);
};

// The worst-case number of positions a request holds in the engine's caches:
// its decoder rows (engine::DecoderRows: beam_size for beam search,
// num_return_sequences when sampling) * (source tokens + max_new_tokens).
int TokenCost(int source_tokens, const engine::DecodeOptions& options);

// OK when a request of this worst-case cost fits the budgets alone;
// RESOURCE_EXHAUSTED naming the cost, the budget and its flag otherwise.
absl::Status CheckFitsAlone(int token_cost, int64_t memory_bytes,
                            const BatchingOptions& options);

// A waiting request as the policy sees it.
struct QueuedRequest {
  absl::Time arrival;
  int token_cost = 0;
  int64_t memory_bytes = 0;
  int max_steps = 0;  // decode steps it may take at worst (max_new_tokens)
  // Starts without waiting for a batch to fill (the server's own warm-up
  // request).
  bool urgent = false;
};

// A request in the running batch as the policy sees it.
struct RunningRequest {
  int token_cost = 0;
  int64_t memory_bytes = 0;
  int remaining_steps = 0;  // worst case: max_steps minus the steps it took
};

struct BatchState {
  absl::Span<const QueuedRequest> queue;     // oldest first
  absl::Span<const RunningRequest> running;  // any order
  // No new requests are being accepted (draining): a batch cannot fill any
  // further, so waiting requests start at once.
  bool draining = false;
};

struct BatchDecision {
  // Indices into the queue of the requests to admit now, ascending.
  std::vector<int> admit;
  // When nothing is admitted and requests wait: the time at which the
  // decision changes by itself (the oldest request's max_queue_delay runs
  // out). InfiniteFuture when only an event (arrival, finish) can change it.
  absl::Time wake_at = absl::InfiniteFuture();

  friend bool operator==(const BatchDecision& a, const BatchDecision& b) {
    return a.admit == b.admit && a.wake_at == b.wake_at;
  }
};

// Every request in `state.queue` must fit the budgets alone (CheckFitsAlone);
// the policy never admits beyond a budget.
BatchDecision DecideBatch(const BatchState& state, absl::Time now,
                          const BatchingOptions& options);

}  // namespace attnserve::server
