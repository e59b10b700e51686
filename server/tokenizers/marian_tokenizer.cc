// Marian (OPUS-MT), as transformers' MarianTokenizer: source.spm segments the
// source, each piece is looked up in vocab.json (<unk>'s id when missing), and
// </s> follows. A target-language token such as ">>fr<<" at the very start of
// the text is kept whole. A target prefix is segmented by target.spm and looked
// up in vocab.json (target_vocab.json with separate_vocabs), without </s>.
// Output ids go back through that vocabulary to pieces that target.spm joins.

#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/quote_text.h"
#include "engine/status_macros.h"
#include "server/tokenizers/hf_tokenizer.h"

namespace attnserve::server {
namespace {

class MarianTokenizer : public HfTokenizer {
 public:
  MarianTokenizer(std::unique_ptr<SentencePieceModel> source_spm,
                  std::unique_ptr<SentencePieceModel> target_spm,
                  JsonVocab vocab, std::optional<JsonVocab> target_vocab,
                  absl::flat_hash_set<std::string> special_tokens,
                  absl::flat_hash_set<int32_t> special_ids, bool clean)
      : HfTokenizer(std::move(special_ids), clean),
        source_spm_(std::move(source_spm)),
        target_spm_(std::move(target_spm)),
        vocab_(std::move(vocab)),
        target_vocab_(std::move(target_vocab)),
        special_tokens_(std::move(special_tokens)),
        unk_id_(vocab_.Find("<unk>")),
        target_unk_id_(target_vocab_ ? target_vocab_->Find("<unk>") : unk_id_),
        eos_id_(vocab_.Find("</s>")) {}

  absl::StatusOr<std::vector<int32_t>> EncodeFrom(
      absl::string_view text,
      absl::string_view source_language) const override {
    if (!source_language.empty()) {
      return absl::InvalidArgumentError(
          "Marian has no source language option: the checkpoint's pair fixes "
          "it (a multilingual target takes \">>xx<<\" at the start of the "
          "text)");
    }
    ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                     Segment(text, *source_spm_, vocab_, unk_id_));
    ids.push_back(eos_id_);
    return ids;
  }

  // transformers' target mode: target.spm, and target_vocab.json's ids with
  // separate_vocabs.
  absl::StatusOr<std::vector<int32_t>> EncodeTargetPrefix(
      absl::string_view text) const override {
    return Segment(text, *target_spm_, target_vocab_ ? *target_vocab_ : vocab_,
                   target_unk_id_);
  }

  absl::StatusOr<int32_t> LanguageId(absl::string_view code) const override {
    const std::string token = absl::StartsWith(code, ">>")
                                  ? std::string(code)
                                  : absl::StrCat(">>", code, "<<");
    const int32_t id = vocab_.Find(token);
    if (id < 0 || target_vocab_.has_value()) {
      return absl::NotFoundError(absl::StrCat(
          "the vocabulary has no language token ", engine::QuoteText(token)));
    }
    return id;
  }

 protected:
  std::string TokensToText(absl::Span<const int32_t> ids,
                           bool continues) const override {
    const JsonVocab& decoder = target_vocab_ ? *target_vocab_ : vocab_;
    static const std::string kUnk = "<unk>";
    std::string text;
    std::vector<std::string> pieces;
    bool first = true;
    const auto flush = [&]() {
      text += target_spm_->DecodePieces(pieces, continues && first);
      first = false;
      pieces.clear();
    };
    for (int32_t id : ids) {
      const std::string* token = decoder.Token(id);
      if (token == nullptr) token = &kUnk;  // decoder.get(id, unk_token)
      // Special tokens are not SentencePiece's to decode: they are written
      // as themselves, with a space after (convert_tokens_to_string).
      if (special_tokens_.contains(*token)) {
        flush();
        absl::StrAppend(&text, *token, " ");
      } else {
        pieces.push_back(*token);
      }
    }
    flush();
    return absl::StrReplaceAll(text, {{"\xe2\x96\x81", " "}});
  }

