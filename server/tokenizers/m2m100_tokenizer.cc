// M2M100, as transformers' M2M100Tokenizer: sentencepiece.bpe.model segments,
// vocab.json gives each piece its id (<unk>'s when missing), and the language
// tokens "__xx__" follow vocab.json (id = its number of entries + the code's
// index). Sources are __src__ tokens </s>; a target prefix is the tokens
// alone.

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/quote_text.h"
#include "server/tokenizers/hf_tokenizer.h"
#include "server/tokenizers/language_codes.h"

namespace attnserve::server {
namespace {

std::string LanguageToken(absl::string_view code) {
  return absl::StartsWith(code, "__") ? std::string(code)
                                      : absl::StrCat("__", code, "__");
}

class M2m100Tokenizer : public MultilingualHfTokenizer {
 public:
  M2m100Tokenizer(std::unique_ptr<SentencePieceModel> spm, JsonVocab vocab,
                  const std::vector<std::string>& languages,
                  int32_t default_source, absl::flat_hash_set<int32_t> special,
                  bool clean)
      // The base is initialised before vocab_ takes `vocab`.
      : MultilingualHfTokenizer(std::move(special), clean, /*strip=*/false,
                                default_source, vocab.Find("</s>"),
                                /*language_first=*/true),
        spm_(std::move(spm)),
        vocab_(std::move(vocab)),
        unk_id_(vocab_.Find("<unk>")) {
    const int32_t first = static_cast<int32_t>(vocab_.ids.size());
    for (size_t i = 0; i < languages.size(); ++i) {
      const int32_t id = first + static_cast<int32_t>(i);
      language_ids_.emplace(LanguageToken(languages[i]), id);
      language_tokens_.emplace(id, LanguageToken(languages[i]));
    }
  }

  // The source's tokens: the target side is __tgt__ tokens </s>, and a prefix
  // has no special token.
  absl::StatusOr<std::vector<int32_t>> EncodeTargetPrefix(
      absl::string_view text) const override {
    std::vector<int32_t> ids;
    for (const std::string& piece : spm_->EncodeAsPieces(text)) {
      if (auto it = language_ids_.find(piece); it != language_ids_.end()) {
        ids.push_back(it->second);
        continue;
      }
      const int32_t id = vocab_.Find(piece);
      ids.push_back(id < 0 ? unk_id_ : id);
    }
    return ids;
  }

  absl::StatusOr<int32_t> LanguageId(absl::string_view code) const override {
    auto it = language_ids_.find(LanguageToken(code));
    if (it == language_ids_.end()) {
      return absl::NotFoundError(
          absl::StrCat("unknown language code ", engine::QuoteText(code)));
    }
    return it->second;
  }

 protected:
  std::string TokensToText(absl::Span<const int32_t> ids,
                           bool continues) const override {
    std::vector<std::string> pieces;
    pieces.reserve(ids.size());
    for (int32_t id : ids) {
      if (auto it = language_tokens_.find(id); it != language_tokens_.end()) {
        pieces.push_back(it->second);
      } else if (const std::string* token = vocab_.Token(id)) {
        pieces.push_back(*token);
      } else {
        pieces.push_back("<unk>");  // decoder.get(index, unk_token)
      }
    }
    return spm_->DecodePieces(pieces, continues);
  }

 private:
  std::unique_ptr<SentencePieceModel> spm_;
  JsonVocab vocab_;
  absl::flat_hash_map<std::string, int32_t> language_ids_;
  absl::flat_hash_map<int32_t, std::string> language_tokens_;
  int32_t unk_id_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadM2m100Tokenizer(
    const std::string& model_dir, const TokenizerConfig& config) {
  if (config.language_codes != "m2m100" && config.language_codes != "wmt21") {
    return absl::InvalidArgumentError(
        absl::StrCat(config.path, ": language_codes ",
                     engine::QuoteText(config.language_codes),
                     " is not \"m2m100\" or \"wmt21\""));
  }
  absl::StatusOr<JsonVocab> vocab = ReadVocabJson(model_dir, "vocab.json");
  if (!vocab.ok()) return vocab.status();
  for (const char* required : {"<unk>", "</s>"}) {
    if (vocab->Find(required) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          model_dir, "/vocab.json: has no \"", required, "\" token"));
    }
  }
  absl::StatusOr<std::unique_ptr<SentencePieceModel>> spm =
      ReadSentencePieceFile(model_dir, "sentencepiece.bpe.model");
  if (!spm.ok()) return spm.status();
  const std::vector<std::string> languages =
      M2m100LanguageCodes(config.language_codes == "wmt21");
  absl::flat_hash_set<std::string> known;
  for (const std::string& code : languages) known.insert(LanguageToken(code));
  for (const std::string& token : config.additional_special_tokens) {
    if (!known.contains(token)) {
      return absl::InvalidArgumentError(absl::StrCat(
          config.path, ": additional_special_tokens holds ",
          engine::QuoteText(token),
          ", which is not one of M2M100's language tokens (added tokens are "
          "not supported)"));
    }
  }
  const std::string source = config.src_lang.empty() ? "en" : config.src_lang;
  if (!known.contains(LanguageToken(source))) {
    return absl::InvalidArgumentError(
        absl::StrCat(config.path, ": src_lang ", engine::QuoteText(source),
                     " is not one of M2M100's language codes"));
  }
  const int32_t first = static_cast<int32_t>(vocab->ids.size());
  int32_t source_id = -1;
  absl::flat_hash_set<int32_t> special;
  for (size_t i = 0; i < languages.size(); ++i) {
    special.insert(first + static_cast<int32_t>(i));
    if (LanguageToken(languages[i]) == LanguageToken(source)) {
      source_id = first + static_cast<int32_t>(i);
    }
  }
  const int32_t unk = vocab->Find("<unk>");
  for (const char* token : {"<s>", "</s>", "<pad>", "<unk>"}) {
    const int32_t id = vocab->Find(token);
    special.insert(id < 0 ? unk : id);
  }
  return std::unique_ptr<Tokenizer>(std::make_unique<M2m100Tokenizer>(
      std::move(spm).value(), *std::move(vocab), languages, source_id,
      std::move(special), config.clean_up_tokenization_spaces));
}

}  // namespace attnserve::server
