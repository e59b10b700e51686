// The tools' generation controls (client/generation_controls.h): every flag
// reaches its GenerateRequest field, and what no flag can mean is refused
// naming the flag.

#include "client/generation_controls.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/fault_cases.h"

namespace attnserve::client {
namespace {

using ::testing::ElementsAre;
using testing::ExpectFaultsNamed;

TEST(GenerationControlsTest, EveryControlReachesItsField) {
  GenerationControls controls;
  controls.do_sample = true;
  controls.temperature = 0.7f;
  controls.top_k = 40;
  controls.top_p = 0.9f;
  controls.seed = 123456789012345ull;
  controls.repetition_penalty = 1.2f;
  controls.no_repeat_ngram_size = 3;
  controls.min_new_tokens = 2;
  controls.suppress_token_ids = "4, 5";
  controls.bad_words = "7,8;9";
  controls.num_return_sequences = 3;
  controls.top_log_probs = 5;
  v1::GenerateRequest request;
  ASSERT_TRUE(ApplyGenerationControls(controls, &request).ok());
  ASSERT_TRUE(request.has_do_sample());
  EXPECT_TRUE(request.do_sample());
  EXPECT_FLOAT_EQ(request.temperature(), 0.7f);
  EXPECT_EQ(request.top_k(), 40u);
  EXPECT_FLOAT_EQ(request.top_p(), 0.9f);
  EXPECT_EQ(request.seed(), 123456789012345ull);
  EXPECT_FLOAT_EQ(request.repetition_penalty(), 1.2f);
  EXPECT_EQ(request.no_repeat_ngram_size(), 3u);
  EXPECT_EQ(request.min_new_tokens(), 2u);
  EXPECT_THAT(request.suppress_token_ids(), ElementsAre(4, 5));
  ASSERT_EQ(request.bad_words_size(), 2);
  EXPECT_THAT(request.bad_words(0).ids(), ElementsAre(7, 8));
  EXPECT_THAT(request.bad_words(1).ids(), ElementsAre(9));
  EXPECT_EQ(request.num_return_sequences(), 3u);
  EXPECT_EQ(request.top_log_probs(), 5u);
  EXPECT_EQ(DescribeGenerationControls(controls),
            "do_sample=true temperature=0.7 top_k=40 top_p=0.9 "
            "seed=123456789012345 repetition_penalty=1.2 "
            "no_repeat_ngram_size=3 min_new_tokens=2 suppress_token_ids=4, 5 "
            "bad_words=7,8;9 num_return_sequences=3 top_log_probs=5");
}

TEST(GenerationControlsTest, UnsetControlsLeaveTheRequestUnset) {
  v1::GenerateRequest request;
  ASSERT_TRUE(ApplyGenerationControls(GenerationControls(), &request).ok());
  EXPECT_EQ(request.ByteSizeLong(), 0u) << request.ShortDebugString();
  EXPECT_FALSE(request.has_do_sample());
  EXPECT_EQ(DescribeGenerationControls(GenerationControls()), "");
  GenerationControls off;
  off.do_sample = false;
  ASSERT_TRUE(ApplyGenerationControls(off, &request).ok());
  ASSERT_TRUE(request.has_do_sample());
  EXPECT_FALSE(request.do_sample());
}

// ApplyGenerationControls as a status, for ExpectFaultsNamed.
absl::Status ApplyStatus(const GenerationControls& controls) {
  v1::GenerateRequest request;
  return ApplyGenerationControls(controls, &request);
}

TEST(GenerationControlsTest, NamesTheFlagAtFault) {
  using C = GenerationControls;
  ExpectFaultsNamed<C>(
      C(), ApplyStatus,
      {{[](C& c) { c.top_k = -1; }, "--top_k must be >= 0"},
       {[](C& c) { c.num_return_sequences = -2; },
        "--num_return_sequences must be >= 0"},
       {[](C& c) { c.top_log_probs = -1; }, "--top_log_probs must be >= 0"},
       {[](C& c) { c.no_repeat_ngram_size = -1; }, "--no_repeat_ngram_size"},
       {[](C& c) { c.min_new_tokens = -1; }, "--min_new_tokens"},
       {[](C& c) { c.suppress_token_ids = "4,x"; }, "--suppress_token_ids: "},
       {[](C& c) { c.bad_words = "4,5;;6"; }, "--bad_words: word 2: "},
       {[](C& c) { c.bad_words = "4,-5"; }, "--bad_words: word 1: "}});
}

}  // namespace
}  // namespace attnserve::client
