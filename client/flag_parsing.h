#pragma once
// Strict command-line parsing for the client tools. absl::ParseCommandLine
// exits with status 1 on an unknown flag or a bad value, which a script cannot
// tell from a failed call; this parser returns those as errors so that the
// mains exit with kExitUsage. The flags themselves are defined (ABSL_FLAG) only
// in the *_main.cc files and, shared by both tools, in
// generation_control_flags.cc. FlagsHelp (absl only) also renders the server's
// --help (server/main.cc).

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace attnserve::client {

struct CommandLine {
  std::vector<std::string> positional;  // without argv[0]
  bool help = false;                    // --help or -h was given
  // The names of the flags that argv set, in order (a flag given twice twice),
  // so that a main can tell --text="" from no --text at all.
  std::vector<std::string> given;

  bool Given(absl::string_view name) const;
};

// Sets the flags named in argv[1..] and returns the other arguments. Accepts
// only flags defined in a source file whose path ends with one of `own_files`
// (e.g. "client/cli_main.cc"), in the forms --name=value, --name value,
// -name=value, and for bools and std::optional<bool> --name / --noname; "--"
// ends the flags. On error (unknown flag, missing or unparsable value) returns
// INVALID_ARGUMENT naming the argument; flags set before the error keep their
// new values.
absl::StatusOr<CommandLine> ParseCommandLineStrict(
    int argc, char** argv, absl::Span<const absl::string_view> own_files);
// The same for a tool whose flags are all in `main_file`.
inline absl::StatusOr<CommandLine> ParseCommandLineStrict(
    int argc, char** argv, absl::string_view main_file) {
  return ParseCommandLineStrict(argc, argv, absl::MakeConstSpan(&main_file, 1));
}

// A heading of --help and the flags listed under it, in that order.
struct FlagGroup {
  std::string heading;             // "Connection"
  std::vector<std::string> flags;  // names without "--"
};

// `usage`, then every flag that ParseCommandLineStrict accepts for `own_files`
// with its default and help text: under the headings of `groups`, then the
// flags no group names, sorted by name, under "Other flags" ("Flags" when
// there are no groups). Help texts are wrapped at 80 columns.
std::string FlagsHelp(absl::string_view usage,
                      absl::Span<const absl::string_view> own_files,
                      const std::vector<FlagGroup>& groups = {});
inline std::string FlagsHelp(absl::string_view usage,
                             absl::string_view main_file,
                             const std::vector<FlagGroup>& groups = {}) {
  return FlagsHelp(usage, absl::MakeConstSpan(&main_file, 1), groups);
}

}  // namespace attnserve::client
