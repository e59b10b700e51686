// The --memory_budget flag and the limits its "auto" value is derived from.

#include "server/memory_budget.h"

#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::server {
namespace {

using ::testing::HasSubstr;
using Kind = MemoryBudgetSetting::Kind;

TEST(MemoryBudgetTest, ParsesAutoNoneAndSuffixedBytes) {
  EXPECT_EQ(ParseMemoryBudget("auto")->kind, Kind::kAuto);
  EXPECT_EQ(ParseMemoryBudget("none")->kind, Kind::kNone);
  EXPECT_EQ(ParseMemoryBudget("12345")->bytes, 12345);
  EXPECT_EQ(ParseMemoryBudget("4K")->bytes, 4096);
  EXPECT_EQ(ParseMemoryBudget("1536M")->bytes, int64_t{1536} << 20);
  EXPECT_EQ(ParseMemoryBudget("2g")->bytes, int64_t{2} << 30);
  EXPECT_EQ(ParseMemoryBudget("1T")->bytes, int64_t{1} << 40);
  for (const char* bad : {"", "0", "-5", "1.5G", "G", "12X", "99999999999T"}) {
    absl::StatusOr<MemoryBudgetSetting> parsed = ParseMemoryBudget(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_THAT(std::string(parsed.status().message()),
                HasSubstr("memory_budget"));
  }
}

TEST(MemoryBudgetTest, FormatsBytes) {
  EXPECT_EQ(FormatBytes(17), "17 bytes");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(int64_t{3} << 30), "3.00 GiB");
  EXPECT_EQ(FormatBytes(int64_t{200} << 20), "200 MiB");
}

TEST(MemoryBudgetTest, ParsesTheProcAndCgroupFiles) {
  EXPECT_EQ(ParseCgroupBytes("max\n"), -1);
  EXPECT_EQ(ParseCgroupBytes("1073741824\n"), int64_t{1} << 30);
  EXPECT_EQ(ParseCgroupBytes("9223372036854771712\n"), -1)
      << "cgroup v1's unlimited";
  EXPECT_EQ(ParseCgroupBytes(""), -1);
  const std::string status =
      "Name:\tattnserve\nVmPeak:\t  900 kB\nVmSize:\t  812 kB\nVmRSS:\t   "
      "64 kB\n";
  EXPECT_EQ(ParseKilobyteField(status, "VmSize"), 812 * 1024);
  EXPECT_EQ(ParseKilobyteField(status, "VmRSS"), 64 * 1024);
  EXPECT_EQ(ParseKilobyteField(status, "VmSwap"), -1);
  EXPECT_EQ(ParseKilobyteField("MemTotal:       16384 kB\n", "MemTotal"),
            16384 * 1024);
  EXPECT_EQ(ParseCgroupV2Path("0::/system.slice/x.service\n"),
            "/system.slice/x.service");
  EXPECT_EQ(ParseCgroupV2Path("12:memory:/docker/abc\n"), "");
}

TEST(MemoryBudgetTest, AutoTakesAFractionOfTheTightestLimit) {
  const std::vector<MemoryLimit> limits = {
      {"MemTotal", int64_t{16} << 30, int64_t{1} << 30, "VmRSS"},
      {"RLIMIT_AS", int64_t{1536} << 20, int64_t{536} << 20, "VmSize"},
  };
  absl::StatusOr<MemoryBudget> budget =
      ResolveMemoryBudget(MemoryBudgetSetting(), limits, 1000);
  ASSERT_TRUE(budget.ok()) << budget.status();
  EXPECT_EQ(budget->bytes,
            static_cast<int64_t>(kAutoBudgetFraction * (int64_t{1000} << 20)));
  EXPECT_THAT(budget->description, HasSubstr("RLIMIT_AS 1.50 GiB"));
  EXPECT_THAT(budget->description, HasSubstr("536 MiB VmSize in use"));
}

TEST(MemoryBudgetTest, ExplicitAndNoneBudgets) {
  const std::vector<MemoryLimit> limits = {
      {"MemTotal", int64_t{16} << 30, int64_t{1} << 30, "VmRSS"}};
  MemoryBudgetSetting bytes;
  bytes.kind = Kind::kBytes;
  bytes.bytes = 5000;
  EXPECT_EQ(ResolveMemoryBudget(bytes, limits, 1000)->bytes, 5000);
  MemoryBudgetSetting none;
  none.kind = Kind::kNone;
  EXPECT_EQ(ResolveMemoryBudget(none, limits, 1000)->bytes, 0);
  EXPECT_EQ(ResolveMemoryBudget(MemoryBudgetSetting(), {}, 1000)->bytes, 0)
      << "no limit found: no budget";
}

TEST(MemoryBudgetTest, AModelThatLeavesNoRoomIsAnError) {
  const std::vector<MemoryLimit> used_up = {
      {"cgroup v2 memory.max", int64_t{512} << 20, int64_t{600} << 20,
       "memory.current"}};
  absl::StatusOr<MemoryBudget> budget =
      ResolveMemoryBudget(MemoryBudgetSetting(), used_up, 1000);
  EXPECT_EQ(budget.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(budget.status().message()),
              HasSubstr("uses 600 MiB (memory.current) of its 512 MiB limit "
                        "(cgroup v2 memory.max)"));

  const std::vector<MemoryLimit> tight = {{"RLIMIT_AS", 10000, 9000, "VmSize"}};
  budget = ResolveMemoryBudget(MemoryBudgetSetting(), tight, 1000);
  EXPECT_EQ(budget.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(budget.status().message()),
              HasSubstr("below the smallest request"));
}

TEST(MemoryBudgetTest, WeightsLargerThanWhatIsLeftFailBeforeLoading) {
  engine::testing::TempDir dir("memory_budget_test");
  {
    std::ofstream weights(dir.path() + "/model.safetensors");
    weights << std::string(4096, 'x');
  }
  const std::vector<MemoryLimit> limits = {
      {"RLIMIT_AS", 10000, 8000, "VmSize"}};
  const absl::Status status = CheckWeightsFit(dir.path(), limits);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(status.message()), HasSubstr("4.00 KiB"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("RLIMIT_AS"));
  EXPECT_TRUE(
      CheckWeightsFit(dir.path(), {{"RLIMIT_AS", 100000, 8000, "VmSize"}})
          .ok());
  EXPECT_TRUE(CheckWeightsFit(dir.path() + "/missing", limits).ok())
      << "loading reports a missing file";
}

TEST(MemoryBudgetTest, ReadsThisProcesssLimits) {
  const std::vector<MemoryLimit> limits = ReadMemoryLimits();
  bool mem_total = false;
  for (const MemoryLimit& limit : limits) {
    EXPECT_GT(limit.limit, 0) << limit.name;
    EXPECT_GT(limit.used, 0) << limit.name;
    mem_total = mem_total || limit.name == "MemTotal";
  }
  EXPECT_TRUE(mem_total) << "Linux always has /proc/meminfo";
}

}  // namespace
}  // namespace attnserve::server
