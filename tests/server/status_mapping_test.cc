#include "server/status_mapping.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace attnserve::server {
namespace {

struct MappingCase {
  absl::StatusCode internal;
  grpc::StatusCode expected;
};

TEST(StatusMappingTest, MapsEveryInternalCode) {
  const std::vector<MappingCase> cases = {
      {absl::StatusCode::kOk, grpc::StatusCode::OK},
      {absl::StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT},
      {absl::StatusCode::kResourceExhausted,
       grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE},
      {absl::StatusCode::kDeadlineExceeded,
       grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::StatusCode::kCancelled, grpc::StatusCode::CANCELLED},
      {absl::StatusCode::kInternal, grpc::StatusCode::INTERNAL},
      // Engine faults that are not the client's doing.
      {absl::StatusCode::kFailedPrecondition, grpc::StatusCode::INTERNAL},
      {absl::StatusCode::kOutOfRange, grpc::StatusCode::INTERNAL},
      {absl::StatusCode::kUnknown, grpc::StatusCode::INTERNAL},
      {absl::StatusCode::kNotFound, grpc::StatusCode::INTERNAL},
      {absl::StatusCode::kDataLoss, grpc::StatusCode::INTERNAL},
  };
  for (const MappingCase& c : cases) {
    const absl::Status status(c.internal,
                              c.internal == absl::StatusCode::kOk ? "" : "why");
    const grpc::Status mapped = ToGrpcStatus(status);
    EXPECT_EQ(mapped.error_code(), c.expected)
        << absl::StatusCodeToString(c.internal);
    if (!status.ok()) {
      EXPECT_EQ(mapped.error_message(), "why");
    }
  }
}

}  // namespace
}  // namespace attnserve::server
