#include "server/stream_state.h"

#include <fstream>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/tokenizers/tokenizer.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::server {
namespace {

using Kind = StreamState::Action::Kind;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The stall timeout of most tests, and a time at which tokens arrive.
constexpr absl::Duration kStall = absl::Seconds(1);
const absl::Time kNow = absl::FromUnixSeconds(1000);

Outcome Done() {
  Outcome outcome;
  outcome.result.finish_reason = engine::FinishReason::kEos;
  outcome.result.score = -2.0f;
  return outcome;
}

TEST(StreamStateTest, WritesOneMessageAtATimeAndMergesWhatArrivesMeanwhile) {
  StreamState state("r1", /*with_log_probs=*/true, nullptr, 16, kStall);
  ASSERT_TRUE(state.AddTokens({5}, {-0.5f}, kNow).ok());
  StreamState::Action first = state.Next(kNow);
  ASSERT_EQ(first.kind, Kind::kWrite);
  EXPECT_THAT(first.message->output_ids(), ElementsAre(5));
  EXPECT_EQ(first.message->request_id(), "r1");

  ASSERT_TRUE(state.AddTokens({6}, {-0.25f}, kNow).ok());
  ASSERT_TRUE(state.AddTokens({7}, {-0.125f}, kNow).ok());
  EXPECT_EQ(state.Next(kNow).kind, Kind::kNone) << "a write is in flight";
  state.WriteDone(true);
  StreamState::Action second = state.Next(kNow);
  ASSERT_EQ(second.kind, Kind::kWrite);
  EXPECT_THAT(second.message->output_ids(), ElementsAre(6, 7));
  EXPECT_THAT(second.message->log_probs(), ElementsAre(-0.25f, -0.125f));
  EXPECT_FALSE(second.message->has_timing());
  state.WriteDone(true);

  state.Finish(absl::OkStatus(), Done());
  StreamState::Action last = state.Next(kNow);
  ASSERT_EQ(last.kind, Kind::kWriteAndFinish);
  EXPECT_TRUE(last.status.ok());
  EXPECT_EQ(last.message->output_ids_size(), 0);
  EXPECT_EQ(last.message->finish_reason(), v1::FINISH_REASON_EOS);
  EXPECT_EQ(last.message->request_id(), "r1");
  EXPECT_TRUE(last.message->has_timing());
  EXPECT_EQ(state.Next(kNow).kind, Kind::kNone) << "finished once";
}

TEST(StreamStateTest, LastMessageCarriesTokensThatWereWaiting) {
  StreamState state("r", false, nullptr, 16, kStall);
  ASSERT_TRUE(state.AddTokens({5}, {-1.0f}, kNow).ok());
  ASSERT_EQ(state.Next(kNow).kind, Kind::kWrite);
  ASSERT_TRUE(state.AddTokens({6}, {-1.0f}, kNow).ok());
  state.Finish(absl::OkStatus(), Done());
  EXPECT_EQ(state.Next(kNow).kind, Kind::kNone);
  state.WriteDone(true);
  StreamState::Action last = state.Next(kNow);
  ASSERT_EQ(last.kind, Kind::kWriteAndFinish);
  EXPECT_THAT(last.message->output_ids(), ElementsAre(6));
  EXPECT_EQ(last.message->log_probs_size(), 0) << "not asked for";
}

TEST(StreamStateTest, TopLogProbsRideWithTheirTokens) {
  StreamState state("r", false, nullptr, 16, kStall);
  const std::vector<std::vector<engine::TokenLogProb>> first = {
      {{5, -0.5f}, {9, -1.5f}}};
  ASSERT_TRUE(state.AddTokens({5}, {-0.5f}, first, kNow).ok());
  StreamState::Action write = state.Next(kNow);
  ASSERT_EQ(write.kind, Kind::kWrite);
  ASSERT_EQ(write.message->top_log_probs_size(), 1);
  EXPECT_EQ(write.message->top_log_probs(0).tokens(1).token_id(), 9);
  // Merged behind a write in flight, in order.
  ASSERT_TRUE(state.AddTokens({6}, {-1.0f}, {{{6, -1.0f}}}, kNow).ok());
  ASSERT_TRUE(state.AddTokens({7}, {-1.0f}, {{{7, -1.0f}}}, kNow).ok());
  state.WriteDone(true);
  write = state.Next(kNow);
  ASSERT_EQ(write.kind, Kind::kWrite);
  ASSERT_EQ(write.message->top_log_probs_size(), 2);
  EXPECT_EQ(write.message->top_log_probs(0).tokens(0).token_id(), 6);
  EXPECT_EQ(write.message->top_log_probs(1).tokens(0).token_id(), 7);
}

TEST(StreamStateTest, LastMessageCarriesTheAlternativesWholeAndTheSeed) {
  StreamState state("r", /*with_log_probs=*/true, nullptr, 16, kStall);
  ASSERT_TRUE(state.AddTokens({5}, {-0.5f}, kNow).ok());
  ASSERT_EQ(state.Next(kNow).kind, Kind::kWrite);
  state.WriteDone(true);
  Outcome outcome = Done();
  outcome.result.output_ids = {5};
  engine::SequenceResult other;
  other.output_ids = {8, 9};
  other.log_probs = {-1.0f, -2.0f};
  other.score = -3.0f;
  other.finish_reason = engine::FinishReason::kLength;
  outcome.result.alternatives = {other};
  state.Finish(absl::OkStatus(), outcome, /*seed=*/77);
  StreamState::Action last = state.Next(kNow);
  ASSERT_EQ(last.kind, Kind::kWriteAndFinish);
  EXPECT_EQ(last.message->output_ids_size(), 0) << "sent already";
  EXPECT_EQ(last.message->seed(), 77u);
  ASSERT_EQ(last.message->alternatives_size(), 1);
  EXPECT_THAT(last.message->alternatives(0).output_ids(), ElementsAre(8, 9));
  EXPECT_THAT(last.message->alternatives(0).log_probs(),
              ElementsAre(-1.0f, -2.0f));
  EXPECT_FLOAT_EQ(last.message->alternatives(0).score(), -3.0f);
  EXPECT_EQ(last.message->alternatives(0).finish_reason(),
            v1::FINISH_REASON_LENGTH);
}

// A stream as the service drives it: the engine adds `tokens_per_step` tokens
// every `step_time`, and each write takes `write_takes` (infinite: the reader
// stopped reading) to complete.
struct ReaderCase {
  std::string name;
  int max_pending_tokens;
  int steps;
  int tokens_per_step;
  absl::Duration step_time;
  absl::Duration write_takes;
  int fails_at_step;  // the step whose tokens are refused; -1: none
  friend void PrintTo(const ReaderCase& c, std::ostream* os) { *os << c.name; }
};

class StreamReaderTest : public ::testing::TestWithParam<ReaderCase> {};

TEST_P(StreamReaderTest, DropsOnlyAReaderThatStopped) {
  const ReaderCase& c = GetParam();
  StreamState state("r", false, nullptr, c.max_pending_tokens, kStall);
  std::vector<int32_t> sent;
  absl::Time write_done = absl::InfiniteFuture();  // of the write in flight
  auto perform = [&](const StreamState::Action& action, absl::Time now) {
    if (action.kind == Kind::kNone) return;
    sent.insert(sent.end(), action.message->output_ids().begin(),
                action.message->output_ids().end());
    write_done = now + c.write_takes;
  };
  int32_t next_id = 3;
  absl::Status refused;
  int step = 0;
  for (; step < c.steps; ++step) {
    const absl::Time now = kNow + step * c.step_time;
    if (now >= write_done) {  // the reader took the message meanwhile
      write_done = absl::InfiniteFuture();
      state.WriteDone(true);
      perform(state.Next(now), now);
    }
    std::vector<int32_t> ids(c.tokens_per_step);
    for (int32_t& id : ids) id = next_id++;
    refused = state.AddTokens(ids, std::vector<float>(ids.size()), now);
    if (!refused.ok()) break;
    perform(state.Next(now), now);
  }
  if (c.fails_at_step < 0) {
    ASSERT_TRUE(refused.ok()) << "step " << step << ": " << refused;
    state.Finish(absl::OkStatus(), Done());
    // The reader goes on taking messages until the call ends.
    absl::Time now = kNow + c.steps * c.step_time;
    StreamState::Action action = state.Next(now);
    while (action.kind == Kind::kNone) {
      ASSERT_NE(write_done, absl::InfiniteFuture()) << "nothing in flight";
      now = write_done;
      write_done = absl::InfiniteFuture();
      state.WriteDone(true);
      action = state.Next(now);
    }
    ASSERT_EQ(action.kind, Kind::kWriteAndFinish);
    perform(action, now);
    std::vector<int32_t> all(c.steps * c.tokens_per_step);
    for (size_t i = 0; i < all.size(); ++i) all[i] = 3 + static_cast<int>(i);
    EXPECT_EQ(sent, all) << "every token, in order, once";
    return;
  }
  ASSERT_EQ(step, c.fails_at_step) << refused;
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("too slowly"));
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr(absl::StrCat("stream_buffer_tokens ",
                                     c.max_pending_tokens, " tokens")));
  // The batcher then finishes the request with that status; it goes out once
  // the write in flight completes, without the tokens that waited.
  state.Finish(refused, Outcome());
  EXPECT_EQ(state.Next(kNow).kind, Kind::kNone);
  state.WriteDone(true);
  StreamState::Action end = state.Next(kNow);
  ASSERT_EQ(end.kind, Kind::kFinish);
  EXPECT_EQ(end.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(state.pending_tokens(), 0) << "the waiting tokens were freed";
}

