#include "tests/server/attnserve_binary.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace attnserve::server::testing {

absl::StatusOr<StartedServer> StartAttnserve(
    const std::vector<std::string>& flags, absl::Duration timeout) {
  std::vector<std::string> argv = {ATTNSERVE_BINARY};
  argv.insert(argv.end(), flags.begin(), flags.end());
  StartedServer server;
  server.process = std::make_unique<Subprocess>(argv);
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
