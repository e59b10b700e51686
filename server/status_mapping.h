#pragma once
// The one place where internal errors become gRPC statuses (one tested
// mapping, so that every path answers a client the same way).

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace attnserve::server {

// Bad input INVALID_ARGUMENT, queue full or a stream reader too slow
// RESOURCE_EXHAUSTED, draining UNAVAILABLE, expired DEADLINE_EXCEEDED,
// cancelled CANCELLED, OK OK; anything else is a fault of ours or the engine's
// and becomes INTERNAL. The message is kept.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace attnserve::server
