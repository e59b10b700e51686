// grpc.health.v1.Health as grpcurl reaches it: through server reflection
// alone. The client below knows no health.proto; it resolves the service's
// descriptor via grpc.reflection.v1alpha (file_containing_symbol), builds the
// request from that descriptor and calls Check with it, as
// `grpcurl -plaintext HOST:PORT grpc.health.v1.Health/Check` does.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/fake_engine.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/loopback_server_options.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::FakeEngine;
using ::testing::Contains;
namespace pb = ::google::protobuf;

// Calls grpc.health.v1.Health/Check for `service` with messages built only
// from what reflection served; the status enum's name, or an error.
absl::StatusOr<std::string> CheckByReflection(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  absl::StatusOr<pb::FileDescriptorProto> file =
      testing::FileContainingSymbol(channel, "grpc.health.v1.Health");
  if (!file.ok()) return file.status();
  pb::DescriptorPool pool;  // empty: nothing from this binary's own protos
  const pb::FileDescriptor* built = pool.BuildFile(*file);
  if (built == nullptr) {
    return absl::InternalError("reflection served an unusable descriptor");
  }
  const pb::ServiceDescriptor* health =
      pool.FindServiceByName("grpc.health.v1.Health");
  if (health == nullptr) return absl::NotFoundError("no service in the file");
  const pb::MethodDescriptor* check = health->FindMethodByName("Check");
  if (check == nullptr) return absl::NotFoundError("no method Check");

  pb::DynamicMessageFactory factory(&pool);
  std::unique_ptr<pb::Message> request(
      factory.GetPrototype(check->input_type())->New());
  const pb::FieldDescriptor* service_field =
      check->input_type()->FindFieldByName("service");
  if (service_field == nullptr) return absl::NotFoundError("no field service");
  request->GetReflection()->SetString(request.get(), service_field, service);

  absl::StatusOr<std::string> bytes = testing::RawUnaryCall(
      channel, absl::StrCat("/", health->full_name(), "/", check->name()),
      request->SerializeAsString());
  if (!bytes.ok()) return bytes.status();
  std::unique_ptr<pb::Message> response(
      factory.GetPrototype(check->output_type())->New());
  if (!response->ParseFromString(*bytes)) {
    return absl::InternalError("unparsable response");
  }
  const pb::FieldDescriptor* status_field =
      check->output_type()->FindFieldByName("status");
  if (status_field == nullptr) return absl::NotFoundError("no field status");
  return response->GetReflection()->GetEnum(*response, status_field)->name();
}

class HealthReflectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options = testing::LoopbackServerOptions();
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Create(options, std::make_unique<FakeEngine>());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = testing::Connect(server_->port());
  }

  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(HealthReflectionTest, ReflectionDescribesHealthAndCheckAnswers) {
  absl::StatusOr<std::vector<std::string>> services =
      testing::ListServices(channel_);
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, Contains("grpc.health.v1.Health"));

  absl::StatusOr<pb::FileDescriptorProto> file =
      testing::FileContainingSymbol(channel_, "grpc.health.v1.Health");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->name(), "grpc/health/v1/health.proto");
  EXPECT_EQ(file->package(), "grpc.health.v1");

  EXPECT_EQ(CheckByReflection(channel_, "").value_or("error"), "SERVING");
  EXPECT_EQ(CheckByReflection(channel_, kServiceName).value_or("error"),
            "SERVING");
  // Unknown names stay NOT_FOUND, as with the generated stub.
  EXPECT_EQ(CheckByReflection(channel_, "no.such.Service").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace attnserve::server
