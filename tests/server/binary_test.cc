// build/attnserve as a process: it prints where it serves, answers, and on
// SIGTERM drains and exits 0; bad flags exit 2, an unusable setup 1.

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "engine/decode/generator.h"
#include "engine/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/prometheus_metrics.h"
#include "tests/engine/test_model_writer.h"
#include "tests/server/attnserve_binary.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/subprocess.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::StartAttnserve;
using ::attnserve::server::testing::StartedServer;
using ::attnserve::server::testing::Subprocess;
using ::testing::HasSubstr;
using ::testing::Not;
namespace model_testing = ::attnserve::engine::testing;

void WriteTinyModel(const std::string& dir) {
  const engine::ModelConfig config = model_testing::TinyConfig();
  ASSERT_TRUE(model_testing::WriteModelDir(
                  dir, model_testing::ConfigJson(config),
                  model_testing::RandomModelTensors(config, {}))
                  .ok());
}

TEST(BinaryTest, ServesPrintsWhereAndDrainsOnSigterm) {
  model_testing::TempDir dir("binary_test");
  ASSERT_NO_FATAL_FAILURE(WriteTinyModel(dir.path()));
  // --metrics_port=0: the default port may be taken (tests run in parallel).
  absl::StatusOr<StartedServer> server = StartAttnserve(
      {absl::StrCat("--model_dir=", dir.path()), "--host=127.0.0.1", "--port=0",
       "--metrics_port=0", "--threads=1", "--shutdown_grace=5s"});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_THAT(server->startup_line, HasSubstr("attnserve.v1.Seq2Seq"));
  EXPECT_THAT(server->startup_line, HasSubstr("metrics off"));
  const int port = server->port;

  std::shared_ptr<grpc::Channel> channel = testing::Connect(port);
  EXPECT_EQ(testing::CheckHealth(channel, "").value_or(-1), 1);
  auto stub = v1::Seq2Seq::NewStub(channel);
  v1::GenerateRequest request;
  for (int id : {3, 4, 5}) request.add_input_ids(id);
  request.set_max_new_tokens(4);
  v1::GenerateResponse response;
  EXPECT_TRUE(testing::Generate(*stub, request, &response).ok());
  // The served answer is the engine's own on the same weights.
  absl::StatusOr<std::unique_ptr<engine::Model>> model =
      engine::Model::Load(dir.path(), {});
  ASSERT_TRUE(model.ok()) << model.status();
  engine::DecodeOptions decode;
  decode.max_new_tokens = 4;
  absl::StatusOr<std::vector<engine::SequenceResult>> expected =
      engine::GenerateBatch(**model, {{3, 4, 5}}, decode);
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_THAT(response.output_ids(),
              ::testing::ElementsAreArray(expected->at(0).output_ids));
  EXPECT_NE(response.finish_reason(), v1::FINISH_REASON_UNSPECIFIED);

  server->process->Signal(SIGTERM);
  EXPECT_EQ(server->process->Wait(absl::Seconds(30)), std::optional<int>(0));
}

// Sets (or, given nullptr, unsets) an environment variable for the scope, so
// that a server started within it inherits that environment.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

absl::StatusOr<StartedServer> StartTinyServer(const std::string& dir) {
  return StartAttnserve(testing::TestServerFlags(dir));
}

TEST(BinaryTest, ChoosesShortSpinOpenMpWaitingUnlessTheEnvironmentDoes) {
  model_testing::TempDir dir("binary_test");
  ASSERT_NO_FATAL_FAILURE(WriteTinyModel(dir.path()));
  {
    // Neither variable: the server re-executes itself with its own choice,
    // and still serves.
    ScopedEnv policy("OMP_WAIT_POLICY", nullptr);
    ScopedEnv spin("GOMP_SPINCOUNT", nullptr);
    absl::StatusOr<StartedServer> server = StartTinyServer(dir.path());
    ASSERT_TRUE(server.ok()) << server.status();
    EXPECT_THAT(server->startup_line,
                HasSubstr("(OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=1000)"));
    EXPECT_EQ(
        testing::CheckHealth(testing::Connect(server->port), "").value_or(-1),
        1);
  }
  {
    // Either variable set: the user's choice stands as given.
    ScopedEnv policy("OMP_WAIT_POLICY", nullptr);
    ScopedEnv spin("GOMP_SPINCOUNT", "0");
    absl::StatusOr<StartedServer> server = StartTinyServer(dir.path());
    ASSERT_TRUE(server.ok()) << server.status();
    EXPECT_THAT(server->startup_line,
                HasSubstr("(OMP_WAIT_POLICY=unset GOMP_SPINCOUNT=0)"));
  }
  {
    ScopedEnv policy("OMP_WAIT_POLICY", "active");
    ScopedEnv spin("GOMP_SPINCOUNT", nullptr);
    absl::StatusOr<StartedServer> server = StartTinyServer(dir.path());
    ASSERT_TRUE(server.ok()) << server.status();
    EXPECT_THAT(server->startup_line,
                HasSubstr("(OMP_WAIT_POLICY=active GOMP_SPINCOUNT=unset)"));
  }
}

