// build/attnserve under faults: SIGTERM in the middle of load, SIGKILL and a
// restart, clients that vanish mid-stream, deadlines shorter than the queue
// wait, and model directories that are missing or corrupt. Every answer the
// server gives under load is checked against the answer the same request got
// alone (load_driver.h).

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/test_model_writer.h"
#include "tests/server/attnserve_binary.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/http_get.h"
#include "tests/server/load_driver.h"
#include "tests/server/subprocess.h"
#include "tests/server/test_certs.h"  // ReadTextFile

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::CheckHealth;
using ::attnserve::server::testing::Connect;
using ::attnserve::server::testing::DatesModelDir;
using ::attnserve::server::testing::DatesRequests;
using ::attnserve::server::testing::FreeLoopbackPort;
using ::attnserve::server::testing::LoadDriver;
using ::attnserve::server::testing::LoadRun;
using ::attnserve::server::testing::PendingCall;
using ::attnserve::server::testing::RunAttnserve;
using ::attnserve::server::testing::RunResult;
using ::attnserve::server::testing::ScrapeValue;
using ::attnserve::server::testing::StartAttnserve;
using ::attnserve::server::testing::StartedServer;
using ::attnserve::server::testing::Subprocess;
using ::attnserve::server::testing::SubprocessOptions;
using ::attnserve::server::testing::TestServerFlags;
using ::attnserve::server::testing::TinyModelDir;
using ::testing::HasSubstr;
namespace model_testing = ::attnserve::engine::testing;

constexpr int kServing = 1;

// Random requests for the tiny model (vocab 53, ids 3..52 are not special).
std::vector<v1::GenerateRequest> TinyRequests(int count, int max_new_tokens) {
  absl::BitGen bits;
  std::vector<v1::GenerateRequest> requests(count);
  for (v1::GenerateRequest& request : requests) {
    const int length = absl::Uniform(bits, 3, 20);
    for (int i = 0; i < length; ++i) {
      request.add_input_ids(absl::Uniform(bits, 3, 53));
    }
    request.set_max_new_tokens(max_new_tokens);
  }
  return requests;
}

