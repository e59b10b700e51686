#include "client/flag_parsing.h"

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Flags of this file only: the parser accepts flags defined in the file it is
// given, as the tools accept only their main file's flags.
ABSL_FLAG(int, fp_count, 3, "A count.");
ABSL_FLAG(bool, fp_verbose, false, "A switch.");
ABSL_FLAG(std::string, fp_name, "", "A name.");
ABSL_FLAG(std::optional<bool>, fp_maybe, std::nullopt, "A tri-state.");

namespace attnserve::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kThisFile[] = "client/flag_parsing_test.cc";

class ParseCommandLineStrictTest : public ::testing::Test {
 protected:
  absl::StatusOr<CommandLine> Parse(std::initializer_list<const char*> args) {
    arguments_.assign({"tool"});
    arguments_.insert(arguments_.end(), args.begin(), args.end());
    argv_.clear();
    for (std::string& argument : arguments_) argv_.push_back(argument.data());
    return ParseCommandLineStrict(static_cast<int>(argv_.size()), argv_.data(),
                                  kThisFile);
  }

 private:
  absl::FlagSaver saver_;  // every test starts from the defaults
  std::vector<std::string> arguments_;
  std::vector<char*> argv_;
};

TEST_F(ParseCommandLineStrictTest, SetsFlagsInAllFormsAndKeepsPositionals) {
  absl::StatusOr<CommandLine> parsed =
      Parse({"generate", "--fp_count=7", "-fp_name", "x y", "--fp_verbose",
             "more", "--", "--fp_count=9"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->positional,
              ElementsAre("generate", "more", "--fp_count=9"));
  EXPECT_FALSE(parsed->help);
  EXPECT_EQ(absl::GetFlag(FLAGS_fp_count), 7);
  EXPECT_EQ(absl::GetFlag(FLAGS_fp_name), "x y");
  EXPECT_TRUE(absl::GetFlag(FLAGS_fp_verbose));
}

TEST_F(ParseCommandLineStrictTest, NegatedBoolAndHelp) {
  absl::SetFlag(&FLAGS_fp_verbose, true);
  absl::StatusOr<CommandLine> parsed = Parse({"--nofp_verbose", "--help"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_FALSE(absl::GetFlag(FLAGS_fp_verbose));
  EXPECT_TRUE(parsed->help);
  EXPECT_TRUE(Parse({"-h"})->help);
}

TEST_F(ParseCommandLineStrictTest, OptionalBoolsAreSwitchesToo) {
  ASSERT_TRUE(Parse({"generate"}).ok());
  EXPECT_FALSE(absl::GetFlag(FLAGS_fp_maybe).has_value());
  absl::StatusOr<CommandLine> parsed = Parse({"--fp_maybe", "generate"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->positional, ElementsAre("generate"));
  EXPECT_EQ(absl::GetFlag(FLAGS_fp_maybe), std::optional<bool>(true));
  ASSERT_TRUE(Parse({"--nofp_maybe"}).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_fp_maybe), std::optional<bool>(false));
  ASSERT_TRUE(Parse({"--fp_maybe=true"}).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_fp_maybe), std::optional<bool>(true));
  ASSERT_TRUE(Parse({"--fp_maybe=false"}).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_fp_maybe), std::optional<bool>(false));
}

TEST_F(ParseCommandLineStrictTest, UnknownFlagIsAnError) {
  absl::StatusOr<CommandLine> parsed = Parse({"--fp_cuont=3"});
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.status().message(), HasSubstr("unknown flag --fp_cuont"));
  // Abseil's own flags are not this tool's.
  EXPECT_FALSE(Parse({"--flagfile=x"}).ok());
  EXPECT_FALSE(Parse({"--nofp_count"}).ok());
}

TEST_F(ParseCommandLineStrictTest, BadOrMissingValueIsAnError) {
  absl::StatusOr<CommandLine> bad = Parse({"--fp_count=many"});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("--fp_count=many"));
  absl::StatusOr<CommandLine> missing = Parse({"--fp_name"});
  EXPECT_THAT(missing.status().message(), HasSubstr("needs a value"));
  EXPECT_FALSE(Parse({"--fp_verbose=maybe"}).ok());
}

TEST(FlagsHelpTest, ListsOnlyTheFileFlagsSortedWithDefaults) {
  const std::string help = FlagsHelp("usage: tool", kThisFile);
  EXPECT_THAT(help, HasSubstr("usage: tool\n"));
  const size_t count = help.find("--fp_count (default: \"3\")");
  const size_t name = help.find("--fp_name");
  const size_t verbose = help.find("--fp_verbose");
  ASSERT_NE(count, std::string::npos) << help;
  EXPECT_LT(count, name);
  EXPECT_LT(name, verbose);
  EXPECT_THAT(help, HasSubstr("A switch."));
  EXPECT_EQ(help.find("--flagfile"), std::string::npos);
}

TEST_F(ParseCommandLineStrictTest, RecordsWhichFlagsWereGiven) {
  absl::StatusOr<CommandLine> parsed = Parse({"--fp_name=", "--nofp_verbose"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->given, ElementsAre("fp_name", "fp_verbose"));
  EXPECT_TRUE(parsed->Given("fp_name"));  // given, though empty
  EXPECT_FALSE(parsed->Given("fp_count"));
}

TEST(FlagsHelpTest, GroupsThenTheRestUnderOtherFlags) {
  const std::string help = FlagsHelp(
      "usage: tool", kThisFile, {{"Counting", {"fp_verbose", "fp_count"}}});
  const size_t heading = help.find("\nCounting:\n");
  const size_t verbose = help.find("--fp_verbose");
  const size_t count = help.find("--fp_count");
  const size_t other = help.find("\nOther flags:\n");
  const size_t name = help.find("--fp_name");
  ASSERT_NE(heading, std::string::npos) << help;
  ASSERT_NE(other, std::string::npos) << help;
  EXPECT_LT(heading, verbose);
  EXPECT_LT(verbose, count);  // the group's order, not the name's
  EXPECT_LT(count, other);
  EXPECT_LT(other, name);
  // Each flag once.
  EXPECT_EQ(help.find("--fp_count", count + 1), std::string::npos);
}

// A tool whose flags are in several files (its main and
// generation_control_flags.cc) accepts and lists the flags of any of them,
// and only those.
TEST(FlagFilesTest, AcceptsAndListsTheFlagsOfEveryGivenFile) {
  absl::FlagSaver saver;
  constexpr absl::string_view kFiles[] = {"client/no_such_file.cc", kThisFile};
  std::string tool = "tool", count = "--fp_count=9";
  char* argv[] = {tool.data(), count.data()};
  absl::StatusOr<CommandLine> parsed = ParseCommandLineStrict(2, argv, kFiles);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(absl::GetFlag(FLAGS_fp_count), 9);
  EXPECT_THAT(FlagsHelp("usage: tool", kFiles), HasSubstr("--fp_count"));

  constexpr absl::string_view kOthers[] = {"client/no_such_file.cc",
                                           "client/cli_main.cc"};
  EXPECT_FALSE(ParseCommandLineStrict(2, argv, kOthers).ok());
  EXPECT_THAT(FlagsHelp("usage: tool", kOthers),
              ::testing::Not(HasSubstr("--fp_count")));
}

}  // namespace
}  // namespace attnserve::client
