#include "server/memory_budget.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/format/small_file.h"

namespace attnserve::server {
namespace {

// cgroup v1 reports "no limit" as a huge page-aligned number (2^63 - 4096 on
// x86-64); anything beyond 2^60 bytes is no limit in practice.
constexpr int64_t kUnlimited = int64_t{1} << 60;

// Kernel files (/proc, /sys/fs/cgroup) hold a few lines; one that cannot be
// read reads as empty, which every parser below takes as "no such limit".
std::string ReadKernelFile(const std::string& path) {
  return engine::ReadSmallFile(path, int64_t{1} << 20).value_or("");
}

}  // namespace

std::string FormatBytes(int64_t bytes) {
  constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " bytes");
  double value = static_cast<double>(bytes);
  int unit = -1;
  while (value >= 1024 && unit < 5) {
    value /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.*f %s", value < 10 ? 2 : (value < 100 ? 1 : 0),
                         value, kUnits[unit]);
}

absl::StatusOr<MemoryBudgetSetting> ParseMemoryBudget(absl::string_view text) {
  MemoryBudgetSetting setting;
  if (text == "auto") return setting;
  if (text == "none") {
    setting.kind = MemoryBudgetSetting::Kind::kNone;
    return setting;
  }
  absl::string_view digits = text;
  int shift = 0;
  if (!digits.empty()) {
    switch (absl::ascii_toupper(digits.back())) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      case 'T':
        shift = 40;
        break;
    }
    if (shift != 0) digits.remove_suffix(1);
  }
  int64_t count = 0;
  if (digits.empty() ||
      !std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(digits, &count) || count < 1 ||
      count > (std::numeric_limits<int64_t>::max() >> shift)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "memory_budget \"", text,
        "\" is not auto, none or a byte count >= 1 with an optional K, M, G "
        "or T suffix (e.g. 1536M)"));
  }
  setting.kind = MemoryBudgetSetting::Kind::kBytes;
  setting.bytes = count << shift;
  return setting;
}

int64_t ParseCgroupBytes(absl::string_view contents) {
  contents = absl::StripAsciiWhitespace(contents);
  int64_t bytes = 0;
  if (contents == "max" || !absl::SimpleAtoi(contents, &bytes) || bytes < 0 ||
      bytes >= kUnlimited) {
    return -1;
  }
  return bytes;
}

int64_t ParseKilobyteField(absl::string_view contents, absl::string_view name) {
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    if (!absl::ConsumePrefix(&line, name) || !absl::ConsumePrefix(&line, ":")) {
      continue;
    }
    line = absl::StripAsciiWhitespace(line);
    absl::ConsumeSuffix(&line, "kB");
    int64_t kilobytes = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &kilobytes) ||
        kilobytes < 0) {
      return -1;
    }
    return kilobytes * 1024;
  }
  return -1;
}

std::string ParseCgroupV2Path(absl::string_view contents) {
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    if (absl::ConsumePrefix(&line, "0::")) return std::string(line);
  }
  return "";
}

