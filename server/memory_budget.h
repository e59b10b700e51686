#pragma once
// The memory budget for requests (the --memory_budget flag): how many bytes
// the running batch's worst-case engine memory may add up to, by default
// derived from the limits this process runs under and what it already uses
// once the model is loaded. docs/server.md, "Memory".

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace attnserve::server {

// "1.50 GiB", "312 KiB", "17 bytes".
std::string FormatBytes(int64_t bytes);

// The --memory_budget flag: "auto", "none" (no budget), or a byte count with
// an optional binary suffix K, M, G or T (1K = 1024 bytes), e.g. "1536M".
struct MemoryBudgetSetting {
  enum class Kind { kAuto, kNone, kBytes };
  Kind kind = Kind::kAuto;
  int64_t bytes = 0;  // kBytes only; >= 1
};
absl::StatusOr<MemoryBudgetSetting> ParseMemoryBudget(absl::string_view text);

// One limit on the process's memory and how much of it is already used, in
// the limit's own measure.
struct MemoryLimit {
  std::string name;  // e.g. "cgroup v2 memory.max", "RLIMIT_AS", "MemTotal"
  int64_t limit = 0;
  int64_t used = 0;
  std::string used_name;  // what `used` measures, e.g. "VmSize"
};

// Reads the limits that apply now: the process's cgroup v2 memory.max (against
// the cgroup's memory.current), else the cgroup v1 memory.limit_in_bytes
// (against memory.usage_in_bytes), RLIMIT_AS (against VmSize: address space
// counts, not residence) and MemTotal (against VmRSS). Limits that are not set
// ("max", RLIM_INFINITY) or cannot be read are left out.
std::vector<MemoryLimit> ReadMemoryLimits();

// Parsers of the files ReadMemoryLimits reads (exposed for tests).
// cgroup memory.max / memory.limit_in_bytes / memory.current: a byte count, or
// "max" or an implausibly large v1 "unlimited" value: -1.
int64_t ParseCgroupBytes(absl::string_view contents);
// A "Name:   123 kB" line of /proc/self/status or /proc/meminfo, in bytes; -1
// when absent.
int64_t ParseKilobyteField(absl::string_view contents, absl::string_view name);
// The cgroup v2 path of this process from /proc/self/cgroup ("0::/a/b" ->
// "/a/b"); empty when it has none.
std::string ParseCgroupV2Path(absl::string_view contents);

// Before loading: RESOURCE_EXHAUSTED, naming both sizes and the limit, when
// the weights file of `model_dir` (model.safetensors) alone is larger than
// what some limit leaves; OK when it fits or cannot be measured (loading then
// says what is wrong).
absl::Status CheckWeightsFit(const std::string& model_dir,
                             const std::vector<MemoryLimit>& limits);

// What an automatic budget keeps of what is left under the tightest limit: the
// rest covers what the estimate leaves out (gRPC buffers, thread stacks,
// allocator slack).
inline constexpr double kAutoBudgetFraction = 0.8;

struct MemoryBudget {
  int64_t bytes = 0;        // 0: no budget
  std::string description;  // how it was derived, for the startup log
};

// The budget for `setting` under `limits` (ReadMemoryLimits): kAuto takes
// kAutoBudgetFraction of the smallest limit - used, kBytes the number given,
// kNone no budget. RESOURCE_EXHAUSTED, naming the limit and the use, when a
// limit is already used up, or the budget is below `min_request_bytes` (the
// smallest request: the loaded model leaves no room for requests).
absl::StatusOr<MemoryBudget> ResolveMemoryBudget(
    const MemoryBudgetSetting& setting, const std::vector<MemoryLimit>& limits,
    int64_t min_request_bytes);

}  // namespace attnserve::server
