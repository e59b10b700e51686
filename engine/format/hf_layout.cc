#include "engine/format/hf_layout.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/format/config_reader.h"
#include "engine/format/json_util.h"
#include "engine/status_macros.h"

namespace attnserve::engine {

absl::StatusOr<HfModelConfig> ParseHfConfig(absl::string_view config_json) {
  ASSIGN_OR_RETURN(const nlohmann::json root,
                   ParseJson(config_json, "config.json"));
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: top level must be a JSON object, got ",
                     JsonSnippet(root)));
  }
  ConfigReader reader(root, "config.json");
  std::string model_type;
  RETURN_IF_ERROR(reader.RequiredString("model_type", &model_type));
  if (model_type == "bart" || model_type == "mbart" || model_type == "marian" ||
      model_type == "m2m100") {
    return ParseHfBartConfig(reader, model_type);
  }
  if (model_type == "t5") return ParseHfT5Config(reader);
  return reader.KeyError(
      "model_type",
      absl::StrCat("= \"", model_type,
                   "\" is not supported (supported: \"bart\", \"mbart\", "
                   "\"marian\", \"m2m100\", \"t5\")"));
}

absl::StatusOr<Activation> HfActivation(absl::string_view key,
                                        absl::string_view name) {
  if (name == "relu") return Activation::kRelu;
  if (name == "gelu") return Activation::kGelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") {
    return Activation::kGeluTanh;
  }
  if (name == "swish" || name == "silu") return Activation::kSwish;
  return absl::InvalidArgumentError(absl::StrCat(
      "config.json: \"", key, "\" = \"", name,
      "\" is not supported (supported: \"relu\", \"gelu\", \"gelu_new\", "
      "\"gelu_pytorch_tanh\", \"swish\", \"silu\")"));
}

absl::Status ReadHfTokenIds(ConfigReader& r, int* pad_id, int* eos_id,
                            int* decoder_start_id) {
  RETURN_IF_ERROR(r.OptionalIntOrFirst("pad_token_id", 0, kMaxVocab, pad_id));
  RETURN_IF_ERROR(r.OptionalIntOrFirst("eos_token_id", 0, kMaxVocab, eos_id));
  return r.OptionalIntOrFirst("decoder_start_token_id", 0, kMaxVocab,
                              decoder_start_id);
}

ConfigKeyNames HfKeyNames() {
  ConfigKeyNames keys;
  keys.pad_id = "pad_token_id";
  keys.eos_id = "eos_token_id";
  keys.decoder_start_id = "decoder_start_token_id";
  return keys;
}

absl::Status FinishHfConfig(const ConfigKeyNames& keys, HfModelConfig* hf) {
  const ModelConfig& c = hf->config;
  RETURN_IF_ERROR(CheckModelConfig(c, keys));
  GenerationConfig& g = hf->generation_defaults;
  g.decoder_start_id = c.decoder_start_id;
  g.eos_ids = {c.eos_id};
  g.pad_id = c.pad_id;
  g.max_length = 20;  // transformers' GenerationConfig default
  return absl::OkStatus();
}

absl::StatusOr<ModelWeights> LoadHfWeights(
    const TensorSource& source, HfModelConfig* hf,
    std::shared_ptr<const TensorSource> keep_open) {
  if (hf->model_type == "t5") {
    return LoadHfT5Weights(source, hf, std::move(keep_open));
  }
  return LoadHfBartWeights(source, hf, std::move(keep_open));
}

}  // namespace attnserve::engine
