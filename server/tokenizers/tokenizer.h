#pragma once
// Text <-> token ids for requests that send `text`.
//
// A model directory has a tokenizer when its config.json names one with the key
// "tokenizer" (an addition to the base format; docs/model-format.md), or when
// it is a Hugging Face directory as downloaded (config.json with "model_type"):
// then the family comes from tokenizer_config.json's "tokenizer_class" (or the
// model_type). docs/tokenizers.md lists the families, their files and ids:
//   "char"        one token per Unicode character (UTF-8 code point);
//   "whitespace"  one token per run of non-whitespace characters; output words
//                 are joined by single spaces;
// both read "vocab_file" (default "vocab.txt"): one token per line, line number
// (0-based) = id, taken verbatim (only the '\n' ends a line, so a line holding
// one space is the space token). Without the key, a directory with vocab.txt
// gets the whitespace tokenizer; without either, ids only.
//   "sentencepiece" (T5), "marian", "mbart", "mbart50", "nllb", "m2m100",
//                 "bart": the ids Hugging Face's Python tokenizers give,
//                 special tokens (</s>, language codes) included (and,
//                 without any, the target side: EncodeTargetPrefix).
//
// A character or word missing from the vocabulary is an error naming it (the
// server answers INVALID_ARGUMENT); nothing is silently dropped. Decoding skips
// the pad, bos and eos ids (the Hugging Face families: every special token, as
// skip_special_tokens=True does).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace attnserve::server {

// Implementations must be thread-safe for concurrent const calls (gRPC threads
// encode, the inference thread decodes stream pieces).
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Source token ids for `text`, without the EOS that config.add_eos_to_source
  // asks for.
  virtual absl::StatusOr<std::vector<int32_t>> Encode(
      absl::string_view text) const = 0;
  // Text of `ids`. `continues`: the ids follow earlier ids of the same output
  // whose text is not empty (a streamed piece), so concatenating the pieces of
  // a stream gives exactly the text of decoding all ids at once. (Pieces that
  // decode to nothing, e.g. only special ids, do not count: the whitespace
  // tokenizer would otherwise start the text with a space.)
  virtual std::string Decode(absl::Span<const int32_t> ids,
                             bool continues = false) const = 0;

  // Target-side ids for `text`, with no special token at all (no EOS, BOS or
  // language code): the tokens a decoder prefix is forced through, as Hugging
  // Face encodes it with tokenizer(text_target=text, add_special_tokens=False).
  // Marian segments with target.spm and, with separate_vocabs, looks the
  // pieces up in target_vocab.json; the other Hugging Face families segment
  // as their Encode does and leave out its special tokens. The default is
  // Encode, which for the char and whitespace tokenizers adds nothing.
  // INVALID_ARGUMENT as Encode's errors; an empty result is not an error.
  virtual absl::StatusOr<std::vector<int32_t>> EncodeTargetPrefix(
      absl::string_view text) const {
    return Encode(text);
  }

  // Whether Encode gives the whole source, its special tokens included (the
  // Hugging Face families append </s> and language codes themselves); then
  // config.add_eos_to_source must not append another EOS.
  virtual bool EncodesSpecialTokens() const { return false; }

  // Encode with `source_language` (e.g. "de_DE", "deu_Latn", "de") in place of
  // the default that tokenizer_config.json's "src_lang" gives; an empty one is
  // the default. INVALID_ARGUMENT naming the code if the family has no source
  // languages or does not know it.
  virtual absl::StatusOr<std::vector<int32_t>> EncodeFrom(
      absl::string_view text, absl::string_view source_language) const;

  // The token id of a language code, for forcing the decoder's first token
  // (forced_bos_token_id, target_prefix): mbart "ro_RO", nllb "fra_Latn",
  // m2m100 "fr" or "__fr__", marian ">>fr<<" or "fr". NOT_FOUND naming the
  // code when the vocabulary has no such language token.
  virtual absl::StatusOr<int32_t> LanguageId(absl::string_view code) const;

  // Whether the family has languages on both sides (mbart, mbart50, nllb,
  // m2m100): EncodeFrom takes a source language, and a LanguageId is what the
  // decoder starts with (forced_bos_token_id). Marian says false: its ">>xx<<"
  // tokens go at the start of the source text, not into the decoder.
  virtual bool IsMultilingual() const { return false; }
};

// The tokenizer of a model directory, or nullptr when it has none. Errors name
// the file and line or key (unreadable vocab, duplicate tokens, more tokens
// than the model's vocab_size, an unknown tokenizer kind, a malformed
// vocab.json or SentencePiece model, an unknown src_lang).
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& model_dir);

}  // namespace attnserve::server
