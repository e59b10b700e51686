#include "server/tokenizers/tokenizer_files.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/format/model_dir.h"
#include "engine/format/small_file.h"
#include "engine/quote_text.h"
#include "nlohmann/json.hpp"

namespace attnserve::server {
namespace {

using Json = nlohmann::json;

absl::Status Invalid(absl::string_view path, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", message));
}

// Never throws: nlohmann's parser runs with exceptions off (a discarded value
// on malformed input) and is iterative, so deep nesting cannot overflow the
// stack.
absl::StatusOr<Json> ParseObject(absl::string_view text,
                                 absl::string_view path) {
  Json json = Json::parse(text.begin(), text.end(), nullptr,
                          /*allow_exceptions=*/false);
  if (json.is_discarded()) return Invalid(path, "not valid JSON");
  if (!json.is_object()) return Invalid(path, "not a JSON object");
  return json;
}

// A special token as tokenizer_config.json spells it: a string, or an
// AddedToken object {"content": "...", ...}.
bool TokenText(const Json& value, std::string* out) {
  if (value.is_string()) {
    *out = value.get<std::string>();
    return true;
  }
  if (value.is_object()) {
    auto it = value.find("content");
    if (it != value.end() && it->is_string()) {
      *out = it->get<std::string>();
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<JsonVocab> ParseVocabJson(absl::string_view text,
                                         absl::string_view path) {
  absl::StatusOr<Json> json = ParseObject(text, path);
  if (!json.ok()) return json.status();
  JsonVocab vocab;
  vocab.ids.reserve(json->size());
  vocab.tokens.reserve(json->size());
  for (auto it = json->begin(); it != json->end(); ++it) {
    const std::string& token = it.key();
    const Json& value = it.value();
    int64_t id = -1;
    if (value.is_number_integer()) {
      id = value.is_number_unsigned()
               ? static_cast<int64_t>(std::min<uint64_t>(
                     value.get<uint64_t>(), uint64_t{kMaxVocabJsonId}))
               : value.get<int64_t>();
    }
    if (!value.is_number_integer() || id < 0 || id >= kMaxVocabJsonId) {
      return Invalid(
          path,
          absl::StrCat("token ", engine::QuoteText(token), " has id ",
                       value.is_number() ? value.dump() : value.type_name(),
                       ", not an integer in [0, ", kMaxVocabJsonId, ")"));
    }
    const int32_t id32 = static_cast<int32_t>(id);
    auto [slot, inserted] = vocab.tokens.emplace(id32, token);
    if (!inserted) {
      return Invalid(path, absl::StrCat("id ", id32, " is given to both ",
                                        engine::QuoteText(slot->second),
                                        " and ", engine::QuoteText(token)));
    }
    // JSON objects may repeat a key; nlohmann keeps the last, as Python's
    // json.load does, so keys are unique here.
    vocab.ids.emplace(token, id32);
    vocab.end_id = std::max(vocab.end_id, id32 + 1);
  }
  return vocab;
}

absl::StatusOr<std::string> ReadTokenizerFile(const std::string& model_dir,
                                              const std::string& name,
                                              int64_t max_bytes) {
  absl::StatusOr<std::string> path =
      engine::ResolveModelFile(model_dir, name, name);
  if (!path.ok()) return path.status();
  return engine::ReadSmallFile(*path, max_bytes);
}

absl::StatusOr<JsonVocab> ReadVocabJson(const std::string& model_dir,
                                        const std::string& name) {
  absl::StatusOr<std::string> text =
      ReadTokenizerFile(model_dir, name, kMaxVocabJsonBytes);
  if (!text.ok()) return text.status();
  return ParseVocabJson(*text,
                        (std::filesystem::path(model_dir) / name).string());
}

absl::StatusOr<std::unique_ptr<SentencePieceModel>> ReadSentencePieceFile(
    const std::string& model_dir, const std::string& name) {
  absl::StatusOr<std::string> bytes = ReadTokenizerFile(
      model_dir, name,
      static_cast<int64_t>(SentencePieceModel::kMaxModelBytes));
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<std::unique_ptr<SentencePieceModel>> model =
      SentencePieceModel::Parse(*bytes);
  if (!model.ok()) {
    return Invalid((std::filesystem::path(model_dir) / name).string(),
                   model.status().message());
  }
  return model;
}

absl::StatusOr<TokenizerConfig> ParseTokenizerConfig(absl::string_view text,
                                                     absl::string_view path) {
  absl::StatusOr<Json> json = ParseObject(text, path);
  if (!json.ok()) return json.status();
  TokenizerConfig config;
  config.path = std::string(path);
  const auto wrong_type = [&](const char* key, const char* type) {
    return Invalid(path, absl::StrCat("\"", key, "\" must be ", type));
  };
  // null is what save_pretrained writes for an unset option.
  const auto find = [&](const char* key) -> const Json* {
    auto it = json->find(key);
    return it == json->end() || it->is_null() ? nullptr : &*it;
  };
  for (auto [key, out] : {std::pair<const char*, std::string*>{
                              "tokenizer_class", &config.tokenizer_class},
                          {"src_lang", &config.src_lang},
                          {"language_codes", &config.language_codes}}) {
    if (const Json* v = find(key)) {
      if (!v->is_string()) return wrong_type(key, "a string");
      *out = v->get<std::string>();
    }
  }
  for (auto [key, out] :
       {std::pair<const char*, bool*>{"legacy_behaviour",
                                      &config.legacy_behaviour},
        {"clean_up_tokenization_spaces", &config.clean_up_tokenization_spaces},
        {"separate_vocabs", &config.separate_vocabs},
        {"add_prefix_space", &config.add_prefix_space}}) {
    if (const Json* v = find(key)) {
      if (!v->is_boolean()) return wrong_type(key, "true or false");
      *out = v->get<bool>();
    }
  }
  if (const Json* v = find("extra_ids")) {
    if (!v->is_number_integer() || v->get<int64_t>() < 0 ||
        v->get<int64_t>() > 100000) {
      return wrong_type("extra_ids", "an integer in [0, 100000]");
    }
    config.extra_ids = v->get<int>();
  }
  if (const Json* v = find("additional_special_tokens")) {
    if (!v->is_array())
      return wrong_type("additional_special_tokens", "a list");
    config.has_additional_special_tokens = true;
    for (const Json& item : *v) {
      std::string token;
      if (!TokenText(item, &token) || token.empty()) {
        return Invalid(path,
                       absl::StrCat("\"additional_special_tokens\" holds ",
                                    item.type_name(), ", not a token"));
      }
      config.additional_special_tokens.push_back(std::move(token));
    }
  }
  return config;
}

absl::StatusOr<TokenizerConfig> ReadTokenizerConfig(
    const std::string& model_dir) {
  absl::StatusOr<std::string> text = ReadTokenizerFile(
      model_dir, "tokenizer_config.json", kMaxTokenizerConfigBytes);
  if (absl::IsNotFound(text.status())) {
    TokenizerConfig config;
    config.path =
        (std::filesystem::path(model_dir) / "tokenizer_config.json").string();
    return config;
  }
  if (!text.ok()) return text.status();
  return ParseTokenizerConfig(
      *text,
      (std::filesystem::path(model_dir) / "tokenizer_config.json").string());
}

}  // namespace attnserve::server
