// mBART, mBART-50 and NLLB, as transformers' MBartTokenizer, MBart50Tokenizer
// and NllbTokenizer: sentencepiece.bpe.model with fairseq's ids. fairseq puts
// <s> <pad> </s> <unk> at 0..3 and every other piece at its SentencePiece id
// + 1; the language codes follow the pieces, then <mask>. Sources are
//   mbart:  tokens </s> src_lang
//   mbart50 and nllb: src_lang tokens </s>  (nllb with legacy_behaviour: as
//   mbart);
// a target prefix is the tokens alone.

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "engine/quote_text.h"
#include "server/tokenizers/hf_tokenizer.h"
#include "server/tokenizers/language_codes.h"

namespace attnserve::server {
namespace {

constexpr int32_t kBos = 0, kPad = 1, kEos = 2, kUnk = 3;
constexpr int32_t kOffset = 1;  // fairseq id = SentencePiece id + 1

class FairseqTokenizer : public MultilingualHfTokenizer {
 public:
  FairseqTokenizer(std::unique_ptr<SentencePieceModel> spm,
                   std::vector<std::string> languages, int32_t default_source,
                   bool language_first, bool spm_decode,
                   absl::flat_hash_set<int32_t> special, bool clean)
      : MultilingualHfTokenizer(std::move(special), clean, /*strip=*/true,
                                default_source, kEos, language_first),
        spm_(std::move(spm)),
        spm_decode_(spm_decode) {
    tokens_ = {{"<s>", kBos}, {"<pad>", kPad}, {"</s>", kEos}, {"<unk>", kUnk}};
    const int32_t first_language = spm_->piece_size() + kOffset;
    for (size_t i = 0; i < languages.size(); ++i) {
      tokens_.emplace(languages[i], first_language + static_cast<int32_t>(i));
    }
    tokens_.emplace("<mask>",
                    first_language + static_cast<int32_t>(languages.size()));
    for (const auto& [token, id] : tokens_) ids_.emplace(id, token);
    languages_ = std::move(languages);
  }

  // The source's tokens: the target side (set_tgt_lang_special_tokens)
  // differs only in its language code, and a prefix has no special token.
  absl::StatusOr<std::vector<int32_t>> EncodeTargetPrefix(
      absl::string_view text) const override {
    std::vector<int32_t> ids;
    for (const std::string& piece : spm_->EncodeAsPieces(text)) {
      if (auto it = tokens_.find(piece); it != tokens_.end()) {
        ids.push_back(it->second);
        continue;
      }
      // SentencePiece's id 0 is its <unk>: fairseq's <unk> instead.
      const int32_t spm_id = spm_->PieceToId(piece);
      ids.push_back(spm_id != 0 ? spm_id + kOffset : kUnk);
    }
    return ids;
  }

  absl::StatusOr<int32_t> LanguageId(absl::string_view code) const override {
    for (size_t i = 0; i < languages_.size(); ++i) {
      if (languages_[i] == code) {
        return spm_->piece_size() + kOffset + static_cast<int32_t>(i);
      }
    }
    return absl::NotFoundError(absl::StrCat(
        "unknown language code ", engine::QuoteText(code), " (this model has ",
        languages_.size(), ", e.g. ", languages_.front(), ")"));
  }

 protected:
  std::string TokensToText(absl::Span<const int32_t> ids,
                           bool continues) const override {
    std::vector<std::string> pieces;
    pieces.reserve(ids.size());
    for (int32_t id : ids) {
      if (auto it = ids_.find(id); it != ids_.end()) {
        pieces.push_back(it->second);
      } else if (id - kOffset >= 0 && id - kOffset < spm_->piece_size()) {
        pieces.push_back(spm_->IdToPiece(id - kOffset));
      }
      // Else past the vocabulary: Python's IdToPiece would raise; nothing.
    }
    if (spm_decode_) return spm_->DecodePieces(pieces, continues);
    // mbart and nllb join the pieces themselves.
    return absl::StrReplaceAll(absl::StrJoin(pieces, ""),
                               {{"\xe2\x96\x81", " "}});
  }

 private:
  std::unique_ptr<SentencePieceModel> spm_;
  std::vector<std::string> languages_;
  absl::flat_hash_map<std::string, int32_t> tokens_;  // fairseq's own
  absl::flat_hash_map<int32_t, std::string> ids_;
  bool spm_decode_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadFairseqTokenizer(
    const std::string& model_dir, absl::string_view family,
    const TokenizerConfig& config) {
  absl::StatusOr<std::unique_ptr<SentencePieceModel>> spm =
      ReadSentencePieceFile(model_dir, "sentencepiece.bpe.model");
  if (!spm.ok()) return spm.status();
  const bool nllb = family == "nllb";
  std::vector<std::string> languages = nllb ? NllbLanguageCodes()
                                       : family == "mbart50"
                                           ? Mbart50LanguageCodes()
                                           : MbartLanguageCodes();
  // The ids follow the built-in list; a config listing tokens outside it
  // would mean ids this code does not give.
  const absl::flat_hash_set<std::string> known(languages.begin(),
                                               languages.end());
  for (const std::string& token : config.additional_special_tokens) {
    if (!known.contains(token) && token != "<mask>") {
      return absl::InvalidArgumentError(absl::StrCat(
          config.path, ": additional_special_tokens holds ",
          engine::QuoteText(token), ", which is not one of ", family,
          "'s language codes (added tokens are not supported)"));
    }
  }
  const std::string source = !config.src_lang.empty() ? config.src_lang
                             : nllb                   ? "eng_Latn"
                                                      : "en_XX";
  int32_t source_id = -1;
  for (size_t i = 0; i < languages.size(); ++i) {
    if (languages[i] == source) {
      source_id = (*spm)->piece_size() + kOffset + static_cast<int32_t>(i);
    }
  }
  if (source_id < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(config.path, ": src_lang ", engine::QuoteText(source),
                     " is not one of ", family, "'s language codes"));
  }
  absl::flat_hash_set<int32_t> special = {kBos, kPad, kEos, kUnk};
  for (size_t i = 0; i <= languages.size(); ++i) {  // and <mask>
    special.insert((*spm)->piece_size() + kOffset + static_cast<int32_t>(i));
  }
  const bool language_first =
      family == "mbart50" || (nllb && !config.legacy_behaviour);
  return std::unique_ptr<Tokenizer>(std::make_unique<FairseqTokenizer>(
      std::move(spm).value(), std::move(languages), source_id, language_first,
      /*spm_decode=*/family == "mbart50", std::move(special),
      config.clean_up_tokenization_spaces));
}

}  // namespace attnserve::server
