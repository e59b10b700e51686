#pragma once
// The server's log: one line per event worth a human's attention (startup,
// shutdown, each failed request), never one per successful request.

#include "absl/strings/string_view.h"

namespace attnserve::server {

// Writes "<UTC time> attnserve: <line>\n" to stderr in one write, so lines from
// different threads never interleave. Thread-safe.
void LogLine(absl::string_view line);

}  // namespace attnserve::server
