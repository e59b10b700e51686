// The generation controls end to end: build/attnserve serving the bundled
// dates model (models/dates, char tokenizer), driven over gRPC. What must hold
// whatever the model's numbers: a seed replays its draw, top_k = 1 samples
// greedy's tokens, hypotheses come ranked and with text, top log-probs are
// the model's best tokens with the chosen one first for greedy, a suppressed
// token never comes, and a stream carries what a unary call answers.

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/attnserve_binary.h"
#include "tests/server/dates_server_suite.h"
#include "tests/server/grpc_test_client.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::StreamResult;
using ::testing::Contains;
using ::testing::ElementsAreArray;
using ::testing::Not;

constexpr char kSource[] = "the 4th of july, 1976";

class ControlsDatesTest : public testing::DatesServerSuite<ControlsDatesTest> {
 public:
  static std::vector<std::string> ExtraFlags() {
    return {"--max_num_return_sequences=4", "--max_top_log_probs=5"};
  }

 protected:
  v1::GenerateResponse Call(const v1::GenerateRequest& request) {
    v1::GenerateResponse response;
    const grpc::Status status = testing::Generate(*stub_, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  static v1::GenerateRequest Text() {
    v1::GenerateRequest request;
    request.set_text(kSource);
    request.set_max_new_tokens(16);
    return request;
  }
};

TEST_F(ControlsDatesTest, ASeedReplaysItsDrawAndNoSeedGetsOne) {
  v1::GenerateRequest request = Text();
  request.set_temperature(1.5f);
  request.set_num_return_sequences(3);
  const v1::GenerateResponse first = Call(request);
  ASSERT_NE(first.seed(), 0u);
  ASSERT_EQ(first.alternatives_size(), 2);
  request.set_seed(first.seed());
  const v1::GenerateResponse again = Call(request);
  EXPECT_EQ(again.seed(), first.seed());
  EXPECT_THAT(again.output_ids(), ElementsAreArray(first.output_ids()));
  EXPECT_EQ(again.text(), first.text());
  for (int k = 0; k < 2; ++k) {
    EXPECT_THAT(again.alternatives(k).output_ids(),
                ElementsAreArray(first.alternatives(k).output_ids()));
    EXPECT_FALSE(first.alternatives(k).text().empty()) << "they have text";
  }
}

TEST_F(ControlsDatesTest, TopKOneSamplesGreedysTokens) {
  const v1::GenerateResponse greedy = Call(Text());
  v1::GenerateRequest request = Text();
  request.set_top_k(1);
  request.set_temperature(2.0f);
  for (uint64_t seed : {1u, 2u, 3u}) {
    request.set_seed(seed);
    const v1::GenerateResponse sampled = Call(request);
    EXPECT_EQ(sampled.seed(), seed);
    EXPECT_THAT(sampled.output_ids(), ElementsAreArray(greedy.output_ids()));
  }
}

TEST_F(ControlsDatesTest, BeamHypothesesComeBestFirst) {
  v1::GenerateRequest request = Text();
  request.set_beam_size(4);
  request.set_num_return_sequences(3);
  const v1::GenerateResponse response = Call(request);
  EXPECT_EQ(response.seed(), 0u);
  ASSERT_EQ(response.alternatives_size(), 2);
  EXPECT_GE(response.score(), response.alternatives(0).score());
  EXPECT_GE(response.alternatives(0).score(), response.alternatives(1).score());
  // The best is what the same beam search answers alone.
  v1::GenerateRequest one = Text();
  one.set_beam_size(4);
  EXPECT_THAT(Call(one).output_ids(), ElementsAreArray(response.output_ids()));
}

TEST_F(ControlsDatesTest, GreedyTopLogProbsStartWithTheChosenToken) {
  v1::GenerateRequest request = Text();
  request.set_top_log_probs(3);
  request.set_return_log_probs(true);
  const v1::GenerateResponse response = Call(request);
  ASSERT_GT(response.output_ids_size(), 0);
  ASSERT_EQ(response.top_log_probs_size(), response.output_ids_size());
  for (int i = 0; i < response.output_ids_size(); ++i) {
    const v1::TopLogProbs& top = response.top_log_probs(i);
    ASSERT_EQ(top.tokens_size(), 3);
    EXPECT_EQ(top.tokens(0).token_id(), response.output_ids(i));
    EXPECT_NEAR(top.tokens(0).log_prob(), response.log_probs(i), 1e-5);
    EXPECT_GE(top.tokens(0).log_prob(), top.tokens(1).log_prob());
    EXPECT_GE(top.tokens(1).log_prob(), top.tokens(2).log_prob());
  }
}

TEST_F(ControlsDatesTest, ASuppressedTokenNeverComes) {
  const v1::GenerateResponse greedy = Call(Text());
  ASSERT_GT(greedy.output_ids_size(), 0);
  const int32_t banned = greedy.output_ids(0);
  v1::GenerateRequest request = Text();
  request.add_suppress_token_ids(banned);
  EXPECT_THAT(Call(request).output_ids(), Not(Contains(banned)));
  v1::GenerateRequest words = Text();
  words.add_bad_words()->add_ids(banned);
  EXPECT_THAT(Call(words).output_ids(), Not(Contains(banned)));
}

TEST_F(ControlsDatesTest, AStreamCarriesWhatUnaryAnswers) {
  v1::GenerateRequest request = Text();
  request.set_temperature(1.2f);
  request.set_seed(20261202);
  request.set_num_return_sequences(2);
  request.set_top_log_probs(2);
  const v1::GenerateResponse unary = Call(request);
  const StreamResult stream = testing::GenerateStream(*stub_, request);
  ASSERT_TRUE(stream.status.ok()) << stream.status.error_message();
  const v1::GenerateResponse all = stream.Concatenated();
  EXPECT_THAT(all.output_ids(), ElementsAreArray(unary.output_ids()));
  EXPECT_EQ(all.top_log_probs_size(), unary.top_log_probs_size());
  ASSERT_EQ(all.alternatives_size(), 1);
  EXPECT_THAT(all.alternatives(0).output_ids(),
              ElementsAreArray(unary.alternatives(0).output_ids()));
  EXPECT_EQ(all.seed(), 20261202u);
}

}  // namespace
}  // namespace attnserve::server