 private:
  // _tokenize and _convert_token_to_id of either side: a ">>xx<<" at the
  // start (remove_language_code: ">>" up to the first "<<") kept whole, the
  // rest segmented by `spm`, each token looked up in `vocab` (`unk_id` when
  // missing; -1: the vocabulary has no <unk>, where Python would raise).
  absl::StatusOr<std::vector<int32_t>> Segment(absl::string_view text,
                                               const SentencePieceModel& spm,
                                               const JsonVocab& vocab,
                                               int32_t unk_id) const {
    std::vector<std::string> tokens;
    if (absl::StartsWith(text, ">>")) {
      if (size_t end = text.find("<<"); end != absl::string_view::npos) {
        tokens.emplace_back(text.substr(0, end + 2));
        text.remove_prefix(end + 2);
      }
    }
    for (std::string& piece : spm.EncodeAsPieces(text)) {
      tokens.push_back(std::move(piece));
    }
    std::vector<int32_t> ids;
    ids.reserve(tokens.size());
    for (const std::string& token : tokens) {
      const int32_t id = vocab.Find(token);
      if (id < 0 && unk_id < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the token ", engine::QuoteText(token),
            " is not in target_vocab.json, which has no \"<unk>\""));
      }
      ids.push_back(id < 0 ? unk_id : id);
    }
    return ids;
  }

  std::unique_ptr<SentencePieceModel> source_spm_;
  std::unique_ptr<SentencePieceModel> target_spm_;
  JsonVocab vocab_;
  std::optional<JsonVocab> target_vocab_;
  absl::flat_hash_set<std::string> special_tokens_;
  int32_t unk_id_;
  int32_t target_unk_id_;  // -1 when target_vocab.json has no <unk>
  int32_t eos_id_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadMarianTokenizer(
    const std::string& model_dir, const TokenizerConfig& config) {
  absl::StatusOr<JsonVocab> vocab = ReadVocabJson(model_dir, "vocab.json");
  if (!vocab.ok()) return vocab.status();
  for (const char* required : {"<unk>", "</s>"}) {
    if (vocab->Find(required) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          model_dir, "/vocab.json: has no \"", required, "\" token"));
    }
  }
  std::optional<JsonVocab> target_vocab;
  if (config.separate_vocabs) {
    absl::StatusOr<JsonVocab> target =
        ReadVocabJson(model_dir, "target_vocab.json");
    if (!target.ok()) return target.status();
    target_vocab = *std::move(target);
  }
  absl::StatusOr<std::unique_ptr<SentencePieceModel>> source_spm =
      ReadSentencePieceFile(model_dir, "source.spm");
  if (!source_spm.ok()) return source_spm.status();
  absl::StatusOr<std::unique_ptr<SentencePieceModel>> target_spm =
      ReadSentencePieceFile(model_dir, "target.spm");
  if (!target_spm.ok()) return target_spm.status();

  // all_special_tokens: eos, unk, pad and tokenizer_config.json's additional
  // ones; their ids through vocab.json (unk's when missing).
  absl::flat_hash_set<std::string> special_tokens = {"</s>", "<unk>", "<pad>"};
  for (const std::string& token : config.additional_special_tokens) {
    special_tokens.insert(token);
  }
  absl::flat_hash_set<int32_t> special_ids;
  for (const std::string& token : special_tokens) {
    const int32_t id = vocab->Find(token);
    special_ids.insert(id < 0 ? vocab->Find("<unk>") : id);
  }
  return std::unique_ptr<Tokenizer>(std::make_unique<MarianTokenizer>(
      std::move(source_spm).value(), std::move(target_spm).value(),
      *std::move(vocab), std::move(target_vocab), std::move(special_tokens),
      std::move(special_ids), config.clean_up_tokenization_spaces));
}

}  // namespace attnserve::server
