#pragma once
// A model directory on disk, in one of two layouts (docs/model-format.md):
// attnserve's (config.json with "architecture" + model.safetensors) or a
// Hugging Face checkpoint as downloaded (config.json with "model_type" +
// model.safetensors or pytorch_model.bin); either may hold
// generation_config.json, and the tokenizer's files.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/format/generation_config.h"
#include "engine/format/model_config.h"
#include "engine/format/model_weights.h"

namespace attnserve::engine {

struct LoadedModelDir {
  std::string name;         // the directory's base name
  std::string config_json;  // config.json as read
  ModelConfig config;
  std::vector<std::string> warnings;  // unknown config keys etc.
  ModelWeights weights;
  // generation_config.json resolved with its fallbacks; config's eos_id,
  // decoder_start_id and pad_id agree with it (eos_id = eos_ids[0]).
  GenerationConfig generation;
  // "attnserve", or the Hugging Face layout: "hf-bart", "hf-mbart",
  // "hf-marian", "hf-m2m100", "hf-t5".
  std::string layout;
};

// Reads and validates config.json, the weights and generation_config.json of
// `dir`. The layout is config.json's: "architecture" (attnserve's, read from
// model.safetensors) or else "model_type" (Hugging Face's: model.safetensors,
// else pytorch_model.bin, as HF prefers; a sharded checkpoint's *.index.json
// is refused). Errors name the file and the key or tensor at fault.
// With ReadLinears::kWhenPacked the linear weights are checked but left
// deferred (LinearWeights::Materialize), the checkpoint kept open for them.
absl::StatusOr<LoadedModelDir> LoadModelDir(
    const std::string& dir, ReadLinears read = ReadLinears::kNow);

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
