#include "server/metrics.h"

namespace attnserve::server {

const char* MethodName(Method method) {
  switch (method) {
    case Method::kGenerate:
      return "Generate";
    case Method::kGenerateStream:
      return "GenerateStream";
    case Method::kGetModelInfo:
      return "GetModelInfo";
    case Method::kServerLive:
      return "ServerLive";
    case Method::kServerReady:
      return "ServerReady";
    case Method::kModelReady:
      return "ModelReady";
    case Method::kServerMetadata:
      return "ServerMetadata";
    case Method::kModelMetadata:
      return "ModelMetadata";
    case Method::kModelInfer:
      return "ModelInfer";
    case Method::kModelStreamInfer:
      return "ModelStreamInfer";
  }
  return "unknown";
}

Protocol ProtocolOf(Method method) {
  switch (method) {
    case Method::kGenerate:
    case Method::kGenerateStream:
    case Method::kGetModelInfo:
      return Protocol::kSeq2Seq;
    default:
      return Protocol::kKServe;
  }
}

const char* ProtocolName(Protocol protocol) {
  return protocol == Protocol::kSeq2Seq ? "seq2seq" : "kserve";
}

const char* RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kQueueFull:
      return "queue_full";
    case RejectReason::kDeadline:
      return "deadline";
    case RejectReason::kCancelled:
      return "cancelled";
    case RejectReason::kInvalid:
      return "invalid";
    case RejectReason::kDraining:
      return "draining";
    case RejectReason::kSlowReader:
      return "slow_reader";
  }
  return "unknown";
}

std::optional<RejectReason> RejectReasonOf(absl::StatusCode code, bool queued) {
  switch (code) {
    case absl::StatusCode::kResourceExhausted:
      // Submission refuses only a full queue; afterwards only a stream's
      // buffer overflows (status_mapping.h lists every source of each code).
      return queued ? RejectReason::kSlowReader : RejectReason::kQueueFull;
    case absl::StatusCode::kDeadlineExceeded:
      return RejectReason::kDeadline;
    case absl::StatusCode::kCancelled:
      return RejectReason::kCancelled;
    case absl::StatusCode::kInvalidArgument:
      return RejectReason::kInvalid;
    case absl::StatusCode::kUnavailable:
      return RejectReason::kDraining;
    default:
      return std::nullopt;
  }
}

}  // namespace attnserve::server
