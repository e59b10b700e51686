// The bundled date-normalisation model end to end through a running server over
// gRPC: text in, text out, on held-out dates that training never saw
// (tests/data/dates_heldout.tsv, written by scripts/dates_data.py), unary and
// streaming, from many concurrent clients.

#include <atomic>
#include <fstream>
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

class DatesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = std::string(ATTNSERVE_SOURCE_DIR) + "/models/dates";
    engine::ModelOptions model_options;
    model_options.backend = engine::Backend::kDnnl;
    model_options.threads = 2;
    auto engine = GeneratorEngine::Load(dir, model_options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    auto tokenizer = LoadTokenizer(dir);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    ASSERT_NE(*tokenizer, nullptr) << "models/dates must ship a tokenizer";
    ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.log_failures = false;
    options.batcher.batching.max_batch_size = 32;
    auto server =
        Server::Create(options, *std::move(engine), *std::move(tokenizer));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() { delete server_; }

  // Sends every example from kClients threads; returns how many came back
  // exactly right.
  static int ExactMatches(const std::vector<Example>& examples, bool stream) {
    auto channel = Connect(server_->port());
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

  static Server* server_;
};
Server* DatesTest::server_ = nullptr;

TEST_F(DatesTest, HeldOutDatesUnary) {
  const auto examples = HeldOut(kDates);
  ASSERT_EQ(examples.size(), static_cast<size_t>(kDates));
  const int correct = ExactMatches(examples, /*stream=*/false);
  EXPECT_GE(correct, kDates * 99 / 100)
      << correct << " of " << kDates << " exact";
}

TEST_F(DatesTest, HeldOutDatesStreaming) {
  const auto examples = HeldOut(kDates);
  ASSERT_EQ(examples.size(), static_cast<size_t>(kDates));
  const int correct = ExactMatches(examples, /*stream=*/true);
  EXPECT_GE(correct, kDates * 99 / 100)
      << correct << " of " << kDates << " exact";
}

TEST_F(DatesTest, ReadmeExample) {
  auto stub = v1::Seq2Seq::NewStub(Connect(server_->port()));
  v1::GenerateRequest request;
  request.set_text("Monday, 23 November 2026");
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(*stub, request, &response).ok());
  EXPECT_EQ(response.text(), "2026-11-23");
  EXPECT_EQ(response.finish_reason(), v1::FINISH_REASON_EOS);
}

TEST_F(DatesTest, UnknownCharacterIsNamed) {
  auto stub = v1::Seq2Seq::NewStub(Connect(server_->port()));
  v1::GenerateRequest request;
  request.set_text("Monday, 23 November 2026 \xE2\x98\x83");  // a snowman
  v1::GenerateResponse response;
  const grpc::Status s = Generate(*stub, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("U+2603"));
}

}  // namespace
}  // namespace attnserve::server
