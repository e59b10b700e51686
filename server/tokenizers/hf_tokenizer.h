#pragma once
// The tokenizers of Hugging Face checkpoints, giving the ids and text that
// transformers' Python ("slow") tokenizers give (docs/tokenizers.md): T5's
// plain SentencePiece, Marian, mBART / mBART-50 / NLLB (fairseq ids), M2M100
// and BART (GPT-2's byte-level BPE). One file per family; the decode pipeline
// they share, and the multilingual families' source framing, are here.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/tokenizers/tokenizer.h"
#include "server/tokenizers/tokenizer_files.h"

namespace attnserve::server {

// What decode does in transformers' PreTrainedTokenizer with
// skip_special_tokens=True: drop the special ids, turn the rest into tokens,
// join them the family's way (TokensToText), strip the ends (Python's
// str.strip, except M2M100, which does not strip), and, when
// tokenizer_config.json asks, clean up tokenization spaces. Encode gives the
// whole source: special tokens (</s>, language codes) included;
// EncodeTargetPrefix the target side without any.
class HfTokenizer : public Tokenizer {
 public:
  absl::StatusOr<std::vector<int32_t>> Encode(
      absl::string_view text) const final {
    return EncodeFrom(text, "");
  }
  // A streamed piece (`continues`) is not stripped, so that pieces join into
  // the whole text; the joined text can differ from the unary one only by
  // whitespace at its end (which the unary text strips) and by clean-up
  // rules that span two pieces (docs/tokenizers.md).
  std::string Decode(absl::Span<const int32_t> ids, bool continues) const final;
  bool EncodesSpecialTokens() const final { return true; }
  // Every family says what its target side is (Tokenizer's default, Encode,
  // would carry the source's special tokens).
  absl::StatusOr<std::vector<int32_t>> EncodeTargetPrefix(
      absl::string_view text) const override = 0;

 protected:
  // `strip`: the family strips the text's ends (all but M2M100).
  HfTokenizer(absl::flat_hash_set<int32_t> special_ids, bool clean_up,
              bool strip = true)
      : special_ids_(std::move(special_ids)),
        clean_up_(clean_up),
        strip_(strip) {}
  // The text of `ids` (special ids already removed), before stripping.
  // `continues`: a leading space is kept.
  virtual std::string TokensToText(absl::Span<const int32_t> ids,
                                   bool continues) const = 0;

 private:
  absl::flat_hash_set<int32_t> special_ids_;
  bool clean_up_;
  bool strip_;
};

// mbart, mbart50, nllb and m2m100: a source is its tokens (EncodeTargetPrefix)
// framed by a source-language token and </s>: `language_first` (mbart50,
// nllb, m2m100) src_lang tokens </s>, else (mbart, nllb's legacy_behaviour)
// tokens </s> src_lang. The language is EncodeFrom's, else `default_source`
// (tokenizer_config.json's src_lang).
class MultilingualHfTokenizer : public HfTokenizer {
 public:
  absl::StatusOr<std::vector<int32_t>> EncodeFrom(
      absl::string_view text, absl::string_view source_language) const final;
  bool IsMultilingual() const final { return true; }

 protected:
  MultilingualHfTokenizer(absl::flat_hash_set<int32_t> special_ids,
                          bool clean_up, bool strip, int32_t default_source,
                          int32_t eos_id, bool language_first)
      : HfTokenizer(std::move(special_ids), clean_up, strip),
        default_source_(default_source),
        eos_id_(eos_id),
        language_first_(language_first) {}

 private:
  int32_t default_source_;
  int32_t eos_id_;
  bool language_first_;
};

// Python's str.strip() / rstrip(): Unicode whitespace as str.isspace() has it.
std::string PythonStrip(absl::string_view text);
std::string PythonRstrip(absl::string_view text);

// transformers' clean_up_tokenization: " ." -> ".", " ?", " !", " ,", " ' "
// -> "'", " n't", " 'm", " 's", " 've", " 're", applied in that order.
std::string CleanUpTokenization(std::string text);

// The family of a Hugging Face directory as downloaded (config.json has
// "model_type"): from tokenizer_config.json's tokenizer_class, else the
// model_type. One of the family names LoadHfTokenizer takes.
// INVALID_ARGUMENT naming the class or model_type when it has no tokenizer
// here.
absl::StatusOr<std::string> HfTokenizerFamily(absl::string_view model_type,
                                              const TokenizerConfig& config);

// The families: "sentencepiece" (T5: `spm_file`, default spiece.model),
// "marian", "mbart", "mbart50", "nllb", "m2m100", "bart" (byte-level BPE).
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(
    const std::string& model_dir, absl::string_view family,
    const std::string& spm_file);

// One per family (t5_tokenizer.cc, marian_tokenizer.cc,
// fairseq_tokenizer.cc, m2m100_tokenizer.cc, bart_tokenizer.cc).
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadT5Tokenizer(
    const std::string& model_dir, const std::string& spm_file,
    const TokenizerConfig& config);
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadMarianTokenizer(
    const std::string& model_dir, const TokenizerConfig& config);
// `family`: "mbart", "mbart50" or "nllb".
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadFairseqTokenizer(
    const std::string& model_dir, absl::string_view family,
    const TokenizerConfig& config);
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadM2m100Tokenizer(
    const std::string& model_dir, const TokenizerConfig& config);
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadBartTokenizer(
    const std::string& model_dir, const TokenizerConfig& config);

}  // namespace attnserve::server
