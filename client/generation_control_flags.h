#pragma once
// The generation-control flags (--temperature, --top_k, ...), defined once for
// attnserve-cli and attnserve-bench, which both send GenerationControls. The
// seed is not among them: attnserve-cli calls it --seed, attnserve-bench
// --sampling_seed (its --seed seeds the request mix), so each main defines its
// own and sets GenerationControls::seed.

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "client/generation_controls.h"

namespace attnserve::client {

// The file that defines the flags, for ParseCommandLineStrict and FlagsHelp
// (which accept only the flags of the files they are given).
inline constexpr absl::string_view kGenerationControlFlagsFile =
    "client/generation_control_flags.cc";

// The controls as the flags give them; `seed` is left 0.
GenerationControls GenerationControlsFromFlags();

// The flags' names in --help's order, with the main's seed flag `seed_flag`
// among them.
std::vector<std::string> GenerationControlFlagNames(
    absl::string_view seed_flag);

}  // namespace attnserve::client
