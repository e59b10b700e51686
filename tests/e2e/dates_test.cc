// The bundled date-normalisation model end to end through a running server over
// gRPC: text in, text out, on held-out dates that training never saw
// (tests/data/dates_heldout.tsv, written by scripts/dates_data.py), unary and
// streaming, from many concurrent clients; at every compute type, whose
// held-out exact match must stay within half a point of float32's.

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/generator_engine.h"
#include "server/server.h"
#include "server/tokenizers/tokenizer.h"
#include "tests/server/grpc_test_client.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::Connect;
using ::attnserve::server::testing::Generate;
using ::attnserve::server::testing::GenerateStream;
using ::testing::HasSubstr;

constexpr int kDates = 1000;
constexpr int kClients = 16;

struct Example {
  std::string source, target;
};

std::vector<Example> HeldOut(int count) {
  std::ifstream in(std::string(ATTNSERVE_SOURCE_DIR) +
                   "/tests/data/dates_heldout.tsv");
  std::vector<Example> out;
  std::string line;
  while (static_cast<int>(out.size()) < count && std::getline(in, line)) {
    std::vector<std::string> parts = absl::StrSplit(line, '\t');
    if (parts.size() == 2) out.push_back({parts[0], parts[1]});
  }
  return out;
}

// One server per compute type, started on first use and kept for the suite.
class DatesTest : public ::testing::TestWithParam<engine::ComputeType> {
 protected:
  static void TearDownTestSuite() {
    for (auto& [type, server] : servers_) delete server;
    servers_.clear();
  }

  void SetUp() override {
    if (absl::Status runs = engine::HostRunsComputeType(GetParam());
        !runs.ok()) {
      GTEST_SKIP() << runs;  // the server refuses it on this host, clearly
    }
  }

  static Server* ServerFor(engine::ComputeType type) {
    Server*& server = servers_[type];
    if (server != nullptr) return server;
    const std::string dir = std::string(ATTNSERVE_SOURCE_DIR) + "/models/dates";
    engine::ModelOptions model_options;
    model_options.backend = engine::Backend::kDnnl;
    model_options.threads = 2;
    model_options.precision.compute_type = type;
    auto engine = GeneratorEngine::Load(dir, model_options);
    EXPECT_TRUE(engine.ok()) << engine.status();
    auto tokenizer = LoadTokenizer(dir);
    EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
    if (!engine.ok() || !tokenizer.ok() || *tokenizer == nullptr)
      return nullptr;
    ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.log_failures = false;
    options.batcher.batching.max_batch_size = 32;
    auto created =
        Server::Create(options, *std::move(engine), *std::move(tokenizer));
    EXPECT_TRUE(created.ok()) << created.status();
    if (!created.ok()) return nullptr;
    server = created->release();
    return server;
  }
  Server* server() { return ServerFor(GetParam()); }

  // Sends every example from kClients threads; returns how many came back
  // exactly right.
  static int ExactMatches(Server* server, const std::vector<Example>& examples,
                          bool stream) {
    auto channel = Connect(server->port());
    std::atomic<int> correct{0}, next{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&] {
        auto stub = v1::Seq2Seq::NewStub(channel);
        for (int i = next++; i < static_cast<int>(examples.size());
             i = next++) {
          v1::GenerateRequest request;
          request.set_text(examples[i].source);
          std::string text;
          if (stream) {
            auto result = GenerateStream(*stub, request);
            ASSERT_TRUE(result.status.ok()) << result.status.error_message();
            for (const auto& m : result.messages) text += m.text();
          } else {
            v1::GenerateResponse response;
            const grpc::Status s = Generate(*stub, request, &response);
            ASSERT_TRUE(s.ok()) << s.error_message();
            text = response.text();
          }
          if (text == examples[i].target) ++correct;
        }
      });
    }
    for (auto& t : clients) t.join();
    return correct;
  }

  static std::map<engine::ComputeType, Server*> servers_;
};
std::map<engine::ComputeType, Server*> DatesTest::servers_;

TEST_P(DatesTest, HeldOutDatesUnary) {
  ASSERT_NE(server(), nullptr);
  const auto examples = HeldOut(kDates);
  ASSERT_EQ(examples.size(), static_cast<size_t>(kDates));
  const int correct = ExactMatches(server(), examples, /*stream=*/false);
  EXPECT_GE(correct, kDates * 99 / 100)
      << correct << " of " << kDates << " exact";
}

TEST_P(DatesTest, HeldOutDatesStreaming) {
  ASSERT_NE(server(), nullptr);
  const auto examples = HeldOut(kDates);
  ASSERT_EQ(examples.size(), static_cast<size_t>(kDates));
  const int correct = ExactMatches(server(), examples, /*stream=*/true);
  EXPECT_GE(correct, kDates * 99 / 100)
      << correct << " of " << kDates << " exact";
}

// Issue 18's accuracy bar: int8 and bfloat16 within 0.5 points (5 of 1000
// dates) of float32's held-out exact match.
TEST_P(DatesTest, HeldOutWithinHalfAPointOfFloat32) {
  Server* f32 = ServerFor(engine::ComputeType::kFloat32);
  ASSERT_NE(f32, nullptr);
  ASSERT_NE(server(), nullptr);
  const auto examples = HeldOut(kDates);
  const int base = ExactMatches(f32, examples, /*stream=*/false);
  const int correct = ExactMatches(server(), examples, /*stream=*/false);
  std::printf("held-out exact match: float32 %d, %s %d of %d\n", base,
              engine::ComputeTypeName(GetParam()), correct, kDates);
  EXPECT_LE(std::abs(correct - base), kDates / 200)
      << engine::ComputeTypeName(GetParam()) << " " << correct << " vs float32 "
      << base << " of " << kDates;
}

TEST_P(DatesTest, ModelInfoNamesTheComputeType) {
  ASSERT_NE(server(), nullptr);
  auto stub = v1::Seq2Seq::NewStub(Connect(server()->port()));
  grpc::ClientContext context;
  v1::GetModelInfoResponse info;
  ASSERT_TRUE(stub->GetModelInfo(&context, {}, &info).ok());
  EXPECT_EQ(info.compute_type(), engine::ComputeTypeName(GetParam()));
}

TEST_P(DatesTest, ReadmeExample) {
  ASSERT_NE(server(), nullptr);
  auto stub = v1::Seq2Seq::NewStub(Connect(server()->port()));
  v1::GenerateRequest request;
  request.set_text("Monday, 23 November 2026");
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(*stub, request, &response).ok());
  EXPECT_EQ(response.text(), "2026-11-23");
  EXPECT_EQ(response.finish_reason(), v1::FINISH_REASON_EOS);
}

TEST_P(DatesTest, UnknownCharacterIsNamed) {
  ASSERT_NE(server(), nullptr);
  auto stub = v1::Seq2Seq::NewStub(Connect(server()->port()));
  v1::GenerateRequest request;
  request.set_text("Monday, 23 November 2026 \xE2\x98\x83");  // a snowman
  v1::GenerateResponse response;
  const grpc::Status s = Generate(*stub, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("U+2603"));
}

INSTANTIATE_TEST_SUITE_P(ComputeTypes, DatesTest,
                         ::testing::Values(engine::ComputeType::kFloat32,
                                           engine::ComputeType::kInt8,
                                           engine::ComputeType::kBFloat16),
                         [](const auto& info) {
                           return std::string(
                               engine::ComputeTypeName(info.param));
                         });

}  // namespace
}  // namespace attnserve::server
