#include "server/batching_policy.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/memory_budget.h"

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
      int64_t{engine::DecoderRows(options)} *
      (int64_t{source_tokens} + int64_t{options.max_new_tokens});
  return static_cast<int>(std::min<int64_t>(cost, INT32_MAX));
}

absl::Status CheckFitsAlone(int token_cost, int64_t memory_bytes,
                            const BatchingOptions& options) {
  if (token_cost > options.max_batch_tokens) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the request may hold ", token_cost,
        " tokens in the engine (decoder rows x (source tokens + "
        "max_new_tokens), the rows being beam_size, or num_return_sequences "
        "when sampling); "
        "the running batch's budget is ",
        options.max_batch_tokens, " (--max_batch_tokens)"));
  }
  if (options.max_batch_memory_bytes > 0 &&
      memory_bytes > options.max_batch_memory_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the request may need ", FormatBytes(memory_bytes), " (", memory_bytes,
        " bytes)",
        " of engine memory (its source, max_new_tokens and decoder rows at "
        "worst); the memory budget is ",
        FormatBytes(options.max_batch_memory_bytes), " (--memory_budget)"));
  }
  return absl::OkStatus();
}

namespace {

// What is left of the running batch's budgets.
struct Room {
  int64_t sequences = 0;
  int64_t tokens = 0;
  int64_t bytes = 0;  // INT64_MAX without a memory budget

  bool Fits(int token_cost, int64_t memory_bytes) const {
    return sequences >= 1 && token_cost <= tokens && memory_bytes <= bytes;
  }
  void Take(int token_cost, int64_t memory_bytes, int sign = 1) {
    sequences -= sign;
    tokens -= sign * int64_t{token_cost};
    bytes -= sign * memory_bytes;
  }
};

Room RoomBeside(absl::Span<const RunningRequest> running, int max_sequences,
                const BatchingOptions& options) {
  Room room;
  room.sequences = max_sequences;
  room.tokens = options.max_batch_tokens;
  room.bytes = options.max_batch_memory_bytes > 0
                   ? options.max_batch_memory_bytes
                   : INT64_MAX / 2;  // halved: Take and give back never wrap
  for (const RunningRequest& r : running)
    room.Take(r.token_cost, r.memory_bytes);
  return room;
}

// The step (counted from now) by which, at worst, enough of `running` has
// finished for `blocked` to fit; `room` is what is free now.
int ShadowStep(std::vector<RunningRequest> running, Room room,
               const QueuedRequest& blocked) {
  std::sort(running.begin(), running.end(),
            [](const RunningRequest& a, const RunningRequest& b) {
              return a.remaining_steps < b.remaining_steps;
            });
  for (const RunningRequest& r : running) {
    room.Take(r.token_cost, r.memory_bytes, /*sign=*/-1);
    if (room.Fits(blocked.token_cost, blocked.memory_bytes))
      return r.remaining_steps;
  }
  // Only when `blocked` does not fit even an empty batch, which the batcher
  // never queues: then nothing may pass it.
  return 0;
}

// The requests to admit beside `running`: the longest FIFO prefix of the queue
// that fits and, with `backfill`, later requests that fit and finish by the
// first blocked request's shadow step.
std::vector<int> Admissible(const BatchState& state, int max_sequences,
                            bool backfill, const BatchingOptions& options) {
  Room room = RoomBeside(state.running, max_sequences, options);
  std::vector<int> admit;
  const int size = static_cast<int>(state.queue.size());
  int i = 0;
  for (; i < size; ++i) {
    const QueuedRequest& request = state.queue[i];
    if (!room.Fits(request.token_cost, request.memory_bytes)) break;
    room.Take(request.token_cost, request.memory_bytes);
    admit.push_back(i);
  }
  if (!backfill || i == size || room.sequences < 1) return admit;

  // What will be running after this admission, for the blocked one's shadow.
  std::vector<RunningRequest> running(state.running.begin(),
                                      state.running.end());
  for (int j : admit) {
    const QueuedRequest& request = state.queue[j];
    running.push_back(
        {request.token_cost, request.memory_bytes, request.max_steps});
  }
  const int shadow = ShadowStep(std::move(running), room, state.queue[i]);
  for (int j = i + 1; j < size && room.sequences >= 1; ++j) {
    const QueuedRequest& request = state.queue[j];
    if (request.max_steps > shadow ||
        !room.Fits(request.token_cost, request.memory_bytes)) {
      continue;
    }
    room.Take(request.token_cost, request.memory_bytes);
    admit.push_back(j);
  }
  return admit;
}

// An idle engine: admit a full batch at once, otherwise let it fill until the
// oldest request has waited max_queue_delay.
BatchDecision StartBatch(const BatchState& state, absl::Time now,
                         int max_sequences, bool backfill,
                         const BatchingOptions& options) {
  std::vector<int> admit = Admissible(state, max_sequences, backfill, options);
  // Full: the size limit is reached, or a waiting request does not fit the
  // budgets beside the others (waiting longer would not add it).
  const int count = static_cast<int>(admit.size());
  const bool full =
      count == max_sequences || count < static_cast<int>(state.queue.size());
  const bool urgent = state.draining ||
                      std::any_of(admit.begin(), admit.end(),
                                  [&](int i) { return state.queue[i].urgent; });
  const absl::Time due = state.queue.front().arrival + options.max_queue_delay;
  if (full || urgent || now >= due)
    return {std::move(admit), absl::InfiniteFuture()};
  return {{}, due};
}

}  // namespace

BatchDecision DecideBatch(const BatchState& state, absl::Time now,
                          const BatchingOptions& options) {
  if (state.queue.empty()) return {};
  const bool idle = state.running.empty();
  switch (options.mode) {
    case BatchingMode::kNone:
      // One at a time, at once: there is no batch to fill.
      if (!idle) return {};
      return {{0}, absl::InfiniteFuture()};
    case BatchingMode::kDynamic:
      // The baseline stays plain FIFO: a batch runs to its end anyway.
      if (!idle) return {};
      return StartBatch(state, now, options.max_batch_size,
                        /*backfill=*/false, options);
    case BatchingMode::kContinuous:
      if (idle) {
        return StartBatch(state, now, options.max_batch_size,
                          /*backfill=*/true, options);
      }
      // The engine is busy anyway: whatever fits joins before the next step,
      // without delay.
      return {
          Admissible(state, options.max_batch_size, /*backfill=*/true, options),
          absl::InfiniteFuture()};
  }
  return {};
}

}  // namespace attnserve::server
