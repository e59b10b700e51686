#include "server/batching_policy.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace attnserve::server {

absl::StatusOr<BatchingMode> ParseBatchingMode(absl::string_view name) {
  if (name == "continuous") return BatchingMode::kContinuous;
  if (name == "dynamic") return BatchingMode::kDynamic;
  if (name == "none") return BatchingMode::kNone;
  return absl::InvalidArgumentError(absl::StrCat(
      "batching mode \"", name, "\" is not one of continuous, dynamic, none"));
}

const char* BatchingModeName(BatchingMode mode) {
  switch (mode) {
    case BatchingMode::kContinuous:
      return "continuous";
    case BatchingMode::kDynamic:
      return "dynamic";
    case BatchingMode::kNone:
      return "none";
  }
  return "unknown";
}

absl::StatusOr<absl::Duration> ParseQueueDelay(absl::string_view text,
                                               BatchingMode mode) {
  if (text == "auto") {
    return mode == BatchingMode::kDynamic ? absl::Milliseconds(5)
                                          : absl::ZeroDuration();
  }
  absl::Duration delay;
  if (!absl::ParseDuration(text, &delay) || delay < absl::ZeroDuration() ||
      delay == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_queue_delay \"", text,
                     "\" is not auto or a finite duration >= 0 (e.g. 5ms)"));
  }
  return delay;
}

int TokenCost(int source_tokens, const engine::DecodeOptions& options) {
  const int64_t cost =
      int64_t{std::max(options.beam_size, 1)} *
      (int64_t{source_tokens} + int64_t{options.max_new_tokens});
  return static_cast<int>(std::min<int64_t>(cost, INT32_MAX));
}

namespace {

// How many requests from the front of the queue fit beside the running batch.
int CountFitting(const BatchState& state, int max_sequences,
                 const BatchingOptions& options) {
  const int room = std::max(0, max_sequences - state.active_sequences);
  int64_t tokens = state.active_token_cost;
  int count = 0;
  for (const QueuedRequest& request : state.queue) {
    if (count == room) break;
    const bool alone = state.active_sequences == 0 && count == 0;
    if (!alone && tokens + request.token_cost > options.max_batch_tokens) break;
    tokens += request.token_cost;
    ++count;
  }
  return count;
}

// An idle engine: admit a full batch at once, otherwise let it fill until the
// oldest request has waited max_queue_delay.
BatchDecision StartBatch(const BatchState& state, absl::Time now,
                         int max_sequences, const BatchingOptions& options) {
  const int fitting = CountFitting(state, max_sequences, options);
  // Full: the size limit is reached, or the next request does not fit the token
  // budget.
  const bool full = fitting == max_sequences ||
                    fitting < static_cast<int>(state.queue.size());
  const bool urgent =
      state.draining ||
      std::any_of(state.queue.begin(), state.queue.begin() + fitting,
                  [](const QueuedRequest& r) { return r.urgent; });
  const absl::Time due = state.queue.front().arrival + options.max_queue_delay;
  if (full || urgent || now >= due) return {fitting, absl::InfiniteFuture()};
  return {0, due};
}

}  // namespace

BatchDecision DecideBatch(const BatchState& state, absl::Time now,
                          const BatchingOptions& options) {
  if (state.queue.empty()) return {};
  switch (options.mode) {
    case BatchingMode::kNone:
      // One at a time, at once: there is no batch to fill.
      if (state.active_sequences > 0) return {};
      return {1, absl::InfiniteFuture()};
    case BatchingMode::kDynamic:
      if (state.active_sequences > 0) return {};
      return StartBatch(state, now, options.max_batch_size, options);
    case BatchingMode::kContinuous:
      if (state.active_sequences == 0) {
        return StartBatch(state, now, options.max_batch_size, options);
      }
      // The engine is busy anyway: whatever fits joins before the next step,
      // without delay.
      return {CountFitting(state, options.max_batch_size, options),
              absl::InfiniteFuture()};
  }
  return {};
}

}  // namespace attnserve::server
