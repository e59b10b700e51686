#pragma once
// Runs the built tools (ATTNSERVE_CLI_BINARY, ATTNSERVE_BENCH_BINARY) as the
// shell would, for the tests of their flags, output and exit codes.

#include <string>

namespace attnserve::client::testing {

struct ToolOutcome {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// `binary arguments` through the shell (the caller quotes arguments): its
// stdout, stderr and exit code.
ToolOutcome RunTool(const std::string& binary, const std::string& arguments);
ToolOutcome Cli(const std::string& arguments);
ToolOutcome Bench(const std::string& arguments);

}  // namespace attnserve::client::testing