TEST(BinaryTest, TakenMetricsPortFailsStartup) {
  model_testing::TempDir dir("binary_test");
  ASSERT_NO_FATAL_FAILURE(WriteTinyModel(dir.path()));
  // This process holds the port with an endpoint of its own.
  PrometheusMetrics holder(ModelInfo(), 1);
  absl::StatusOr<int> taken = holder.Serve("127.0.0.1", 0);
  ASSERT_TRUE(taken.ok()) << taken.status();
  Subprocess server({ATTNSERVE_BINARY, absl::StrCat("--model_dir=", dir.path()),
                     "--host=127.0.0.1", "--port=0", "--threads=1",
                     "--metrics_address=127.0.0.1",
                     absl::StrCat("--metrics_port=", *taken)});
  EXPECT_EQ(server.Wait(absl::Seconds(60)), std::optional<int>(1));
}

TEST(BinaryTest, ExplainsBadStartup) {
  Subprocess missing({ATTNSERVE_BINARY});
  EXPECT_EQ(missing.Wait(absl::Seconds(30)), std::optional<int>(2));
  Subprocess bad_dir(
      {ATTNSERVE_BINARY, "--model_dir=/nonexistent/model", "--port=0"});
  EXPECT_EQ(bad_dir.Wait(absl::Seconds(30)), std::optional<int>(1));
  Subprocess bad_mode({ATTNSERVE_BINARY, "--model_dir=/nonexistent/model",
                       "--batching=static"});
  EXPECT_EQ(bad_mode.Wait(absl::Seconds(30)), std::optional<int>(2));
  Subprocess bad_delay({ATTNSERVE_BINARY, "--model_dir=/nonexistent/model",
                        "--max_queue_delay=soon"});
  EXPECT_EQ(bad_delay.Wait(absl::Seconds(30)), std::optional<int>(2));
  Subprocess bad_metrics_port({ATTNSERVE_BINARY,
                               "--model_dir=/nonexistent/model",
                               "--metrics_port=-1"});
  EXPECT_EQ(bad_metrics_port.Wait(absl::Seconds(30)), std::optional<int>(2));
  const testing::RunResult bad_type = testing::RunAttnserve(
      {"--model_dir=/nonexistent/model", "--compute_type=fp16"});
  EXPECT_EQ(bad_type.exit_code, std::optional<int>(2));
  EXPECT_THAT(bad_type.output, HasSubstr("--compute_type: unknown compute "
                                         "type \"fp16\""));
}

// The generation controls' bounds are flags: out of range exits 2 naming
// the limit.
TEST(BinaryTest, ControlLimitsOutOfRangeExitTwo) {
  model_testing::TempDir dir("binary_control_limits");
  ASSERT_NO_FATAL_FAILURE(WriteTinyModel(dir.path()));
  for (const char* bad :
       {"--max_num_return_sequences=0", "--max_num_return_sequences=17",
        "--max_top_log_probs=-1", "--max_top_log_probs=21"}) {
    const testing::RunResult refused = testing::RunAttnserve(
        {absl::StrCat("--model_dir=", dir.path()), "--host=127.0.0.1",
         "--port=0", "--metrics_port=0", "--threads=1", bad});
    EXPECT_EQ(refused.exit_code, std::optional<int>(2)) << bad;
    const std::string name =
        std::string(bad).substr(2, std::string(bad).find('=') - 2);
    EXPECT_THAT(refused.output, HasSubstr(absl::StrCat(name, " = ")))
        << bad << ": " << refused.output;
  }
}

