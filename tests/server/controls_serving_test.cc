// The generation controls through the in-process server and a real gRPC
// client, with the fake engine (fake_engine.h), which answers
// num_return_sequences and top_log_probs as the engine's contract says: the
// responses carry the alternatives, the top log-probs and the seed, unary and
// streamed alike, whatever else shares the batch.

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/convert.h"
#include "server/server.h"
#include "tests/server/fake_engine.h"
#include "tests/server/fake_engine_server.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/loopback_server_options.h"
#include "tests/server/recording_sink.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::Connect;
using ::attnserve::server::testing::CountingObserver;
using ::attnserve::server::testing::FakeEngine;
using ::attnserve::server::testing::Generate;
using ::attnserve::server::testing::GenerateStream;
using ::attnserve::server::testing::PendingCall;
using ::attnserve::server::testing::StreamResult;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr int kDefaultMaxNewTokens = 8;

class ControlsServingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options = testing::LoopbackServerOptions();
    options.limits.default_max_new_tokens = kDefaultMaxNewTokens;
    options.limits.max_beam_size = 4;
    options.limits.max_num_return_sequences = 3;
    options.limits.max_top_log_probs = 4;
    options.batcher.batching.max_batch_size = 8;
    absl::StatusOr<std::unique_ptr<Server>> server =
        testing::CreateFakeEngineServer(options, &engine_, &observer_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::Seq2Seq::NewStub(Connect(server_->port()));
  }

  // What the fake decodes for `request`, sampled with `seed`.
  engine::SequenceResult Expected(const v1::GenerateRequest& request,
                                  uint64_t seed) const {
    engine::DecodeOptions options;
    options.max_new_tokens = request.max_new_tokens() == 0
                                 ? kDefaultMaxNewTokens
                                 : static_cast<int>(request.max_new_tokens());
    options.beam_size = std::max<int>(1, request.beam_size());
    options.do_sample = seed != 0;
    options.seed = seed;
    options.num_return_sequences =
        std::max<int>(1, request.num_return_sequences());
    options.top_log_probs = static_cast<int>(request.top_log_probs());
    return engine_->Expected(
        {request.input_ids().begin(), request.input_ids().end()}, options);
  }

  // The response is the fake's answer, alternatives and top log-probs
  // included.
  void ExpectAnswer(const v1::GenerateResponse& response,
                    const engine::SequenceResult& expected) {
    EXPECT_THAT(response.output_ids(), ElementsAreArray(expected.output_ids));
    EXPECT_FLOAT_EQ(response.score(), expected.score);
    ExpectTop(response.top_log_probs(), expected.top_log_probs);
    ASSERT_EQ(response.alternatives_size(),
              static_cast<int>(expected.alternatives.size()));
    for (int k = 0; k < response.alternatives_size(); ++k) {
      SCOPED_TRACE(k);
      const v1::Hypothesis& got = response.alternatives(k);
      const engine::SequenceResult& want = expected.alternatives[k];
      EXPECT_THAT(got.output_ids(), ElementsAreArray(want.output_ids));
      EXPECT_FLOAT_EQ(got.score(), want.score);
      EXPECT_EQ(got.finish_reason(), ToProto(want.finish_reason));
      ExpectTop(got.top_log_probs(), want.top_log_probs);
    }
  }

  static void ExpectTop(
      const google::protobuf::RepeatedPtrField<v1::TopLogProbs>& got,
      const std::vector<std::vector<engine::TokenLogProb>>& want) {
    ASSERT_EQ(got.size(), static_cast<int>(want.size()));
    for (int i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].tokens_size(), static_cast<int>(want[i].size()));
      for (int j = 0; j < got[i].tokens_size(); ++j) {
        EXPECT_EQ(got[i].tokens(j).token_id(), want[i][j].token);
        EXPECT_FLOAT_EQ(got[i].tokens(j).log_prob(), want[i][j].log_prob);
      }
    }
  }

  static v1::GenerateRequest Sampled(std::vector<int32_t> ids, uint64_t seed,
                                     uint32_t n) {
    v1::GenerateRequest request;
    request.mutable_input_ids()->Add(ids.begin(), ids.end());
    request.set_temperature(0.9f);
    request.set_seed(seed);
    request.set_num_return_sequences(n);
    return request;
  }

  CountingObserver observer_;  // outlives the server
  FakeEngine* engine_ = nullptr;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::Seq2Seq::Stub> stub_;
};

TEST_F(ControlsServingTest, SampledHypothesesComeWithTheirSeed) {
  const v1::GenerateRequest request = Sampled({5, 6, 7}, 1234, 3);
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(*stub_, request, &response).ok());
  EXPECT_EQ(response.seed(), 1234u);
  ExpectAnswer(response, Expected(request, 1234));
  EXPECT_EQ(response.alternatives_size(), 2);
}

TEST_F(ControlsServingTest, AServerSeedIsReportedAndReplaysTheDraw) {
  const v1::GenerateRequest request = Sampled({5, 6, 7}, 0, 2);
  v1::GenerateResponse first;
  ASSERT_TRUE(Generate(*stub_, request, &first).ok());
  ASSERT_NE(first.seed(), 0u);
  ExpectAnswer(first, Expected(request, first.seed()));

  v1::GenerateRequest replay = request;
  replay.set_seed(first.seed());
  v1::GenerateResponse second;
  ASSERT_TRUE(Generate(*stub_, replay, &second).ok());
  EXPECT_EQ(second.seed(), first.seed());
  EXPECT_THAT(second.output_ids(), ElementsAreArray(first.output_ids()));
  ASSERT_EQ(second.alternatives_size(), first.alternatives_size());
  EXPECT_THAT(second.alternatives(0).output_ids(),
              ElementsAreArray(first.alternatives(0).output_ids()));
}

