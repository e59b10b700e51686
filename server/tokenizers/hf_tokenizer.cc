#include "server/tokenizers/hf_tokenizer.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "engine/quote_text.h"

namespace attnserve::server {
namespace {

// The code point of the UTF-8 sequence [begin, begin + length), or -1.
int32_t CodePoint(absl::string_view s) {
  const unsigned char c = s[0];
  if (c < 0x80) return c;
  int n = (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || static_cast<int>(s.size()) != n) return -1;
  int32_t cp = c & (0x7F >> n);
  for (int k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[k]) & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (s[k] & 0x3F);
  }
  return cp;
}

// str.isspace(): Unicode's White_Space characters plus the C0 separators
// U+001C..U+001F that Python counts too.
bool IsPythonSpace(int32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) ||
         cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Bytes of the whitespace character ending at text's end, or 0.
size_t TrailingSpace(absl::string_view text) {
  for (size_t n = 1; n <= 4 && n <= text.size(); ++n) {
    const unsigned char lead = text[text.size() - n];
    if ((lead & 0xC0) == 0x80) continue;  // a continuation byte
    return IsPythonSpace(CodePoint(text.substr(text.size() - n))) ? n : 0;
  }
  return 0;
}

size_t LeadingSpace(absl::string_view text) {
  if (text.empty()) return 0;
  const unsigned char c = text[0];
  const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : 4;
  if (n > text.size()) return 0;
  return IsPythonSpace(CodePoint(text.substr(0, n))) ? n : 0;
}

}  // namespace

std::string PythonRstrip(absl::string_view text) {
  while (size_t n = TrailingSpace(text)) text.remove_suffix(n);
  return std::string(text);
}

std::string PythonStrip(absl::string_view text) {
  while (size_t n = LeadingSpace(text)) text.remove_prefix(n);
  return PythonRstrip(text);
}

std::string CleanUpTokenization(std::string text) {
  // One pair at a time, in transformers' order: a later rule sees the
  // earlier rules' output, as chained str.replace calls do.
  for (const auto& [from, to] : {std::pair<const char*, const char*>{" .", "."},
                                 {" ?", "?"},
                                 {" !", "!"},
                                 {" ,", ","},
                                 {" ' ", "'"},
                                 {" n't", "n't"},
                                 {" 'm", "'m"},
                                 {" 's", "'s"},
                                 {" 've", "'ve"},
                                 {" 're", "'re"}}) {
    absl::StrReplaceAll({{from, to}}, &text);
  }
  return text;
}

std::string HfTokenizer::Decode(absl::Span<const int32_t> ids,
                                bool continues) const {
  std::vector<int32_t> kept;
  kept.reserve(ids.size());
  for (int32_t id : ids) {
    if (!special_ids_.contains(id)) kept.push_back(id);
  }
  std::string text = TokensToText(kept, continues);
  // A streamed piece is not stripped: its spaces are between words of the
  // whole text (a lone U+2581 token is a space, not an end).
  if (strip_ && !continues) text = PythonStrip(text);
  if (clean_up_) text = CleanUpTokenization(std::move(text));
  return text;
}

absl::StatusOr<std::vector<int32_t>> MultilingualHfTokenizer::EncodeFrom(
    absl::string_view text, absl::string_view source_language) const {
  int32_t language = default_source_;
  if (!source_language.empty()) {
    absl::StatusOr<int32_t> id = LanguageId(source_language);
    if (!id.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("source language: ", id.status().message()));
    }
    language = *id;
  }
  absl::StatusOr<std::vector<int32_t>> tokens = EncodeTargetPrefix(text);
  if (!tokens.ok()) return tokens.status();
  std::vector<int32_t> ids;
  ids.reserve(tokens->size() + 2);
  if (language_first_) ids.push_back(language);
  ids.insert(ids.end(), tokens->begin(), tokens->end());
  ids.push_back(eos_id_);
  if (!language_first_) ids.push_back(language);
  return ids;
}

absl::StatusOr<std::string> HfTokenizerFamily(absl::string_view model_type,
                                              const TokenizerConfig& config) {
  absl::string_view name = config.tokenizer_class;
  if (!name.empty()) {
    absl::ConsumeSuffix(&name, "Fast");  // the same ids, from tokenizer.json
    if (name == "T5Tokenizer") return std::string("sentencepiece");
    if (name == "MarianTokenizer") return std::string("marian");
    if (name == "MBartTokenizer") return std::string("mbart");
    if (name == "MBart50Tokenizer") return std::string("mbart50");
    if (name == "NllbTokenizer") return std::string("nllb");
    if (name == "M2M100Tokenizer") return std::string("m2m100");
    if (name == "BartTokenizer") return std::string("bart");
    return absl::InvalidArgumentError(absl::StrCat(
        config.path, ": \"tokenizer_class\" ",
        engine::QuoteText(config.tokenizer_class),
        " is not supported (T5Tokenizer, MarianTokenizer, MBartTokenizer, "
        "MBart50Tokenizer, NllbTokenizer, M2M100Tokenizer, BartTokenizer, or "
        "their Fast forms)"));
  }
  if (model_type == "t5") return std::string("sentencepiece");
  if (model_type == "marian" || model_type == "mbart" ||
      model_type == "m2m100" || model_type == "bart") {
    return std::string(model_type);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("config.json: model_type ", engine::QuoteText(model_type),
                   " has no tokenizer here, and ", config.path,
                   " names no tokenizer_class"));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(
    const std::string& model_dir, absl::string_view family,
    const std::string& spm_file) {
  absl::StatusOr<TokenizerConfig> config = ReadTokenizerConfig(model_dir);
  if (!config.ok()) return config.status();
  if (family == "sentencepiece") {
    return LoadT5Tokenizer(model_dir, spm_file, *config);
  }
  if (family == "marian") return LoadMarianTokenizer(model_dir, *config);
  if (family == "mbart" || family == "mbart50" || family == "nllb") {
    return LoadFairseqTokenizer(model_dir, family, *config);
  }
  if (family == "m2m100") return LoadM2m100Tokenizer(model_dir, *config);
  if (family == "bart") return LoadBartTokenizer(model_dir, *config);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown tokenizer family ", engine::QuoteText(family)));
}

}  // namespace attnserve::server
