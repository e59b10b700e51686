#include "server/tokenizers/sentencepiece_normalizer.h"

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace attnserve::server {
namespace {

// A larger map than any real rule set (nmt_nfkc is ~240 KB) is refused:
// Validate's walk is linear in the trie's size times 255 labels.
constexpr size_t kMaxCharsMapBytes = 4 << 20;

// Darts-clone's unit layout (darts.h, DoubleArrayUnit).
inline bool HasLeaf(uint32_t unit) { return (unit >> 8) & 1; }
inline uint32_t Value(uint32_t unit) { return unit & ((1U << 31) - 1); }
inline uint32_t Label(uint32_t unit) { return unit & ((1U << 31) | 0xFF); }
inline uint32_t Offset(uint32_t unit) {
  return (unit >> 10) << ((unit & (1U << 9)) >> 6);
}

inline bool IsTrailByte(char c) {
  return (static_cast<uint8_t>(c) & 0xC0) == 0x80;
}
inline bool IsValidCodepoint(uint32_t c) {
  return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF);
}

constexpr absl::string_view kReplacementChar = "\xEF\xBF\xBD";

}  // namespace

size_t OneCharLen(absl::string_view s) {
  if (s.empty()) return 0;
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1,
                                       1, 1, 1, 1, 2, 2, 3, 4};
  return std::min<size_t>(kLen[static_cast<uint8_t>(s[0]) >> 4], s.size());
}

bool DecodeUtf8Char(absl::string_view s, size_t* length) {
  const auto b = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<uint8_t>(s[i]));
  };
  *length = 1;
  if (b(0) < 0x80) return true;
  if (s.size() >= 2 && (b(0) & 0xE0) == 0xC0) {
    const uint32_t cp = ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    if (IsTrailByte(s[1]) && cp >= 0x80 && IsValidCodepoint(cp)) {
      *length = 2;
      return true;
    }
  } else if (s.size() >= 3 && (b(0) & 0xF0) == 0xE0) {
    const uint32_t cp =
        ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    if (IsTrailByte(s[1]) && IsTrailByte(s[2]) && cp >= 0x800 &&
        IsValidCodepoint(cp)) {
      *length = 3;
      return true;
    }
  } else if (s.size() >= 4 && (b(0) & 0xF8) == 0xF0) {
    const uint32_t cp = ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) |
                        ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    if (IsTrailByte(s[1]) && IsTrailByte(s[2]) && IsTrailByte(s[3]) &&
        cp >= 0x10000 && IsValidCodepoint(cp)) {
      *length = 4;
      return true;
    }
  }
  return false;
}

PrefixMatcher::PrefixMatcher(std::vector<std::string> symbols)
    : symbols_(std::move(symbols)) {
  std::sort(symbols_.begin(), symbols_.end());
  for (const std::string& s : symbols_)
    max_length_ = std::max(max_length_, s.size());
}

size_t PrefixMatcher::PrefixMatch(absl::string_view s, bool* found) const {
  *found = false;
  size_t best = 0;
  // Few symbols in practice (a handful of placeholders): a scan of the lengths
  // is enough.
  for (size_t len = std::min(max_length_, s.size()); len > 0 && best == 0;
       --len) {
    if (std::binary_search(symbols_.begin(), symbols_.end(), s.substr(0, len)))
      best = len;
  }
  if (best > 0) {
    *found = true;
    return best;
  }
  return OneCharLen(s);
}

absl::StatusOr<std::unique_ptr<CharsMap>> CharsMap::Create(
    absl::string_view blob) {
  if (blob.size() > kMaxCharsMapBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("normalizer_spec.precompiled_charsmap is ", blob.size(),
                     " bytes, more than the limit of ", kMaxCharsMapBytes));
  }
  if (blob.size() <= 4) {
    return absl::InvalidArgumentError(
        "normalizer_spec.precompiled_charsmap is too short to hold its trie "
        "size");
  }
  const uint32_t trie_size =
      static_cast<uint32_t>(static_cast<uint8_t>(blob[0])) |
      static_cast<uint32_t>(static_cast<uint8_t>(blob[1])) << 8 |
      static_cast<uint32_t>(static_cast<uint8_t>(blob[2])) << 16 |
      static_cast<uint32_t>(static_cast<uint8_t>(blob[3])) << 24;
  blob.remove_prefix(4);
  if (trie_size >= blob.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "normalizer_spec.precompiled_charsmap: the trie size ", trie_size,
        " leaves no room for the replacement strings in a blob of ",
        blob.size(), " bytes"));
  }
  if (trie_size == 0 || trie_size % 4 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("normalizer_spec.precompiled_charsmap: the trie size ",
                     trie_size, " is not a positive multiple of 4 bytes"));
  }
  auto map = std::unique_ptr<CharsMap>(new CharsMap());
  map->units_.resize(trie_size / 4);
  // Little-endian units, as SentencePiece writes them on x86 and ARM.
  for (size_t i = 0; i < map->units_.size(); ++i) {
    uint32_t u = 0;
    for (int k = 3; k >= 0; --k)
      u = (u << 8) | static_cast<uint8_t>(blob[4 * i + k]);
    map->units_[i] = u;
  }
  map->normalized_ = std::string(blob.substr(trie_size));
  if (map->normalized_.back() != '\0') {
    return absl::InvalidArgumentError(
        "normalizer_spec.precompiled_charsmap: the replacement strings do not "
        "end with NUL");
  }
  if (absl::Status s = map->Validate(); !s.ok()) return s;
  return map;
}

