#pragma once
// A model directory on disk: config.json + model.safetensors (+ vocab.txt, tokenizer.model).

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model_config.h"
#include "engine/model_weights.h"

namespace attnserve::engine {

struct LoadedModelDir {
  std::string name;  // the directory's base name
  std::string config_json;  // config.json as read
  ModelConfig config;
  std::vector<std::string> warnings;  // unknown config keys etc.
  ModelWeights weights;
};

// Reads and validates config.json and model.safetensors of `dir`. Errors name the file and
// the key or tensor at fault.
absl::StatusOr<LoadedModelDir> LoadModelDir(const std::string& dir);

}  // namespace attnserve::engine
