#include "server/log.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnserve::server {
namespace {

using ::testing::HasSubstr;

TEST(SafeLogTextTest, ControlBytesCannotStartAnotherLine) {
  EXPECT_EQ(SafeLogText("id-1\n2026-01-01T00:00:00Z attnserve: forged\r\x1b"),
            "id-1\\x0A2026-01-01T00:00:00Z attnserve: forged\\x0D\\x1B");
  EXPECT_EQ(SafeLogText("plain text, UTF-8 \xC3\xA9 kept"),
            "plain text, UTF-8 \xC3\xA9 kept");
}

TEST(SafeLogTextTest, LongLinesAreCutAndSaySo) {
  const std::string line(kMaxLogLineBytes + 1000, 'a');
  const std::string safe = SafeLogText(line);
  EXPECT_LT(safe.size(), kMaxLogLineBytes + 64);
  EXPECT_THAT(safe, HasSubstr("(cut: 1000 more bytes)"));
}

}  // namespace
}  // namespace attnserve::server
