// inference.GRPCInferenceService (the KServe v2 / Triton protocol) on the
// in-process server with the fake engine, driven by a client generated from
// proto/inference/grpc_service.proto. Every answer is compared with what
// attnserve.v1.Seq2Seq's Generate gives for the same row on the same server.

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/fake_engine.h"
#include "tests/server/fake_engine_server.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/kserve_test_client.h"
#include "tests/server/loopback_server_options.h"
#include "tests/server/recording_sink.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::AwaitTrue;
using ::attnserve::server::testing::Connect;
using ::attnserve::server::testing::Contents;
using ::attnserve::server::testing::CountingObserver;
using ::attnserve::server::testing::CreateFakeEngineServer;
using ::attnserve::server::testing::FakeEngine;
using ::attnserve::server::testing::Generate;
using ::attnserve::server::testing::IdsRequest;
using ::attnserve::server::testing::ListServices;
using ::attnserve::server::testing::ModelInfer;
using ::attnserve::server::testing::OutputNames;
using ::attnserve::server::testing::OutputTensor;
using ::attnserve::server::testing::PendingCall;
using ::attnserve::server::testing::ReadOutputs;
using ::attnserve::server::testing::RowIds;
using ::attnserve::server::testing::SetIntParameter;
using ::attnserve::server::testing::TextRequest;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kModel[] = "fake-model";

// A ModelInfer call in flight (gRPC's callback client API).
class PendingInfer {
 public:
  PendingInfer(inference::GRPCInferenceService::Stub& stub,
               inference::ModelInferRequest request)
      : request_(std::move(request)) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    stub.async()->ModelInfer(&context_, &request_, &response_,
                             [this](grpc::Status status) {
                               status_ = std::move(status);
                               done_.Notify();
                             });
  }
  ~PendingInfer() { done_.WaitForNotification(); }
  const grpc::Status& Wait() {
    done_.WaitForNotification();
    return status_;
  }
  const inference::ModelInferResponse& response() {
    done_.WaitForNotification();
    return response_;
  }

 private:
  grpc::ClientContext context_;
  const inference::ModelInferRequest request_;
  inference::ModelInferResponse response_;
  grpc::Status status_;
  absl::Notification done_;
};

class KserveServiceTest : public ::testing::Test {
 protected:
  static ServerOptions Options() { return testing::FakeEngineServerOptions(); }

  void Start(const ServerOptions& options = Options()) {
    absl::StatusOr<std::unique_ptr<Server>> server =
        CreateFakeEngineServer(options, &engine_, &observer_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = Connect(server_->port());
    stub_ = inference::GRPCInferenceService::NewStub(channel_);
    seq2seq_ = v1::Seq2Seq::NewStub(channel_);
  }

  // What Generate answers for `ids` alone with `request`'s other fields.
  std::vector<int32_t> Generated(const std::vector<int32_t>& ids,
                                 v1::GenerateRequest request = {}) {
    request.mutable_input_ids()->Assign(ids.begin(), ids.end());
    v1::GenerateResponse response;
    const grpc::Status status = Generate(*seq2seq_, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.output_ids().begin(), response.output_ids().end()};
  }

  grpc::Status Infer(const inference::ModelInferRequest& request,
                     inference::ModelInferResponse* response) {
    return ModelInfer(*stub_, request, response);
  }

  // The call's error, which the test expects.
  grpc::Status InferError(const inference::ModelInferRequest& request) {
    inference::ModelInferResponse response;
    const grpc::Status status = Infer(request, &response);
    EXPECT_FALSE(status.ok());
    return status;
  }

  CountingObserver observer_;
  FakeEngine* engine_ = nullptr;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  std::unique_ptr<v1::Seq2Seq::Stub> seq2seq_;
};

// ---- Metadata and readiness ----

TEST_F(KserveServiceTest, ServerIsLiveAndReadyAndDescribesItself) {
  Start();
  {
    grpc::ClientContext context;
    inference::ServerLiveResponse live;
    ASSERT_TRUE(stub_->ServerLive(&context, {}, &live).ok());
    EXPECT_TRUE(live.live());
  }
  {
    grpc::ClientContext context;
    inference::ServerReadyResponse ready;
    ASSERT_TRUE(stub_->ServerReady(&context, {}, &ready).ok());
    EXPECT_TRUE(ready.ready());
  }
  {
    grpc::ClientContext context;
    inference::ServerMetadataResponse metadata;
    ASSERT_TRUE(stub_->ServerMetadata(&context, {}, &metadata).ok());
    EXPECT_EQ(metadata.name(), "attnserve");
    EXPECT_FALSE(metadata.version().empty());
    EXPECT_THAT(metadata.extensions(), ElementsAre("parameters"));
  }
  absl::StatusOr<std::vector<std::string>> services = ListServices(channel_);
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, Contains("inference.GRPCInferenceService"));
  EXPECT_THAT(*services, Contains("attnserve.v1.Seq2Seq"));
  absl::StatusOr<google::protobuf::FileDescriptorProto> file =
      testing::FileContainingSymbol(channel_, "inference.GRPCInferenceService");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->name(), "inference/grpc_service.proto");
  EXPECT_EQ(file->package(), "inference");
}

