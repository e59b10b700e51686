#pragma once
// The decoding rules of a checkpoint's generation config and of a request's
// target_prefix, as Hugging Face's logits processors apply them
// (docs/hf-reference.md, "Decoding"): pure functions over one hypothesis's
// prefix and one row of scores, kept out of the network.
//
// A prefix is the decoder's input so far: the start token, then the tokens
// generated; cur_len is its length (HF counts the start token too).
//
// Two bodies: ApplyLogitsRules is the plain reference, one processor after the
// other on a full row of scores exactly as HF orders them; RuleForRow is what
// the generator uses, the same decision as a short list of banned or forced
// tokens, so the vocabulary can stream past in slices without a full row ever
// being materialised. Tests hold the two equal.

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "engine/decode/generator.h"

namespace attnserve::engine {

// One sequence's rules, resolved once from its (validated) DecodeOptions.
struct LogitsRules {
  std::vector<int32_t> eos_ids;  // sorted, unique; never empty
  int32_t forced_bos_id = -1;    // -1: none (or replaced by target_prefix)
  std::vector<int32_t> forced_eos_ids;  // sorted, unique
  // One-token bad words, less those equal to an EOS id (HF never bans EOS
  // this way); sorted, unique.
  std::vector<int32_t> bad_tokens;
  // Bad words of two tokens or more, as given: the last token is banned after
  // the others.
  std::vector<std::vector<int32_t>> bad_sequences;
  // Counts the start token. min_new_tokens > 0 replaces it with
  // 1 + min_new_tokens, as HF's generate does.
  int min_length = 0;
  int no_repeat_ngram_size = 0;
  float repetition_penalty = 1.0f;     // 1: off
  std::vector<int32_t> suppress;       // suppress_token_ids; sorted, unique
  std::vector<int32_t> target_prefix;  // forced as the first generated tokens
  int max_length = 0;  // 1 + max_new_tokens: the start token counts
};

LogitsRules MakeLogitsRules(const DecodeOptions& options, int32_t model_eos_id);

// What the rules do to the next token of a hypothesis.
struct RowRule {
  // Not empty: only these tokens may come, each with processed score 0, the
  // others -inf (target_prefix, forced_bos_id, forced_eos_ids). Sorted.
  std::vector<int32_t> forced;
  // Otherwise these tokens get -inf and the rest keep their scores. Sorted,
  // unique.
  std::vector<int32_t> banned;
  // Not forced, repetition_penalty != 1: the prefix's tokens that are not
  // banned, whose score s becomes RepetitionPenalised(s, penalty). Sorted,
  // unique.
  std::vector<int32_t> penalised;
  float penalty = 1.0f;
};

// HF's RepetitionPenaltyLogitsProcessor on one score: s / p when s > 0, else
// s * p (so a penalty > 1 always makes the token less likely).
inline float RepetitionPenalised(float score, float penalty) {
  return score < 0 ? score * penalty : score / penalty;
}

// The rule for the next token after `prefix` (start token first; not empty).
RowRule RuleForRow(const LogitsRules& rules, absl::Span<const int32_t> prefix);

// `rule` on a whole row of scores ([vocab]): what the generator does to a
// sampled row, and what the slices of an unsampled row amount to.
void ApplyRowRule(const RowRule& rule, absl::Span<float> scores);

// Reference: HF's processors in HF's order on one row of scores (logits or
// log-probs, [vocab]): repetition_penalty, no_repeat_ngram_size, bad words,
// min_length (min_new_tokens folded in), then the forced tokens
// (target_prefix in place of forced_bos_id, forced_eos_ids), which override
// the masks, then suppress_token_ids, except at a forced step (HF would leave
// a suppressed forced token's row all -inf; docs/hf-reference.md "Generation
// controls"). Banned tokens become -inf; a forced step leaves -inf everywhere
// but the forced tokens, which become 0.
void ApplyLogitsRules(const LogitsRules& rules,
                      absl::Span<const int32_t> prefix,
                      absl::Span<float> scores);

// The tokens no_repeat_ngram_size = n bans after `prefix`: every t such that
// the last n-1 prefix tokens followed by t already occur as an n-gram in the
// prefix (none while cur_len + 1 < n). Sorted, unique.
std::vector<int32_t> BannedNgramTokens(absl::Span<const int32_t> prefix, int n);

}  // namespace attnserve::engine
