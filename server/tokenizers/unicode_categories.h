#pragma once
// Unicode character classes of GPT-2's pre-tokenizer regex (byte-level BPE:
// BART): \p{L}, \p{N} and \s (White_Space). Tables generated from the Unicode
// database by scripts/make_unicode_tables.py (unicode_categories.cc).

#include <cstdint>

namespace attnserve::server {

bool IsUnicodeLetter(int32_t code_point);      // general category L*
bool IsUnicodeNumber(int32_t code_point);      // general category N*
bool IsUnicodeWhiteSpace(int32_t code_point);  // White_Space

}  // namespace attnserve::server
