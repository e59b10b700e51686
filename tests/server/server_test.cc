// The gRPC server in-process on a loopback port, with a real gRPC client and
// the fake engine (fake_engine.h), on the real clock. Tests that need the batch
// or the queue to stay put hold the fake engine at a step; none asserts "not
// yet" after a sleep.

#include "server/server.h"

#include <chrono>
#include <deque>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/fake_engine.h"
#include "tests/server/fake_engine_server.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/loopback_server_options.h"
#include "tests/server/recording_sink.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::AwaitTrue;
using ::attnserve::server::testing::CheckHealth;
using ::attnserve::server::testing::Connect;
using ::attnserve::server::testing::CountingObserver;
using ::attnserve::server::testing::CreateFakeEngineServer;
using ::attnserve::server::testing::FakeEngine;
using ::attnserve::server::testing::FakeEngineOptions;
using ::attnserve::server::testing::FileContainingSymbol;
using ::attnserve::server::testing::Generate;
using ::attnserve::server::testing::GenerateStream;
using ::attnserve::server::testing::ListServices;
using ::attnserve::server::testing::PendingCall;
using ::attnserve::server::testing::RawUnaryCall;
using ::attnserve::server::testing::StreamResult;
using ::testing::Contains;
using ::testing::ElementsAreArray;
using ::testing::FloatEq;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pointwise;

constexpr int kServing = 1;
constexpr int kNotServing = 2;

v1::GenerateRequest Request(std::vector<int32_t> ids,
                            uint32_t max_new_tokens = 0,
                            uint32_t beam_size = 0) {
  v1::GenerateRequest request;
  request.mutable_input_ids()->Add(ids.begin(), ids.end());
  request.set_max_new_tokens(max_new_tokens);
  request.set_beam_size(beam_size);
  return request;
}

class ServerTest : public ::testing::Test {
 protected:
  static ServerOptions Options() { return testing::FakeEngineServerOptions(); }

  void Start(const ServerOptions& options = Options(),
             FakeEngineOptions engine_options = {}) {
    absl::StatusOr<std::unique_ptr<Server>> server =
        CreateFakeEngineServer(options, &engine_, &observer_, engine_options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = Connect(server_->port());
    stub_ = v1::Seq2Seq::NewStub(channel_);
  }

  // What the fake decodes for `request` (after the server's defaults).
  engine::SequenceResult Expected(const v1::GenerateRequest& request) const {
    engine::DecodeOptions options;
    options.max_new_tokens =
        request.max_new_tokens() == 0
            ? server_->options().limits.default_max_new_tokens
            : static_cast<int>(request.max_new_tokens());
    options.beam_size = std::max<int>(1, request.beam_size());
    if (request.has_length_penalty())
      options.length_penalty = request.length_penalty();
    return engine_->Expected(
        {request.input_ids().begin(), request.input_ids().end()}, options);
  }

  void ExpectAnswer(const v1::GenerateResponse& response,
                    const v1::GenerateRequest& request) {
    const engine::SequenceResult expected = Expected(request);
    EXPECT_THAT(response.output_ids(), ElementsAreArray(expected.output_ids));
    EXPECT_EQ(response.finish_reason(), ToProto(expected.finish_reason));
    EXPECT_FLOAT_EQ(response.score(), expected.score);
  }

  void AwaitQueued(int n) {
    AwaitTrue([&] { return server_->batcher().queue_size() == n; });
  }

  // Declared first: it outlives the server that reports to it.
  CountingObserver observer_;
  FakeEngine* engine_ = nullptr;  // owned by server_
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Seq2Seq::Stub> stub_;
};

TEST_F(ServerTest, GenerateAnswersWithTheDecodedTokens) {
  Start();
  v1::GenerateRequest request = Request({5, 6, 7}, 10);
  request.set_request_id("my-id");
  request.set_return_log_probs(true);
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(*stub_, request, &response).ok());
  ExpectAnswer(response, request);
  EXPECT_EQ(response.finish_reason(), v1::FINISH_REASON_EOS);
  EXPECT_THAT(response.log_probs(),
              Pointwise(FloatEq(), Expected(request).log_probs));
  EXPECT_EQ(response.request_id(), "my-id");
  EXPECT_GE(response.timing().total_us(), response.timing().queue_us());
  EXPECT_EQ(response.timing().batch_size(), 1u);
}