TEST_F(KserveServiceTest, ModelReadyAndMetadataNameTheModelAndItsTensors) {
  Start();
  for (const std::string version : {"", "1"}) {
    grpc::ClientContext context;
    inference::ModelReadyRequest request;
    request.set_name(kModel);
    request.set_version(version);
    inference::ModelReadyResponse ready;
    ASSERT_TRUE(stub_->ModelReady(&context, request, &ready).ok());
    EXPECT_TRUE(ready.ready());
  }
  grpc::ClientContext context;
  inference::ModelMetadataRequest request;
  request.set_name(kModel);
  inference::ModelMetadataResponse metadata;
  ASSERT_TRUE(stub_->ModelMetadata(&context, request, &metadata).ok());
  EXPECT_EQ(metadata.name(), kModel);
  EXPECT_THAT(metadata.versions(), ElementsAre("1"));
  std::vector<std::string> inputs, outputs;
  for (const auto& t : metadata.inputs()) {
    inputs.push_back(
        absl::StrCat(t.name(), " ", t.datatype(), " ", t.shape_size()));
  }
  for (const auto& t : metadata.outputs()) {
    outputs.push_back(
        absl::StrCat(t.name(), " ", t.datatype(), " ", t.shape_size()));
  }
  // No tokenizer: no text tensors.
  EXPECT_THAT(inputs,
              ElementsAre("input_ids INT32 2", "input_lengths INT32 1"));
  EXPECT_THAT(outputs,
              ElementsAre("output_ids INT32 2", "output_lengths INT32 1"));
}

TEST_F(KserveServiceTest, UnknownModelOrVersionIsNotFoundNamingIt) {
  Start();
  {
    grpc::ClientContext context;
    inference::ModelReadyRequest request;
    request.set_name("other-model");
    inference::ModelReadyResponse ready;
    const grpc::Status status = stub_->ModelReady(&context, request, &ready);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(status.error_message(), HasSubstr("\"other-model\""));
  }
  {
    grpc::ClientContext context;
    inference::ModelMetadataRequest request;
    request.set_name(kModel);
    request.set_version("2");
    inference::ModelMetadataResponse metadata;
    const grpc::Status status =
        stub_->ModelMetadata(&context, request, &metadata);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(status.error_message(), HasSubstr("version \"2\""));
  }
  inference::ModelInferRequest request =
      IdsRequest("other-model", {{5, 6}}, Contents::kRaw);
  grpc::Status status = InferError(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("\"other-model\""));
  request = IdsRequest(kModel, {{5, 6}}, Contents::kRaw);
  request.set_model_version("7");
  status = InferError(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("version \"7\""));
}

