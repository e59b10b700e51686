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

// Bundled real models: tests/data/golden/post_relu_tied_interleaved (tiny,
// ids only, vocab 53, max_positions 64) and models/dates (text, 1M
// parameters).
std::string TinyModelDir();
std::string DatesModelDir();

// The flags every test server takes: `model_dir`, loopback, a free port, no
// metrics endpoint (its default port may be taken), one thread; `extra` after
// them (a later flag wins).
std::vector<std::string> TestServerFlags(
    const std::string& model_dir, const std::vector<std::string>& extra = {});

// Runs ATTNSERVE_BINARY with `flags` to its exit (for startups that must
// fail): its exit code and what it printed.
RunResult RunAttnserve(const std::vector<std::string>& flags,
                       absl::Duration timeout = absl::Seconds(60));

// Starts ATTNSERVE_BINARY with `flags`, which must include --host=127.0.0.1,
// and waits up to `timeout` for its startup line. An error (with what it said)
// when it exits or stays silent. `options` may send its stderr to a file.
absl::StatusOr<StartedServer> StartAttnserve(
    const std::vector<std::string>& flags,
    absl::Duration timeout = absl::Seconds(60),
    const SubprocessOptions& options = {});

}  // namespace attnserve::server::testing