TEST_F(ServerTest, UsesTheDefaultMaxNewTokensAndMakesARequestId) {
  Start();
  const v1::GenerateRequest request = Request(std::vector<int32_t>(20, 9));
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(*stub_, request, &response).ok());
  EXPECT_EQ(response.output_ids_size(), 8);
  EXPECT_EQ(response.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(response.log_probs_size(), 0) << "not asked for";
  EXPECT_THAT(response.request_id(), HasSubstr("req-"));
}

TEST_F(ServerTest, WarmsUpBeforeServing) {
  Start();
  ASSERT_FALSE(engine_->added_sources().empty());
  EXPECT_EQ(engine_->added_sources().front(), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(CheckHealth(channel_, "").value_or(-1), kServing);
}

TEST_F(ServerTest, FailedWarmUpFailsStartup) {
  auto engine = std::make_unique<FakeEngine>();
  engine->FailNextStep(absl::InternalError("no memory"));
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::Create(Options(), std::move(engine), nullptr, &observer_);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("warm-up"));
}

TEST_F(ServerTest, LimitsTheEngineRejectsFailStartup) {
  FakeEngineOptions engine_options;
  engine_options.invalid_token = 1;  // the probe's source
  auto engine = std::make_unique<FakeEngine>(engine_options);
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::Create(Options(), std::move(engine), nullptr, &observer_);
  EXPECT_THAT(std::string(server.status().message()),
              HasSubstr("does not accept"));
}

class StreamingTest : public ServerTest,
                      public ::testing::WithParamInterface<int> {};

TEST_P(StreamingTest, ConcatenatedStreamEqualsUnary) {
  Start();
  v1::GenerateRequest request = Request({5, 6, 7, 8, 9, 10}, 12, GetParam());
  request.set_return_log_probs(true);
  request.set_request_id("s1");
  v1::GenerateResponse unary;
  ASSERT_TRUE(Generate(*stub_, request, &unary).ok());
  const StreamResult stream = GenerateStream(*stub_, request);
  ASSERT_TRUE(stream.status.ok()) << stream.status.error_message();
  ASSERT_FALSE(stream.messages.empty());
  for (const v1::GenerateResponse& message : stream.messages) {
    EXPECT_EQ(message.request_id(), "s1");
  }
  const v1::GenerateResponse& last = stream.messages.back();
  EXPECT_EQ(last.finish_reason(), unary.finish_reason());
  EXPECT_TRUE(last.has_timing());
  const v1::GenerateResponse all = stream.Concatenated();
  EXPECT_THAT(all.output_ids(), ElementsAreArray(unary.output_ids()));
  EXPECT_THAT(all.log_probs(), Pointwise(FloatEq(), unary.log_probs()));
  EXPECT_FLOAT_EQ(all.score(), unary.score());
  ExpectAnswer(all, request);
}

INSTANTIATE_TEST_SUITE_P(GreedyAndBeam, StreamingTest, ::testing::Values(1, 3));

TEST_F(ServerTest, GreedyStreamsTokensAsTheyAreDecoded) {
  Start();
  engine_->HoldSteps();
  grpc::ClientContext context;
  auto reader = stub_->GenerateStream(&context, Request({5, 6, 7}, 10));
  engine_->AllowSteps(1);
  v1::GenerateResponse first;
  ASSERT_TRUE(reader->Read(&first))
      << "the first token arrives before the request ends";
  EXPECT_EQ(first.output_ids_size(), 1);
  EXPECT_EQ(first.finish_reason(), v1::FINISH_REASON_UNSPECIFIED);
  engine_->ReleaseSteps();
  v1::GenerateResponse message;
  while (reader->Read(&message)) {
  }
  EXPECT_TRUE(reader->Finish().ok());
}

