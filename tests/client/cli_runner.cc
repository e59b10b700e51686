#include "tests/client/cli_runner.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/server/test_certs.h"  // ReadTextFile

namespace attnserve::client::testing {

using ::attnserve::testing::ReadTextFile;

ToolOutcome RunTool(const std::string& binary, const std::string& arguments) {
  static int run = 0;
  const std::string prefix =
      absl::StrCat(::testing::TempDir(), "/client_tool_", getpid(), "_", ++run);
  const std::string command = absl::StrCat(binary, " ", arguments, " >", prefix,
                                           ".out 2>", prefix, ".err");
  const int status = std::system(command.c_str());
  ToolOutcome outcome;
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  outcome.out = ReadTextFile(prefix + ".out");
  outcome.err = ReadTextFile(prefix + ".err");
  return outcome;
}

ToolOutcome Cli(const std::string& arguments) {
  return RunTool(ATTNSERVE_CLI_BINARY, arguments);
}

ToolOutcome Bench(const std::string& arguments) {
  return RunTool(ATTNSERVE_BENCH_BINARY, arguments);
}

}  // namespace attnserve::client::testing
