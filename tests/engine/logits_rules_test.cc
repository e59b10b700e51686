// The decoding rules (docs/hf-reference.md, "Decoding") on hand-made prefixes
// and score rows, and the generator's fast form (RuleForRow) against the
// reference body (ApplyLogitsRules) on random ones.

#include "engine/decode/logits_rules.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnserve::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int kVocab = 10;

// Options with everything neutral but the limit.
DecodeOptions Neutral(int max_new_tokens = 8) {
  DecodeOptions o;
  o.max_new_tokens = max_new_tokens;
  return o;
}

// The tokens ApplyLogitsRules sets to -inf on a row of ones, and those it
// forces (sets to 0).
struct Applied {
  std::vector<int32_t> banned;
  std::vector<int32_t> forced;
};
Applied Apply(const LogitsRules& rules, const std::vector<int32_t>& prefix) {
  std::vector<float> row(kVocab, 1.0f);
  ApplyLogitsRules(rules, prefix, absl::MakeSpan(row));
  Applied a;
  for (int32_t t = 0; t < kVocab; ++t) {
    if (row[t] == -kInf) a.banned.push_back(t);
    if (row[t] == 0.0f) a.forced.push_back(t);
  }
  return a;
}

TEST(NoRepeatNgramTest, BansTheTokenThatWouldRepeatATrigram) {
  // Prefix (start 0) 0 3 4 5 3 4: the trigram 3 4 5 occurred, so after 3 4
  // the token 5 is banned.
  EXPECT_THAT(BannedNgramTokens({0, 3, 4, 5, 3, 4}, 3), ElementsAre(5));
  // Every earlier continuation of the last bigram is banned.
  EXPECT_THAT(BannedNgramTokens({0, 3, 4, 5, 3, 4, 7, 3, 4}, 3),
              ElementsAre(5, 7));
  // The last bigram 4 6 never occurred before.
  EXPECT_THAT(BannedNgramTokens({0, 3, 4, 5, 4, 6}, 3), IsEmpty());
}

TEST(NoRepeatNgramTest, TheStartTokenTakesPart) {
  // 0 7 is a bigram of the prefix: after another 0, 7 is banned.
  EXPECT_THAT(BannedNgramTokens({0, 7, 0}, 2), ElementsAre(7));
}

TEST(NoRepeatNgramTest, SizeOneBansEveryTokenSoFar) {
  EXPECT_THAT(BannedNgramTokens({0, 4, 4, 2}, 1), ElementsAre(0, 2, 4));
}

TEST(NoRepeatNgramTest, NothingWhileThePrefixIsTooShort) {
  // cur_len + 1 < n: HF bans nothing yet.
  EXPECT_THAT(BannedNgramTokens({0, 0}, 4), IsEmpty());
  // cur_len 3, n 4: the one candidate 4-gram is the whole prefix plus t; no
  // earlier 4-gram exists, so nothing either.
  EXPECT_THAT(BannedNgramTokens({0, 0, 0}, 4), IsEmpty());
  EXPECT_THAT(BannedNgramTokens({0, 0, 0, 0}, 4), ElementsAre(0));
}

TEST(BadWordsTest, OneTokenWordsAreBannedAtEveryStep) {
  DecodeOptions o = Neutral();
  o.bad_words = {{6}, {8}};
  const LogitsRules rules = MakeLogitsRules(o, /*model_eos_id=*/2);
  EXPECT_THAT(RuleForRow(rules, {0}).banned, ElementsAre(6, 8));
  EXPECT_THAT(RuleForRow(rules, {0, 5, 5}).banned, ElementsAre(6, 8));
  EXPECT_THAT(Apply(rules, {0, 5}).banned, ElementsAre(6, 8));
}

TEST(BadWordsTest, AWordEqualToAnEosIsDropped) {
  DecodeOptions o = Neutral();
  o.eos_ids = {2, 3};
  o.bad_words = {{3}, {6}, {1, 2}};
  const LogitsRules rules = MakeLogitsRules(o, 2);
  EXPECT_THAT(rules.bad_tokens, ElementsAre(6));
  // A multi-token word may end with EOS: HF only drops [eos].
  EXPECT_THAT(RuleForRow(rules, {0, 1}).banned, ElementsAre(2, 6));
}

