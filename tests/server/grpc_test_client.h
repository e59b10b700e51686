#pragma once
// Client-side helpers for the in-process server tests: calls over a real
// loopback channel, calls kept in flight (to cancel them or to have many at
// once), and health / reflection checks made by hand, since Debian's gRPC ships
// neither service's .proto.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "attnserve/v1/attnserve.grpc.pb.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpcpp/grpcpp.h"

namespace attnserve::server::testing {

std::shared_ptr<grpc::Channel> Connect(int port);

grpc::Status Generate(v1::Seq2Seq::Stub& stub,
                      const v1::GenerateRequest& request,
                      v1::GenerateResponse* response,
                      absl::Duration timeout = absl::Seconds(30));

struct StreamResult {
  grpc::Status status;
  std::vector<v1::GenerateResponse> messages;
  // The messages' tokens, log-probs and top log-probs concatenated, with the
  // last message's other fields: what a unary call answers (but its text).
  v1::GenerateResponse Concatenated() const;
};
StreamResult GenerateStream(v1::Seq2Seq::Stub& stub,
                            const v1::GenerateRequest& request,
                            absl::Duration timeout = absl::Seconds(30));

// A unary Generate in flight (gRPC's callback client API).
class PendingCall {
 public:
  PendingCall(v1::Seq2Seq::Stub& stub, v1::GenerateRequest request,
              absl::Duration timeout = absl::Seconds(30));
  PendingCall(const PendingCall&) = delete;
  PendingCall& operator=(const PendingCall&) = delete;
  ~PendingCall() { done_.WaitForNotification(); }

  void Cancel() { context_.TryCancel(); }
  const grpc::Status& Wait() const {
    done_.WaitForNotification();
    return status_;
  }
  const v1::GenerateResponse& response() const {
    done_.WaitForNotification();
    return response_;
  }
  const v1::GenerateRequest& request() const { return request_; }

 private:
  grpc::ClientContext context_;
  const v1::GenerateRequest request_;
  v1::GenerateResponse response_;
  grpc::Status status_;  // written before done_ is notified
  absl::Notification done_;
};

// grpc.health.v1.Health/Check: the serving status (1 SERVING, 2 NOT_SERVING) or
// the call's error (NOT_FOUND for an unknown service).
absl::StatusOr<int> CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                                const std::string& service);

// Server reflection (grpc.reflection.v1alpha): the services listed.
absl::StatusOr<std::vector<std::string>> ListServices(
    const std::shared_ptr<grpc::Channel>& channel);
// Server reflection: the file that defines `symbol`.
absl::StatusOr<google::protobuf::FileDescriptorProto> FileContainingSymbol(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& symbol);

// Sends `bytes` as the request of a unary method and returns the response
// bytes.
absl::StatusOr<std::string> RawUnaryCall(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
    const std::string& bytes);

}  // namespace attnserve::server::testing
