// T5's tokenizer (transformers' T5Tokenizer, legacy mode), also the plain
// "sentencepiece" family: the SentencePiece ids, then </s> (a target prefix:
// the ids alone); the sentinels <extra_id_0> ... <extra_id_{N-1}> are the N
// ids after the model's pieces, in reverse (<extra_id_0> is the last id).

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "server/tokenizers/hf_tokenizer.h"

namespace attnserve::server {
namespace {

class T5Tokenizer : public HfTokenizer {
 public:
  T5Tokenizer(std::unique_ptr<SentencePieceModel> spm, int extra_ids,
              int32_t eos_id, absl::flat_hash_set<int32_t> special, bool clean)
      : HfTokenizer(std::move(special), clean),
        spm_(std::move(spm)),
        vocab_size_(spm_->piece_size() + extra_ids),
        eos_id_(eos_id) {}

  absl::StatusOr<std::vector<int32_t>> EncodeFrom(
      absl::string_view text,
      absl::string_view source_language) const override {
    if (!source_language.empty()) {
      return absl::InvalidArgumentError(
          "this model's tokenizer (T5 / SentencePiece) has no source "
          "languages");
    }
    ASSIGN_OR_RETURN(std::vector<int32_t> ids, EncodeTargetPrefix(text));
    ids.push_back(eos_id_);
    return ids;
  }

  // One SentencePiece for both sides; only </s> is special.
  absl::StatusOr<std::vector<int32_t>> EncodeTargetPrefix(
      absl::string_view text) const override {
    return spm_->Encode(text);
  }

 protected:
  std::string TokensToText(absl::Span<const int32_t> ids,
                           bool continues) const override {
    std::vector<std::string> pieces;
    pieces.reserve(ids.size());
    for (int32_t id : ids) {
      if (id < 0) continue;  // Python's IdToPiece would raise
      if (id < spm_->piece_size()) {
        pieces.push_back(spm_->IdToPiece(id));
      } else {
        // Past the sentinels this is "<extra_id_-1>" and so on, as
        // transformers names them; not a piece, so it decodes verbatim.
        pieces.push_back(absl::StrCat("<extra_id_", vocab_size_ - 1 - id, ">"));
      }
    }
    return spm_->DecodePieces(pieces, continues);
  }

 private:
  std::unique_ptr<SentencePieceModel> spm_;
  int vocab_size_;
  int32_t eos_id_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadT5Tokenizer(
    const std::string& model_dir, const std::string& spm_file,
    const TokenizerConfig& config) {
  absl::StatusOr<std::unique_ptr<SentencePieceModel>> spm =
      ReadSentencePieceFile(model_dir, spm_file);
  if (!spm.ok()) return spm.status();
  const SentencePieceModel& model = **spm;
  const int32_t eos_id = model.PieceToId("</s>");
  if (model.IsUnknown(eos_id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        model_dir, "/", spm_file, ": the model has no \"</s>\" piece"));
  }
  // all_special_ids: eos, unk, pad and the sentinels.
  absl::flat_hash_set<int32_t> special = {eos_id, model.unk_id(),
                                          model.PieceToId("<pad>")};
  for (int i = 0; i < config.extra_ids; ++i) {
    special.insert(model.piece_size() + i);
  }
  return std::unique_ptr<Tokenizer>(std::make_unique<T5Tokenizer>(
      std::move(spm).value(), config.extra_ids, eos_id, std::move(special),
      config.clean_up_tokenization_spaces));
}

}  // namespace attnserve::server
