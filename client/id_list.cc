#include "client/id_list.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace attnserve::client {

absl::StatusOr<std::vector<int32_t>> ParseIdList(absl::string_view text) {
  if (absl::StripAsciiWhitespace(text).empty()) {
    return absl::InvalidArgumentError("empty id list");
  }
  std::vector<int32_t> ids;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    item = absl::StripAsciiWhitespace(item);
    int32_t id = 0;
    // SimpleAtoi accepts a leading '+'; ids are plain digits.
    if (item.empty() || !absl::ascii_isdigit(item[0]) ||
        !absl::SimpleAtoi(item, &id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad token id \"", item,
          "\" (want comma-separated non-negative integers, e.g. 5,17,42)"));
    }
    ids.push_back(id);
  }
  return ids;
}

}  // namespace attnserve::client
