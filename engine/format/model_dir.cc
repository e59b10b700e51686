#include "engine/format/model_dir.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/format/hf_layout.h"
#include "engine/format/json_util.h"
#include "engine/format/safetensors.h"
#include "engine/format/small_file.h"
#include "engine/format/torch_checkpoint.h"
#include "engine/quote_text.h"
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

bool Exists(const std::string& path) {
  std::error_code error;
  return std::filesystem::exists(path, error);
}

// A message from a parser that names only the file ("config.json: ...")
// gets the directory, so the user knows which one.
absl::Status InDir(const std::string& prefix, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

// generation_config.json's text, or "" when the directory has none.
absl::StatusOr<std::string> ReadGenerationJson(const std::string& prefix) {
  const std::string path = prefix + "generation_config.json";
  if (!Exists(path)) return std::string();
  return ReadSmallFile(path, kMaxConfigBytes);
}

absl::Status LoadAttnserveDir(const std::string& prefix, ReadLinears read,
                              LoadedModelDir* loaded) {
  absl::StatusOr<ModelConfig> config =
      ParseModelConfig(loaded->config_json, &loaded->warnings);
  if (!config.ok()) return InDir(prefix, config.status());
  loaded->config = *config;
  loaded->layout = "attnserve";
  ASSIGN_OR_RETURN(
      loaded->weights,
      LoadModelWeights(prefix + "model.safetensors", loaded->config, read));

  ASSIGN_OR_RETURN(const std::string generation_json,
                   ReadGenerationJson(prefix));
  GenerationConfig defaults;
  defaults.decoder_start_id = loaded->config.decoder_start_id;
  defaults.eos_ids = {loaded->config.eos_id};
  defaults.pad_id = loaded->config.pad_id;
  absl::StatusOr<GenerationConfig> generation = ParseGenerationConfig(
      generation_json, "", defaults, loaded->config.vocab_size);
  if (!generation.ok()) return InDir(prefix, generation.status());
  loaded->generation = *std::move(generation);
  return absl::OkStatus();
}

// The checkpoint file HF's from_pretrained would pick.
absl::StatusOr<std::unique_ptr<TensorSource>> OpenHfCheckpoint(
    const std::string& prefix) {
  if (Exists(prefix + "model.safetensors")) {
    ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                     SafetensorsFile::Open(prefix + "model.safetensors"));
    return std::unique_ptr<TensorSource>(std::move(file));
  }
  auto refuse_sharded = [&](const char* index) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, index,
        ": sharded checkpoints are not supported; merge the shards into one "
        "model.safetensors"));
  };
  if (Exists(prefix + "model.safetensors.index.json")) {
    return refuse_sharded("model.safetensors.index.json");
  }
  if (Exists(prefix + "pytorch_model.bin")) {
    return OpenTorchCheckpoint(prefix + "pytorch_model.bin");
  }
  if (Exists(prefix + "pytorch_model.bin.index.json")) {
    return refuse_sharded("pytorch_model.bin.index.json");
  }
  return absl::NotFoundError(absl::StrCat(
      prefix, "model.safetensors: not found (nor pytorch_model.bin)"));
}

absl::Status LoadHfDir(const std::string& prefix, ReadLinears read,
                       LoadedModelDir* loaded) {
  absl::StatusOr<HfModelConfig> hf = ParseHfConfig(loaded->config_json);
  if (!hf.ok()) return InDir(prefix, hf.status());
  loaded->layout = hf->layout;
  ASSIGN_OR_RETURN(const std::string generation_json,
                   ReadGenerationJson(prefix));
  absl::StatusOr<GenerationConfig> generation =
      ParseGenerationConfig(generation_json, loaded->config_json,
                            hf->generation_defaults, hf->config.vocab_size);
  if (!generation.ok()) return InDir(prefix, generation.status());

  ASSIGN_OR_RETURN(std::shared_ptr<const TensorSource> source,
                   OpenHfCheckpoint(prefix));
  ASSIGN_OR_RETURN(
      loaded->weights,
      LoadHfWeights(*source, &*hf,
                    read == ReadLinears::kWhenPacked ? source : nullptr));
  loaded->config = hf->config;
  loaded->generation = *std::move(generation);
  return absl::OkStatus();
}

// The ids the engine itself uses follow the resolved decoding settings.
// Where pad_id is part of the computation (fairseq's pad-aware positions) a
// different decoding pad would be a different model: refused.
absl::Status AgreeOnIds(const std::string& prefix, LoadedModelDir* loaded) {
  ModelConfig& c = loaded->config;
  const GenerationConfig& g = loaded->generation;
  if (c.positional_encoding == PositionalEncoding::kSinusoidalFairseq &&
      g.pad_id != c.pad_id) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "generation_config.json: \"pad_token_id\" = ", g.pad_id,
        " differs from the model's pad id ", c.pad_id,
        ", which its pad-aware positions use"));
  }
  c.eos_id = g.eos_ids[0];
  c.decoder_start_id = g.decoder_start_id;
  c.pad_id = g.pad_id;
  return absl::OkStatus();
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

absl::StatusOr<LoadedModelDir> LoadModelDir(const std::string& dir,
                                            ReadLinears read) {
  LoadedModelDir loaded;
  loaded.name = BaseName(dir);
  const std::string prefix = dir.empty() || dir.back() == '/' ? dir : dir + "/";

  const std::string config_path = prefix + "config.json";
  ASSIGN_OR_RETURN(loaded.config_json,
                   ReadSmallFile(config_path, kMaxConfigBytes));
  // The layout is config.json's: "architecture" is ours (and wins, so a
  // Hugging Face config with our keys added loads as before), "model_type"
  // Hugging Face's. A config that is no JSON object fails in the attnserve
  // parser, which says so.
  const absl::StatusOr<nlohmann::json> root =
      ParseJson(loaded.config_json, "config.json");
  const bool hf = root.ok() && root->is_object() &&
                  !root->contains("architecture") &&
                  root->contains("model_type");
  if (hf) {
    RETURN_IF_ERROR(LoadHfDir(prefix, read, &loaded));
  } else {
    RETURN_IF_ERROR(LoadAttnserveDir(prefix, read, &loaded));
  }
  RETURN_IF_ERROR(AgreeOnIds(prefix, &loaded));
  return loaded;
}

}  // namespace attnserve::engine
