#include "tests/server/grpc_test_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/generic/generic_stub.h"

namespace attnserve::server::testing {
namespace {

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

std::chrono::system_clock::time_point After(absl::Duration timeout) {
  return absl::ToChronoTime(absl::Now() + timeout);
}

// A length-delimited field with a one-byte tag (field numbers below 16).
std::string StringField(int number, const std::string& value) {
  std::string out(1, static_cast<char>(number << 3 | 2));
  size_t length = value.size();
  do {
    const uint8_t low = length & 0x7f;
    length >>= 7;
    out.push_back(static_cast<char>(length != 0 ? low | 0x80 : low));
  } while (length != 0);
  return out + value;
}

grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string FromByteBuffer(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  (void)buffer.Dump(&slices);
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

// One request, one response on a bidi-streaming method (what reflection needs).
class OneShotBidi final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  OneShotBidi(grpc::GenericStub& stub, const std::string& method,
              const std::string& request)
      : request_(ToByteBuffer(request)) {
    context_.set_deadline(After(absl::Seconds(10)));
    stub.PrepareBidiStreamingCall(&context_, method, grpc::StubOptions(), this);
    StartWrite(&request_);
    StartRead(&response_);
    StartCall();
  }
  void OnWriteDone(bool ok) override {
    if (ok) StartWritesDone();
  }
  void OnReadDone(bool ok) override { got_response_ = ok; }
  void OnDone(const grpc::Status& status) override {
    status_ = status;
    done_.Notify();
  }
  absl::StatusOr<std::string> Wait() {
    done_.WaitForNotification();
    if (!status_.ok()) return FromGrpc(status_);
    if (!got_response_) return absl::InternalError("no response message");
    return FromByteBuffer(response_);
  }

 private:
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  bool got_response_ = false;
  grpc::Status status_;
  absl::Notification done_;
};

absl::StatusOr<std::string> ReflectionCall(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& request) {
  grpc::GenericStub stub(channel);
  OneShotBidi call(
      stub, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      request);
  return call.Wait();
}

// The first length-delimited field `number` of `bytes`.
absl::StatusOr<std::string> Field(const std::string& bytes, int number) {
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromString(bytes))
    return absl::InternalError("unparsable message");
  for (int i = 0; i < fields.field_count(); ++i) {
    const google::protobuf::UnknownField& field = fields.field(i);
    if (field.number() == number &&
        field.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      return field.length_delimited();
    }
  }
  return absl::NotFoundError(absl::StrCat("no field ", number));
}

}  // namespace

std::shared_ptr<grpc::Channel> Connect(int port) {
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                             grpc::InsecureChannelCredentials());
}

grpc::Status Generate(v1::Seq2Seq::Stub& stub,
                      const v1::GenerateRequest& request,
                      v1::GenerateResponse* response, absl::Duration timeout) {
  grpc::ClientContext context;
  context.set_deadline(After(timeout));
  return stub.Generate(&context, request, response);
}

v1::GenerateResponse StreamResult::Concatenated() const {
  v1::GenerateResponse all;
  if (!messages.empty()) all = messages.back();
  all.clear_output_ids();
  all.clear_log_probs();
  all.clear_top_log_probs();
  for (const v1::GenerateResponse& message : messages) {
    all.mutable_output_ids()->MergeFrom(message.output_ids());
    all.mutable_log_probs()->MergeFrom(message.log_probs());
    all.mutable_top_log_probs()->MergeFrom(message.top_log_probs());
  }
  return all;
}

StreamResult GenerateStream(v1::Seq2Seq::Stub& stub,
                            const v1::GenerateRequest& request,
                            absl::Duration timeout) {
  grpc::ClientContext context;
  context.set_deadline(After(timeout));
  StreamResult result;
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      stub.GenerateStream(&context, request);
  v1::GenerateResponse message;
  while (reader->Read(&message)) result.messages.push_back(message);
  result.status = reader->Finish();
  return result;
}

PendingCall::PendingCall(v1::Seq2Seq::Stub& stub, v1::GenerateRequest request,
                         absl::Duration timeout)
    : request_(std::move(request)) {
  context_.set_deadline(After(timeout));
  stub.async()->Generate(&context_, &request_, &response_,
                         [this](grpc::Status status) {
                           status_ = std::move(status);
                           done_.Notify();
                         });
}

absl::StatusOr<std::string> RawUnaryCall(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
    const std::string& bytes) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(After(absl::Seconds(10)));
  const grpc::ByteBuffer request = ToByteBuffer(bytes);
  grpc::ByteBuffer response;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return FromGrpc(status);
  return FromByteBuffer(response);
}

absl::StatusOr<int> CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                                const std::string& service) {
  // HealthCheckRequest { string service = 1; } -> HealthCheckResponse {
  // ServingStatus status = 1; }
  absl::StatusOr<std::string> response = RawUnaryCall(
      channel, "/grpc.health.v1.Health/Check", StringField(1, service));
  if (!response.ok()) return response.status();
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromString(*response))
    return absl::InternalError("unparsable response");
  int status = 0;  // UNKNOWN, the default, is not on the wire
  for (int i = 0; i < fields.field_count(); ++i) {
    if (fields.field(i).number() == 1)
      status = static_cast<int>(fields.field(i).varint());
  }
  return status;
}

absl::StatusOr<std::vector<std::string>> ListServices(
    const std::shared_ptr<grpc::Channel>& channel) {
  // ServerReflectionRequest.list_services = 7 ->
  // ServerReflectionResponse.list_services_response = 6 { repeated
  // ServiceResponse service = 1 { string name = 1; } }
  absl::StatusOr<std::string> response =
      ReflectionCall(channel, StringField(7, "*"));
  if (!response.ok()) return response.status();
  absl::StatusOr<std::string> list = Field(*response, 6);
  if (!list.ok()) return list.status();
  google::protobuf::UnknownFieldSet services;
  if (!services.ParseFromString(*list))
    return absl::InternalError("unparsable list");
  std::vector<std::string> names;
  for (int i = 0; i < services.field_count(); ++i) {
    absl::StatusOr<std::string> name =
        Field(services.field(i).length_delimited(), 1);
    if (name.ok()) names.push_back(*name);
  }
  return names;
}

absl::StatusOr<google::protobuf::FileDescriptorProto> FileContainingSymbol(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& symbol) {
  // file_containing_symbol = 4 -> file_descriptor_response = 4 { repeated bytes
  // file_descriptor_proto = 1 } (the defining file first).
  absl::StatusOr<std::string> response =
      ReflectionCall(channel, StringField(4, symbol));
  if (!response.ok()) return response.status();
  absl::StatusOr<std::string> files = Field(*response, 4);
  if (!files.ok()) return files.status();
  absl::StatusOr<std::string> first = Field(*files, 1);
  if (!first.ok()) return first.status();
  google::protobuf::FileDescriptorProto file;
  if (!file.ParseFromString(*first))
    return absl::InternalError("unparsable descriptor");
  return file;
}

}  // namespace attnserve::server::testing
