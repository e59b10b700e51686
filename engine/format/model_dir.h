#pragma once
// A model directory on disk: config.json + model.safetensors (+ vocab.txt,
// tokenizer.model).

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/format/model_config.h"
#include "engine/format/model_weights.h"

namespace attnserve::engine {

struct LoadedModelDir {
  std::string name;         // the directory's base name
  std::string config_json;  // config.json as read
  ModelConfig config;
  std::vector<std::string> warnings;  // unknown config keys etc.
  ModelWeights weights;
};

// Reads and validates config.json and model.safetensors of `dir`. Errors name
// the file and the key or tensor at fault.
absl::StatusOr<LoadedModelDir> LoadModelDir(const std::string& dir);

// The path of a file that a model directory's config names (e.g. "vocab_file"
// under `key`), confined to the directory: `name` must be relative and, with
// every symlink resolved, lie inside `dir` (itself resolved). Model directories
// come from third parties; without this a config could serve lines of any host
// file as text ("/etc/passwd", "../../x", or a symlink pointing out).
// INVALID_ARGUMENT naming the key and the (quoted, bounded) name otherwise. A
// file that does not exist is not an error here: the caller's read says
// NOT_FOUND.
absl::StatusOr<std::string> ResolveModelFile(const std::string& dir,
                                             absl::string_view key,
                                             absl::string_view name);

}  // namespace attnserve::engine