// ---- ModelInfer ----

TEST_F(KserveServiceTest, BatchOfMixedLengthsEqualsGenerateRowByRow) {
  Start();
  const std::vector<std::vector<int32_t>> rows = {
      {5, 6, 7}, {8}, {9, 10, 11, 12, 13, 14, 15, 16, 17, 18}, {19, 20}};
  for (Contents contents : {Contents::kRaw, Contents::kTyped}) {
    for (bool with_lengths : {true, false}) {
      SCOPED_TRACE(absl::StrCat(contents == Contents::kRaw ? "raw" : "typed",
                                with_lengths ? ", input_lengths" : ""));
      inference::ModelInferRequest request =
          IdsRequest(kModel, rows, contents, /*pad_id=*/0, with_lengths);
      request.set_id("batch-1");
      inference::ModelInferResponse response;
      const grpc::Status status = Infer(request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(response.model_name(), kModel);
      EXPECT_EQ(response.model_version(), "1");
      EXPECT_EQ(response.id(), "batch-1");
      EXPECT_THAT(OutputNames(response),
                  ElementsAre("output_ids", "output_lengths"));
      absl::StatusOr<std::map<std::string, OutputTensor>> outputs =
          ReadOutputs(response);
      ASSERT_TRUE(outputs.ok()) << outputs.status();
      const OutputTensor& ids = outputs->at("output_ids");
      ASSERT_EQ(ids.shape.size(), 2u);
      EXPECT_EQ(ids.shape[0], 4);
      size_t longest = 0;
      for (size_t b = 0; b < rows.size(); ++b) {
        const std::vector<int32_t> expected = Generated(rows[b]);
        longest = std::max(longest, expected.size());
        EXPECT_THAT(RowIds(*outputs, b), ElementsAreArray(expected))
            << "row " << b;
        // Padded with the pad id after the row's length.
        for (int64_t i = expected.size(); i < ids.shape[1]; ++i) {
          EXPECT_EQ(ids.ints[b * ids.shape[1] + i], 0);
        }
      }
      EXPECT_EQ(ids.shape[1], static_cast<int64_t>(longest));
      EXPECT_THAT(outputs->at("output_lengths").shape, ElementsAre(4));
    }
  }
}

TEST_F(KserveServiceTest, RowsJoinTheSameBatchAsSeq2SeqCalls) {
  Start();
  engine_->HoldSteps();
  PendingCall generate(*seq2seq_, [] {
    v1::GenerateRequest r;
    for (int id : {5, 6, 7, 8}) r.add_input_ids(id);
    return r;
  }());
  engine_->AwaitBlockedInStep();
  PendingInfer infer(*stub_, IdsRequest(kModel, {{9, 10}, {11}, {12, 13, 14}},
                                        Contents::kRaw));
  AwaitTrue([&] { return server_->batcher().queue_size() == 3; });
  engine_->ReleaseSteps();
  ASSERT_TRUE(generate.Wait().ok());
  ASSERT_TRUE(infer.Wait().ok()) << infer.Wait().error_message();
  // Continuous batching across protocols: the three rows ran beside the
  // Generate call.
  EXPECT_EQ(engine_->max_active(), 4);
}

TEST_F(KserveServiceTest, OutputsAreTheOnesNamedInTheirOrder) {
  Start();
  inference::ModelInferRequest request =
      IdsRequest(kModel, {{5, 6, 7}, {8, 9}}, Contents::kTyped);
  request.add_outputs()->set_name("output_lengths");
  inference::ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  EXPECT_THAT(OutputNames(response), ElementsAre("output_lengths"));
  absl::StatusOr<std::map<std::string, OutputTensor>> outputs =
      ReadOutputs(response);
  ASSERT_TRUE(outputs.ok());
  EXPECT_THAT(outputs->at("output_lengths").ints,
              ElementsAre(static_cast<int32_t>(Generated({5, 6, 7}).size()),
                          static_cast<int32_t>(Generated({8, 9}).size())));

  request.add_outputs()->set_name("output_ids");
  response.Clear();
  ASSERT_TRUE(Infer(request, &response).ok());
  EXPECT_THAT(OutputNames(response),
              ElementsAre("output_lengths", "output_ids"));

  request.add_outputs()->set_name("text_output");  // no tokenizer
  grpc::Status status = InferError(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("text_output"));
  request.mutable_outputs(2)->set_name("logits");
  status = InferError(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("\"logits\""));
}

TEST_F(KserveServiceTest, ParametersSetGenerateRequestFieldsByName) {
  Start();
  const std::vector<int32_t> row = {5, 6, 7, 8, 9, 10};
  inference::ModelInferRequest request =
      IdsRequest(kModel, {row}, Contents::kRaw);
  SetIntParameter("max_new_tokens", 3, &request);
  SetIntParameter("beam_size", 2, &request);
  (*request.mutable_parameters())["length_penalty"].set_double_param(0.5);
  (*request.mutable_parameters())["return_log_probs"].set_bool_param(true);
  SetIntParameter("priority", 0, &request);
  SetIntParameter("timeout", 0, &request);
  inference::ModelInferResponse response;
  const grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  absl::StatusOr<std::map<std::string, OutputTensor>> outputs =
      ReadOutputs(response);
  ASSERT_TRUE(outputs.ok());
  v1::GenerateRequest same;
  same.set_max_new_tokens(3);
  same.set_beam_size(2);
  same.set_length_penalty(0.5f);
  const std::vector<int32_t> expected = Generated(row, same);
  ASSERT_EQ(expected.size(), 3u);
  EXPECT_THAT(RowIds(*outputs, 0), ElementsAreArray(expected));
  // The default (8 new tokens, greedy) differs: the parameters took effect.
  EXPECT_NE(Generated(row), expected);
}

TEST_F(KserveServiceTest, BadParametersAreInvalidArgumentNamingThem) {
  Start();
  const auto with = [&](const std::string& name,
                        inference::InferParameter value) {
    inference::ModelInferRequest request =
        IdsRequest(kModel, {{5, 6}}, Contents::kRaw);
    (*request.mutable_parameters())[name] = value;
    return InferError(request);
  };
  inference::InferParameter int_value;
  int_value.set_int64_param(3);
  inference::InferParameter string_value;
  string_value.set_string_param("three");
  inference::InferParameter bool_value;
  bool_value.set_bool_param(true);
  inference::InferParameter huge;
  huge.set_int64_param(int64_t{1} << 40);
  inference::InferParameter negative;
  negative.set_int64_param(-1);

  struct Case {
    std::string name;
    inference::InferParameter value;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"no_such_option", int_value, "no such parameter"},
      {"max_new_tokens", string_value, "uint32"},
      {"max_new_tokens", huge, "out of its range"},
      {"beam_size", negative, "out of its range"},
      {"length_penalty", bool_value, "double_param"},
      {"return_log_probs", int_value, "bool_param"},
      {"text", string_value, "input tensors"},
      {"input_ids", int_value, "input tensors"},
      {"request_id", string_value, "id"},
      {"priority", string_value, "priority level"},
      {"priority", int_value, "priority level"},
      {"timeout", negative, "microseconds"},
      {"max_new_tokens",
       [] {
         inference::InferParameter v;
         v.set_int64_param(1000);  // above max_new_tokens_limit 40
         return v;
       }(),
       "max_new_tokens_limit"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const grpc::Status status = with(c.name, c.value);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr(c.name));
    EXPECT_THAT(status.error_message(), HasSubstr(c.says));
  }
}

