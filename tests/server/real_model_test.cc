// The server over the real engine (GeneratorEngine) with a tiny random model
// written by the engine's test helper: batch invariance through the server,
// streaming against unary, and a first batch that really fills under concurrent
// load.

#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/generator_engine.h"
#include "server/server.h"
#include "tests/engine/test_model_writer.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/loopback_server_options.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::CheckHealth;
using ::attnserve::server::testing::Connect;
using ::attnserve::server::testing::Generate;
using ::attnserve::server::testing::GenerateStream;
using ::attnserve::server::testing::StreamResult;
using ::testing::ElementsAreArray;
using ::testing::FloatNear;
using ::testing::HasSubstr;
using ::testing::Pointwise;

namespace model_testing = ::attnserve::engine::testing;

// Tiny random models have nearly flat distributions; log-probs may differ in
// the last bits between batch shapes, tokens may not.
constexpr float kLogProbTolerance = 1e-4f;

class RealModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    config_ = new engine::ModelConfig(model_testing::TinyConfig());
    model_testing::RandomModelOptions random;
    random.seed = 11;
    dir_ = new model_testing::TempDir("server_real_model");
    ASSERT_TRUE(model_testing::WriteModelDir(
                    dir_->path(), model_testing::ConfigJson(*config_),
                    model_testing::RandomModelTensors(*config_, random))
                    .ok());
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete config_;
  }

  static ServerOptions Options() {
    ServerOptions options = testing::LoopbackServerOptions();
    options.limits.max_new_tokens_limit = 24;
    options.limits.default_max_new_tokens = 12;
    options.limits.max_beam_size = 4;
    options.batcher.batching.max_batch_size = 16;
    options.batcher.batching.max_queue_delay = absl::Milliseconds(2);
    return options;
  }

  void Start(const ServerOptions& options = Options()) {
    engine::ModelOptions model_options;
    model_options.backend = engine::Backend::kDnnl;
    model_options.threads = 1;
    absl::StatusOr<std::unique_ptr<GeneratorEngine>> engine =
        GeneratorEngine::Load(dir_->path(), model_options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Create(options, *std::move(engine));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = Connect(server_->port());
    stub_ = v1::Seq2Seq::NewStub(channel_);
  }

  static std::vector<v1::GenerateRequest> RandomRequests(int count,
                                                         uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> length(1, 20),
        id(3, config_->vocab_size - 1), new_tokens(1, 24), beam(1, 3);
    std::vector<v1::GenerateRequest> requests(count);
    for (v1::GenerateRequest& request : requests) {
      const int n = length(rng);
      for (int i = 0; i < n; ++i) request.add_input_ids(id(rng));
      request.set_max_new_tokens(new_tokens(rng));
      request.set_beam_size(beam(rng));
      request.set_return_log_probs(true);
    }
    return requests;
  }

  static void ExpectSameAnswer(const v1::GenerateResponse& actual,
                               const v1::GenerateResponse& expected,
                               const std::string& what) {
    EXPECT_THAT(actual.output_ids(), ElementsAreArray(expected.output_ids()))
        << what;
    EXPECT_EQ(actual.finish_reason(), expected.finish_reason()) << what;
    EXPECT_THAT(actual.log_probs(),
                Pointwise(FloatNear(kLogProbTolerance), expected.log_probs()))
        << what;
    EXPECT_NEAR(actual.score(), expected.score(), kLogProbTolerance) << what;
  }

  static engine::ModelConfig* config_;
  static model_testing::TempDir* dir_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Seq2Seq::Stub> stub_;
};

engine::ModelConfig* RealModelTest::config_ = nullptr;
model_testing::TempDir* RealModelTest::dir_ = nullptr;

TEST_F(RealModelTest, ServesTheModel) {
  Start();
  EXPECT_EQ(CheckHealth(channel_, "").value_or(-1), 1);
  grpc::ClientContext context;
  v1::GetModelInfoResponse info;
  ASSERT_TRUE(
      stub_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.config_json(), model_testing::ConfigJson(*config_));
  EXPECT_THAT(dir_->path(), ::testing::EndsWith(info.model_name()));

  v1::GenerateRequest bad;
  bad.add_input_ids(config_->vocab_size);
  v1::GenerateResponse response;
  const grpc::Status status = Generate(*stub_, bad, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("vocab_size"));
}

TEST_F(RealModelTest, StreamingEqualsUnary) {
  Start();
  for (const v1::GenerateRequest& request : RandomRequests(6, 3)) {
    v1::GenerateResponse unary;
    ASSERT_TRUE(Generate(*stub_, request, &unary).ok());
    const StreamResult stream = GenerateStream(*stub_, request);
    ASSERT_TRUE(stream.status.ok()) << stream.status.error_message();
    ExpectSameAnswer(stream.Concatenated(), unary, request.ShortDebugString());
  }
}

TEST_F(RealModelTest, ConcurrentResponsesEqualSequentialOnes) {
  Start();
  const std::vector<v1::GenerateRequest> requests = RandomRequests(24, 5);
  std::vector<v1::GenerateResponse> sequential(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(Generate(*stub_, requests[i], &sequential[i]).ok());
  }
  std::vector<v1::GenerateResponse> concurrent(requests.size());
  std::vector<grpc::Status> statuses(requests.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < requests.size(); ++i) {
    clients.emplace_back([&, i] {
      if (i % 3 == 0) {
        const StreamResult stream = GenerateStream(*stub_, requests[i]);
        statuses[i] = stream.status;
        concurrent[i] = stream.Concatenated();
      } else {
        statuses[i] = Generate(*stub_, requests[i], &concurrent[i]);
      }
    });
  }
  for (std::thread& client : clients) client.join();
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    ExpectSameAnswer(concurrent[i], sequential[i],
                     requests[i].ShortDebugString());
  }
}

TEST_F(RealModelTest, FirstBatchFillsUnderConcurrentLoad) {
  ServerOptions options = Options();
  // Long enough that the batch starts because it is full, not because the delay
  // ran out.
  options.batcher.batching.max_queue_delay = absl::Seconds(10);
  options.batcher.batching.max_batch_size = 8;
  Start(options);
  const std::vector<v1::GenerateRequest> requests = RandomRequests(8, 9);
  std::vector<v1::GenerateResponse> responses(requests.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < requests.size(); ++i) {
    clients.emplace_back([&, i] {
      EXPECT_TRUE(Generate(*stub_, requests[i], &responses[i]).ok());
    });
  }
  for (std::thread& client : clients) client.join();
  for (const v1::GenerateResponse& response : responses) {
    EXPECT_EQ(response.timing().batch_size(), 8u);
    EXPECT_GT(response.timing().compute_us(), 0u);
  }
}

}  // namespace
}  // namespace attnserve::server
