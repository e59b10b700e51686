#include "server/status_mapping.h"

#include <string>

namespace attnserve::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  const std::string message(status.message());
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return grpc::Status::OK;
    case absl::StatusCode::kInvalidArgument:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
    case absl::StatusCode::kResourceExhausted:
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, message);
    case absl::StatusCode::kUnavailable:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, message);
    case absl::StatusCode::kDeadlineExceeded:
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, message);
    case absl::StatusCode::kCancelled:
      return grpc::Status(grpc::StatusCode::CANCELLED, message);
    default:
      // Codes the server never produces for a client's doing
      // (FAILED_PRECONDITION, OUT_OF_RANGE, ... from the engine) mean a fault
      // on our side; the client must not retry them as its own mistake.
      return grpc::Status(grpc::StatusCode::INTERNAL, message);
  }
}

}  // namespace attnserve::server
