#include "server/tokenizers/tokenizer.h"

#include <cstdint>
#include <filesystem>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/format/model_dir.h"
#include "engine/format/small_file.h"
#include "engine/quote_text.h"
#include "nlohmann/json.hpp"
#include "server/tokenizers/hf_tokenizer.h"
#include "server/tokenizers/tokenizer_files.h"

namespace attnserve::server {
namespace {

// Far above any vocabulary (config.json allows at most 4M tokens). Both files
// are read with engine::ReadSmallFile: "vocab_file" may name anything, and
// reading a device such as /dev/zero or a FIFO would never end.
constexpr int64_t kMaxFileBytes = int64_t{256} << 20;

// Length of the UTF-8 sequence starting at text[i], or 0 when it is malformed.
size_t Utf8Length(absl::string_view text, size_t i) {
  const unsigned char c = text[i];
  size_t n = c < 0x80           ? 1
             : (c >> 5) == 0x6  ? 2
             : (c >> 4) == 0xE  ? 3
             : (c >> 3) == 0x1E ? 4
                                : 0;
  if (n == 0 || i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return 0;
  }
  return n;
}

// "'é' (U+00E9)": how an unknown character is named in errors.
std::string DescribeChar(absl::string_view ch) {
  uint32_t cp = static_cast<unsigned char>(ch[0]);
  if (ch.size() > 1) {
    cp &= 0xFF >> (ch.size() + 1);
    for (size_t k = 1; k < ch.size(); ++k) cp = (cp << 6) | (ch[k] & 0x3F);
  }
  // Controls (C0, DEL, C1) and the line/paragraph separators are shown only
  // by code point, so that the character cannot break a log line.
  const bool printable =
      (cp >= 0x20 && cp < 0x7F) || (cp >= 0xA0 && cp != 0x2028 && cp != 0x2029);
  return absl::StrFormat("%s(U+%04X)",
                         printable ? absl::StrCat("'", ch, "' ") : "", cp);
}

// Shared by both kinds: the vocabulary and the ids decoding skips.
class VocabTokenizer : public Tokenizer {
 public:
  VocabTokenizer(std::vector<std::string> tokens,
                 absl::flat_hash_set<int32_t> special)
      : tokens_(std::move(tokens)), special_(std::move(special)) {
    for (size_t i = 0; i < tokens_.size(); ++i)
      ids_[tokens_[i]] = static_cast<int32_t>(i);
  }

 protected:
  const std::string* Token(int32_t id) const {
    if (id < 0 || id >= static_cast<int32_t>(tokens_.size()) ||
        special_.contains(id)) {
      return nullptr;
    }
    return &tokens_[id];
  }
  const int32_t* Find(absl::string_view token) const {
    auto it = ids_.find(token);
    return it == ids_.end() ? nullptr : &it->second;
  }

 private:
  std::vector<std::string> tokens_;
  absl::flat_hash_set<int32_t> special_;
  absl::flat_hash_map<std::string, int32_t> ids_;
};

class CharTokenizer : public VocabTokenizer {
 public:
  using VocabTokenizer::VocabTokenizer;

  absl::StatusOr<std::vector<int32_t>> Encode(
      absl::string_view text) const override {
    std::vector<int32_t> ids;
    size_t position = 0;  // in characters, for the error message
    for (size_t i = 0; i < text.size(); ++position) {
      const size_t n = Utf8Length(text, i);
      if (n == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("text is not valid UTF-8 at byte ", i));
      }
      const absl::string_view ch = text.substr(i, n);
      const int32_t* id = Find(ch);
      if (id == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("character ", DescribeChar(ch), " at position ",
                         position, " is not in the model's vocabulary"));
      }
      ids.push_back(*id);
      i += n;
    }
    return ids;
  }

  std::string Decode(absl::Span<const int32_t> ids,
                     bool continues) const override {
    std::string text;
    for (int32_t id : ids) {
      if (const std::string* token = Token(id)) text += *token;
    }
    return text;
  }
};

class WhitespaceTokenizer : public VocabTokenizer {
 public:
  using VocabTokenizer::VocabTokenizer;