TEST_F(ControlsServingTest, BeamSearchReturnsItsBestHypotheses) {
  v1::GenerateRequest request;
  request.add_input_ids(9);
  request.add_input_ids(4);
  request.set_beam_size(3);
  request.set_num_return_sequences(2);
  request.set_top_log_probs(2);
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(*stub_, request, &response).ok());
  EXPECT_EQ(response.seed(), 0u) << "beam search does not sample";
  ExpectAnswer(response, Expected(request, 0));
  EXPECT_EQ(response.alternatives_size(), 1);
}

TEST_F(ControlsServingTest, GreedyTopLogProbsComeOnePerToken) {
  v1::GenerateRequest request;
  request.add_input_ids(11);
  request.add_input_ids(12);
  request.add_input_ids(13);
  request.set_top_log_probs(4);
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(*stub_, request, &response).ok());
  ASSERT_EQ(response.top_log_probs_size(), response.output_ids_size());
  for (int i = 0; i < response.output_ids_size(); ++i) {
    EXPECT_EQ(response.top_log_probs(i).tokens(0).token_id(),
              response.output_ids(i));
  }
  ExpectAnswer(response, Expected(request, 0));
}

TEST_F(ControlsServingTest, AStreamCarriesTheFirstHypothesisThenTheOthers) {
  v1::GenerateRequest request = Sampled({5, 6, 7, 8}, 99, 3);
  request.set_top_log_probs(3);
  const StreamResult stream = GenerateStream(*stub_, request);
  ASSERT_TRUE(stream.status.ok()) << stream.status.error_message();
  ASSERT_GE(stream.messages.size(), 2u) << "sampled tokens stream one a step";
  for (size_t i = 0; i + 1 < stream.messages.size(); ++i) {
    const v1::GenerateResponse& message = stream.messages[i];
    EXPECT_EQ(message.alternatives_size(), 0) << "message " << i;
    EXPECT_EQ(message.seed(), 0u) << "message " << i;
    EXPECT_EQ(message.top_log_probs_size(), message.output_ids_size())
        << "top log-probs ride with their tokens";
  }
  const v1::GenerateResponse& last = stream.messages.back();
  EXPECT_EQ(last.seed(), 99u);
  EXPECT_EQ(last.alternatives_size(), 2);

  const v1::GenerateResponse all = stream.Concatenated();
  ExpectAnswer(all, Expected(request, 99));
  v1::GenerateResponse unary;
  ASSERT_TRUE(Generate(*stub_, request, &unary).ok());
  EXPECT_THAT(all.output_ids(), ElementsAreArray(unary.output_ids()));
  EXPECT_EQ(all.top_log_probs_size(), unary.top_log_probs_size());
  EXPECT_EQ(all.alternatives_size(), unary.alternatives_size());
}

TEST_F(ControlsServingTest, RequestsWithMixedControlsShareABatch) {
  std::vector<v1::GenerateRequest> requests;
  requests.push_back(Sampled({5, 6}, 7, 3));
  requests.push_back(Sampled({5, 6}, 8, 1));
  v1::GenerateRequest greedy;
  greedy.add_input_ids(5);
  greedy.add_input_ids(6);
  greedy.set_top_log_probs(2);
  requests.push_back(greedy);
  v1::GenerateRequest beams = greedy;
  beams.set_beam_size(2);
  beams.set_num_return_sequences(2);
  requests.push_back(beams);

  // The first runs alone for a step; the others join it at the next.
  engine_->HoldSteps();
  std::vector<std::unique_ptr<PendingCall>> calls;
  calls.push_back(std::make_unique<PendingCall>(*stub_, requests[0]));
  engine_->AwaitBlockedInStep();
  for (size_t i = 1; i < requests.size(); ++i) {
    calls.push_back(std::make_unique<PendingCall>(*stub_, requests[i]));
  }
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (server_->batcher().queue_size() < 3) {
    ASSERT_LT(absl::Now(), give_up) << "the requests never queued";
    absl::SleepFor(absl::Milliseconds(1));
  }
  engine_->ReleaseSteps();
  for (size_t i = 0; i < calls.size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(calls[i]->Wait().ok()) << calls[i]->Wait().error_message();
    ExpectAnswer(calls[i]->response(),
                 Expected(requests[i], requests[i].seed()));
  }
  EXPECT_EQ(engine_->max_active(), 4);
}

TEST_F(ControlsServingTest, ABadControlIsInvalidArgumentNamingIt) {
  v1::GenerateRequest request = Sampled({5}, 0, 4);
  v1::GenerateResponse response;
  const grpc::Status status = Generate(*stub_, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("num_return_sequences = 4 is above the limit of 3 "
                        "(max_num_return_sequences)"));
  const StreamResult stream = GenerateStream(*stub_, request);
  EXPECT_EQ(stream.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(stream.messages.empty());
}

}  // namespace
}  // namespace attnserve::server