std::vector<MemoryLimit> ReadMemoryLimits() {
  std::vector<MemoryLimit> limits;
  const std::string status = ReadKernelFile("/proc/self/status");

  // cgroup v2: the limit of the process's own cgroup (inside a container its
  // path is usually "/", the container's).
  const std::string path =
      ParseCgroupV2Path(ReadKernelFile("/proc/self/cgroup"));
  bool have_cgroup = false;
  if (!path.empty()) {
    const std::string dir =
        absl::StrCat("/sys/fs/cgroup", path == "/" ? "" : path);
    const int64_t max = ParseCgroupBytes(ReadKernelFile(dir + "/memory.max"));
    const int64_t current =
        ParseCgroupBytes(ReadKernelFile(dir + "/memory.current"));
    if (max > 0 && current >= 0) {
      limits.push_back(
          {"cgroup v2 memory.max", max, current, "memory.current"});
      have_cgroup = true;
    }
  }
  if (!have_cgroup) {
    const int64_t max = ParseCgroupBytes(
        ReadKernelFile("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
    const int64_t usage = ParseCgroupBytes(
        ReadKernelFile("/sys/fs/cgroup/memory/memory.usage_in_bytes"));
    if (max > 0 && usage >= 0) {
      limits.push_back({"cgroup v1 memory.limit_in_bytes", max, usage,
                        "memory.usage_in_bytes"});
    }
  }

  rlimit as{};
  const int64_t vm_size = ParseKilobyteField(status, "VmSize");
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY &&
      vm_size >= 0) {
    limits.push_back(
        {"RLIMIT_AS", static_cast<int64_t>(as.rlim_cur), vm_size, "VmSize"});
  }

  const int64_t total =
      ParseKilobyteField(ReadKernelFile("/proc/meminfo"), "MemTotal");
  const int64_t rss = ParseKilobyteField(status, "VmRSS");
  if (total > 0 && rss >= 0)
    limits.push_back({"MemTotal", total, rss, "VmRSS"});
  return limits;
}

absl::Status CheckWeightsFit(const std::string& model_dir,
                             const std::vector<MemoryLimit>& limits) {
  const std::string path = model_dir + "/model.safetensors";
  std::error_code error;
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  if (error) return absl::OkStatus();
  const int64_t weights = static_cast<int64_t>(size);
  for (const MemoryLimit& limit : limits) {
    if (weights > limit.limit - limit.used) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "its weights (", path, ", ", FormatBytes(weights),
          ") do not fit in memory: the process may use ",
          FormatBytes(limit.limit), " (", limit.name, ") and already uses ",
          FormatBytes(limit.used), " (", limit.used_name, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<MemoryBudget> ResolveMemoryBudget(
    const MemoryBudgetSetting& setting, const std::vector<MemoryLimit>& limits,
    int64_t min_request_bytes) {
  MemoryBudget budget;
  for (const MemoryLimit& limit : limits) {
    if (limit.used >= limit.limit) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the loaded model leaves no memory for requests: the process uses ",
          FormatBytes(limit.used), " (", limit.used_name, ") of its ",
          FormatBytes(limit.limit), " limit (", limit.name, ")"));
    }
  }
  switch (setting.kind) {
    case MemoryBudgetSetting::Kind::kNone:
      budget.description = "memory_budget=none (no budget)";
      return budget;
    case MemoryBudgetSetting::Kind::kBytes:
      budget.bytes = setting.bytes;
      budget.description =
          absl::StrCat("memory_budget=", FormatBytes(budget.bytes));
      break;
    case MemoryBudgetSetting::Kind::kAuto: {
      const MemoryLimit* tightest = nullptr;
      for (const MemoryLimit& limit : limits) {
        if (tightest == nullptr ||
            limit.limit - limit.used < tightest->limit - tightest->used) {
          tightest = &limit;
        }
      }
      if (tightest == nullptr) {
        budget.description =
            "memory_budget=auto: no memory limit found (no budget)";
        return budget;
      }
      const int64_t left = tightest->limit - tightest->used;
      budget.bytes = static_cast<int64_t>(
          std::floor(static_cast<double>(left) * kAutoBudgetFraction));
      budget.description = absl::StrFormat(
          "memory_budget=auto: %s = %.0f%% of (%s %s - %s %s in use)",
          FormatBytes(budget.bytes), 100 * kAutoBudgetFraction, tightest->name,
          FormatBytes(tightest->limit), FormatBytes(tightest->used),
          tightest->used_name);
      break;
    }
  }
  if (budget.bytes < min_request_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the memory budget (", budget.description,
        ") is below the smallest request's ", FormatBytes(min_request_bytes),
        ": the loaded model leaves no room for requests"));
  }
  return budget;
}

}  // namespace attnserve::server
