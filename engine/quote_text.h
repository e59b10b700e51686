#pragma once
// Quoting untrusted text (a client's word, a line of a model's file, a path
// from a config) for an error message or a log line: bounded, so that a
// megabyte of input cannot become a megabyte of status trailer or log, and
// escaped, so that a newline in it cannot forge a log line.

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace attnserve::engine {

// Most bytes of the input that QuoteText keeps by default.
inline constexpr size_t kQuotedTextBytes = 64;

// `text` in double quotes, C-escaped (control bytes, quotes, backslashes and
// bytes >= 0x80 as \ sequences), cut after `max_bytes` input bytes with the
// total length said: "\"abc...\" (first 64 of 1000000 bytes)".
std::string QuoteText(absl::string_view text,
                      size_t max_bytes = kQuotedTextBytes);

}  // namespace attnserve::engine
