#include "engine/model_dir.h"

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/small_file.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

// config.json is a few hundred bytes; anything this large is not a config.
constexpr int64_t kMaxConfigBytes = int64_t{16} << 20;

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
  ASSIGN_OR_RETURN(loaded.config_json,
                   ReadSmallFile(config_path, kMaxConfigBytes));
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