// --kv_cache_dtype: int8 or an unknown name exits 2 naming the flag;
// bfloat16 (any CPU) serves, and GetModelInfo says so.
TEST(BinaryTest, KvCacheDtypeIsCheckedAndReported) {
  for (const char* bad : {"int8", "fp16"}) {
    const testing::RunResult refused =
        testing::RunAttnserve({"--model_dir=/nonexistent/model",
                               absl::StrCat("--kv_cache_dtype=", bad)});
    EXPECT_EQ(refused.exit_code, std::optional<int>(2)) << bad;
    EXPECT_THAT(refused.output, HasSubstr("--kv_cache_dtype: ")) << bad;
  }
  model_testing::TempDir dir("binary_kv_cache_dtype");
  ASSERT_NO_FATAL_FAILURE(WriteTinyModel(dir.path()));
  absl::StatusOr<StartedServer> server = StartAttnserve(
      {absl::StrCat("--model_dir=", dir.path()), "--host=127.0.0.1", "--port=0",
       "--metrics_port=0", "--threads=1", "--kv_cache_dtype=bfloat16"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::Seq2Seq::NewStub(testing::Connect(server->port));
  grpc::ClientContext context;
  v1::GetModelInfoResponse info;
  ASSERT_TRUE(
      stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.kv_cache_dtype(), "bfloat16");
  EXPECT_EQ(info.compute_type(), "float32");
  v1::GenerateRequest request;
  for (int id : {3, 4, 5}) request.add_input_ids(id);
  request.set_max_new_tokens(4);
  v1::GenerateResponse response;
  EXPECT_TRUE(testing::Generate(*stub, request, &response).ok());
  EXPECT_FALSE(response.output_ids().empty());
}

// --compute_type reaches the engine: the startup line names it, and the
// server answers.
TEST(BinaryTest, ServesAtTheComputeTypeAsked) {
  model_testing::TempDir dir("binary_compute_type");
  ASSERT_NO_FATAL_FAILURE(WriteTinyModel(dir.path()));
  for (const char* type : {"int8", "bfloat16"}) {
    SCOPED_TRACE(type);
    absl::StatusOr<engine::ComputeType> parsed = engine::ParseComputeType(type);
    ASSERT_TRUE(parsed.ok());
    const std::vector<std::string> flags = {
        absl::StrCat("--model_dir=", dir.path()),
        "--host=127.0.0.1",
        "--port=0",
        "--metrics_port=0",
        "--threads=1",
        absl::StrCat("--compute_type=", type)};
    if (absl::Status runs = engine::HostRunsComputeType(*parsed); !runs.ok()) {
      // Refused at start, naming the missing instructions: exit 1, no crash.
      const testing::RunResult refused = testing::RunAttnserve(flags);
      EXPECT_EQ(refused.exit_code, std::optional<int>(1));
      EXPECT_THAT(refused.output, HasSubstr("needs a CPU with"));
      continue;
    }
    absl::StatusOr<StartedServer> server = StartAttnserve(flags);
    ASSERT_TRUE(server.ok()) << server.status();
    EXPECT_THAT(
        server->startup_line,
        HasSubstr(absl::StrCat("compute_type ", type, ", kv_cache_dtype ")));
    auto stub = v1::Seq2Seq::NewStub(testing::Connect(server->port));
    v1::GenerateRequest request;
    for (int id : {3, 4, 5}) request.add_input_ids(id);
    request.set_max_new_tokens(4);
    v1::GenerateResponse response;
    EXPECT_TRUE(testing::Generate(*stub, request, &response).ok());
    EXPECT_FALSE(response.output_ids().empty());
  }
}

TEST(BinaryTest, HelpExitsZeroWithGroupedFlagsAndNoBuildPaths) {
  for (const char* flag : {"--help", "-h", "--helpshort", "--helpfull"}) {
    const testing::RunResult help = testing::RunAttnserve({flag});
    EXPECT_EQ(help.exit_code, std::optional<int>(0)) << flag;
    EXPECT_THAT(help.output,
                HasSubstr("usage: attnserve --model_dir=DIR [--port=50051]"))
        << flag;
    for (const char* heading :
         {"\nModel and engine:\n", "\ngRPC endpoint:\n",
          "\nPrometheus metrics:\n", "\nBatching and queueing:\n",
          "\nRequest limits:\n", "\nShutdown:\n"}) {
      EXPECT_THAT(help.output, HasSubstr(heading)) << flag;
    }
    EXPECT_THAT(help.output, HasSubstr("--metrics_port (default: \"8002\")"));
    EXPECT_THAT(help.output, HasSubstr("--shutdown_grace (default: \"30s\")"));
    // Abseil's own listing: "Flags from /abs/path/server/main.cc".
    EXPECT_THAT(help.output, Not(HasSubstr("Flags from"))) << flag;
    EXPECT_THAT(help.output, Not(HasSubstr(ATTNSERVE_SOURCE_DIR))) << flag;
    EXPECT_THAT(help.output, Not(HasSubstr("main.cc"))) << flag;
  }
  // Help that Abseil prints itself names files from the project root.
  const testing::RunResult helpon = testing::RunAttnserve({"--helpon=main"});
  EXPECT_THAT(helpon.output, HasSubstr("server/main.cc"));
  EXPECT_THAT(helpon.output, Not(HasSubstr(ATTNSERVE_SOURCE_DIR)));
}

TEST(BinaryTest, TakenGrpcPortFailsStartupInOneLine) {
  model_testing::TempDir dir("binary_test");
  ASSERT_NO_FATAL_FAILURE(WriteTinyModel(dir.path()));
  absl::StatusOr<StartedServer> first = StartTinyServer(dir.path());
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string address = absl::StrCat("127.0.0.1:", first->port);

  const testing::RunResult second =
      testing::RunAttnserve(testing::TestServerFlags(
          dir.path(), {absl::StrCat("--port=", first->port)}));
  EXPECT_EQ(second.exit_code, std::optional<int>(1));
  EXPECT_THAT(second.output,
              HasSubstr(absl::StrCat("cannot listen on ", address,
                                     ": address already in use")));
  EXPECT_THAT(second.output, Not(HasSubstr("serving")));
  // One line: no gRPC log around it.
  EXPECT_EQ(std::count(second.output.begin(), second.output.end(), '\n'), 1)
      << second.output;
  // The first one still owns the port and answers.
  EXPECT_EQ(
      testing::CheckHealth(testing::Connect(first->port), "").value_or(-1), 1);
}

}  // namespace
}  // namespace attnserve::server