  absl::StatusOr<std::vector<int32_t>> Encode(
      absl::string_view text) const override {
    std::vector<int32_t> ids;
    size_t i = 0;
    while (i < text.size()) {
      if (absl::ascii_isspace(static_cast<unsigned char>(text[i]))) {
        ++i;
        continue;
      }
      size_t end = i;
      while (end < text.size() &&
             !absl::ascii_isspace(static_cast<unsigned char>(text[end]))) {
        ++end;
      }
      const absl::string_view word = text.substr(i, end - i);
      const int32_t* id = Find(word);
      if (id == nullptr) {
        // Quoted and bounded: the word is the client's and goes into the
        // status trailer and the failure log.
        return absl::InvalidArgumentError(
            absl::StrCat("word ", engine::QuoteText(word), " at byte ", i,
                         " is not in the model's vocabulary"));
      }
      ids.push_back(*id);
      i = end;
    }
    return ids;
  }

  std::string Decode(absl::Span<const int32_t> ids,
                     bool continues) const override {
    std::string text;
    bool first = !continues;
    for (int32_t id : ids) {
      const std::string* token = Token(id);
      if (token == nullptr) continue;
      if (!first) text += ' ';
      text += *token;
      first = false;
    }
    return text;
  }
};

bool IsHfFamily(absl::string_view kind) {
  for (const char* family : {"sentencepiece", "marian", "mbart", "mbart50",
                             "nllb", "m2m100", "bart"}) {
    if (kind == family) return true;
  }
  return false;
}

