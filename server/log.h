#pragma once
// The server's log: one line per event worth a human's attention (startup,
// shutdown, each failed request), never one per successful request.

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace attnserve::server {

// Longest line LogLine writes; longer ones are cut and say so.
inline constexpr size_t kMaxLogLineBytes = 4096;

// Writes "<UTC time> attnserve: <line>\n" to stderr in one write, so lines from
// different threads never interleave. The line is made safe first
// (SafeLogText). Thread-safe.
void LogLine(absl::string_view line);

// `line` as LogLine writes it: control bytes (newline, carriage return,
// escape, ...) as \xNN escapes, so that text from a client or a model file
// can never start a forged log line, and cut at kMaxLogLineBytes.
std::string SafeLogText(absl::string_view line);

}  // namespace attnserve::server
