#include "engine/quote_text.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace attnserve::engine {

std::string QuoteText(absl::string_view text, size_t max_bytes) {
  // Escaping before truncation would make the bound depend on the content;
  // cut first, then escape (at most 4 output bytes per input byte).
  const absl::string_view kept = text.substr(0, max_bytes);
  std::string quoted = absl::StrCat("\"", absl::CHexEscape(kept), "\"");
  if (kept.size() < text.size()) {
    absl::StrAppend(&quoted, " (first ", kept.size(), " of ", text.size(),
                    " bytes)");
  }
  return quoted;
}

}  // namespace attnserve::engine