TEST(BadWordsTest, MultiTokenWordBansItsLastTokenAfterTheOthers) {
  DecodeOptions o = Neutral();
  o.bad_words = {{4, 5, 6}};
  const LogitsRules rules = MakeLogitsRules(o, 2);
  EXPECT_THAT(RuleForRow(rules, {0, 4, 5}).banned, ElementsAre(6));
  EXPECT_THAT(RuleForRow(rules, {0, 7, 4, 5}).banned, ElementsAre(6));
  EXPECT_THAT(RuleForRow(rules, {0, 4, 5, 7}).banned, IsEmpty());
  EXPECT_THAT(RuleForRow(rules, {0, 5, 4}).banned, IsEmpty());
  EXPECT_THAT(Apply(rules, {0, 4, 5}).banned, ElementsAre(6));
}

TEST(BadWordsTest, TheStartTokenNeverTakesPartInAMatch) {
  DecodeOptions o = Neutral();
  o.bad_words = {{0, 7}};  // [start, t]
  const LogitsRules rules = MakeLogitsRules(o, 2);
  // Step 1 (cur_len 1 < 2): skipped, as HF skips a word longer than the
  // prefix.
  EXPECT_THAT(RuleForRow(rules, {0}).banned, IsEmpty());
  EXPECT_THAT(Apply(rules, {0}).banned, IsEmpty());
  // Only after a generated 0.
  EXPECT_THAT(RuleForRow(rules, {0, 0}).banned, ElementsAre(7));
  EXPECT_THAT(RuleForRow(rules, {0, 3}).banned, IsEmpty());
}

TEST(MinLengthTest, BansEveryEosWhileThePrefixIsShorter) {
  DecodeOptions o = Neutral();
  o.eos_ids = {2, 9};
  o.min_length = 3;  // counts the start token: at least 2 tokens
  const LogitsRules rules = MakeLogitsRules(o, 2);
  EXPECT_THAT(RuleForRow(rules, {0}).banned, ElementsAre(2, 9));
  EXPECT_THAT(RuleForRow(rules, {0, 5}).banned, ElementsAre(2, 9));
  EXPECT_THAT(RuleForRow(rules, {0, 5, 5}).banned, IsEmpty());
  EXPECT_THAT(Apply(rules, {0, 5}).banned, ElementsAre(2, 9));
}

TEST(MinLengthTest, EmptyEosIdsMeanTheModels) {
  DecodeOptions o = Neutral();
  o.min_length = 2;
  EXPECT_THAT(RuleForRow(MakeLogitsRules(o, 4), {0}).banned, ElementsAre(4));
}

TEST(ForcedBosTest, OnlyTheFirstTokenIsForced) {
  DecodeOptions o = Neutral();
  o.forced_bos_id = 7;
  o.bad_words = {{7}};  // a forced token is allowed even if banned
  const LogitsRules rules = MakeLogitsRules(o, 2);
  EXPECT_THAT(RuleForRow(rules, {0}).forced, ElementsAre(7));
  EXPECT_THAT(Apply(rules, {0}).forced, ElementsAre(7));
  EXPECT_EQ(Apply(rules, {0}).banned.size(), kVocab - 1u);
  EXPECT_THAT(RuleForRow(rules, {0, 7}).forced, IsEmpty());
  EXPECT_THAT(RuleForRow(rules, {0, 7}).banned, ElementsAre(7));
}

TEST(ForcedEosTest, ForcedAtTheLastAllowedToken) {
  DecodeOptions o = Neutral(/*max_new_tokens=*/3);  // max_length 4
  o.forced_eos_ids = {2, 5};
  const LogitsRules rules = MakeLogitsRules(o, 2);
  EXPECT_THAT(RuleForRow(rules, {0, 1}).forced, IsEmpty());
  // cur_len 3 == max_length - 1: the 3rd (last) generated token.
  EXPECT_THAT(RuleForRow(rules, {0, 1, 1}).forced, ElementsAre(2, 5));
  EXPECT_THAT(Apply(rules, {0, 1, 1}).forced, ElementsAre(2, 5));
}