// Finding 3 of issue 15: a beam's whole output comes in one burst right
// before its end, and must never count as tokens its reader left unread.
TEST_F(ServerTest, BeamStreamWithASmallBufferEqualsUnary) {
  ServerOptions options = Options();
  options.stream_buffer_tokens = 4;
  Start(options);
  const v1::GenerateRequest request =
      Request({5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, 10, 2);
  v1::GenerateResponse unary;
  ASSERT_TRUE(Generate(*stub_, request, &unary).ok());
  ASSERT_EQ(unary.output_ids_size(), 10);
  const StreamResult stream = GenerateStream(*stub_, request);
  ASSERT_TRUE(stream.status.ok()) << stream.status.error_message();
  EXPECT_THAT(stream.Concatenated().output_ids(),
              ElementsAreArray(unary.output_ids()));
}

// Options for streams of up to 1000 tokens (the fake decodes as many tokens as
// the source has).
ServerOptions LongOutputOptions(ServerOptions options) {
  options.limits.max_input_tokens = 2000;
  options.limits.max_new_tokens_limit = 2000;
  options.limits.default_max_new_tokens = 8;
  return options;
}
FakeEngineOptions LongOutputEngine() {
  FakeEngineOptions engine;
  engine.max_positions = 2048;
  return engine;
}

TEST_F(ServerTest, LongBeamStreamWithTheDefaultBufferEqualsUnary) {
  ServerOptions options = LongOutputOptions(Options());
  ASSERT_EQ(options.stream_buffer_tokens, 256);
  Start(options, LongOutputEngine());
  const v1::GenerateRequest request =
      Request(std::vector<int32_t>(1000, 7), 1000, 2);
  v1::GenerateResponse unary;
  ASSERT_TRUE(Generate(*stub_, request, &unary).ok());
  ASSERT_EQ(unary.output_ids_size(), 1000);
  const StreamResult stream = GenerateStream(*stub_, request);
  ASSERT_TRUE(stream.status.ok()) << stream.status.error_message();
  EXPECT_THAT(stream.Concatenated().output_ids(),
              ElementsAreArray(unary.output_ids()));
}

// The fake decodes a token in microseconds, far faster than a write reaches
// the client: many tokens wait behind every write of a reader that reads as
// fast as it can.
TEST_F(ServerTest, GreedyStreamFasterThanItsReaderEqualsUnary) {
  ServerOptions options = LongOutputOptions(Options());
  options.stream_buffer_tokens = 1;
  Start(options, LongOutputEngine());
  const v1::GenerateRequest request =
      Request(std::vector<int32_t>(1000, 7), 1000);
  v1::GenerateResponse unary;
  ASSERT_TRUE(Generate(*stub_, request, &unary).ok());
  const StreamResult stream = GenerateStream(*stub_, request);
  ASSERT_TRUE(stream.status.ok()) << stream.status.error_message();
  EXPECT_THAT(stream.Concatenated().output_ids(),
              ElementsAreArray(unary.output_ids()));
}

// A client that stops reading: once HTTP/2 flow control holds a write back for
// the stall timeout (1 s) with more than stream_buffer_tokens tokens waiting,
// the request leaves the batch; the client learns why when it reads again.
TEST_F(ServerTest, StreamWhoseClientStopsReadingIsDropped) {
  ServerOptions options = LongOutputOptions(Options());
  options.stream_buffer_tokens = 4;
  Start(options, LongOutputEngine());
  // A small window that only the application's reads open again.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  auto stub = v1::Seq2Seq::NewStub(
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                grpc::InsecureChannelCredentials(), args));
  // Every message repeats the 256-byte request_id: a few of them fill the
  // window.
  v1::GenerateRequest request = Request(std::vector<int32_t>(2000, 7), 2000);
  request.set_request_id(std::string(256, 'r'));

  engine_->HoldSteps();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(60));
  auto reader = stub->GenerateStream(&context, request);
  // A step per millisecond: 2000 tokens would take 2 s or more, so the
  // request is still decoding when the stall timeout passes.
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (observer_.finished(absl::StatusCode::kResourceExhausted) == 0) {
    ASSERT_LT(absl::Now(), give_up) << "the stream was never dropped";
    engine_->AllowSteps(1);
    absl::SleepFor(absl::Milliseconds(1));
  }
  engine_->ReleaseSteps();
  EXPECT_EQ(engine_->cancelled().size(), 1u)
      << "dropped from the batch, not run to the end";

  std::vector<int32_t> received;
  v1::GenerateResponse message;
  while (reader->Read(&message)) {
    received.insert(received.end(), message.output_ids().begin(),
                    message.output_ids().end());
  }
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("too slowly"));
  EXPECT_THAT(status.error_message(), HasSubstr("stream_buffer_tokens 4"));
  const engine::SequenceResult expected = Expected(request);
  ASSERT_LT(received.size(), expected.output_ids.size());
  EXPECT_THAT(received,
              ElementsAreArray(expected.output_ids.begin(),
                               expected.output_ids.begin() + received.size()))
      << "what it got is the answer's start";
}

