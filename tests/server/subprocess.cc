#include "tests/server/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

extern char** environ;

namespace attnserve::server::testing {

Subprocess::Subprocess(const std::vector<std::string>& argv,
                       const SubprocessOptions& options) {
  int fds[2];
  if (argv.empty() || pipe(fds) != 0) return;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  if (options.merge_stderr) {
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
  } else if (!options.stderr_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO,
                                     options.stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  if (!options.stdin_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO,
                                     options.stdin_path.c_str(), O_RDONLY, 0);
  }
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::vector<std::string> strings = argv;
  std::vector<char*> args;
  for (std::string& arg : strings) args.push_back(arg.data());
  args.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ) ==
      0) {
    pid_ = pid;
  }
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  stdout_ = fds[0];
}

Subprocess::~Subprocess() {
  if (started() && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (stdout_ >= 0) close(stdout_);
}

bool Subprocess::Fill(absl::Time give_up) {
  pollfd fd{stdout_, POLLIN, 0};
  const int wait_ms = static_cast<int>(
      std::max<int64_t>(0, absl::ToInt64Milliseconds(give_up - absl::Now())));
  if (poll(&fd, 1, wait_ms) <= 0) return false;
  char chunk[4096];
  const ssize_t n = read(stdout_, chunk, sizeof(chunk));
  if (n <= 0) return false;
  buffer_.append(chunk, n);
  return true;
}

std::optional<std::string> Subprocess::ReadLine(absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (true) {
    const size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    if (!started() || !Fill(give_up)) return std::nullopt;
  }
}

std::string Subprocess::ReadAll(absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (started() && Fill(give_up)) {
  }
  return std::move(buffer_);
}

void Subprocess::Signal(int signal) {
  if (started() && !reaped_) kill(pid_, signal);
}

std::optional<int> Subprocess::Wait(absl::Duration timeout) {
  if (!started()) return std::nullopt;
  const absl::Time give_up = absl::Now() + timeout;
  while (true) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return std::nullopt;
    }
    if (absl::Now() >= give_up) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

RunResult RunProgram(const std::vector<std::string>& argv,
                     const std::string& stdin_path, absl::Duration timeout) {
  SubprocessOptions options;
  options.stdin_path = stdin_path;
  options.merge_stderr = true;
  Subprocess process(argv, options);
  const absl::Time give_up = absl::Now() + timeout;
  RunResult result;
  result.output = process.ReadAll(timeout);
  result.exit_code = process.Wait(give_up - absl::Now());
  return result;
}

std::optional<std::string> FindInPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir, "/", program);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

}  // namespace attnserve::server::testing
