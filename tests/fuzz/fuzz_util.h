#pragma once
// Helpers shared by the libFuzzer targets of tests/fuzz (see
// docs/hardening-tools.md).

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace attnserve::fuzz {

// Aborts (which libFuzzer reports as a crash and saves the input) when a
// property the code under test promises does not hold. A failed check is a
// finding, like a sanitizer report. `message` is only built on failure.
#define FUZZ_CHECK(condition, message)                                \
  do {                                                                \
    if (!(condition)) ::attnserve::fuzz::Fail(#condition, (message)); \
  } while (false)
[[noreturn]] void Fail(const char* condition, absl::string_view message);

// A directory private to this process, created on first use under $TMPDIR (or
// /tmp) and removed with its files at exit. The loaders read model
// directories from disk, so each input is written here first; fuzz.sh points
// TMPDIR at a tmpfs so that costs no disk I/O.
const std::string& ProcessDir();

// Writes (replaces) `name` in ProcessDir(), creating its parent directories
// ("a/b.txt"), and returns its path. Aborts on an
// I/O error: that is a broken fuzzing setup, not a finding.
std::string WriteProcessFile(const std::string& name, absl::string_view bytes);
void RemoveProcessFile(const std::string& name);

// The framing of multi-file inputs: the parts of `data` between occurrences of
// kSeparator, at most `max_parts` of them (the last part keeps any further
// separators). Seeds are made by make_seeds.py with the same separator.
inline constexpr absl::string_view kSeparator = "\n--8<--\n";
std::vector<absl::string_view> SplitInput(const uint8_t* data, size_t size,
                                          size_t max_parts);

}  // namespace attnserve::fuzz
