#pragma once
// A request as the batcher sees it, and the sink its results go to.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/decode/generator.h"

namespace attnserve::server {

// One generation request after the API-level checks (convert.h).
struct WorkItem {
  std::string request_id;
  std::vector<int32_t> source;  // token ids
  engine::DecodeOptions decode;
  absl::Time deadline = absl::InfiniteFuture();  // on the batcher's clock
  // A request still queued then is answered DEADLINE_EXCEEDED; once admitted
  // it no longer applies (the KServe protocol's `timeout`). Batcher's clock.
  absl::Time queue_deadline = absl::InfiniteFuture();
  // Start without waiting for a batch to fill (QueuedRequest::urgent).
  bool urgent = false;
};

// How an accepted request went; sent with its final status.
struct Outcome {
  engine::SequenceResult result;  // meaningful only with an OK status
  absl::Duration queue_time;    // accepted -> admitted (zero if never admitted)
  absl::Duration compute_time;  // engine time attributed to this request
  absl::Duration total_time;    // accepted -> answered
  int max_batch_size = 0;       // largest batch it ran in (0 if never admitted)
};

// Where one request's results go: the gRPC reactors implement it (and tests).
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;

  // Whether the caller has gone (cancelled the call). The batcher polls it
  // before every step; whoever sets it calls Batcher::Wake() so an idle batcher
  // notices. Thread-safe.
  virtual bool cancelled() const = 0;

  // Tokens decided in one step (greedy: one per step; beams: all of them when
  // finished), before OnFinished; concatenated they are the result's
  // output_ids. Called on the inference thread, must not block. A non-OK return
  // drops the request from the batch and it is finished with that status (e.g.
  // a stream whose reader is too slow).
  virtual absl::Status OnTokens(absl::Span<const int32_t> ids,
                                absl::Span<const float> log_probs) = 0;

  // What the batcher calls for a step that decided tokens: the step's event
  // (new_ids, new_log_probs and, when the request asked for them,
  // new_top_log_probs). The default passes ids and log-probs to OnTokens;
  // sinks that stream top log-probs override it. Same rules as OnTokens.
  virtual absl::Status OnStepTokens(const engine::StepEvent& event) {
    return OnTokens(event.new_ids, event.new_log_probs);
  }

  // Called exactly once per accepted request, last. The batcher does not touch
  // the sink once this is called (it may delete itself before returning).
  virtual void OnFinished(const absl::Status& status,
                          const Outcome& outcome) = 0;
};

}  // namespace attnserve::server