TEST(ForcedEosTest, WinsOverForcedBosWhenBothApply) {
  DecodeOptions o = Neutral(/*max_new_tokens=*/1);
  o.forced_bos_id = 7;
  o.forced_eos_ids = {2};
  const LogitsRules rules = MakeLogitsRules(o, 2);
  EXPECT_THAT(RuleForRow(rules, {0}).forced, ElementsAre(2));
  EXPECT_THAT(Apply(rules, {0}).forced, ElementsAre(2));
}

TEST(TargetPrefixTest, ForcesItsTokensInOrderAndReplacesForcedBos) {
  DecodeOptions o = Neutral(/*max_new_tokens=*/3);
  o.forced_bos_id = 7;
  o.forced_eos_ids = {2};
  o.no_repeat_ngram_size = 1;  // would ban the repeated 4
  o.target_prefix = {4, 4, 6};
  const LogitsRules rules = MakeLogitsRules(o, 2);
  EXPECT_EQ(rules.forced_bos_id, -1);
  EXPECT_THAT(RuleForRow(rules, {0}).forced, ElementsAre(4));
  EXPECT_THAT(RuleForRow(rules, {0, 4}).forced, ElementsAre(4));
  // The prefix wins over forced_eos_ids at the last token too.
  EXPECT_THAT(RuleForRow(rules, {0, 4, 4}).forced, ElementsAre(6));
  EXPECT_THAT(Apply(rules, {0, 4, 4}).forced, ElementsAre(6));
}

TEST(TargetPrefixTest, RulesApplyAgainAfterThePrefix) {
  DecodeOptions o = Neutral();
  o.no_repeat_ngram_size = 1;
  o.target_prefix = {4};
  const LogitsRules rules = MakeLogitsRules(o, 2);
  EXPECT_THAT(RuleForRow(rules, {0, 4}).forced, IsEmpty());
  EXPECT_THAT(RuleForRow(rules, {0, 4}).banned, ElementsAre(0, 4));
}

TEST(RepetitionPenaltyTest, DividesPositiveAndMultipliesNegativeScores) {
  DecodeOptions o = Neutral();
  o.repetition_penalty = 2.0f;
  const LogitsRules rules = MakeLogitsRules(o, 2);
  std::vector<float> row = {1.0f, -1.0f, 4.0f, -3.0f, 5.0f, 0.0f};
  // The start token 0 takes part; 1 counts once however often it occurs.
  ApplyLogitsRules(rules, {0, 1, 1, 3, 5}, absl::MakeSpan(row));
  EXPECT_EQ(row, (std::vector<float>{0.5f, -2.0f, 4.0f, -6.0f, 5.0f, 0.0f}));
  const RowRule r = RuleForRow(rules, {0, 1, 1, 3, 5});
  EXPECT_THAT(r.penalised, ElementsAre(0, 1, 3, 5));
  EXPECT_EQ(r.penalty, 2.0f);
}

TEST(RepetitionPenaltyTest, BannedTokensAreNotPenalisedAndForcedStepsNeither) {
  DecodeOptions o = Neutral(/*max_new_tokens=*/3);
  o.repetition_penalty = 1.5f;
  o.bad_words = {{4}};
  o.forced_eos_ids = {2};
  const LogitsRules rules = MakeLogitsRules(o, 2);
  EXPECT_THAT(RuleForRow(rules, {0, 4}).penalised, ElementsAre(0));
  EXPECT_THAT(RuleForRow(rules, {0, 4, 5}).forced, ElementsAre(2));
  EXPECT_THAT(RuleForRow(rules, {0, 4, 5}).penalised, IsEmpty());
}

TEST(MinNewTokensTest, ReplacesMinLengthCountingGeneratedTokens) {
  DecodeOptions o = Neutral();
  o.min_length = 9;
  o.min_new_tokens = 2;  // takes precedence, as in HF's generate
  const LogitsRules rules = MakeLogitsRules(o, 2);
  EXPECT_EQ(rules.min_length, 3);
  EXPECT_THAT(RuleForRow(rules, {0, 5}).banned, ElementsAre(2));
  EXPECT_THAT(RuleForRow(rules, {0, 5, 5}).banned, IsEmpty());
  EXPECT_THAT(Apply(rules, {0, 5}).banned, ElementsAre(2));
}

