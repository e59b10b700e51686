#include "tests/server/attnserve_binary.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace attnserve::server::testing {

std::string TinyModelDir() {
  return absl::StrCat(ATTNSERVE_SOURCE_DIR,
                      "/tests/data/golden/post_relu_tied_interleaved");
}

std::string DatesModelDir() {
  return absl::StrCat(ATTNSERVE_SOURCE_DIR, "/models/dates");
}

std::vector<std::string> TestServerFlags(
    const std::string& model_dir, const std::vector<std::string>& extra) {
  std::vector<std::string> flags = {absl::StrCat("--model_dir=", model_dir),
                                    "--host=127.0.0.1", "--port=0",
                                    "--metrics_port=0", "--threads=1"};
  flags.insert(flags.end(), extra.begin(), extra.end());
  return flags;
}

RunResult RunAttnserve(const std::vector<std::string>& flags,
                       absl::Duration timeout) {
  std::vector<std::string> argv = {ATTNSERVE_BINARY};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return RunProgram(argv, /*stdin_path=*/"", timeout);
}

absl::StatusOr<StartedServer> StartAttnserve(
    const std::vector<std::string>& flags, absl::Duration timeout,
    const SubprocessOptions& options) {
  std::vector<std::string> argv = {ATTNSERVE_BINARY};
  argv.insert(argv.end(), flags.begin(), flags.end());
  StartedServer server;
  server.process = std::make_unique<Subprocess>(argv, options);
  std::optional<std::string> line = server.process->ReadLine(timeout);
  if (!line.has_value()) {
    return absl::UnavailableError(
        absl::StrCat(ATTNSERVE_BINARY,
                     " printed no startup line (see its "
                     "stderr above)"));
  }
  server.startup_line = *std::move(line);
  // "... on 127.0.0.1:PORT; batching=..."
  const std::string kHost = " on 127.0.0.1:";
  const size_t at = server.startup_line.find(kHost);
  const size_t end = server.startup_line.find(';', at);
  if (at == std::string::npos || end == std::string::npos ||
      !absl::SimpleAtoi(server.startup_line.substr(at + kHost.size(),
                                                   end - at - kHost.size()),
                        &server.port)) {
    return absl::InternalError(
        absl::StrCat("no port in the startup line: ", server.startup_line));
  }
  return server;
}

}  // namespace attnserve::server::testing
