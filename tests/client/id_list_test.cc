#include "client/id_list.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnserve::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseIdListTest, ParsesCommaSeparatedIds) {
  absl::StatusOr<std::vector<int32_t>> ids = ParseIdList("5,17,42");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(5, 17, 42));
}

TEST(ParseIdListTest, AllowsSpacesAroundIds) {
  absl::StatusOr<std::vector<int32_t>> ids = ParseIdList(" 0, 1 ,2147483647 ");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(0, 1, 2147483647));
}

TEST(ParseIdListTest, RejectsBadLists) {
  for (const char* text :
       {"", " ", "5,,6", "5,", "a", "5;6", "-1", "+3", "1.5", "2147483648"}) {
    absl::StatusOr<std::vector<int32_t>> ids = ParseIdList(text);
    EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument)
        << "\"" << text << "\"";
  }
  EXPECT_THAT(ParseIdList("5,x7").status().message(), HasSubstr("\"x7\""));
}

}  // namespace
}  // namespace attnserve::client