TEST_F(KserveServiceTest, BadTensorsAreInvalidArgumentNamingTheTensor) {
  Start();
  struct Case {
    std::string what;
    inference::ModelInferRequest request;
    std::string says;
  };
  std::vector<Case> cases;
  const auto base = [] {
    return IdsRequest(kModel, {{5, 6}, {7}}, Contents::kTyped);
  };
  {
    Case c{"datatype", base(), "input_ids: datatype is \"INT64\""};
    c.request.mutable_inputs(0)->set_datatype("INT64");
    cases.push_back(c);
  }
  {
    Case c{"rank", base(), "input_ids: shape [4]"};
    c.request.mutable_inputs(0)->clear_shape();
    c.request.mutable_inputs(0)->add_shape(4);
    cases.push_back(c);
  }
  {
    Case c{"count", base(), "input_ids: contents.int_contents has 3 values"};
    c.request.mutable_inputs(0)
        ->mutable_contents()
        ->mutable_int_contents()
        ->RemoveLast();
    cases.push_back(c);
  }
  {
    Case c{"lengths batch", base(), "input_lengths: shape [3]"};
    c.request.mutable_inputs(1)->set_shape(0, 3);
    c.request.mutable_inputs(1)->mutable_contents()->add_int_contents(1);
    cases.push_back(c);
  }
  {
    Case c{"length", base(), "input_lengths[1] = 3 is outside [1, 2]"};
    c.request.mutable_inputs(1)->mutable_contents()->set_int_contents(1, 3);
    cases.push_back(c);
  }
  {
    Case c{"id", base(), "input_ids[1] = 500 is outside [0, 100)"};
    c.request.mutable_inputs(0)->mutable_contents()->set_int_contents(1, 500);
    cases.push_back(c);
  }
  {
    Case c{"unknown input", base(), "input \"prompt\": no such input"};
    c.request.mutable_inputs(1)->set_name("prompt");
    cases.push_back(c);
  }
  {
    Case c{"text without tokenizer",
           TextRequest(kModel, {"hello"}, Contents::kTyped),
           "text_input: model fake-model has no tokenizer"};
    cases.push_back(c);
  }
  {
    Case c{"no input", base(), "exactly one of the inputs"};
    c.request.clear_inputs();
    cases.push_back(c);
  }
  {
    Case c{"raw count", IdsRequest(kModel, {{5, 6}, {7}}, Contents::kRaw),
           "raw_input_contents has 1 entries for 2 inputs"};
    c.request.mutable_raw_input_contents()->RemoveLast();
    cases.push_back(c);
  }
  {
    Case c{"raw size", IdsRequest(kModel, {{5, 6}, {7}}, Contents::kRaw),
           "input_ids: raw_input_contents has 15 bytes"};
    c.request.mutable_raw_input_contents(0)->pop_back();
    cases.push_back(c);
  }
  {
    Case c{"raw and typed", IdsRequest(kModel, {{5, 6}, {7}}, Contents::kRaw),
           "input_ids: sets contents while the request uses raw"};
    c.request.mutable_inputs(0)->mutable_contents()->add_int_contents(5);
    cases.push_back(c);
  }
  {
    Case c{"all padding",
           IdsRequest(kModel, {{5, 6}, {0}}, Contents::kRaw, 0,
                      /*with_lengths=*/false),
           "input_ids: row 1 is all padding"};
    cases.push_back(c);
  }
  {
    Case c{"too many rows",
           IdsRequest(kModel, {{5}, {6}, {7}, {8}, {9}}, Contents::kRaw),
           "a batch of 5 rows"};
    cases.push_back(c);
  }
  {
    Case c{"too long",
           IdsRequest(kModel, {std::vector<int32_t>(33, 5)}, Contents::kRaw),
           "input_ids has 33 tokens; the limit is 32"};
    cases.push_back(c);
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const grpc::Status status = InferError(c.request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr(c.says));
  }
  // Nothing of it reached the engine (beyond the warm-up).
  EXPECT_EQ(engine_->added_sources().size(), 1u);
}

