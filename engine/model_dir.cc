#include "engine/model_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

// config.json is a few hundred bytes; anything this large is not a config.
constexpr int64_t kMaxConfigBytes = int64_t{16} << 20;

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    // ENOENT maps to NotFound.
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot open"));
  }
  std::string text;
  absl::Status status;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    status = absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot stat"));
  } else if (!S_ISREG(st.st_mode)) {
    status =
        absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  } else if (st.st_size > kMaxConfigBytes) {
    status = absl::InvalidArgumentError(
        absl::StrCat(path, ": ", st.st_size, " bytes is too large (limit ",
                     kMaxConfigBytes, ")"));
  } else {
    char buffer[64 * 1024];
    for (;;) {
      const ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status =
            absl::ErrnoToStatus(errno, absl::StrCat(path, ": read failed"));
        break;
      }
      if (n == 0) break;
      text.append(buffer, static_cast<size_t>(n));
      // The file may grow after fstat; keep the limit honest.
      if (static_cast<int64_t>(text.size()) > kMaxConfigBytes) {
        status = absl::InvalidArgumentError(absl::StrCat(path, ": too large"));
        break;
      }
    }
  }
  close(fd);
  if (!status.ok()) return status;
  return text;
}

// "/models/my-model/" -> "my-model".
std::string BaseName(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  if (slash == std::string::npos || dir.size() == 1) return dir;
  return dir.substr(slash + 1);
}

}  // namespace

absl::StatusOr<LoadedModelDir> LoadModelDir(const std::string& dir) {
  LoadedModelDir loaded;
  loaded.name = BaseName(dir);
  const std::string prefix = dir.empty() || dir.back() == '/' ? dir : dir + "/";

  const std::string config_path = prefix + "config.json";
  ASSIGN_OR_RETURN(loaded.config_json, ReadSmallFile(config_path));
  absl::StatusOr<ModelConfig> config =
      ParseModelConfig(loaded.config_json, &loaded.warnings);
  if (!config.ok()) {
    // ParseModelConfig's messages start with "config.json: "; say which one.
    return absl::Status(config.status().code(),
                        absl::StrCat(prefix, config.status().message()));
  }
  loaded.config = *config;

  ASSIGN_OR_RETURN(
      loaded.weights,
      LoadModelWeights(prefix + "model.safetensors", loaded.config));
  return loaded;
}

}  // namespace attnserve::engine
