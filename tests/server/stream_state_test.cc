#include "server/stream_state.h"

#include <fstream>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/tokenizer.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::server {
namespace {

using Kind = StreamState::Action::Kind;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

Outcome Done() {
  Outcome outcome;
  outcome.result.finish_reason = engine::FinishReason::kEos;
  outcome.result.score = -2.0f;
  return outcome;
}

TEST(StreamStateTest, WritesOneMessageAtATimeAndMergesWhatArrivesMeanwhile) {
  StreamState state("r1", /*with_log_probs=*/true, nullptr, 16);
  ASSERT_TRUE(state.AddTokens({5}, {-0.5f}).ok());
  StreamState::Action first = state.Next();
  ASSERT_EQ(first.kind, Kind::kWrite);
  EXPECT_THAT(first.message->output_ids(), ElementsAre(5));
  EXPECT_EQ(first.message->request_id(), "r1");

  ASSERT_TRUE(state.AddTokens({6}, {-0.25f}).ok());
  ASSERT_TRUE(state.AddTokens({7}, {-0.125f}).ok());
  EXPECT_EQ(state.Next().kind, Kind::kNone) << "a write is in flight";
  state.WriteDone(true);
  StreamState::Action second = state.Next();
  ASSERT_EQ(second.kind, Kind::kWrite);
  EXPECT_THAT(second.message->output_ids(), ElementsAre(6, 7));
  EXPECT_THAT(second.message->log_probs(), ElementsAre(-0.25f, -0.125f));
  EXPECT_FALSE(second.message->has_timing());
  state.WriteDone(true);

  state.Finish(absl::OkStatus(), Done());
  StreamState::Action last = state.Next();
  ASSERT_EQ(last.kind, Kind::kWriteAndFinish);
  EXPECT_TRUE(last.status.ok());
  EXPECT_EQ(last.message->output_ids_size(), 0);
  EXPECT_EQ(last.message->finish_reason(), v1::FINISH_REASON_EOS);
  EXPECT_EQ(last.message->request_id(), "r1");
  EXPECT_TRUE(last.message->has_timing());
  EXPECT_EQ(state.Next().kind, Kind::kNone) << "finished once";
}

TEST(StreamStateTest, LastMessageCarriesTokensThatWereWaiting) {
  StreamState state("r", false, nullptr, 16);
  ASSERT_TRUE(state.AddTokens({5}, {-1.0f}).ok());
  ASSERT_EQ(state.Next().kind, Kind::kWrite);
  ASSERT_TRUE(state.AddTokens({6}, {-1.0f}).ok());
  state.Finish(absl::OkStatus(), Done());
  EXPECT_EQ(state.Next().kind, Kind::kNone);
  state.WriteDone(true);
  StreamState::Action last = state.Next();
  ASSERT_EQ(last.kind, Kind::kWriteAndFinish);
  EXPECT_THAT(last.message->output_ids(), ElementsAre(6));
  EXPECT_EQ(last.message->log_probs_size(), 0) << "not asked for";
}

TEST(StreamStateTest, SlowReaderIsGivenUpWithResourceExhausted) {
  StreamState state("r", false, nullptr, 3);
  ASSERT_TRUE(state.AddTokens({5}, {0.0f}).ok());
  ASSERT_EQ(state.Next().kind,
            Kind::kWrite);  // never completes: the reader is stuck
  ASSERT_TRUE(state.AddTokens({6}, {0.0f}).ok());
  ASSERT_TRUE(state.AddTokens({7}, {0.0f}).ok());
  ASSERT_TRUE(state.AddTokens({8}, {0.0f}).ok());
  const absl::Status overflow = state.AddTokens({9}, {0.0f});
  EXPECT_EQ(overflow.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(overflow.message()), HasSubstr("too slowly"));

  // The batcher then finishes the request with that status; it goes out after
  // the write.
  state.Finish(overflow, Outcome());
  EXPECT_EQ(state.Next().kind, Kind::kNone);
  state.WriteDone(true);
  StreamState::Action end = state.Next();
  ASSERT_EQ(end.kind, Kind::kFinish);
  EXPECT_EQ(end.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(StreamStateTest, BrokenStreamRefusesTokensAndFinishesCancelled) {
  StreamState state("r", false, nullptr, 16);
  ASSERT_TRUE(state.AddTokens({5}, {0.0f}).ok());
  ASSERT_EQ(state.Next().kind, Kind::kWrite);
  state.WriteDone(false);
  EXPECT_EQ(state.AddTokens({6}, {0.0f}).code(), absl::StatusCode::kCancelled);
  state.Finish(absl::OkStatus(), Done());
  StreamState::Action end = state.Next();
  ASSERT_EQ(end.kind, Kind::kFinish);
  EXPECT_EQ(end.status.error_code(), grpc::StatusCode::CANCELLED);
}

TEST(StreamStateTest, ErrorWithoutWritesFinishesAtOnce) {
  StreamState state("r", false, nullptr, 16);
  state.Finish(absl::DeadlineExceededError("late"), Outcome());
  StreamState::Action end = state.Next();
  ASSERT_EQ(end.kind, Kind::kFinish);
  EXPECT_EQ(end.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
}

// Found while fuzzing request conversion (regression input
// tests/fuzz/regressions/generate_request/stream_text_after_special_ids): a
// first piece that decodes to no text (special ids only) made the whitespace
// tokenizer start the next piece with a space, so the streamed text differed
// from the unary one.
TEST(StreamStateTest, TextOfPiecesAfterOnlySpecialIdsJoinsLikeUnary) {
  engine::testing::TempDir dir("stream_state_test");
  std::ofstream(dir.File("config.json"))
      << R"({"vocab_size": 8, "tokenizer": "whitespace"})";
  std::ofstream(dir.File("vocab.txt")) << "<pad>\n<s>\n</s>\nhello\nworld";
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      LoadTokenizer(dir.path());
  ASSERT_TRUE(tokenizer.ok() && *tokenizer != nullptr) << tokenizer.status();

  StreamState state("r1", /*with_log_probs=*/false, tokenizer->get(), 16);
  std::string text;
  for (std::vector<int32_t> piece :
       {std::vector<int32_t>{1, 0}, std::vector<int32_t>{3},
        std::vector<int32_t>{4}}) {
    ASSERT_TRUE(state.AddTokens(piece, {}).ok());
    StreamState::Action action = state.Next();
    ASSERT_EQ(action.kind, Kind::kWrite);
    text += action.message->text();
    state.WriteDone(true);
  }
  EXPECT_EQ(text, (*tokenizer)->Decode({1, 0, 3, 4}));
  EXPECT_EQ(text, "hello world");
}

}  // namespace
}  // namespace attnserve::server