TEST(SuppressTokensTest, BannedAtEveryStepButYieldToAForcedToken) {
  DecodeOptions o = Neutral(/*max_new_tokens=*/3);
  o.suppress_token_ids = {7, 3, 7};
  o.forced_bos_id = 7;
  const LogitsRules rules = MakeLogitsRules(o, 2);
  EXPECT_THAT(rules.suppress, ElementsAre(3, 7));
  EXPECT_THAT(RuleForRow(rules, {0}).forced, ElementsAre(7));
  EXPECT_THAT(Apply(rules, {0}).forced, ElementsAre(7));
  EXPECT_THAT(RuleForRow(rules, {0, 7}).banned, ElementsAre(3, 7));
  EXPECT_THAT(Apply(rules, {0, 7, 1}).banned, ElementsAre(3, 7));
}

TEST(LogitsRulesTest, NeutralOptionsChangeNothing) {
  const LogitsRules rules = MakeLogitsRules(Neutral(), 2);
  std::vector<float> row = {0.5f, -1.0f, 3.0f, 2.0f};
  const std::vector<float> before = row;
  ApplyLogitsRules(rules, {0, 1, 1, 1}, absl::MakeSpan(row));
  EXPECT_EQ(row, before);
  const RowRule r = RuleForRow(rules, {0, 1, 1, 1});
  EXPECT_THAT(r.banned, IsEmpty());
  EXPECT_THAT(r.forced, IsEmpty());
  EXPECT_THAT(r.penalised, IsEmpty());
}

// RuleForRow (the generator's) equals the reference on random rules and
// prefixes over a tiny vocabulary, where every rule fires often.
TEST(LogitsRulesTest, RuleForRowMatchesTheReference) {
  std::mt19937 rng(11);
  auto id = [&] { return static_cast<int32_t>(rng() % 5); };
  int forced_steps = 0;
  int banning_steps = 0;
  int penalising_steps = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    DecodeOptions o = Neutral(1 + rng() % 8);
    o.eos_ids = {id()};
    if (rng() % 2) o.eos_ids.push_back(id());
    if (rng() % 4 == 0) o.forced_bos_id = id();
    if (rng() % 4 == 0) o.forced_eos_ids = {id()};
    for (int w = rng() % 3; w > 0; --w) {
      std::vector<int32_t> word(1 + rng() % 3);
      for (int32_t& t : word) t = id();
      o.bad_words.push_back(word);
    }
    o.min_length = rng() % 5;
    if (rng() % 3 == 0) o.min_new_tokens = rng() % 4;
    o.no_repeat_ngram_size = rng() % 4;
    if (rng() % 4 != 0) o.repetition_penalty = rng() % 2 ? 1.7f : 0.6f;
    for (int s = rng() % 3; s > 0; --s) o.suppress_token_ids.push_back(id());
    if (rng() % 4 == 0) {
      o.target_prefix.resize(1 + rng() % 2);
      for (int32_t& t : o.target_prefix) t = id();
    }
    const LogitsRules rules = MakeLogitsRules(o, 0);
    std::vector<int32_t> prefix(1 + rng() % o.max_new_tokens);
    for (int32_t& t : prefix) t = id();

    std::vector<float> reference(kVocab);
    // Both signs: the penalty divides one and multiplies the other.
    for (float& v : reference) v = static_cast<float>(rng() % 100) / 10.0f - 5;
    std::vector<float> fast = reference;
    ApplyLogitsRules(rules, prefix, absl::MakeSpan(reference));
    const RowRule rule = RuleForRow(rules, prefix);
    if (!rule.forced.empty()) {
      ++forced_steps;
    } else {
      banning_steps += !rule.banned.empty();
      penalising_steps += !rule.penalised.empty();
    }
    ApplyRowRule(rule, absl::MakeSpan(fast));
    ASSERT_EQ(fast, reference) << "trial " << trial;
  }
  // The comparison covered every kind of step.
  EXPECT_GT(forced_steps, 100);
  EXPECT_GT(banning_steps, 500);
  EXPECT_GT(penalising_steps, 500);
}

}  // namespace
}  // namespace attnserve::engine
