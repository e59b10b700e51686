#include "tests/fuzz/fuzz_util.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace attnserve::fuzz {

void Fail(const char* condition, absl::string_view message) {
  std::fprintf(stderr, "FUZZ_CHECK failed: %s: %.*s\n", condition,
               static_cast<int>(message.size()), message.data());
  std::abort();
}

const std::string& ProcessDir() {
  // Created once and never freed: libFuzzer calls the target until exit.
  static const std::string* const dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
        "/attnserve-fuzz-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    auto* path = new std::string(pattern);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(ProcessDir(), ignored);
    });
    return path;
  }();
  return *dir;
}

std::string WriteProcessFile(const std::string& name, absl::string_view bytes) {
  const std::string path = ProcessDir() + "/" + name;
  std::error_code ignored;  // a failure shows when the file is written
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(),
                                      ignored);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

void RemoveProcessFile(const std::string& name) {
  std::error_code ignored;
  std::filesystem::remove(ProcessDir() + "/" + name, ignored);
}

std::vector<absl::string_view> SplitInput(const uint8_t* data, size_t size,
                                          size_t max_parts) {
  absl::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<absl::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const size_t at = rest.find(kSeparator);
    if (at == absl::string_view::npos) break;
    parts.push_back(rest.substr(0, at));
    rest.remove_prefix(at + kSeparator.size());
  }
  parts.push_back(rest);
  return parts;
}

}  // namespace attnserve::fuzz