struct BadRequestCase {
  std::string name;
  v1::GenerateRequest request;
  std::string message;

  // gtest prints the case by its name (in test listings and ctest).
  friend void PrintTo(const BadRequestCase& c, std::ostream* os) {
    *os << c.name;
  }
};

std::vector<BadRequestCase> BadRequests() {
  std::vector<BadRequestCase> cases;
  cases.push_back(
      {"Empty", v1::GenerateRequest(), "exactly one of input_ids and text"});
  v1::GenerateRequest both = Request({5});
  both.set_text("x");
  cases.push_back({"Both", both, "exactly one of input_ids and text"});
  cases.push_back({"IdOutsideVocab", Request({5, 100}),
                   "input_ids[1] = 100 is outside [0, 100)"});
  cases.push_back({"TooManyTokens", Request(std::vector<int32_t>(33, 5)),
                   "input_ids has 33 tokens; the limit is 32"});
  v1::GenerateRequest text;
  text.set_text("hello");
  cases.push_back({"TextWithoutTokenizer", text,
                   "text requires a tokenizer; model fake-model has none"});
  cases.push_back({"BeamAboveLimit", Request({5}, 0, 5),
                   "beam_size = 5 is above the limit of 4"});
  cases.push_back({"MaxNewTokensAboveLimit", Request({5}, 41),
                   "max_new_tokens = 41 is above the limit of 40"});
  v1::GenerateRequest long_id = Request({5});
  long_id.set_request_id(std::string(300, 'r'));
  cases.push_back(
      {"LongRequestId", long_id, "request_id has 300 bytes; the limit is 256"});
  return cases;
}

class ServerBadRequestTest
    : public ServerTest,
      public ::testing::WithParamInterface<BadRequestCase> {};

