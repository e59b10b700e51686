#pragma once
// The hook through which the server reports what it does, so that metrics live
// behind one small interface and neither the batcher nor the service touches a
// metrics library. PrometheusMetrics (prometheus_metrics.h) is the real
// implementation; docs/metrics.md lists what it makes of each call.

#include <optional>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace attnserve::server {

// The RPCs the server answers: attnserve.v1.Seq2Seq's, then
// inference.GRPCInferenceService's (the KServe v2 / Triton protocol,
// docs/kserve.md).
enum class Method {
  kGenerate,
  kGenerateStream,
  kGetModelInfo,
  kServerLive,
  kServerReady,
  kModelReady,
  kServerMetadata,
  kModelMetadata,
  kModelInfer,
  kModelStreamInfer,
};
inline constexpr Method kAllMethods[] = {
    Method::kGenerate,        Method::kGenerateStream, Method::kGetModelInfo,
    Method::kServerLive,      Method::kServerReady,    Method::kModelReady,
    Method::kServerMetadata,  Method::kModelMetadata,  Method::kModelInfer,
    Method::kModelStreamInfer};
// The method's name in the API ("Generate", "ModelInfer", ...), as logs and
// metrics show it.
const char* MethodName(Method method);

// The API a method belongs to.
enum class Protocol { kSeq2Seq, kKServe };
inline constexpr Protocol kAllProtocols[] = {Protocol::kSeq2Seq,
                                             Protocol::kKServe};
Protocol ProtocolOf(Method method);
// "seq2seq" (attnserve.v1.Seq2Seq) or "kserve"
// (inference.GRPCInferenceService).
const char* ProtocolName(Protocol protocol);

// Why a request was answered without being served.
enum class RejectReason {
  kQueueFull,   // RESOURCE_EXHAUSTED at submission: load shedding
  kDeadline,    // DEADLINE_EXCEEDED while queued or decoding
  kCancelled,   // the client cancelled (or its stream broke)
  kInvalid,     // INVALID_ARGUMENT: the server's checks or the engine's
  kDraining,    // UNAVAILABLE: shutting down (refused, or the grace ran out)
  kSlowReader,  // RESOURCE_EXHAUSTED while streaming: the reader fell behind
};
inline constexpr RejectReason kAllRejectReasons[] = {
    RejectReason::kQueueFull, RejectReason::kDeadline,
    RejectReason::kCancelled, RejectReason::kInvalid,
    RejectReason::kDraining,  RejectReason::kSlowReader};
// "queue_full", "deadline", "cancelled", "invalid", "draining", "slow_reader".
const char* RejectReasonName(RejectReason reason);
// Why a request answered with `code` was not served: `queued` says whether the
// batcher had accepted it (ServerObserver::OnFinished) or not (OnRejected).
// nullopt for OK and for the server's own faults (INTERNAL): those are served
// or failed, not rejected.
std::optional<RejectReason> RejectReasonOf(absl::StatusCode code, bool queued);

// What a request accepted by the batcher reports when it is answered.
// Durations as in the API's Timing message.
struct RequestStats {
  absl::Duration queue;    // accepted -> admitted (zero if never admitted)
  absl::Duration compute;  // engine time attributed to the request
  absl::Duration total;    // accepted -> answered
  int input_tokens = 0;
  int generated_tokens = 0;
  int max_batch_size = 0;  // largest batch it ran in (0 if never admitted)
};

// Implementations must be thread-safe: the gRPC threads and the inference
// thread call them. Calls must be cheap and must not block. Durations are on
// the batcher's clock (simulated in tests).
class ServerObserver {
 public:
  virtual ~ServerObserver() = default;

  // ---- From the service (gRPC threads) ----

  // A call of `method` was answered with `code`, `duration` after it reached
  // the service. Exactly once per call, whatever the outcome; for
  // ModelStreamInfer, once per request the stream carries (docs/kserve.md).
  virtual void OnCallDone(Method method, absl::StatusCode code,
                          absl::Duration duration) = 0;
  // A request was answered without being queued (bad request, queue full,
  // draining).
  virtual void OnRejected(absl::StatusCode code) = 0;
  // A client cancelled its call (reported once per call, when gRPC tells the
  // server); the batcher answers it CANCELLED at its next look.
  virtual void OnCallCancelled() = 0;

  // ---- From the batcher ----

  // The number of requests waiting for admission or admitted and not yet
  // answered changed. Called with the batcher's lock held, so that successive
  // calls arrive in order: must not call back into the batcher.
  virtual void OnLoad(int queued, int running) = 0;
  // A request left the queue for the running batch after waiting `queue_time`.
  virtual void OnAdmitted(absl::Duration queue_time) = 0;
  // The engine encoded `sequences` new sources of `tokens` tokens in all
  // together in `duration`.
  virtual void OnEncode(int sequences, int tokens, absl::Duration duration) = 0;
  // One decode step over `batch_size` active sequences took `duration`.
  virtual void OnStep(int batch_size, absl::Duration duration) = 0;
  // The engine produced `count` new tokens for one request, `latency` after the
  // request was accepted when they are its `first` (the time to first token),
  // else after its previous ones (the inter-token latency).
  virtual void OnTokens(int count, bool first, absl::Duration latency) = 0;
  // An accepted request was answered with `code`.
  virtual void OnFinished(absl::StatusCode code, const RequestStats& stats) = 0;
};

class NoopObserver final : public ServerObserver {
 public:
  void OnCallDone(Method, absl::StatusCode, absl::Duration) override {}
  void OnRejected(absl::StatusCode) override {}
  void OnCallCancelled() override {}
  void OnLoad(int, int) override {}
  void OnAdmitted(absl::Duration) override {}
  void OnEncode(int, int, absl::Duration) override {}
  void OnStep(int, absl::Duration) override {}
  void OnTokens(int, bool, absl::Duration) override {}
  void OnFinished(absl::StatusCode, const RequestStats&) override {}
};

}  // namespace attnserve::server