constexpr absl::Duration kNever = absl::InfiniteDuration();

INSTANTIATE_TEST_SUITE_P(
    Readers, StreamReaderTest,
    ::testing::ValuesIn(std::vector<ReaderCase>{
        // Beams hand over their whole output at once, right before the end.
        {"BeamBurstOf1000WithLimit4", 4, 1, 1000, absl::Milliseconds(5),
         absl::Milliseconds(1), -1},
        {"BeamBurstOf1000WithTheDefaultLimit", 256, 1, 1000,
         absl::Milliseconds(5), absl::Milliseconds(1), -1},
        {"BeamBurstToASlowReader", 4, 1, 1000, absl::Milliseconds(5),
         absl::Seconds(30), -1},
        // A fast engine decodes 100 tokens during each 1 ms write.
        {"GreedyFasterThanAFastReader", 4, 2000, 1, absl::Microseconds(10),
         absl::Milliseconds(1), -1},
        // A real engine's 5 ms steps against writes that take 0.9 s each
        // (the server's own threads starved, say): 180 tokens wait each time.
        {"GreedyAgainstSlowButMovingReader", 4, 1000, 1, absl::Milliseconds(5),
         absl::Milliseconds(900), -1},
        // The reader took the first message and no other: after 1 s (step
        // 100 at 10 ms a step) 100 tokens wait.
        {"StoppedReaderRealEngine", 4, 1000, 1, absl::Milliseconds(10), kNever,
         100},
        {"StoppedReaderFastEngine", 4, 200000, 1, absl::Microseconds(10),
         kNever, 100000},
        {"StoppedReaderDefaultLimit", 256, 2000, 1, absl::Milliseconds(1),
         kNever, 1000},
        // A slow engine: the stall passed long ago, but only when the fifth
        // token waits is the limit passed.
        {"StoppedReaderSlowEngine", 4, 100, 1, absl::Seconds(2), kNever, 5},
    }),
    [](const ::testing::TestParamInfo<ReaderCase>& info) {
      return info.param.name;
    });

