#pragma once
// Child processes for tests that run real programs: build/attnserve, Debian's
// prometheus and promtool. Never leaves a child behind: the destructor kills
// one that is still running.

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace attnserve::server::testing {

struct SubprocessOptions {
  // File to read stdin from; empty: inherit.
  std::string stdin_path;
  // Where stderr goes: a file (truncated), or empty to inherit; or, with
  // merge_stderr, into the same pipe as stdout.
  std::string stderr_path;
  bool merge_stderr = false;
};

class Subprocess {
 public:
  // Starts argv[0] (looked up in PATH when it has no '/') with `argv`. Its
  // stdout is a pipe read by ReadLine / ReadAll. started() says whether the
  // spawn worked.
  explicit Subprocess(const std::vector<std::string>& argv,
                      const SubprocessOptions& options = {});
  // SIGKILL and reap if it still runs.
  ~Subprocess();

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }  // -1 when the spawn failed

  // The next line of its stdout, or nullopt at EOF or after `timeout`.
  std::optional<std::string> ReadLine(absl::Duration timeout);
  // The rest of its stdout, up to EOF or `timeout`.
  std::string ReadAll(absl::Duration timeout);

  void Signal(int signal);

  // The exit code, or nullopt if it still runs after `timeout` or was killed
  // by a signal.
  std::optional<int> Wait(absl::Duration timeout);

 private:
  // Reads what is available within `timeout`; false at EOF or timeout.
  bool Fill(absl::Time give_up);

  pid_t pid_ = -1;
  int stdout_ = -1;
  std::string buffer_;
  bool reaped_ = false;
};

// Runs a program to its end (at most `timeout`, then it is killed); its stdout
// and stderr together, and its exit code (nullopt: killed or timed out).
struct RunResult {
  std::optional<int> exit_code;
  std::string output;
};
RunResult RunProgram(const std::vector<std::string>& argv,
                     const std::string& stdin_path = "",
                     absl::Duration timeout = absl::Seconds(30));

// The path of `program` found in PATH, or nullopt.
std::optional<std::string> FindInPath(const std::string& program);

}  // namespace attnserve::server::testing
