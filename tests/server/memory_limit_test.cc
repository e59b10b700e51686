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

// models/dates with another max_positions.
void CopyDatesModel(const std::string& dir, int max_positions) {
  namespace fs = std::filesystem;
  for (const char* file : {"model.safetensors", "vocab.txt"}) {
    fs::copy_file(fs::path(DatesModelDir()) / file, fs::path(dir) / file);
  }
  std::ifstream in(DatesModelDir() + "/config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  config["max_positions"] = max_positions;
  std::ofstream(dir + "/config.json") << config.dump(2);
}

struct LimitedServer {
  std::unique_ptr<Subprocess> process;
  std::string startup_line;
  int port = 0;
};

// Starts build/attnserve with RLIMIT_AS set in the child before it execs the
// server (the shell's `ulimit -v`, in KiB).
std::optional<LimitedServer> StartUnderAddressSpaceLimit(
    const std::vector<std::string>& flags, int64_t limit_bytes,
    const std::string& stderr_path) {
  std::vector<std::string> argv = {
      "/bin/sh", "-c",
      absl::StrCat("ulimit -v ", limit_bytes / 1024, " && exec \"$0\" \"$@\""),
      ATTNSERVE_BINARY};
  argv.insert(argv.end(), flags.begin(), flags.end());
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

TEST(MemoryLimitTest, HugeRequestIsRefusedAndTheServerKeepsServing) {
  engine::testing::TempDir dir("memory_limit_test");
  const std::string model_dir = dir.path() + "/dates";
  std::filesystem::create_directory(model_dir);
  ASSERT_NO_FATAL_FAILURE(CopyDatesModel(model_dir, 1 << 20));
  const std::string log = dir.path() + "/server.err";
  std::optional<LimitedServer> server = StartUnderAddressSpaceLimit(
      TestServerFlags(model_dir), kAddressSpaceLimit, log);
  ASSERT_TRUE(server.has_value()) << "no startup line; stderr:\n"
                                  << ReadFile(log);
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
TEST(MemoryLimitTest, RequestOverAnExplicitBudgetIsRefusedBeforeAnyWork) {
  engine::testing::TempDir dir("memory_limit_test");
  const std::string model_dir = dir.path() + "/dates";
  std::filesystem::create_directory(model_dir);
  ASSERT_NO_FATAL_FAILURE(CopyDatesModel(model_dir, 1 << 20));
  const std::string log = dir.path() + "/server.err";
  std::optional<LimitedServer> server = StartUnderAddressSpaceLimit(
      TestServerFlags(model_dir,
                      {"--memory_budget=64M", "--max_new_tokens_limit=500000",
                       "--max_batch_tokens=10000000"}),
      kAddressSpaceLimit, log);
  ASSERT_TRUE(server.has_value()) << "no startup line; stderr:\n"
                                  << ReadFile(log);
  auto stub = v1::Seq2Seq::NewStub(testing::Connect(server->port));
  const grpc::Status refused = GenerateFromThreeTokens(*stub, 400'000);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr("64.0 MiB (--memory_budget)"));

  ExpectServesADate(*stub);
}

TEST(MemoryLimitTest, AModelThatCannotFitIsAClearStartupError) {
  engine::testing::TempDir dir("memory_limit_test");
  const std::string model_dir = dir.path() + "/dates";
  std::filesystem::create_directory(model_dir);
  ASSERT_NO_FATAL_FAILURE(CopyDatesModel(model_dir, 64));
  std::vector<std::string> argv = {"/bin/sh", "-c",
                                   "ulimit -v 1048576 && exec \"$0\" \"$@\"",
                                   ATTNSERVE_BINARY};
  // A budget larger than what the process may still allocate cannot be
  // checked against a limit; one below the smallest request can.
  for (const std::string& flag :
       TestServerFlags(model_dir, {"--memory_budget=1K"})) {
    argv.push_back(flag);
  }
  const testing::RunResult result =
      testing::RunProgram(argv, "", absl::Seconds(60));
  EXPECT_EQ(result.exit_code, std::optional<int>(1)) << result.output;
  EXPECT_THAT(result.output, HasSubstr("cannot serve model"));
  EXPECT_THAT(result.output, HasSubstr("leaves no room for requests"));
}

}  // namespace
}  // namespace attnserve::server
