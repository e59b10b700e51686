#include "engine/decode/logits_rules.h"

#include <algorithm>
#include <limits>

namespace attnserve::engine {
namespace {

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

void SortUnique(std::vector<int32_t>* ids) {
  std::sort(ids->begin(), ids->end());
  ids->erase(std::unique(ids->begin(), ids->end()), ids->end());
}

bool Contains(const std::vector<int32_t>& sorted, int32_t id) {
  return std::binary_search(sorted.begin(), sorted.end(), id);
}

// The tokens the multi-token bad words ban after `prefix`: a word of n tokens
// applies once cur_len >= n (HF skips a word longer than the prefix), when the
// prefix ends with its first n - 1 tokens. So the start token, prefix[0], never
// takes part in a match.
void AppendBadSequenceBans(const LogitsRules& rules,
                           absl::Span<const int32_t> prefix,
                           std::vector<int32_t>* banned) {
  for (const std::vector<int32_t>& word : rules.bad_sequences) {
    const size_t n = word.size();
    if (prefix.size() < n) continue;
    if (std::equal(word.begin(), word.end() - 1, prefix.end() - (n - 1)))
      banned->push_back(word.back());
  }
}

// The forced tokens at this step, if any: target_prefix, else forced_eos_ids
// at the last token, else forced_bos_id at the first (HF applies the EOS
// processor after the BOS one, so it wins when both apply).
std::vector<int32_t> ForcedTokens(const LogitsRules& rules, size_t cur_len) {
  const size_t generated = cur_len - 1;
  if (generated < rules.target_prefix.size())
    return {rules.target_prefix[generated]};
  if (!rules.forced_eos_ids.empty() &&
      static_cast<int64_t>(cur_len) == int64_t{rules.max_length} - 1) {
    return rules.forced_eos_ids;
  }
  if (rules.forced_bos_id >= 0 && cur_len == 1) return {rules.forced_bos_id};
  return {};
}

}  // namespace

LogitsRules MakeLogitsRules(const DecodeOptions& options,
                            int32_t model_eos_id) {
  LogitsRules rules;
  rules.eos_ids = options.eos_ids;
  if (rules.eos_ids.empty()) rules.eos_ids.push_back(model_eos_id);
  SortUnique(&rules.eos_ids);
  rules.target_prefix = options.target_prefix;
  // The request's prefix decides the first token instead.
  if (rules.target_prefix.empty()) rules.forced_bos_id = options.forced_bos_id;
  rules.forced_eos_ids = options.forced_eos_ids;
  SortUnique(&rules.forced_eos_ids);
  for (const std::vector<int32_t>& word : options.bad_words) {
    if (word.size() == 1) {
      if (!Contains(rules.eos_ids, word[0]))
        rules.bad_tokens.push_back(word[0]);
    } else if (word.size() > 1) {
      rules.bad_sequences.push_back(word);
    }
  }
  SortUnique(&rules.bad_tokens);
  // HF's generate sets min_length = min_new_tokens + the decoder prompt's
  // length (the start token) when min_new_tokens is set: it takes precedence.
  rules.min_length = options.min_new_tokens > 0 ? 1 + options.min_new_tokens
                                                : options.min_length;
  rules.repetition_penalty = options.repetition_penalty;
  rules.suppress = options.suppress_token_ids;
  SortUnique(&rules.suppress);
  rules.no_repeat_ngram_size = options.no_repeat_ngram_size;
  rules.max_length = options.max_new_tokens + 1;
  return rules;
}

std::vector<int32_t> BannedNgramTokens(absl::Span<const int32_t> prefix,
                                       int n) {
  std::vector<int32_t> banned;
  const size_t cur_len = prefix.size();
  if (n <= 0 || cur_len + 1 < static_cast<size_t>(n)) return banned;
  const size_t key = static_cast<size_t>(n) - 1;  // tokens before the banned
  // The last n - 1 tokens against every n-gram's first n - 1: O(cur_len * n),
  // a few thousand comparisons for real lengths, cheaper than keeping a
  // table per hypothesis across beam reorderings.
  const absl::Span<const int32_t> tail = prefix.subspan(cur_len - key);
  for (size_t i = 0; i + key < cur_len; ++i) {
    if (std::equal(tail.begin(), tail.end(), prefix.begin() + i))
      banned.push_back(prefix[i + key]);
  }
  SortUnique(&banned);
  return banned;
}

RowRule RuleForRow(const LogitsRules& rules, absl::Span<const int32_t> prefix) {
  RowRule rule;
  rule.forced = ForcedTokens(rules, prefix.size());
  if (!rule.forced.empty()) return rule;
  rule.banned = BannedNgramTokens(prefix, rules.no_repeat_ngram_size);
  rule.banned.insert(rule.banned.end(), rules.bad_tokens.begin(),
                     rules.bad_tokens.end());
  AppendBadSequenceBans(rules, prefix, &rule.banned);
  if (static_cast<int64_t>(prefix.size()) < rules.min_length) {
    rule.banned.insert(rule.banned.end(), rules.eos_ids.begin(),
                       rules.eos_ids.end());
  }
  rule.banned.insert(rule.banned.end(), rules.suppress.begin(),
                     rules.suppress.end());
  SortUnique(&rule.banned);
  if (rules.repetition_penalty != 1.0f) {
    rule.penalty = rules.repetition_penalty;
    // A banned token is -inf whatever its penalty.
    for (int32_t t : prefix) {
      if (!Contains(rule.banned, t)) rule.penalised.push_back(t);
    }
    SortUnique(&rule.penalised);
  }
  return rule;
}

void ApplyRowRule(const RowRule& rule, absl::Span<float> scores) {
  const size_t vocab = scores.size();
  auto in_row = [&](int32_t t) {
    return t >= 0 && static_cast<size_t>(t) < vocab;
  };
  if (!rule.forced.empty()) {
    std::fill(scores.begin(), scores.end(), kMinusInf);
    for (int32_t t : rule.forced) {
      if (in_row(t)) scores[t] = 0.0f;
    }
    return;
  }
  for (int32_t t : rule.penalised) {
    if (in_row(t)) scores[t] = RepetitionPenalised(scores[t], rule.penalty);
  }
  for (int32_t t : rule.banned) {
    if (in_row(t)) scores[t] = kMinusInf;
  }
}

void ApplyLogitsRules(const LogitsRules& rules,
                      absl::Span<const int32_t> prefix,
                      absl::Span<float> scores) {
  const size_t cur_len = prefix.size();
  const size_t vocab = scores.size();
  auto ban = [&](int32_t t) {
    if (t >= 0 && static_cast<size_t>(t) < vocab) scores[t] = kMinusInf;
  };
  // 0. repetition_penalty: every distinct prefix token, once (HF gathers and
  // scatters the same value for repeated ones).
  if (rules.repetition_penalty != 1.0f) {
    std::vector<bool> seen(vocab, false);
    for (int32_t t : prefix) {
      if (t < 0 || static_cast<size_t>(t) >= vocab || seen[t]) continue;
      seen[t] = true;
      scores[t] = RepetitionPenalised(scores[t], rules.repetition_penalty);
    }
  }
  // 1. no_repeat_ngram_size: every earlier n-gram whose first n - 1 tokens are
  // the prefix's last n - 1.
  const int n = rules.no_repeat_ngram_size;
  if (n > 0 && cur_len + 1 >= static_cast<size_t>(n)) {
    for (size_t i = 0; i + n <= cur_len; ++i) {
      bool same = true;
      for (int j = 0; j + 1 < n; ++j)
        same = same && prefix[i + j] == prefix[cur_len - (n - 1) + j];
      if (same) ban(prefix[i + n - 1]);
    }
  }
  // 2. Bad words.
  for (int32_t t : rules.bad_tokens) ban(t);
  for (const std::vector<int32_t>& word : rules.bad_sequences) {
    const size_t len = word.size();
    if (cur_len < len) continue;
    bool same = true;
    for (size_t j = 0; j + 1 < len; ++j)
      same = same && prefix[cur_len - (len - 1) + j] == word[j];
    if (same) ban(word.back());
  }
  // 3. min_length (and min_new_tokens, folded into it).
  if (static_cast<int64_t>(cur_len) < rules.min_length) {
    for (int32_t e : rules.eos_ids) ban(e);
  }
  // 4 and 5. Forced tokens, over everything above.
  const std::vector<int32_t> forced = ForcedTokens(rules, cur_len);
  if (!forced.empty()) {
    std::fill(scores.begin(), scores.end(), kMinusInf);
    for (int32_t t : forced) {
      if (t >= 0 && static_cast<size_t>(t) < vocab) scores[t] = 0.0f;
    }
    return;  // suppress_token_ids yields to a forced token
  }
  // 6. suppress_token_ids.
  for (int32_t t : rules.suppress) ban(t);
}

}  // namespace attnserve::engine
