#pragma once
// Reading a small file whole (a config, a vocabulary, a PEM certificate) when
// its path comes from a user: only regular files, and only up to a limit, so
// that a path naming a device (/dev/zero), a FIFO or a huge file fails at once
// instead of reading forever or until memory runs out. Opening never blocks
// (a FIFO without a writer is refused, not waited for).

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace attnserve::engine {

// The contents of `path`. Errors name the path: "<path>: cannot open: <why>"
// (NOT_FOUND when it does not exist), "<path>: not a regular file",
// "<path>: N bytes is too large (limit M)" (INVALID_ARGUMENT), read errors.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          int64_t max_bytes);

}  // namespace attnserve::engine
