#pragma once
// build/attnserve (ATTNSERVE_BINARY) as a child process, for the tests that
// run the real binary.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/server/subprocess.h"

namespace attnserve::server::testing {

struct StartedServer {
  std::unique_ptr<Subprocess> process;  // stdout after the startup line
  std::string startup_line;
  int port = 0;  // the gRPC port it printed
};

// Starts ATTNSERVE_BINARY with `flags`, which must include --host=127.0.0.1,
// and waits up to `timeout` for its startup line. An error (with what it said)
// when it exits or stays silent.
absl::StatusOr<StartedServer> StartAttnserve(
    const std::vector<std::string>& flags,
    absl::Duration timeout = absl::Seconds(60));

}  // namespace attnserve::server::testing
