#pragma once
// SentencePiece's text normalisation, reimplemented to give byte-identical
// output to sentencepiece 0.1.97's Normalizer (docs/tokenizers.md): the
// precompiled character map (a Darts-clone double-array trie over UTF-8 plus a
// blob of NUL-terminated replacement strings, longest prefix wins), then
// add_dummy_prefix, remove_extra_whitespaces and escape_whitespaces (' ' ->
// U+2581). User-defined symbols pass through unnormalised.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "sentencepiece/sentencepiece_model.pb.h"

namespace attnserve::server {

// U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space.
inline constexpr absl::string_view kSpaceSymbol = "\xe2\x96\x81";

// The bytes of the UTF-8 character starting at `s[0]` as SentencePiece counts
// them (from the lead byte alone, at most s.size()); 0 for an empty `s`.
size_t OneCharLen(absl::string_view s);

// Decodes one UTF-8 character at the start of `s` (non-empty) as SentencePiece
// does: overlong forms, surrogates and values above U+10FFFF are invalid.
// Returns whether it is valid (a literal U+FFFD counts as valid) and sets
// `*length` (1 for invalid input).
bool DecodeUtf8Char(absl::string_view s, size_t* length);

// Longest match among a set of strings (the model's user-defined symbols).
class PrefixMatcher {
 public:
  explicit PrefixMatcher(std::vector<std::string> symbols);
  // The length of the longest symbol that prefixes `s` (then *found = true),
  // else OneCharLen(s) and *found = false.
  size_t PrefixMatch(absl::string_view s, bool* found) const;

 private:
  std::vector<std::string> symbols_;  // sorted
  size_t max_length_ = 0;
};

// A read-only Darts-clone double array as SentencePiece serialises it. Every
// lookup is bounds-checked; Create also walks the whole trie once so that no
// leaf points outside the replacement blob.
class CharsMap {
 public:
  // `blob` is NormalizerSpec.precompiled_charsmap (non-empty).
  static absl::StatusOr<std::unique_ptr<CharsMap>> Create(
      absl::string_view blob);

  // The longest key that prefixes `s`: its length (0 if none) and replacement.
  std::pair<size_t, absl::string_view> LongestPrefix(absl::string_view s) const;

 private:
  CharsMap() = default;
  absl::Status Validate() const;

  std::vector<uint32_t> units_;  // the double array
  std::string
      normalized_;  // NUL-terminated replacements, indexed by leaf values
};

class SentencePieceNormalizer {
 public:
  // `spec` is only read here (its options and map are copied). `user_defined`
  // are the model's USER_DEFINED pieces, kept verbatim. Errors name the
  // charsmap problem.
  static absl::StatusOr<std::unique_ptr<SentencePieceNormalizer>> Create(
      const sentencepiece::NormalizerSpec& spec,
      std::vector<std::string> user_defined);

  // The normalised text the model segments. Any bytes are accepted: malformed
  // UTF-8 becomes U+FFFD, one per bad byte. Thread-safe.
  std::string Normalize(absl::string_view input) const;

  // One normalisation step at the start of `input`: replacement text and bytes
  // consumed.
  std::pair<absl::string_view, size_t> NormalizePrefix(
      absl::string_view input) const;

  const PrefixMatcher& matcher() const { return matcher_; }

 private:
  SentencePieceNormalizer(const sentencepiece::NormalizerSpec& spec,
                          std::vector<std::string> user_defined)
      : add_dummy_prefix_(spec.add_dummy_prefix()),
        remove_extra_whitespaces_(spec.remove_extra_whitespaces()),
        escape_whitespaces_(spec.escape_whitespaces()),
        matcher_(std::move(user_defined)) {}

  bool add_dummy_prefix_;
  bool remove_extra_whitespaces_;
  bool escape_whitespaces_;
  PrefixMatcher matcher_;
  std::unique_ptr<CharsMap> charsmap_;  // null: identity
};

}  // namespace attnserve::server
