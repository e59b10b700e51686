// build/attnserve as a process: it prints where it serves, answers, and on
// SIGTERM drains and exits 0.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/test_model_writer.h"
#include "tests/server/grpc_test_client.h"

extern char** environ;

namespace attnserve::server {
namespace {

using ::testing::HasSubstr;
namespace model_testing = ::attnserve::engine::testing;

class Process {
 public:
  // Starts ATTNSERVE_BINARY with `args`; its stdout is readable with ReadLine.
  explicit Process(const std::vector<std::string>& args) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::vector<std::string> argv_strings = {ATTNSERVE_BINARY};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : argv_strings) argv.push_back(arg.data());
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, ATTNSERVE_BINARY, &actions, nullptr,
                          argv.data(), environ),
              0);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    stdout_ = fds[0];
  }
  ~Process() {
    if (!exit_code_.has_value()) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(stdout_);
  }

  // The next line of its stdout, or nullopt at EOF or after `timeout`.
  std::optional<std::string> ReadLine(absl::Duration timeout) {
    const absl::Time give_up = absl::Now() + timeout;
    while (true) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      pollfd fd{stdout_, POLLIN, 0};
      const int wait_ms =
          static_cast<int>(absl::ToInt64Milliseconds(give_up - absl::Now()));
      if (wait_ms <= 0 || poll(&fd, 1, wait_ms) <= 0) return std::nullopt;
      char chunk[4096];
      const ssize_t n = read(stdout_, chunk, sizeof(chunk));
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, n);
    }
  }

  void Signal(int signal) { kill(pid_, signal); }

  // The exit code, or nullopt if it is still running after `timeout` (or was
  // killed).
  std::optional<int> Wait(absl::Duration timeout) {
    const absl::Time give_up = absl::Now() + timeout;
    while (absl::Now() < give_up) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        if (WIFEXITED(status))
          exit_code_ = WEXITSTATUS(status);
        else
          exit_code_ = -1;
        return WIFEXITED(status) ? std::optional<int>(WEXITSTATUS(status))
                                 : std::nullopt;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return std::nullopt;
  }

 private:
  pid_t pid_ = 0;
  int stdout_ = -1;
  std::string buffer_;
  std::optional<int> exit_code_;
};

TEST(BinaryTest, ServesPrintsWhereAndDrainsOnSigterm) {
  model_testing::TempDir dir("binary_test");
  const engine::ModelConfig config = model_testing::TinyConfig();
  ASSERT_TRUE(model_testing::WriteModelDir(
                  dir.path(), model_testing::ConfigJson(config),
                  model_testing::RandomModelTensors(config, {}))
                  .ok());
  Process server({absl::StrCat("--model_dir=", dir.path()), "--host=127.0.0.1",
                  "--port=0", "--threads=1", "--shutdown_grace=5s"});
  const std::optional<std::string> line = server.ReadLine(absl::Seconds(60));
  ASSERT_TRUE(line.has_value()) << "no startup line";
  EXPECT_THAT(*line, HasSubstr("attnserve.v1.Seq2Seq"));
  const size_t at = line->find("127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << *line;
  int port = 0;
  const std::string rest = line->substr(at + 10);
  ASSERT_TRUE(absl::SimpleAtoi(rest.substr(0, rest.find(';')), &port)) << *line;

  std::shared_ptr<grpc::Channel> channel = testing::Connect(port);
  EXPECT_EQ(testing::CheckHealth(channel, "").value_or(-1), 1);
  auto stub = v1::Seq2Seq::NewStub(channel);
  v1::GenerateRequest request;
  for (int id : {3, 4, 5}) request.add_input_ids(id);
  request.set_max_new_tokens(4);
  v1::GenerateResponse response;
  EXPECT_TRUE(testing::Generate(*stub, request, &response).ok());
  EXPECT_GE(response.output_ids_size(), 0);

  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(absl::Seconds(30)), std::optional<int>(0));
}

TEST(BinaryTest, ExplainsBadStartup) {
  Process missing({});
  EXPECT_EQ(missing.Wait(absl::Seconds(30)), std::optional<int>(2));
  Process bad_dir({"--model_dir=/nonexistent/model", "--port=0"});
  EXPECT_EQ(bad_dir.Wait(absl::Seconds(30)), std::optional<int>(1));
  Process bad_mode({"--model_dir=/nonexistent/model", "--batching=static"});
  EXPECT_EQ(bad_mode.Wait(absl::Seconds(30)), std::optional<int>(2));
}

}  // namespace
}  // namespace attnserve::server