// Whether `model_dir` holds any of the files `family` reads (a checkpoint
// saved without its tokenizer has none: it serves ids only).
bool HasAnyFileOf(const std::string& model_dir, absl::string_view family) {
  std::vector<const char*> files = {"tokenizer_config.json"};
  if (family == "sentencepiece") files.push_back("spiece.model");
  if (family == "marian") {
    files.insert(files.end(), {"source.spm", "target.spm", "vocab.json"});
  }
  if (family == "mbart" || family == "mbart50" || family == "nllb" ||
      family == "m2m100") {
    files.push_back("sentencepiece.bpe.model");
  }
  if (family == "m2m100" || family == "bart") files.push_back("vocab.json");
  if (family == "bart") files.push_back("merges.txt");
  std::error_code error;
  for (const char* file : files) {
    if (std::filesystem::exists(std::filesystem::path(model_dir) / file,
                                error)) {
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> Tokenizer::EncodeFrom(
    absl::string_view text, absl::string_view source_language) const {
  if (!source_language.empty()) {
    return absl::InvalidArgumentError(
        "this model's tokenizer has no source languages");
  }
  return Encode(text);
}

absl::StatusOr<int32_t> Tokenizer::LanguageId(absl::string_view code) const {
  return absl::NotFoundError(
      absl::StrCat("this model's tokenizer has no language codes (asked for ",
                   engine::QuoteText(code), ")"));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& model_dir) {
  namespace fs = std::filesystem;
  const std::string config_path =
      (fs::path(model_dir) / "config.json").string();
  absl::StatusOr<std::string> config_text =
      engine::ReadSmallFile(config_path, kMaxFileBytes);
  if (!config_text.ok()) return config_text.status();
  const nlohmann::json config =
      nlohmann::json::parse(*config_text, nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(config_path, ": not a JSON object"));
  }
  auto string_key = [&](const char* key,
                        std::string fallback) -> absl::StatusOr<std::string> {
    auto it = config.find(key);
    if (it == config.end()) return fallback;
    if (!it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(config_path, ": \"", key, "\" must be a string"));
    }
    return it->get<std::string>();
  };
  // A Hugging Face directory as downloaded names no "tokenizer": its
  // tokenizer_config.json (or model_type) says which family it is.
  auto explicit_kind = config.find("tokenizer");
  auto model_type = config.find("model_type");
  if (explicit_kind == config.end() && model_type != config.end()) {
    if (!model_type->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(config_path, ": \"model_type\" must be a string"));
    }
    absl::StatusOr<TokenizerConfig> tokenizer_config =
        ReadTokenizerConfig(model_dir);
    if (!tokenizer_config.ok()) return tokenizer_config.status();
    absl::StatusOr<std::string> family =
        HfTokenizerFamily(model_type->get<std::string>(), *tokenizer_config);
    if (!family.ok()) return family.status();
    if (!HasAnyFileOf(model_dir, *family)) {
      return std::unique_ptr<Tokenizer>();  // weights only: ids only
    }
    return LoadHfTokenizer(model_dir, *family, "spiece.model");
  }
  absl::StatusOr<std::string> kind = string_key("tokenizer", "");
  if (!kind.ok()) return kind.status();
  if (IsHfFamily(*kind)) {
    absl::StatusOr<std::string> spm_file =
        string_key("vocab_file", "spiece.model");
    if (!spm_file.ok()) return spm_file.status();
    // Confined to the directory like every file a config names.
    absl::StatusOr<std::string> resolved =
        engine::ResolveModelFile(model_dir, "vocab_file", *spm_file);
    if (!resolved.ok()) return resolved.status();
    return LoadHfTokenizer(model_dir, *kind, *spm_file);
  }

  absl::StatusOr<std::string> vocab_file =
      string_key("vocab_file", "vocab.txt");
  if (!vocab_file.ok()) return vocab_file.status();
  absl::StatusOr<std::string> resolved =
      engine::ResolveModelFile(model_dir, "vocab_file", *vocab_file);
  if (!resolved.ok()) return resolved.status();
  const std::string& vocab_path = *resolved;
  if (kind->empty()) {
    if (!fs::exists(vocab_path)) return std::unique_ptr<Tokenizer>();
    *kind = "whitespace";
  }
  if (*kind != "char" && *kind != "whitespace") {
    return absl::InvalidArgumentError(absl::StrCat(
        config_path,
        ": \"tokenizer\" must be \"char\", \"whitespace\", "
        "\"sentencepiece\", \"marian\", \"mbart\", \"mbart50\", \"nllb\", "
        "\"m2m100\" or \"bart\", not ",
        engine::QuoteText(*kind)));
  }

  absl::StatusOr<std::string> vocab_text =
      engine::ReadSmallFile(vocab_path, kMaxFileBytes);
  if (!vocab_text.ok()) return vocab_text.status();
  std::vector<std::string> tokens;
  absl::flat_hash_set<std::string> seen;
  size_t start = 0;
  while (start < vocab_text->size()) {
    size_t end = vocab_text->find('\n', start);
    if (end == std::string::npos) end = vocab_text->size();
    std::string token = vocab_text->substr(start, end - start);
    if (token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(vocab_path, ": line ", tokens.size() + 1, " is empty"));
    }
    if (!seen.insert(token).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(vocab_path, ": line ", tokens.size() + 1,
                       " repeats the token ", engine::QuoteText(token)));
    }
    tokens.push_back(std::move(token));
    start = end + 1;
  }
  // The engine has validated these keys before the tokenizer loads; still,
  // never throw.
  auto int_key = [&](const char* key, int fallback) {
    auto it = config.find(key);
    return it != config.end() && it->is_number_integer() ? it->get<int>()
                                                         : fallback;
  };
  const int vocab_size = int_key("vocab_size", 0);
  if (static_cast<int>(tokens.size()) > vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(vocab_path, " has ", tokens.size(),
                     " tokens but the model's vocab_size is ", vocab_size));
  }
  absl::flat_hash_set<int32_t> special;
  for (const char* key : {"pad_id", "bos_id", "eos_id"}) {
    const int32_t fallback = key[0] == 'p' ? 0 : key[0] == 'b' ? 1 : 2;
    special.insert(int_key(key, fallback));
  }
  if (*kind == "char") {
    return std::unique_ptr<Tokenizer>(
        std::make_unique<CharTokenizer>(std::move(tokens), std::move(special)));
  }
  return std::unique_ptr<Tokenizer>(std::make_unique<WhitespaceTokenizer>(
      std::move(tokens), std::move(special)));
}

}  // namespace attnserve::server
