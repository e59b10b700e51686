#include "engine/format/model_dir.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/quote_text.h"
#include "engine/format/small_file.h"
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

absl::StatusOr<std::string> ResolveModelFile(const std::string& dir,
                                             absl::string_view key,
                                             absl::string_view name) {
  namespace fs = std::filesystem;
  auto refuse = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: \"", key, "\" = ", QuoteText(name), " ", why,
                     " (files a model names must be inside its directory)"));
  };
  if (name.empty()) return refuse("is empty");
  if (name.find('\0') != absl::string_view::npos) {
    return refuse("contains a NUL byte");
  }
  const fs::path relative{std::string(name)};
  if (relative.is_absolute()) return refuse("is an absolute path");
  std::error_code error;
  const fs::path root = fs::canonical(dir, error);
  if (error) {
    return absl::NotFoundError(absl::StrCat(
        dir, ": cannot resolve the model directory: ", error.message()));
  }
  // weakly_canonical resolves the symlinks of every part that exists and
  // normalises the rest ("..") lexically, so a link pointing out is caught
  // as well as a path that climbs out.
  const fs::path resolved = fs::weakly_canonical(root / relative, error);
  if (error) {
    return refuse(absl::StrCat("cannot be resolved: ", error.message()));
  }
  const fs::path inside = resolved.lexically_relative(root);
  if (inside.empty() || *inside.begin() == "..") {
    return refuse("resolves outside the model directory");
  }
  if (inside == ".") return refuse("names the model directory itself");
  return resolved.string();
}

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