TEST_P(ServerBadRequestTest, IsInvalidArgumentOnBothMethods) {
  Start();
  v1::GenerateResponse response;
  const grpc::Status unary = Generate(*stub_, GetParam().request, &response);
  EXPECT_EQ(unary.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(unary.error_message(), HasSubstr(GetParam().message));
  const StreamResult stream = GenerateStream(*stub_, GetParam().request);
  EXPECT_EQ(stream.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(stream.status.error_message(), HasSubstr(GetParam().message));
  EXPECT_TRUE(stream.messages.empty());
  EXPECT_EQ(observer_.rejected(absl::StatusCode::kInvalidArgument), 2);
}

INSTANTIATE_TEST_SUITE_P(Server, ServerBadRequestTest,
                         ::testing::ValuesIn(BadRequests()),
                         [](const auto& info) { return info.param.name; });

TEST_F(ServerTest, InputTheEngineRejectsIsInvalidArgument) {
  FakeEngineOptions engine_options;
  engine_options.invalid_token = 42;
  Start(Options(), engine_options);
  v1::GenerateResponse response;
  EXPECT_EQ(Generate(*stub_, Request({5, 42}), &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ServerTest, OversizedMessageIsResourceExhausted) {
  ServerOptions options = Options();
  options.max_message_bytes = 1000;
  Start(options);
  v1::GenerateResponse response;
  EXPECT_EQ(Generate(*stub_, Request(std::vector<int32_t>(2000, 5)), &response)
                .error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(Generate(*stub_, Request({5}), &response).ok())
      << "still serving";
}

TEST_F(ServerTest, FullQueueIsResourceExhaustedAtOnce) {
  ServerOptions options = Options();
  options.batcher.batching.max_batch_size = 1;
  options.batcher.max_queue_size = 2;
  Start(options);
  engine_->HoldSteps();
  std::deque<PendingCall> calls;
  calls.emplace_back(*stub_, Request({5, 6, 7}));
  engine_->AwaitBlockedInStep();  // the first one runs
  calls.emplace_back(*stub_, Request({8}));
  calls.emplace_back(*stub_, Request({9}));
  AwaitQueued(2);

  v1::GenerateResponse response;
  const grpc::Status shed = Generate(*stub_, Request({10}), &response);
  EXPECT_EQ(shed.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(shed.error_message(), HasSubstr("queue is full"));

  engine_->ReleaseSteps();
  for (const PendingCall& call : calls) {
    ASSERT_TRUE(call.Wait().ok()) << call.Wait().error_message();
    ExpectAnswer(call.response(), call.request());
  }
}

TEST_F(ServerTest, DeadlinePassedWhileQueuedIsAnsweredWithoutTheEngine) {
  ServerOptions options = Options();
  options.batcher.batching.max_batch_size = 1;
  Start(options);
  engine_->HoldSteps();
  PendingCall running(*stub_, Request({5, 6, 7}));
  engine_->AwaitBlockedInStep();
  const std::vector<int32_t> late_source = {11, 12, 13};
  PendingCall late(*stub_, Request(late_source), absl::Milliseconds(200));
  AwaitQueued(1);
  EXPECT_EQ(late.Wait().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The server learns of the expiry a little after the client; wait for that
  // before the engine is released, or the request could be admitted in between.
  observer_.AwaitCallsCancelled(1);

  engine_->ReleaseSteps();
  EXPECT_TRUE(running.Wait().ok());
  // The client's own deadline timer cancels the call at about the time the
  // server's expires, so the server may count it as either.
  observer_.AwaitFinished(
      {absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kCancelled}, 1);
  EXPECT_THAT(engine_->added_sources(), Not(Contains(late_source)));
}

TEST_F(ServerTest, DeadlinePassedWhileDecodingFreesTheSlot) {
  ServerOptions options = Options();
  options.batcher.batching.max_batch_size = 1;
  Start(options);
  engine_->HoldSteps();
  PendingCall slow(*stub_, Request(std::vector<int32_t>(30, 5), 40),
                   absl::Milliseconds(200));
  engine_->AwaitBlockedInStep();
  EXPECT_EQ(slow.Wait().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  observer_.AwaitCallsCancelled(
      1);  // or it could finish before the server sees the expiry
  engine_->ReleaseSteps();
  // The client's own deadline timer cancels the call at about the time the
  // server's expires, so the server may count it as either.
  observer_.AwaitFinished(
      {absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kCancelled}, 1);
  EXPECT_EQ(engine_->cancelled().size(), 1u)
      << "dropped from the batch, not run to the end";

  v1::GenerateResponse response;
  const v1::GenerateRequest next = Request({6, 7});
  ASSERT_TRUE(Generate(*stub_, next, &response).ok());
  ExpectAnswer(response, next);
}

TEST_F(ServerTest, CancelledCallFreesTheSlot) {
  ServerOptions options = Options();
  options.batcher.batching.max_batch_size = 1;
  Start(options);
  engine_->HoldSteps();
  PendingCall cancelled(*stub_, Request(std::vector<int32_t>(30, 5), 40));
  engine_->AwaitBlockedInStep();
  cancelled.Cancel();
  EXPECT_EQ(cancelled.Wait().error_code(), grpc::StatusCode::CANCELLED);
  // The client learns of its cancel at once, the server a little later; until
  // then the request could run to its end once the engine is released.
  observer_.AwaitCallsCancelled(1);
  engine_->ReleaseSteps();
  observer_.AwaitFinished({absl::StatusCode::kCancelled}, 1);
  EXPECT_EQ(engine_->cancelled().size(), 1u);

  v1::GenerateResponse response;
  EXPECT_TRUE(Generate(*stub_, Request({6, 7}), &response).ok());
}

TEST_F(ServerTest, CancelledStreamFreesTheSlot) {
  ServerOptions options = Options();
  options.batcher.batching.max_batch_size = 1;
  Start(options);
  engine_->HoldSteps();
  {
    grpc::ClientContext context;
    auto reader = stub_->GenerateStream(
        &context, Request(std::vector<int32_t>(30, 5), 40));
    engine_->AllowSteps(1);
    v1::GenerateResponse first;
    ASSERT_TRUE(reader->Read(&first));
    context.TryCancel();
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  observer_.AwaitCallsCancelled(1);
  engine_->ReleaseSteps();
  observer_.AwaitFinished({absl::StatusCode::kCancelled}, 1);
  EXPECT_EQ(engine_->cancelled().size(), 1u);
  v1::GenerateResponse response;
  EXPECT_TRUE(Generate(*stub_, Request({6, 7}), &response).ok());
}

TEST_F(ServerTest, EngineFaultIsInternalAndTheServerCarriesOn) {
  Start();
  engine_->FailNextStep(absl::InternalError("kernel fault"));
  v1::GenerateResponse response;
  const grpc::Status failed = Generate(*stub_, Request({5, 6}), &response);
  EXPECT_EQ(failed.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(failed.error_message(), HasSubstr("kernel fault"));
  EXPECT_TRUE(Generate(*stub_, Request({5, 6}), &response).ok());
}

TEST_F(ServerTest, ConcurrentClientsGetTheirSequentialAnswers) {
  ServerOptions options = Options();
  options.batcher.batching.max_batch_size = 8;
  Start(options);
  constexpr int kClients = 32;
  constexpr int kPerClient = 4;
  absl::BitGen bits;
  std::vector<v1::GenerateRequest> requests;
  for (int i = 0; i < kClients * kPerClient; ++i) {
    std::vector<int32_t> source(absl::Uniform(bits, 1, 25));
    for (int32_t& id : source) id = absl::Uniform(bits, 3, 100);
    v1::GenerateRequest request =
        Request(source, absl::Uniform(bits, 0, 30), absl::Uniform(bits, 0, 4));
    request.set_return_log_probs(true);
    requests.push_back(request);
  }
  // One at a time first: the answers the concurrent run must reproduce.
  std::vector<v1::GenerateResponse> sequential(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(Generate(*stub_, requests[i], &sequential[i]).ok());
  }

  std::vector<v1::GenerateResponse> concurrent(requests.size());
  std::vector<grpc::Status> statuses(requests.size());
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int k = 0; k < kPerClient; ++k) {
        const size_t i = c * kPerClient + k;
        if (i % 2 == 0) {
          statuses[i] = Generate(*stub_, requests[i], &concurrent[i]);
        } else {
          const StreamResult stream = GenerateStream(*stub_, requests[i]);
          statuses[i] = stream.status;
          concurrent[i] = stream.Concatenated();
        }
      }
    });
  }
  for (std::thread& client : clients) client.join();
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message();
    EXPECT_THAT(concurrent[i].output_ids(),
                ElementsAreArray(sequential[i].output_ids()))
        << i;
    EXPECT_THAT(concurrent[i].log_probs(),
                Pointwise(FloatEq(), sequential[i].log_probs()))
        << i;
    EXPECT_EQ(concurrent[i].finish_reason(), sequential[i].finish_reason())
        << i;
    EXPECT_FLOAT_EQ(concurrent[i].score(), sequential[i].score()) << i;
    ExpectAnswer(concurrent[i], requests[i]);
  }
}

class BatchingModeTest : public ServerTest,
                         public ::testing::WithParamInterface<BatchingMode> {};

TEST_P(BatchingModeTest, EveryModeAnswersConcurrentClientsCorrectly) {
  ServerOptions options = Options();
  options.batcher.batching.mode = GetParam();
  Start(options);
  std::vector<v1::GenerateRequest> requests;
  for (int i = 0; i < 16; ++i) {
    requests.push_back(
        Request(std::vector<int32_t>(1 + i % 7, 3 + i), 4 + i % 5, 1 + i % 2));
  }
  std::vector<v1::GenerateResponse> responses(requests.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < requests.size(); ++i) {
    clients.emplace_back([&, i] {
      EXPECT_TRUE(Generate(*stub_, requests[i], &responses[i]).ok());
    });
  }
  for (std::thread& client : clients) client.join();
  for (size_t i = 0; i < requests.size(); ++i)
    ExpectAnswer(responses[i], requests[i]);
  if (GetParam() == BatchingMode::kNone) {
    EXPECT_EQ(engine_->max_active(), 1);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, BatchingModeTest,
                         ::testing::Values(BatchingMode::kContinuous,
                                           BatchingMode::kDynamic,
                                           BatchingMode::kNone),
                         [](const auto& info) {
                           return BatchingModeName(info.param);
                         });

TEST_F(ServerTest, BatchSizeExceedsOneUnderConcurrentLoad) {
  ServerOptions options = Options();
  options.batcher.batching.max_batch_size = 8;
  Start(options);
  engine_->HoldSteps();
  std::deque<PendingCall> calls;
  calls.emplace_back(*stub_, Request({5, 6, 7, 8}));
  engine_->AwaitBlockedInStep();
  for (int i = 0; i < 7; ++i)
    calls.emplace_back(*stub_, Request({9 + i, 10, 11}));
  AwaitQueued(7);
  engine_->ReleaseSteps();
  uint32_t largest = 0;
  for (const PendingCall& call : calls) {
    ASSERT_TRUE(call.Wait().ok());
    ExpectAnswer(call.response(), call.request());
    largest = std::max(largest, call.response().timing().batch_size());
  }
  EXPECT_EQ(largest, 8u);
  EXPECT_EQ(engine_->max_active(), 8);
  EXPECT_EQ(observer_.max_step_batch(), 8);
}

TEST_F(ServerTest, ShutdownDrainsEveryAcceptedRequest) {
  ServerOptions options = Options();
  options.batcher.batching.max_batch_size = 2;
  Start(options);
  engine_->HoldSteps();
  std::deque<PendingCall> calls;
  calls.emplace_back(*stub_, Request({5, 6, 7}));
  engine_->AwaitBlockedInStep();
  for (int i = 0; i < 4; ++i) calls.emplace_back(*stub_, Request({8 + i, 9}));
  AwaitQueued(4);
  grpc::ClientContext stream_context;
  auto stream = stub_->GenerateStream(&stream_context, Request({20, 21}));
  AwaitQueued(5);

  bool drained = false;
  std::thread shutdown([&] { drained = server_->Shutdown(absl::Seconds(20)); });
  AwaitTrue([&] { return !server_->batcher().accepting(); });
  EXPECT_EQ(CheckHealth(channel_, "").value_or(-1), kNotServing);
  EXPECT_EQ(CheckHealth(channel_, kServiceName).value_or(-1), kNotServing);
  v1::GenerateResponse response;
  const grpc::Status refused = Generate(*stub_, Request({5}), &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(GenerateStream(*stub_, Request({5})).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);

  engine_->ReleaseSteps();
  for (const PendingCall& call : calls) {
    ASSERT_TRUE(call.Wait().ok()) << call.Wait().error_message();
    ExpectAnswer(call.response(), call.request());
  }
  std::vector<int32_t> streamed;
  v1::GenerateResponse message;
  while (stream->Read(&message)) {
    streamed.insert(streamed.end(), message.output_ids().begin(),
                    message.output_ids().end());
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(streamed, Expected(Request({20, 21})).output_ids);
  shutdown.join();
  EXPECT_TRUE(drained);
}

TEST_F(ServerTest, HealthAndReflectionAreServedOnTheSamePort) {
  Start();
  EXPECT_EQ(CheckHealth(channel_, "").value_or(-1), kServing);
  EXPECT_EQ(CheckHealth(channel_, kServiceName).value_or(-1), kServing);
  EXPECT_EQ(CheckHealth(channel_, "no.such.Service").status().code(),
            absl::StatusCode::kNotFound);

  absl::StatusOr<std::vector<std::string>> services = ListServices(channel_);
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, Contains("attnserve.v1.Seq2Seq"));
  EXPECT_THAT(*services, Contains("grpc.health.v1.Health"));

  absl::StatusOr<google::protobuf::FileDescriptorProto> file =
      FileContainingSymbol(channel_, "attnserve.v1.Seq2Seq");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->name(), "attnserve/v1/attnserve.proto");
  EXPECT_EQ(file->package(), "attnserve.v1");
  ASSERT_EQ(file->service_size(), 1);
  EXPECT_EQ(file->service(0).method_size(), 3);
}

TEST_F(ServerTest, GetModelInfoReportsTheModelAndLimits) {
  Start();
  grpc::ClientContext context;
  v1::GetModelInfoResponse info;
  ASSERT_TRUE(
      stub_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.model_name(), "fake-model");
  EXPECT_EQ(info.config_json(), engine_->model_info().config_json);
  EXPECT_EQ(info.max_batch_size(), 4u);
  EXPECT_EQ(info.max_input_tokens(), 32u);
  EXPECT_EQ(info.max_new_tokens_limit(), 40u);
  EXPECT_FALSE(info.has_tokenizer());
}

TEST_F(ServerTest, NeverCrashesOnArbitraryRequests) {
  Start();
  absl::BitGen bits;
  for (int i = 0; i < 200; ++i) {
    v1::GenerateRequest request;
    const int length = absl::Uniform(bits, 0, 40);
    for (int k = 0; k < length; ++k)
      request.add_input_ids(absl::Uniform(bits, -5, 110));
    if (absl::Bernoulli(bits, 0.1)) request.set_text("some text");
    request.set_max_new_tokens(absl::Uniform(bits, 0, 50));
    request.set_beam_size(absl::Uniform(bits, 0, 10));
    if (absl::Bernoulli(bits, 0.3))
      request.set_length_penalty(absl::Uniform(bits, -1.0f, 2.0f));
    v1::GenerateResponse response;
    const grpc::Status status = Generate(*stub_, request, &response);
    ASSERT_TRUE(status.ok() ||
                status.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
        << status.error_message();
    if (status.ok()) ExpectAnswer(response, request);
  }
}

TEST_F(ServerTest, MalformedProtobufBytesAreRefusedByGrpcAndServingGoesOn) {
  Start();
  // Bytes that do not parse as the method's request never reach the service:
  // gRPC 1.51's callback handlers answer a failed deserialization UNIMPLEMENTED
  // with an empty message (grpcpp/impl/codegen/server_callback_handlers.h, "if
  // deserialization or reactor creator failed"). Empty bytes are a valid, empty
  // GenerateRequest.
  struct Case {
    std::string what;
    std::string method;
    std::string bytes;
    absl::StatusCode code;
  };
  const std::string generate = "/attnserve.v1.Seq2Seq/Generate";
  const std::vector<Case> cases = {
      {"bad tag varint", generate, std::string("\xff\xff\xff", 3),
       absl::StatusCode::kUnimplemented},
      {"field 2 claims 5 bytes, has 2", generate,
       std::string("\x12\x05") + "ab", absl::StatusCode::kUnimplemented},
      {"field 2 claims 4 GB", generate,
       std::string("\x12\xff\xff\xff\xff\x0f", 6),
       absl::StatusCode::kUnimplemented},
      {"text is not UTF-8", generate, std::string("\x12\x02\xff\xfe", 4),
       absl::StatusCode::kUnimplemented},
      {"field 1 truncated varint", generate, std::string("\x08\x80", 2),
       absl::StatusCode::kUnimplemented},
      {"empty request", generate, "", absl::StatusCode::kInvalidArgument},
      {"GetModelInfo", "/attnserve.v1.Seq2Seq/GetModelInfo",
       std::string("\xff\xff", 2), absl::StatusCode::kUnimplemented},
  };
  for (const Case& c : cases) {
    const absl::StatusOr<std::string> answer =
        RawUnaryCall(channel_, c.method, c.bytes);
    EXPECT_EQ(answer.status().code(), c.code)
        << c.what << ": " << answer.status();
  }
  EXPECT_EQ(observer_.rejected(absl::StatusCode::kInvalidArgument), 1)
      << "only the empty request reached the service";
  v1::GenerateResponse response;
  const v1::GenerateRequest request = Request({5, 6});
  ASSERT_TRUE(Generate(*stub_, request, &response).ok());
  ExpectAnswer(response, request);
}

}  // namespace
}  // namespace attnserve::server