TEST_F(KserveServiceTest, FullQueueIsResourceExhaustedAndNoRowRuns) {
  ServerOptions options = Options();
  options.batcher.batching.max_batch_size = 2;
  options.batcher.max_queue_size = 2;
  Start(options);
  engine_->HoldSteps();
  PendingInfer running(*stub_, IdsRequest(kModel, {{5, 6, 7}}, Contents::kRaw));
  engine_->AwaitBlockedInStep();
  // The inference thread is held in a step: what comes now stays queued.
  PendingInfer queued(*stub_, IdsRequest(kModel, {{8}}, Contents::kRaw));
  AwaitTrue([&] { return server_->batcher().queue_size() == 1; });
  // Two rows for one place: refused at once, neither queued.
  const std::vector<int32_t> shed_row = {30, 31};
  const grpc::Status shed =
      InferError(IdsRequest(kModel, {shed_row, {32}}, Contents::kRaw));
  EXPECT_EQ(shed.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(shed.error_message(), HasSubstr("queue is full"));
  EXPECT_EQ(server_->batcher().queue_size(), 1);
  EXPECT_EQ(observer_.rejected(absl::StatusCode::kResourceExhausted), 1);
  engine_->ReleaseSteps();
  EXPECT_TRUE(running.Wait().ok());
  EXPECT_TRUE(queued.Wait().ok());
  EXPECT_THAT(engine_->added_sources(), Not(Contains(shed_row)));
}

TEST_F(KserveServiceTest, QueueTimeoutAnswersDeadlineExceededWhileQueued) {
  ServerOptions options = Options();
  options.batcher.batching.max_batch_size = 1;
  Start(options);
  engine_->HoldSteps();
  inference::ModelInferRequest long_request =
      IdsRequest(kModel, {std::vector<int32_t>(30, 5)}, Contents::kRaw);
  SetIntParameter("max_new_tokens", 40, &long_request);
  PendingInfer running(*stub_, long_request);
  engine_->AwaitBlockedInStep();
  const std::vector<int32_t> late_row = {11, 12};
  inference::ModelInferRequest late_request =
      IdsRequest(kModel, {late_row}, Contents::kRaw);
  SetIntParameter("timeout", 20000, &late_request);  // 20 ms queued at most
  PendingInfer late(*stub_, late_request);
  AwaitTrue([&] { return server_->batcher().queue_size() == 1; });
  // The running request needs 31 steps; at one per 2 ms or slower it holds
  // the only slot well past the late one's timeout, and the batcher looks at
  // the queue after every step.
  absl::Notification answered;
  std::thread waiter([&] {
    late.Wait();
    answered.Notify();
  });
  while (!answered.WaitForNotificationWithTimeout(absl::Milliseconds(2))) {
    engine_->AllowSteps(1);
  }
  waiter.join();
  EXPECT_EQ(late.Wait().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(late.Wait().error_message(), HasSubstr("queue timeout"));
  EXPECT_EQ(server_->batcher().running_size(), 1) << "still decoding";
  engine_->ReleaseSteps();
  EXPECT_TRUE(running.Wait().ok());
  EXPECT_THAT(engine_->added_sources(), Not(Contains(late_row)));

  // Once admitted, the timeout no longer applies.
  inference::ModelInferRequest admitted =
      IdsRequest(kModel, {{13, 14, 15}}, Contents::kRaw);
  SetIntParameter("timeout", 50000, &admitted);
  inference::ModelInferResponse response;
  EXPECT_TRUE(Infer(admitted, &response).ok());
}

TEST_F(KserveServiceTest, DrainingServerIsUnavailableAndNotReady) {
  Start();
  const std::vector<int32_t> expected = Generated({5, 6, 7});
  engine_->HoldSteps();
  PendingInfer running(*stub_, IdsRequest(kModel, {{5, 6, 7}}, Contents::kRaw));
  engine_->AwaitBlockedInStep();
  bool drained = false;
  std::thread shutdown([&] { drained = server_->Shutdown(absl::Seconds(20)); });
  AwaitTrue([&] { return !server_->batcher().accepting(); });
  {
    grpc::ClientContext context;
    inference::ServerReadyResponse ready;
    ASSERT_TRUE(stub_->ServerReady(&context, {}, &ready).ok());
    EXPECT_FALSE(ready.ready());
  }
  const grpc::Status refused =
      InferError(IdsRequest(kModel, {{8}}, Contents::kRaw));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  engine_->ReleaseSteps();
  ASSERT_TRUE(running.Wait().ok()) << "accepted rows are still answered";
  absl::StatusOr<std::map<std::string, OutputTensor>> outputs =
      ReadOutputs(running.response());
  ASSERT_TRUE(outputs.ok());
  EXPECT_THAT(RowIds(*outputs, 0), ElementsAreArray(expected));
  shutdown.join();
  EXPECT_TRUE(drained);
}

TEST_F(KserveServiceTest, CancelledCallFreesItsRows) {
  ServerOptions options = Options();
  Start(options);
  engine_->HoldSteps();
  {
    grpc::ClientContext context;
    inference::ModelInferResponse response;
    absl::Notification done;
    grpc::Status status;
    const inference::ModelInferRequest request = IdsRequest(
        kModel, {std::vector<int32_t>(20, 5), std::vector<int32_t>(20, 6)},
        Contents::kRaw);
    stub_->async()->ModelInfer(&context, &request, &response,
                               [&](grpc::Status s) {
                                 status = s;
                                 done.Notify();
                               });
    engine_->AwaitBlockedInStep();
    // Both rows are in the batch or in the queue (the first may have been
    // admitted alone).
    AwaitTrue([&] {
      return server_->batcher().running_size() +
                 server_->batcher().queue_size() ==
             2;
    });
    context.TryCancel();
    done.WaitForNotification();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
    // Before the engine moves on, or the rows could finish first.
    observer_.AwaitCallsCancelled(1);
  }
  engine_->ReleaseSteps();
  // Both rows are answered CANCELLED: none ran its 20 tokens to the end.
  observer_.AwaitFinished({absl::StatusCode::kCancelled}, 2);
  EXPECT_GE(engine_->cancelled().size(), 1u);
  EXPECT_EQ(observer_.finished(absl::StatusCode::kOk), 1) << "the warm-up";
}

// ---- ModelStreamInfer ----

using Stream = grpc::ClientReaderWriter<inference::ModelInferRequest,
                                        inference::ModelStreamInferResponse>;

bool IsFinal(const inference::ModelStreamInferResponse& message) {
  const auto& parameters = message.infer_response().parameters();
  auto it = parameters.find("triton_final_response");
  return it != parameters.end() && it->second.bool_param();
}

// The ids a piece carries (row batch_index), from its raw output_ids.
std::vector<int32_t> PieceIds(const inference::ModelStreamInferResponse& m) {
  absl::StatusOr<std::map<std::string, OutputTensor>> outputs =
      ReadOutputs(m.infer_response());
  EXPECT_TRUE(outputs.ok()) << outputs.status();
  if (!outputs.ok() || !outputs->count("output_ids")) return {};
  EXPECT_EQ(outputs->at("output_ids").shape.at(0), 1);
  return outputs->at("output_ids").ints;
}

TEST_F(KserveServiceTest, StreamSendsPiecesAsDecodedThenAFinalResponse) {
  Start();
  engine_->HoldSteps();
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = stub_->ModelStreamInfer(&context);
  inference::ModelInferRequest request =
      IdsRequest(kModel, {{5, 6, 7, 8}}, Contents::kRaw);
  request.set_id("s-1");
  ASSERT_TRUE(stream->Write(request));
  engine_->AllowSteps(1);
  inference::ModelStreamInferResponse first;
  ASSERT_TRUE(stream->Read(&first)) << "a piece before the request ends";
  EXPECT_TRUE(first.error_message().empty());
  EXPECT_EQ(first.infer_response().id(), "s-1");
  EXPECT_FALSE(IsFinal(first));
  EXPECT_EQ(PieceIds(first).size(), 1u);
  engine_->ReleaseSteps();

  std::vector<int32_t> streamed = PieceIds(first);
  inference::ModelStreamInferResponse message;
  while (stream->Read(&message) && !IsFinal(message)) {
    EXPECT_EQ(message.infer_response().id(), "s-1");
    const std::vector<int32_t> ids = PieceIds(message);
    streamed.insert(streamed.end(), ids.begin(), ids.end());
  }
  ASSERT_TRUE(IsFinal(message));
  EXPECT_EQ(message.infer_response().id(), "s-1");
  EXPECT_TRUE(message.infer_response().outputs().empty());
  EXPECT_THAT(streamed, ElementsAreArray(Generated({5, 6, 7, 8})));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(KserveServiceTest, StreamErrorArrivesAsAMessageAndTheStreamGoesOn) {
  Start();
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = stub_->ModelStreamInfer(&context);
  inference::ModelInferRequest bad =
      IdsRequest(kModel, {{5, 500}}, Contents::kRaw);
  bad.set_id("bad");
  ASSERT_TRUE(stream->Write(bad));
  inference::ModelStreamInferResponse message;
  ASSERT_TRUE(stream->Read(&message));
  EXPECT_THAT(message.error_message(), HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(message.error_message(), HasSubstr("input_ids[1] = 500"));
  EXPECT_EQ(message.infer_response().id(), "bad");
  EXPECT_TRUE(IsFinal(message));

  // Two rows on the same stream: each piece says its row.
  inference::ModelInferRequest good =
      IdsRequest(kModel, {{9, 10, 11}, {12}}, Contents::kTyped);
  good.set_id("good");
  ASSERT_TRUE(stream->Write(good));
  std::vector<std::vector<int32_t>> rows(2);
  while (stream->Read(&message) && !IsFinal(message)) {
    EXPECT_TRUE(message.error_message().empty()) << message.error_message();
    const auto& parameters = message.infer_response().parameters();
    ASSERT_TRUE(parameters.count("batch_index"));
    const int64_t row = parameters.at("batch_index").int64_param();
    ASSERT_TRUE(row == 0 || row == 1);
    const std::vector<int32_t> ids = PieceIds(message);
    rows[row].insert(rows[row].end(), ids.begin(), ids.end());
  }
  EXPECT_TRUE(message.error_message().empty());
  EXPECT_EQ(message.infer_response().id(), "good");
  EXPECT_THAT(rows[0], ElementsAreArray(Generated({9, 10, 11})));
  EXPECT_THAT(rows[1], ElementsAreArray(Generated({12})));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(KserveServiceTest, CancelledStreamFreesItsRequestsRows) {
  Start();
  engine_->HoldSteps();
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = stub_->ModelStreamInfer(&context);
  inference::ModelInferRequest request =
      IdsRequest(kModel, {std::vector<int32_t>(20, 5)}, Contents::kRaw);
  SetIntParameter("max_new_tokens", 30, &request);
  ASSERT_TRUE(stream->Write(request));
  engine_->AwaitBlockedInStep();
  context.TryCancel();
  observer_.AwaitCallsCancelled(1);
  engine_->ReleaseSteps();
  // The row leaves the batch before its 21 steps: answered CANCELLED.
  observer_.AwaitFinished({absl::StatusCode::kCancelled}, 1);
  EXPECT_EQ(engine_->cancelled().size(), 1u);
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  AwaitTrue([&] { return server_->batcher().running_size() == 0; });
}

}  // namespace
}  // namespace attnserve::server