// Polls `predicate` every 10 ms for up to `timeout`; whether it came true.
template <typename Predicate>
bool Eventually(Predicate predicate,
                absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time give_up = absl::Now() + timeout;
  while (!predicate()) {
    if (absl::Now() >= give_up) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

// Every call either got the right answer or `allowed`; prints what it got.
void ExpectCorrectOr(const LoadRun& run, grpc::StatusCode allowed) {
  EXPECT_EQ(run.Count(grpc::StatusCode::OK) + run.Count(allowed),
            static_cast<int>(run.calls.size()))
      << run.Describe();
  EXPECT_EQ(run.WrongAnswers(), 0) << run.Describe();
}

TEST(FaultTest, SigtermInTheMiddleOfLoadAnswersEveryAcceptedRequest) {
  const std::string log = ::testing::TempDir() + "/sigterm_test_stderr.log";
  SubprocessOptions options;
  options.stderr_path = log;
  // One request at a time, so that the open loop below (three times what the
  // server manages) builds a backlog that takes a while to drain; a queue that
  // never sheds.
  absl::StatusOr<StartedServer> server = StartAttnserve(
      TestServerFlags(DatesModelDir(),
                      {"--batching=none", "--max_queue_size=100000",
                       "--shutdown_grace=60s"}),
      absl::Seconds(60), options);
  ASSERT_TRUE(server.ok()) << server.status();
  LoadDriver driver(Connect(server->port), DatesRequests(32, 16));
  ASSERT_TRUE(driver.RecordReference().ok());
  const double capacity =
      driver.Closed(1, absl::Milliseconds(500)).OkPerSecond();

  // Long enough that the loop sends at least 150 calls: on a slow build (TSan)
  // or a busy machine, capacity is a few calls a second, and 3 s of load would
  // not even make the 50 in flight that the signal waits for.
  const absl::Duration window =
      std::max(absl::Seconds(3), absl::Seconds(150 / (3 * capacity)));
  LoadRun run;
  std::thread load([&] { run = driver.Open(3 * capacity, window); });
  const bool backlog = Eventually([&] { return driver.in_flight() >= 50; },
                                  window + absl::Seconds(10));
  const absl::Time signalled = absl::Now();
  server->process->Signal(SIGTERM);
  const std::optional<int> exit_code = server->process->Wait(absl::Seconds(90));
  load.join();
  EXPECT_TRUE(backlog) << "the load never built a backlog";
  EXPECT_EQ(exit_code, std::optional<int>(0));

  // Accepted calls are answered, and answered right; the others are told
  // UNAVAILABLE: by the draining server ("shutting down"), or by gRPC once it
  // has gone ("Connection refused"). One exception is gRPC's own: a call that
  // reaches the server after the drain, while gRPC closes the connection (the
  // client has not yet read its GOAWAY), is dropped by gRPC's core without a
  // status (grpc_core::Server::CallData::FailCallCreation), and the client sees
  // a bare CANCELLED. Such a call started after the signal.
  EXPECT_EQ(run.WrongAnswers(), 0);
  int answered_after_signal = 0;
  int dropped_by_grpc = 0;
  for (const testing::CallOutcome& call : run.calls) {
    switch (call.code) {
      case grpc::StatusCode::OK:
        answered_after_signal += call.end > signalled;
        break;
      case grpc::StatusCode::UNAVAILABLE:
        // What the batcher answers a request it accepted but did not finish.
        EXPECT_THAT(call.message,
                    ::testing::Not(HasSubstr("before the request finished")));
        break;
      case grpc::StatusCode::CANCELLED:
        ++dropped_by_grpc;
        EXPECT_GT(call.start, signalled);
        EXPECT_EQ(call.message, "CANCELLED") << "the text gRPC's client gives";
        break;
      default:
        ADD_FAILURE() << "status " << call.code << ": " << call.message;
    }
  }
  EXPECT_GT(answered_after_signal, 0) << "the drain served the backlog";
  EXPECT_GT(run.Count(grpc::StatusCode::UNAVAILABLE), 0) << run.Describe();
  std::cout << run.Describe() << "; " << answered_after_signal
            << " answered after SIGTERM, " << dropped_by_grpc
            << " dropped by gRPC's core while closing\n";
  EXPECT_THAT(::attnserve::testing::ReadTextFile(log),
              HasSubstr("drained: every accepted request was answered"));
}

TEST(FaultTest, SigkillThenRestartServesAgain) {
  const int port = FreeLoopbackPort();
  ASSERT_NE(port, 0);
  const std::vector<std::string> flags =
      TestServerFlags(TinyModelDir(), {absl::StrCat("--port=", port)});
  absl::StatusOr<StartedServer> server = StartAttnserve(flags);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::shared_ptr<grpc::Channel> channel = Connect(port);
  LoadDriver driver(channel, TinyRequests(16, 32));
  ASSERT_TRUE(driver.RecordReference().ok());

  LoadRun run;
  std::thread load([&] { run = driver.Open(500, absl::Seconds(2)); });
  const bool loaded = Eventually([&] { return driver.in_flight() >= 1; });
  server->process->Signal(SIGKILL);
  EXPECT_EQ(server->process->Wait(absl::Seconds(30)), std::nullopt)
      << "killed, not exited";
  load.join();
  EXPECT_TRUE(loaded);
  // Calls in flight when it died fail; none gets a wrong answer.
  ExpectCorrectOr(run, grpc::StatusCode::UNAVAILABLE);

  absl::StatusOr<StartedServer> restarted = StartAttnserve(flags);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  // The clients' old channel reconnects on its own (after gRPC's backoff).
  EXPECT_TRUE(Eventually(
      [&] { return CheckHealth(channel, "").value_or(-1) == kServing; },
      absl::Seconds(60)));
  const LoadRun after = driver.Closed(4, absl::Seconds(1));
  EXPECT_EQ(after.Count(grpc::StatusCode::OK),
            static_cast<int>(after.calls.size()))
      << after.Describe();
  EXPECT_EQ(after.WrongAnswers(), 0);
  restarted->process->Signal(SIGTERM);
  EXPECT_EQ(restarted->process->Wait(absl::Seconds(30)), std::optional<int>(0));
}

// A random model with a large vocabulary (EOS is unlikely, so requests run to
// max_new_tokens) and room for long outputs (max_positions 512): requests slow
// enough that a queue of them, or a stream in the middle of its tokens, is
// easy to catch on any machine.
void WriteSlowModel(const std::string& dir) {
  engine::ModelConfig config = model_testing::TinyConfig();
  config.vocab_size = 2000;
  config.max_positions = 512;
  config.d_model = 64;
  config.ffn_dim = 128;
  ASSERT_TRUE(model_testing::WriteModelDir(
                  dir, model_testing::ConfigJson(config),
                  model_testing::RandomModelTensors(config, {}))
                  .ok());
}

// The flags of a metrics endpoint on 127.0.0.1:port.
std::vector<std::string> MetricsOn(int port) {
  return {"--metrics_address=127.0.0.1", absl::StrCat("--metrics_port=", port)};
}

TEST(FaultTest, ClientsVanishingMidStreamFreeTheirSlots) {
  const int metrics_port = FreeLoopbackPort();
  ASSERT_NE(metrics_port, 0);
  // One long request at a time: at any moment one stream decodes and the
  // others wait in the queue, so both kinds are in flight when the client dies.
  model_testing::TempDir dir("slow_model");
  ASSERT_NO_FATAL_FAILURE(WriteSlowModel(dir.path()));
  std::vector<std::string> flags = MetricsOn(metrics_port);
  flags.push_back("--batching=none");
  absl::StatusOr<StartedServer> server =
      StartAttnserve(TestServerFlags(dir.path(), flags));
  ASSERT_TRUE(server.ok()) << server.status();
  auto metric = [&](const std::string& series) {
    return ScrapeValue(metrics_port, series).value_or(-1);
  };

  // 32 streams always in flight from another process, which then dies: its
  // connection goes away without a word to the server.
  SubprocessOptions quiet;
  quiet.stderr_path = ::testing::TempDir() + "/vanishing_bench.log";
  Subprocess bench(
      {ATTNSERVE_BENCH_BINARY, absl::StrCat("--addr=127.0.0.1:", server->port),
       "--stream", "--concurrency=32", "--duration=120s", "--src_len=4:16",
       "--max_new_tokens=300"},
      quiet);
  EXPECT_TRUE(Eventually(
      [&] { return metric("attnserve_generated_tokens_total") > 2000; },
      absl::Seconds(60)))
      << "the streams never ran";
  bench.Signal(SIGKILL);
  EXPECT_EQ(bench.Wait(absl::Seconds(10)), std::nullopt);

  // Their sequences leave the batch; nothing stays queued or running.
  EXPECT_TRUE(Eventually([&] {
    return metric("attnserve_active_sequences") == 0 &&
           metric("attnserve_queue_depth") == 0;
  }));
  EXPECT_GE(metric("attnserve_rejected_requests_total{reason=\"cancelled\"}"),
            1);
  LoadDriver driver(Connect(server->port), TinyRequests(4, 32));
  ASSERT_TRUE(driver.RecordReference().ok()) << "still serving";
  const LoadRun run = driver.Closed(4, absl::Milliseconds(300));
  EXPECT_EQ(run.Count(grpc::StatusCode::OK), static_cast<int>(run.calls.size()))
      << run.Describe();
  EXPECT_EQ(run.WrongAnswers(), 0);
}

TEST(FaultTest, DeadlinesShorterThanTheQueueWaitExpireAlone) {
  model_testing::TempDir dir("slow_model");
  ASSERT_NO_FATAL_FAILURE(WriteSlowModel(dir.path()));
  const int metrics_port = FreeLoopbackPort();
  ASSERT_NE(metrics_port, 0);
  std::vector<std::string> flags = MetricsOn(metrics_port);
  flags.push_back("--batching=none");
  absl::StatusOr<StartedServer> server =
      StartAttnserve(TestServerFlags(dir.path(), flags));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::shared_ptr<grpc::Channel> channel = Connect(server->port);
  auto stub = v1::Seq2Seq::NewStub(channel);
  v1::GenerateRequest long_request;
  for (int id : {5, 6, 7, 8}) long_request.add_input_ids(id);
  long_request.set_max_new_tokens(300);
  // How long one takes alone (the fastest of three, so that noise cannot make
  // it look slower than it is).
  v1::GenerateResponse expected;
  absl::Duration alone = absl::InfiniteDuration();
  for (int i = 0; i < 3; ++i) {
    const absl::Time start = absl::Now();
    ASSERT_TRUE(testing::Generate(*stub, long_request, &expected).ok());
    alone = std::min(alone, absl::Now() - start);
  }

  // Eight of them queue up one behind the other (concurrent calls may reach
  // the server in any order: wait until they are queued); then calls whose
  // deadline is twice the time of one, far less than the wait ahead of them.
  std::vector<std::unique_ptr<PendingCall>> queued;
  for (int i = 0; i < 8; ++i) {
    queued.push_back(std::make_unique<PendingCall>(*stub, long_request));
  }
  EXPECT_TRUE(Eventually([&] {
    return ScrapeValue(metrics_port, "attnserve_queue_depth").value_or(0) >= 5;
  }));
  std::vector<std::unique_ptr<PendingCall>> hurried;
  for (int i = 0; i < 5; ++i) {
    v1::GenerateRequest request;
    request.add_input_ids(10 + i);
    request.set_max_new_tokens(4);
    hurried.push_back(std::make_unique<PendingCall>(*stub, request, 2 * alone));
  }
  for (const auto& call : hurried) {
    EXPECT_EQ(call->Wait().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
        << "deadline " << 2 * alone << ": " << call->Wait().error_message();
  }
  // Only the queued calls ran: each the same answer as alone.
  for (const auto& call : queued) {
    ASSERT_TRUE(call->Wait().ok()) << call->Wait().error_message();
    EXPECT_EQ(call->response().output_ids_size(), expected.output_ids_size());
    EXPECT_TRUE(std::equal(call->response().output_ids().begin(),
                           call->response().output_ids().end(),
                           expected.output_ids().begin(),
                           expected.output_ids().end()));
  }
  // The engine encoded the warm-up request (2 tokens) and the long ones (4
  // each), never the expired ones.
  EXPECT_EQ(
      ScrapeValue(metrics_port, "attnserve_input_tokens_total").value_or(-1),
      2 + (3 + 8) * 4);
  EXPECT_EQ(CheckHealth(channel, "").value_or(-1), kServing);
}

// A copy of a bundled model directory with one thing broken.
struct BrokenModel {
  std::string name;
  std::string source;                                // the directory copied
  std::function<void(const std::string&)> break_it;  // given the copy
  std::string message;  // what the startup error must say
};

TEST(FaultTest, MissingOrCorruptModelDirStopsStartupNamingTheProblem) {
  model_testing::TempDir dir("broken_models");
  const std::vector<BrokenModel> cases = {
      {"empty", "", [](const std::string&) {}, "config.json: cannot open"},
      {"bad_json", TinyModelDir(),
       [](const std::string& d) {
         model_testing::WriteFile(d + "/config.json", "{\"d_model\": ");
       },
       "config.json: invalid JSON"},
      {"no_weights", TinyModelDir(),
       [](const std::string& d) {
         std::filesystem::remove(d + "/model.safetensors");
       },
       "model.safetensors: cannot open"},
      {"truncated_weights", TinyModelDir(),
       [](const std::string& d) {
         std::filesystem::resize_file(d + "/model.safetensors", 20000);
       },
       "is the file truncated?"},
      {"garbage_weights", TinyModelDir(),
       [](const std::string& d) {
         model_testing::WriteFile(d + "/model.safetensors",
                                  std::string(4096, '\x7f'));
       },
       "model.safetensors"},
      {"no_vocab", DatesModelDir(),
       [](const std::string& d) { std::filesystem::remove(d + "/vocab.txt"); },
       "vocab.txt"},
  };
  for (const BrokenModel& broken : cases) {
    const std::string model = absl::StrCat(dir.path(), "/", broken.name);
    std::filesystem::create_directories(model);
    if (!broken.source.empty()) {
      std::filesystem::copy(broken.source, model,
                            std::filesystem::copy_options::recursive);
    }
    broken.break_it(model);
    const RunResult result = RunAttnserve(TestServerFlags(model));
    EXPECT_EQ(result.exit_code, std::optional<int>(1))
        << broken.name << ": " << result.output;
    EXPECT_THAT(result.output, HasSubstr(model)) << broken.name;
    EXPECT_THAT(result.output, HasSubstr(broken.message)) << broken.name;
  }
}

}  // namespace
}  // namespace attnserve::server