absl::Status CharsMap::Validate() const {
  // Every node reachable by some key, once each: leaves must point inside
  // normalized_.
  std::vector<bool> visited(units_.size(), false);
  std::vector<uint32_t> stack = {0};
  visited[0] = true;
  while (!stack.empty()) {
    const uint32_t id = stack.back();
    stack.pop_back();
    const uint32_t base = id ^ Offset(units_[id]);
    for (uint32_t c = 1; c < 256; ++c) {
      const uint32_t child = base ^ c;
      if (child >= units_.size() || Label(units_[child]) != c) continue;
      if (HasLeaf(units_[child])) {
        const uint32_t leaf = child ^ Offset(units_[child]);
        if (leaf >= units_.size() ||
            Value(units_[leaf]) >= normalized_.size()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "normalizer_spec.precompiled_charsmap: trie node ", child,
              " has a leaf outside the trie or the replacement strings"));
        }
      }
      if (!visited[child]) {
        visited[child] = true;
        stack.push_back(child);
      }
    }
  }
  return absl::OkStatus();
}

std::pair<size_t, absl::string_view> CharsMap::LongestPrefix(
    absl::string_view s) const {
  size_t best_length = 0;
  uint32_t best_value = 0;
  uint32_t id = Offset(units_[0]);
  for (size_t i = 0; i < s.size(); ++i) {
    const uint8_t c = static_cast<uint8_t>(s[i]);
    id ^= c;
    if (id >= units_.size()) break;
    const uint32_t unit = units_[id];
    if (Label(unit) != c) break;
    id ^= Offset(unit);
    if (HasLeaf(unit)) {
      if (id >= units_.size()) break;  // refused by Validate
      best_length = i + 1;
      best_value = Value(units_[id]);
    }
  }
  if (best_length == 0 || best_value >= normalized_.size()) return {0, {}};
  // normalized_ ends with NUL (Create), so strlen stops inside it.
  const char* text = normalized_.data() + best_value;
  return {best_length, absl::string_view(text, std::strlen(text))};
}

absl::StatusOr<std::unique_ptr<SentencePieceNormalizer>>
SentencePieceNormalizer::Create(const sentencepiece::NormalizerSpec& spec,
                                std::vector<std::string> user_defined) {
  auto normalizer = std::unique_ptr<SentencePieceNormalizer>(
      new SentencePieceNormalizer(spec, std::move(user_defined)));
  // An empty map is the identity rule (name "identity"), as in SentencePiece.
  if (!spec.precompiled_charsmap().empty()) {
    auto map = CharsMap::Create(spec.precompiled_charsmap());
    if (!map.ok()) return map.status();
    normalizer->charsmap_ = *std::move(map);
  }
  return normalizer;
}

std::pair<absl::string_view, size_t> SentencePieceNormalizer::NormalizePrefix(
    absl::string_view input) const {
  if (input.empty()) return {{}, 0};
  bool found = false;
  const size_t symbol = matcher_.PrefixMatch(input, &found);
  if (found) return {input.substr(0, symbol), symbol};
  if (charsmap_ != nullptr) {
    auto [length, replacement] = charsmap_->LongestPrefix(input);
    if (length > 0) return {replacement, length};
  }
  size_t length = 0;
  if (!DecodeUtf8Char(input, &length)) return {kReplacementChar, 1};
  return {input.substr(0, length), length};
}

std::string SentencePieceNormalizer::Normalize(absl::string_view input) const {
  std::string out;
  if (remove_extra_whitespaces_) {
    while (!input.empty()) {
      const auto [text, consumed] = NormalizePrefix(input);
      if (text != " ") break;
      input.remove_prefix(consumed);
    }
  }
  if (input.empty()) return out;
  out.reserve(input.size() * 3);
  const absl::string_view space = escape_whitespaces_ ? kSpaceSymbol : " ";
  if (add_dummy_prefix_) out.append(space.data(), space.size());

  bool is_prev_space = remove_extra_whitespaces_;
  while (!input.empty()) {
    auto [text, consumed] = NormalizePrefix(input);
    if (is_prev_space) {
      while (absl::ConsumePrefix(&text, " ")) {
      }
    }
    if (!text.empty()) {
      for (char c : text) {
        if (escape_whitespaces_ && c == ' ') {
          out.append(kSpaceSymbol.data(), kSpaceSymbol.size());
        } else {
          out.push_back(c);
        }
      }
      is_prev_space = absl::EndsWith(text, " ");
    }
    input.remove_prefix(consumed);
    if (!remove_extra_whitespaces_) is_prev_space = false;
  }
  if (remove_extra_whitespaces_) {
    while (absl::EndsWith(out, space)) out.resize(out.size() - space.size());
  }
  return out;
}

}  // namespace attnserve::server
