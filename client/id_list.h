#pragma once
// Token id lists as people type them: "5,17,42" (the CLI's --ids, the lines of
// a bench --sources_file).

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace attnserve::client {

// "5,17,42" -> {5, 17, 42}. Spaces around an id are allowed. An empty list, an
// empty item ("5,,6"), a non-number, a negative id or one above INT32_MAX is
// INVALID_ARGUMENT naming the item. Whether an id is below the model's vocab
// size is for the server to say.
absl::StatusOr<std::vector<int32_t>> ParseIdList(absl::string_view text);

}  // namespace attnserve::client
