#include "server/log.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace attnserve::server {

std::string SafeLogText(absl::string_view line) {
  std::string safe;
  safe.reserve(std::min(line.size(), kMaxLogLineBytes));
  for (size_t i = 0; i < line.size(); ++i) {
    if (safe.size() >= kMaxLogLineBytes) {
      absl::StrAppend(&safe, "... (cut: ", line.size() - i, " more bytes)");
      break;
    }
    const unsigned char c = line[i];
    if (c < 0x20 || c == 0x7F) {
      absl::StrAppendFormat(&safe, "\\x%02X", c);
    } else {
      safe.push_back(static_cast<char>(c));
    }
  }
  return safe;
}

void LogLine(absl::string_view line) {
  const std::string text =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                    absl::UTCTimeZone()),
                   " attnserve: ", SafeLogText(line), "\n");
  std::fwrite(text.data(), 1, text.size(), stderr);
}

}  // namespace attnserve::server
