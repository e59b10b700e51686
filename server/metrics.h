#pragma once
// The hook through which the server reports what it does, so metrics
// (Prometheus, in a later issue) live behind one small interface and the
// batcher never touches a metrics library.

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace attnserve::server {

// What a finished request reports. Durations as in the API's Timing message.
struct RequestStats {
  absl::Duration queue;    // accepted -> admitted (zero if never admitted)
  absl::Duration compute;  // engine time attributed to the request
  absl::Duration total;    // accepted -> answered
  int input_tokens = 0;
  int generated_tokens = 0;
  int max_batch_size = 0;  // largest batch it ran in (0 if never admitted)
};

// Implementations must be thread-safe: the gRPC threads and the inference
// thread call them. Calls must be cheap and must not block.
class ServerObserver {
 public:
  virtual ~ServerObserver() = default;

  // A request was accepted into the queue; `queue_size` counts it.
  virtual void OnQueued(int queue_size) = 0;
  // A request was answered without being queued (bad request, queue full,
  // draining).
  virtual void OnRejected(absl::StatusCode code) = 0;
  // A client cancelled its call (reported once per call, when gRPC tells the
  // server); the batcher answers it CANCELLED at its next look.
  virtual void OnCallCancelled() = 0;
  // A request left the queue for the running batch after waiting `queue_time`.
  virtual void OnAdmitted(absl::Duration queue_time) = 0;
  // The engine encoded `sequences` new sources together in `duration`.
  virtual void OnEncode(int sequences, absl::Duration duration) = 0;
  // One decode step over `batch_size` active sequences took `duration`.
  virtual void OnStep(int batch_size, absl::Duration duration) = 0;
  // An accepted request was answered with `code`.
  virtual void OnFinished(absl::StatusCode code, const RequestStats& stats) = 0;
};

class NoopObserver final : public ServerObserver {
 public:
  void OnQueued(int) override {}
  void OnRejected(absl::StatusCode) override {}
  void OnCallCancelled() override {}
  void OnAdmitted(absl::Duration) override {}
  void OnEncode(int, absl::Duration) override {}
  void OnStep(int, absl::Duration) override {}
  void OnFinished(absl::StatusCode, const RequestStats&) override {}
};

}  // namespace attnserve::server
