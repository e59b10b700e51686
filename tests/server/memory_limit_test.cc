// Issue 15, finding 1, through build/attnserve under a real address-space
// limit: models/dates copied with max_positions 1048576, the server started
// with RLIMIT_AS 1.5 GiB. A request for 1,000,000 new tokens (whose caches
// would not fit) is refused RESOURCE_EXHAUSTED naming its size, instead of the
// process aborting, and the server then still answers a normal request
// correctly.

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/engine/test_model_writer.h"
#include "tests/server/attnserve_binary.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/subprocess.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::DatesModelDir;
using ::attnserve::server::testing::Subprocess;
using ::attnserve::server::testing::SubprocessOptions;
using ::attnserve::server::testing::TestServerFlags;
using ::testing::HasSubstr;

constexpr int64_t kAddressSpaceLimit = int64_t{1536} << 20;

// models/dates with another max_positions, copied to `dir`/dates; its path.
std::string CopyDatesModel(const engine::testing::TempDir& parent,
                           int max_positions) {
  namespace fs = std::filesystem;
  const std::string dir = parent.File("dates");
  fs::create_directory(dir);
  for (const char* file : {"model.safetensors", "vocab.txt"}) {
    fs::copy_file(fs::path(DatesModelDir()) / file, fs::path(dir) / file);
  }
  std::ifstream in(DatesModelDir() + "/config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  config["max_positions"] = max_positions;
  std::ofstream(dir + "/config.json") << config.dump(2);
  return dir;
}

struct LimitedServer {
  std::unique_ptr<Subprocess> process;
  std::string startup_line;
  int port = 0;
};

// The command line that runs build/attnserve with `flags` and RLIMIT_AS set in
// the child before it execs the server (the shell's `ulimit -v`, in KiB).
std::vector<std::string> UnderAddressSpaceLimit(
    const std::vector<std::string>& flags, int64_t limit_bytes) {
  std::vector<std::string> argv = {
      "/bin/sh", "-c",
      absl::StrCat("ulimit -v ", limit_bytes / 1024, " && exec \"$0\" \"$@\""),
      ATTNSERVE_BINARY};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return argv;
}

// Starts build/attnserve as UnderAddressSpaceLimit says and waits for its
// startup line.
std::optional<LimitedServer> StartUnderAddressSpaceLimit(
    const std::vector<std::string>& flags, int64_t limit_bytes,
    const std::string& stderr_path) {
  const std::vector<std::string> argv =
      UnderAddressSpaceLimit(flags, limit_bytes);
  SubprocessOptions options;
  options.stderr_path = stderr_path;
  LimitedServer server;
  server.process = std::make_unique<Subprocess>(argv, options);
  std::optional<std::string> line = server.process->ReadLine(absl::Seconds(90));
  if (!line.has_value()) return std::nullopt;
  server.startup_line = *line;
  const std::string host = " on 127.0.0.1:";
  const size_t at = line->find(host);
  const size_t end = line->find(';', at);
  if (at == std::string::npos || end == std::string::npos ||
      !absl::SimpleAtoi(line->substr(at + host.size(), end - at - host.size()),
                        &server.port)) {
    return std::nullopt;
  }
  return server;
}

// A request for `max_new_tokens` after the source 5, 6, 7.
grpc::Status GenerateFromThreeTokens(v1::Seq2Seq::Stub& stub,
                                     int max_new_tokens) {
  v1::GenerateRequest request;
  for (int id : {5, 6, 7}) request.add_input_ids(id);
  request.set_max_new_tokens(max_new_tokens);
  v1::GenerateResponse response;
  return testing::Generate(stub, request, &response);
}

// The server still answers a normal request right after refusing a big one.
void ExpectServesADate(v1::Seq2Seq::Stub& stub) {
  v1::GenerateRequest normal;
  normal.set_text("Monday, 23 November 2026");
  v1::GenerateResponse response;
  const grpc::Status served = testing::Generate(stub, normal, &response);
  ASSERT_TRUE(served.ok()) << served.error_message();
  EXPECT_EQ(response.text(), "2026-11-23");
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class MemoryLimitTest : public ::testing::Test {
 protected:
  // The reproduction: models/dates with max_positions 1048576, the
  // server under RLIMIT_AS 1.5 GiB with `extra` flags. nullopt (and a failure
  // showing its stderr) when it printed no startup line.
  std::optional<LimitedServer> StartHugeDates(
      const std::vector<std::string>& extra = {}) {
    const std::string log = dir_.File("server.err");
    std::optional<LimitedServer> server = StartUnderAddressSpaceLimit(
        TestServerFlags(CopyDatesModel(dir_, 1 << 20), extra),
        kAddressSpaceLimit, log);
    if (!server.has_value()) {
      ADD_FAILURE() << "no startup line; stderr:\n" << ReadFile(log);
    }
    return server;
  }

  engine::testing::TempDir dir_{"memory_limit_test"};
};

TEST_F(MemoryLimitTest, HugeRequestIsRefusedAndTheServerKeepsServing) {
  std::optional<LimitedServer> server = StartHugeDates();
  ASSERT_TRUE(server.has_value());
  EXPECT_THAT(server->startup_line, HasSubstr("memory_budget=auto"));
  EXPECT_THAT(server->startup_line, HasSubstr("RLIMIT_AS 1.50 GiB"));

  auto stub = v1::Seq2Seq::NewStub(testing::Connect(server->port));
  const grpc::Status refused = GenerateFromThreeTokens(*stub, 1'000'000);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr("max_new_tokens = 1000000"));
  EXPECT_THAT(refused.error_message(), HasSubstr("GiB of engine memory"));

  ExpectServesADate(*stub);

  // Still alive: it did not abort on the huge request.
  EXPECT_EQ(server->process->Wait(absl::ZeroDuration()), std::nullopt);
}

// Explicit limits that allow a request over the budget: it passes the request
// checks and is refused by the batcher before any work, naming its bytes.
TEST_F(MemoryLimitTest, RequestOverAnExplicitBudgetIsRefusedBeforeAnyWork) {
  std::optional<LimitedServer> server =
      StartHugeDates({"--memory_budget=64M", "--max_new_tokens_limit=500000",
                      "--max_batch_tokens=10000000"});
  ASSERT_TRUE(server.has_value());
  auto stub = v1::Seq2Seq::NewStub(testing::Connect(server->port));
  const grpc::Status refused = GenerateFromThreeTokens(*stub, 400'000);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr("64.0 MiB (--memory_budget)"));

  ExpectServesADate(*stub);
}

TEST_F(MemoryLimitTest, AModelThatCannotFitIsAClearStartupError) {
  // A budget larger than what the process may still allocate cannot be
  // checked against a limit; one below the smallest request can.
  const testing::RunResult result = testing::RunProgram(
      UnderAddressSpaceLimit(
          TestServerFlags(CopyDatesModel(dir_, 64), {"--memory_budget=1K"}),
          int64_t{1} << 30),
      "", absl::Seconds(60));
  EXPECT_EQ(result.exit_code, std::optional<int>(1)) << result.output;
  EXPECT_THAT(result.output, HasSubstr("cannot serve model"));
  EXPECT_THAT(result.output, HasSubstr("leaves no room for requests"));
}

}  // namespace
}  // namespace attnserve::server