TEST(StreamStateTest, BrokenStreamRefusesTokensAndFinishesCancelled) {
  StreamState state("r", false, nullptr, 16, kStall);
  ASSERT_TRUE(state.AddTokens({5}, {0.0f}, kNow).ok());
  ASSERT_EQ(state.Next(kNow).kind, Kind::kWrite);
  state.WriteDone(false);
  EXPECT_EQ(state.AddTokens({6}, {0.0f}, kNow).code(),
            absl::StatusCode::kCancelled);
  state.Finish(absl::OkStatus(), Done());
  StreamState::Action end = state.Next(kNow);
  ASSERT_EQ(end.kind, Kind::kFinish);
  EXPECT_EQ(end.status.error_code(), grpc::StatusCode::CANCELLED);
}

TEST(StreamStateTest, ErrorWithoutWritesFinishesAtOnce) {
  StreamState state("r", false, nullptr, 16, kStall);
  state.Finish(absl::DeadlineExceededError("late"), Outcome());
  StreamState::Action end = state.Next(kNow);
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

  StreamState state("r1", /*with_log_probs=*/false, tokenizer->get(), 16,
                    kStall);
  std::string text;
  for (std::vector<int32_t> piece :
       {std::vector<int32_t>{1, 0}, std::vector<int32_t>{3},
        std::vector<int32_t>{4}}) {
    ASSERT_TRUE(state.AddTokens(piece, {}, kNow).ok());
    StreamState::Action action = state.Next(kNow);
    ASSERT_EQ(action.kind, Kind::kWrite);
    text += action.message->text();
    state.WriteDone(true);
  }
  EXPECT_EQ(text, (*tokenizer)->Decode({1, 0, 3, 4}));
  EXPECT_EQ(text, "hello world");
}

}  // namespace
}  // namespace attnserve::server
