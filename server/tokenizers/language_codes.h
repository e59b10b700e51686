#pragma once
// The language codes that Hugging Face's multilingual tokenizers build in:
// their tokens sit after the SentencePiece vocabulary (mBART, NLLB) or after
// vocab.json (M2M100, as "__xx__"), in this order.

#include <string>
#include <vector>

namespace attnserve::server {

std::vector<std::string> MbartLanguageCodes();    // 25: ar_AR ... zh_CN
std::vector<std::string> Mbart50LanguageCodes();  // 52: mBART's, then af_ZA ...
std::vector<std::string> NllbLanguageCodes();     // 202: ace_Arab ... zul_Latn
// 100 (af ... zu), or the 8 of language_codes "wmt21".
std::vector<std::string> M2m100LanguageCodes(bool wmt21);

}  // namespace attnserve::server
