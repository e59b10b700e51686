// Tiers 2 and 3 of the batcher tests, on simulated time with the fake engine: a
// single-step pump (the test calls Pump() itself), then the threaded batcher
// (Start()).

#include "server/batcher.h"

#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/fake_engine.h"
#include "tests/server/recording_sink.h"
#include "tests/server/simulated_clock.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::CountingObserver;
using ::attnserve::server::testing::FakeEngine;
using ::attnserve::server::testing::FakeEngineOptions;
using ::attnserve::server::testing::RecordingSink;
using ::attnserve::server::testing::SimulatedClock;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr absl::StatusCode kOk = absl::StatusCode::kOk;

// Issue 15 (2): the two admissions of issue 15 (2) in which one request is
// admitted at a time: a request the engine refuses ({5, 42}) queued ahead of a
// good one.
struct BadThenGood {
  RecordingSink* bad;
  RecordingSink* good;
  WorkItem good_item;
};
constexpr std::pair<BatchingMode, int> kOneAtATimeModes[] = {
    {BatchingMode::kNone, 4}, {BatchingMode::kContinuous, 1}};

class BatcherTest : public ::testing::Test {
 protected:
  static BatcherOptions Options(BatchingMode mode = BatchingMode::kContinuous) {
    BatcherOptions options;
    options.batching.mode = mode;
    options.batching.max_batch_size = 4;
    options.batching.max_batch_tokens = 10'000;
    options.batching.max_queue_delay = absl::ZeroDuration();
    options.max_queue_size = 8;
    return options;
  }

  void Create(const BatcherOptions& options,
              FakeEngineOptions engine_options = {}) {
    engine_options.clock = &clock_;
    engine_ = std::make_unique<FakeEngine>(engine_options);
    absl::StatusOr<std::unique_ptr<Batcher>> batcher =
        Batcher::Create(options, engine_.get(), &clock_, &observer_);
    ASSERT_TRUE(batcher.ok()) << batcher.status();
    batcher_ = *std::move(batcher);
  }

  static WorkItem Item(std::vector<int32_t> source, int max_new_tokens = 16,
                       absl::Time deadline = absl::InfiniteFuture(),
                       int beam_size = 1) {
    WorkItem item;
    item.request_id = "test";
    item.source = std::move(source);
    item.decode.max_new_tokens = max_new_tokens;
    item.decode.beam_size = beam_size;
    item.deadline = deadline;
    return item;
  }

  // Queues `item` with a new sink; the sink lives as long as the fixture.
  RecordingSink* Submit(WorkItem item, absl::StatusCode expected = kOk) {
    sinks_.emplace_back();
    RecordingSink* sink = &sinks_.back();
    EXPECT_EQ(batcher_->Submit(std::move(item), sink).code(), expected);
    return sink;
  }

  // A continuous batcher whose running batch may hold `budget` bytes, over a
  // fake engine whose requests take `bytes_per_position` per cache position.
  void CreateWithMemoryBudget(int64_t budget, int64_t bytes_per_position) {
    BatcherOptions options = Options();
    options.batching.max_batch_memory_bytes = budget;
    FakeEngineOptions engine_options;
    engine_options.bytes_per_position = bytes_per_position;
    Create(options, engine_options);
  }

  // A new batcher in `mode` (admitting at most `max_batch_size`) whose engine
  // refuses token 42, with {5, 42} queued ahead of the good {6}.
  BadThenGood SubmitBadThenGood(BatchingMode mode, int max_batch_size) {
    BatcherOptions options = Options(mode);
    options.batching.max_batch_size = max_batch_size;
    FakeEngineOptions engine_options;
    engine_options.invalid_token = 42;
    batcher_.reset();
    Create(options, engine_options);
    RecordingSink* bad = Submit(Item({5, 42}));
    const WorkItem good_item = Item({6});
    return {bad, Submit(good_item), good_item};
  }

  void PumpUntilIdle() {
    for (int i = 0; i < 1000 && (batcher_->queue_size() > 0 ||
                                 batcher_->running_size() > 0);
         ++i) {
      batcher_->Pump();
    }
    ASSERT_EQ(batcher_->queue_size() + batcher_->running_size(), 0)
        << "not idle";
  }

  void ExpectDecoded(const RecordingSink& sink, const WorkItem& item) {
    ASSERT_TRUE(sink.finished());
    ASSERT_TRUE(sink.status().ok()) << sink.status();
    const engine::SequenceResult expected =
        engine_->Expected(item.source, item.decode);
    EXPECT_EQ(sink.outcome().result.output_ids, expected.output_ids);
    EXPECT_EQ(sink.outcome().result.finish_reason, expected.finish_reason);
    EXPECT_EQ(sink.tokens(), expected.output_ids);
  }

  // Destroyed in reverse: the batcher first (it may still answer sinks), then
  // the sinks.
  SimulatedClock clock_;
  CountingObserver observer_;
  std::unique_ptr<FakeEngine> engine_;
  std::deque<RecordingSink> sinks_;
  std::unique_ptr<Batcher> batcher_;
};

// ---- Tier 2: single-step pump ----

TEST_F(BatcherTest, IdleServerWaitsForTheDelayFromTheOldestArrival) {
  BatcherOptions options = Options();
  options.batching.max_queue_delay = absl::Milliseconds(10);
  Create(options);
  const absl::Time t0 = clock_.Now();
  RecordingSink* a = Submit(Item({5, 6}));

  Batcher::PumpResult r = batcher_->Pump();
  EXPECT_EQ(r.admitted, 0);
  EXPECT_FALSE(r.stepped);
  EXPECT_EQ(r.wake_at, t0 + absl::Milliseconds(10));

  clock_.Advance(absl::Milliseconds(6));
  RecordingSink* b = Submit(Item({7}));
  r = batcher_->Pump();
  EXPECT_EQ(r.admitted, 0);
  EXPECT_EQ(r.wake_at, t0 + absl::Milliseconds(10))
      << "the delay counts from the oldest";

  clock_.Advance(absl::Milliseconds(4));
  r = batcher_->Pump();
  EXPECT_EQ(r.admitted, 2);
  EXPECT_TRUE(r.stepped);
  EXPECT_THAT(engine_->add_sizes(), ElementsAre(2)) << "encoded together";
  PumpUntilIdle();
  ExpectDecoded(*a, Item({5, 6}));
  ExpectDecoded(*b, Item({7}));
}

TEST_F(BatcherTest, FullBatchStartsWithoutWaiting) {
  BatcherOptions options = Options();
  options.batching.max_queue_delay = absl::Hours(1);
  options.batching.max_batch_size = 2;
  Create(options);
  Submit(Item({5}));
  Submit(Item({6}));
  Submit(Item({7}));
  const Batcher::PumpResult r = batcher_->Pump();
  EXPECT_EQ(r.admitted, 2);
  EXPECT_EQ(batcher_->queue_size(), 1);
}

TEST_F(BatcherTest, ContinuousBatchingAdmitsMidFlightAndAnswersFinishedAtOnce) {
  Create(Options());
  const WorkItem short_item = Item({5});  // 1 token, then EOS: 2 steps
  const WorkItem long_item = Item({6, 7, 8, 9, 10});  // 6 steps
  RecordingSink* a = Submit(short_item);
  RecordingSink* b = Submit(long_item);
  Batcher::PumpResult r = batcher_->Pump();
  EXPECT_EQ(r.admitted, 2);

  const WorkItem late_item = Item({11, 12});
  RecordingSink* c = Submit(late_item);
  r = batcher_->Pump();
  EXPECT_EQ(r.admitted, 1) << "joins the running batch before the next step";
  EXPECT_EQ(r.finished, 1);
  EXPECT_TRUE(a->finished()) << "answered in the step that finished it";
  EXPECT_FALSE(b->finished());
  EXPECT_EQ(a->outcome().max_batch_size, 3);

  PumpUntilIdle();
  ExpectDecoded(*a, short_item);
  ExpectDecoded(*b, long_item);
  ExpectDecoded(*c, late_item);
  EXPECT_THAT(engine_->add_sizes(), ElementsAre(2, 1));
  EXPECT_EQ(engine_->max_active(), 3);
}

TEST_F(BatcherTest, DynamicBatchingRunsEachBatchToTheEnd) {
  Create(Options(BatchingMode::kDynamic));
  const WorkItem first = Item({5, 6, 7});
  const WorkItem second = Item({8});
  RecordingSink* a = Submit(first);
  EXPECT_EQ(batcher_->Pump().admitted, 1);
  RecordingSink* b = Submit(second);
  while (!a->finished()) EXPECT_EQ(batcher_->Pump().admitted, 0);
  EXPECT_EQ(batcher_->Pump().admitted, 1);
  PumpUntilIdle();
  ExpectDecoded(*a, first);
  ExpectDecoded(*b, second);
  EXPECT_EQ(engine_->max_active(), 1);
}

TEST_F(BatcherTest, NoBatchingRunsOneRequestAtATime) {
  Create(Options(BatchingMode::kNone));
  for (int i = 0; i < 3; ++i) Submit(Item({5 + i, 6}));
  PumpUntilIdle();
  EXPECT_THAT(engine_->add_sizes(), ElementsAre(1, 1, 1));
  EXPECT_EQ(engine_->max_active(), 1);
}

TEST_F(BatcherTest, TokenBudgetLimitsTheRunningBatch) {
  BatcherOptions options = Options();
  options.batching.max_batch_tokens = 30;  // each request costs 5 + 10 = 15
  Create(options);
  for (int i = 0; i < 3; ++i) Submit(Item({5, 6, 7, 8, 9 + i}, 10));
  EXPECT_EQ(batcher_->Pump().admitted, 2);
  EXPECT_EQ(batcher_->queue_size(), 1);
  PumpUntilIdle();
  EXPECT_EQ(engine_->max_active(), 2);
}

TEST_F(BatcherTest, DeadlinePassedWhileQueuedIsAnsweredWithoutTheEngine) {
  BatcherOptions options = Options();
  options.batching.max_queue_delay = absl::Milliseconds(10);
  Create(options);
  const absl::Time t0 = clock_.Now();
  RecordingSink* a = Submit(Item({5}, 16, t0 + absl::Milliseconds(5)));
  EXPECT_EQ(batcher_->Pump().wake_at, t0 + absl::Milliseconds(5))
      << "wakes for the deadline";
  clock_.Advance(absl::Milliseconds(5));
  EXPECT_EQ(batcher_->Pump().answered_early, 1);
  ASSERT_TRUE(a->finished());
  EXPECT_EQ(a->status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(engine_->added_sources(), IsEmpty());
}

TEST_F(BatcherTest, DeadlinePassedWhileDecodingDropsTheSequenceAtTheNextStep) {
  FakeEngineOptions engine_options;
  engine_options.step_cost = absl::Milliseconds(1);
  Create(Options(), engine_options);
  const absl::Time t0 = clock_.Now();
  RecordingSink* a =
      Submit(Item({5, 6, 7, 8, 9, 10}, 16, t0 + absl::Microseconds(3500)));
  for (int step = 0; step < 4; ++step) EXPECT_TRUE(batcher_->Pump().stepped);
  EXPECT_FALSE(a->finished());
  const Batcher::PumpResult r = batcher_->Pump();
  EXPECT_EQ(r.dropped, 1);
  EXPECT_FALSE(r.stepped);
  ASSERT_TRUE(a->finished());
  EXPECT_EQ(a->status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(a->tokens(), SizeIs(4));
  EXPECT_THAT(engine_->cancelled(), SizeIs(1));
  EXPECT_EQ(engine_->active_sequences(), 0);
}

TEST_F(BatcherTest, CancelledWhileQueuedIsAnsweredWithoutTheEngine) {
  BatcherOptions options = Options();
  options.batching.max_queue_delay = absl::Milliseconds(10);
  Create(options);
  RecordingSink* a = Submit(Item({5}));
  batcher_->Pump();
  a->Cancel();
  EXPECT_EQ(batcher_->Pump().answered_early, 1);
  EXPECT_EQ(a->status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(engine_->added_sources(), IsEmpty());
}

TEST_F(BatcherTest, CancelledWhileDecodingFreesTheSlot) {
  BatcherOptions options = Options();
  options.batching.max_batch_size = 1;
  Create(options);
  RecordingSink* a = Submit(Item({5, 6, 7, 8, 9}));
  const WorkItem next = Item({10});
  RecordingSink* b = Submit(next);
  batcher_->Pump();
  a->Cancel();
  const Batcher::PumpResult r = batcher_->Pump();
  EXPECT_EQ(r.dropped, 1);
  EXPECT_EQ(r.admitted, 1) << "the freed slot is used in the same iteration";
  EXPECT_EQ(a->status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(engine_->cancelled(), SizeIs(1));
  PumpUntilIdle();
  ExpectDecoded(*b, next);
}

TEST_F(BatcherTest, FullQueueIsResourceExhaustedAndDrainingIsUnavailable) {
  BatcherOptions options = Options();
  options.max_queue_size = 2;
  Create(options);
  Submit(Item({5}));
  Submit(Item({6}));
  RecordingSink* rejected =
      Submit(Item({7}), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(observer_.rejected(absl::StatusCode::kResourceExhausted), 1);

  batcher_->StopAccepting();
  RecordingSink* late = Submit(Item({8}), absl::StatusCode::kUnavailable);
  PumpUntilIdle();  // accepted requests still run
  EXPECT_EQ(observer_.finished(kOk), 2);
  EXPECT_FALSE(rejected->finished());
  EXPECT_FALSE(late->finished());
}

TEST_F(BatcherTest, FailedStepAnswersTheBatchWithTheEngineCodeAndRecovers) {
  Create(Options());
  RecordingSink* a = Submit(Item({5, 6}));
  RecordingSink* b = Submit(Item({7, 8}));
  engine_->FailNextStep(absl::ResourceExhaustedError("boom"));
  batcher_->Pump();
  EXPECT_EQ(a->status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(b->status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(a->status().message()), ::testing::HasSubstr("boom"));
  EXPECT_EQ(engine_->active_sequences(), 0);

  const WorkItem next = Item({9});
  RecordingSink* c = Submit(next);
  PumpUntilIdle();
  ExpectDecoded(*c, next);
}

TEST_F(BatcherTest, FailedEncodeAnswersInternal) {
  Create(Options());
  engine_->FailNextAdd(absl::InvalidArgumentError("engine bug"));
  RecordingSink* a = Submit(Item({5}));
  batcher_->Pump();
  EXPECT_EQ(a->status().code(), absl::StatusCode::kInternal)
      << "not the client's fault";
}

TEST_F(BatcherTest, SequenceThatFailsInAStepIsAnsweredAloneWithItsStatus) {
  Create(Options());
  RecordingSink* bad = Submit(Item({5, 42, 6}));
  const WorkItem good_item = Item({7, 8, 9});
  RecordingSink* good = Submit(good_item);
  EXPECT_EQ(batcher_->Pump().admitted, 2);
  engine_->FailSequencesInNextStep(
      42, absl::ResourceExhaustedError("its cache could not grow to 4 MiB"));
  const Batcher::PumpResult r = batcher_->Pump();
  EXPECT_EQ(r.failed, 1);
  ASSERT_TRUE(bad->finished());
  EXPECT_EQ(bad->status(),
            absl::ResourceExhaustedError("its cache could not grow to 4 MiB"))
      << "its status as is";
  EXPECT_FALSE(good->finished());
  EXPECT_EQ(batcher_->running_size(), 1);
  PumpUntilIdle();
  ExpectDecoded(*good, good_item);
}

TEST_F(BatcherTest, EncodeOutOfMemoryIsRetriedInHalvesAndFailsOnlyTheCulprit) {
  FakeEngineOptions engine_options;
  engine_options.add_token_capacity = 5;  // source tokens per Add
  Create(Options(), engine_options);
  const WorkItem a_item = Item({5, 6, 7});
  const WorkItem b_item = Item({8, 9, 10});
  RecordingSink* a = Submit(a_item);
  RecordingSink* b = Submit(b_item);
  RecordingSink* huge = Submit(Item({11, 12, 13, 14, 15, 16}));
  const Batcher::PumpResult r = batcher_->Pump();
  EXPECT_EQ(r.admitted, 2);
  EXPECT_EQ(r.answered_at_admission, 1);
  ASSERT_TRUE(huge->finished());
  EXPECT_EQ(huge->status().code(), absl::StatusCode::kResourceExhausted)
      << huge->status();
  EXPECT_THAT(std::string(huge->status().message()),
              ::testing::HasSubstr("6 source tokens"));
  // [a, b, huge] failed, then [a] and [b, huge], then [b] and [huge].
  EXPECT_THAT(engine_->add_sizes(), ElementsAre(1, 1));
  PumpUntilIdle();
  ExpectDecoded(*a, a_item);
  ExpectDecoded(*b, b_item);
}

TEST_F(BatcherTest, RequestOverTheTokenBudgetIsRefusedAtSubmit) {
  BatcherOptions options = Options();
  options.batching.max_batch_tokens = 30;
  Create(options);
  sinks_.emplace_back();
  const absl::Status status =
      batcher_->Submit(Item({5, 6, 7, 8, 9}, 26), &sinks_.back());
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("31 tokens"));
  EXPECT_THAT(std::string(status.message()),
              ::testing::HasSubstr("30 (--max_batch_tokens)"));
  EXPECT_EQ(batcher_->queue_size(), 0);
  EXPECT_EQ(observer_.rejected(absl::StatusCode::kResourceExhausted), 1);
  EXPECT_FALSE(sinks_.back().finished());
  Submit(Item({5, 6, 7, 8, 9}, 25));  // exactly the budget: accepted
  PumpUntilIdle();
}

TEST_F(BatcherTest, RequestOverTheMemoryBudgetIsRefusedAtSubmit) {
  CreateWithMemoryBudget(/*budget=*/1000, /*bytes_per_position=*/10);
  sinks_.emplace_back();
  // 10 bytes x 4 beams x (5 + 21) positions.
  const absl::Status status = batcher_->Submit(
      Item({5, 6, 7, 8, 9}, 21, absl::InfiniteFuture(), 4), &sinks_.back());
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(status.message()),
              ::testing::HasSubstr("1040 bytes"));
  EXPECT_THAT(std::string(status.message()),
              ::testing::HasSubstr("1000 bytes (--memory_budget)"));
  EXPECT_FALSE(sinks_.back().finished());
  EXPECT_EQ(batcher_->queue_size(), 0);
}

TEST_F(BatcherTest, MemoryBudgetBoundsTheRunningBatch) {
  CreateWithMemoryBudget(/*budget=*/1000, /*bytes_per_position=*/10);
  // 10 bytes x (4 + 36) positions = 400 each: two fit, not three.
  for (int i = 0; i < 3; ++i) Submit(Item({5, 6, 7, 8 + i}, 36));
  EXPECT_EQ(batcher_->Pump().admitted, 2);
  EXPECT_EQ(batcher_->queue_size(), 1);
  PumpUntilIdle();
  EXPECT_EQ(engine_->max_active(), 2);
  EXPECT_EQ(observer_.finished(kOk), 3);
}

// Issue 15 (4): a long request waiting for room no longer holds up the short
// ones behind it, and is itself admitted as soon as the running long one
// finishes.
TEST_F(BatcherTest, ShortRequestsKeepFlowingWhileALongOneRunsAndOneWaits) {
  BatcherOptions options = Options();
  options.batching.max_batch_tokens = 100;
  options.max_queue_size = 100;
  Create(options);
  auto long_item = [](int32_t first) {
    std::vector<int32_t> source;
    for (int i = 0; i < 30; ++i) source.push_back(first + i % 3);
    return Item(source, 40);  // 70 tokens, 31 steps
  };
  const WorkItem long1_item = long_item(10);
  const WorkItem long2_item = long_item(20);
  RecordingSink* long1 = Submit(long1_item);
  ASSERT_EQ(batcher_->Pump().admitted, 1);
  RecordingSink* long2 = Submit(long2_item);  // does not fit beside long1
  std::vector<RecordingSink*> shorts;
  std::vector<WorkItem> short_items;
  int long1_done = -1;
  int long2_started = -1;
  for (int pump = 1; pump < 200 && !long2->finished(); ++pump) {
    if (long1_done < 0) {
      short_items.push_back(Item({30 + pump % 50, 31}, 8));  // 10 tokens
      shorts.push_back(Submit(short_items.back()));
    }
    batcher_->Pump();
    if (long1_done < 0 && long1->finished()) long1_done = pump;
    if (long2_started < 0 && !long2->tokens().empty()) long2_started = pump;
    // Every short request so far is answered within a few steps of arriving.
    for (size_t i = 0; i + 4 < shorts.size(); ++i) {
      ASSERT_TRUE(shorts[i]->finished())
          << "short request " << i << " still waits at pump " << pump;
    }
  }
  ASSERT_GT(long1_done, 0);
  EXPECT_EQ(long2_started, long1_done + 1)
      << "the waiting long request starts as soon as there is room";
  PumpUntilIdle();
  ExpectDecoded(*long1, long1_item);
  ExpectDecoded(*long2, long2_item);
  for (size_t i = 0; i < shorts.size(); ++i) {
    ExpectDecoded(*shorts[i], short_items[i]);
  }
  EXPECT_GT(shorts.size(), 20u);
}

// Issue 15 (2): a request answered at admission counts as work, so the loop
// looks at the queue again instead of sleeping with a request in it.
TEST_F(BatcherTest, BadRequestAheadOfAGoodOneCountsAsWork) {
  for (const auto& [mode, max_batch_size] : kOneAtATimeModes) {
    SCOPED_TRACE(BatchingModeName(mode));
    const auto [bad, good, good_item] = SubmitBadThenGood(mode, max_batch_size);
    const Batcher::PumpResult r = batcher_->Pump();
    EXPECT_EQ(r.answered_at_admission, 1);
    EXPECT_TRUE(r.did_work());
    EXPECT_EQ(bad->status().code(), absl::StatusCode::kInvalidArgument);
    PumpUntilIdle();
    ExpectDecoded(*good, good_item);
  }
}

TEST_F(BatcherTest, RequestsThatFailToEncodeCountAsWork) {
  BatcherOptions options = Options(BatchingMode::kNone);
  Create(options);
  engine_->FailNextAdd(absl::InvalidArgumentError("engine bug"));
  RecordingSink* a = Submit(Item({5}));
  Submit(Item({6}));
  const Batcher::PumpResult r = batcher_->Pump();
  EXPECT_EQ(a->status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(r.answered_at_admission, 1);
  EXPECT_TRUE(r.did_work());
}

TEST_F(BatcherTest, InputTheEngineRejectsIsInvalidArgumentAndOthersRun) {
  FakeEngineOptions engine_options;
  engine_options.invalid_token = 42;
  Create(Options(), engine_options);
  RecordingSink* bad = Submit(Item({5, 42}));
  const WorkItem good_item = Item({6});
  RecordingSink* good = Submit(good_item);
  EXPECT_EQ(batcher_->Pump().admitted, 1);
  EXPECT_EQ(bad->status().code(), absl::StatusCode::kInvalidArgument);
  PumpUntilIdle();
  ExpectDecoded(*good, good_item);
}

TEST_F(BatcherTest, SinkThatCannotTakeTokensIsDropped) {
  Create(Options());
  RecordingSink* a = Submit(Item({5, 6, 7}));
  a->FailTokens(absl::ResourceExhaustedError("reader too slow"));
  const Batcher::PumpResult r = batcher_->Pump();
  EXPECT_EQ(r.dropped, 1);
  EXPECT_EQ(a->status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(engine_->cancelled(), SizeIs(1));
}

TEST_F(BatcherTest, GreedyStreamsTokenByTokenBeamsAtTheEnd) {
  Create(Options());
  const WorkItem greedy = Item({5, 6, 7});
  const WorkItem beam = Item({5, 6, 7}, 16, absl::InfiniteFuture(), 3);
  RecordingSink* g = Submit(greedy);
  RecordingSink* b = Submit(beam);
  PumpUntilIdle();
  ExpectDecoded(*g, greedy);
  ExpectDecoded(*b, beam);
  EXPECT_EQ(g->token_calls(), 3);
  EXPECT_EQ(b->token_calls(), 1);
}

TEST_F(BatcherTest, TimingUsesTheClock) {
  BatcherOptions options = Options();
  options.batching.max_queue_delay = absl::Milliseconds(10);
  FakeEngineOptions engine_options;
  engine_options.encode_cost = absl::Milliseconds(2);
  engine_options.step_cost = absl::Milliseconds(1);
  Create(options, engine_options);
  RecordingSink* a = Submit(Item({5, 6}, 2));  // LENGTH after 2 steps
  RecordingSink* b = Submit(Item({7, 8}, 2));
  clock_.Advance(absl::Milliseconds(10));
  PumpUntilIdle();
  for (RecordingSink* sink : {a, b}) {
    const Outcome outcome = sink->outcome();
    EXPECT_EQ(outcome.queue_time, absl::Milliseconds(10));
    // Encode and steps are shared by the two: (2ms + 2 * 1ms) / 2.
    EXPECT_EQ(outcome.compute_time, absl::Milliseconds(2));
    EXPECT_EQ(outcome.total_time, absl::Milliseconds(14));
    EXPECT_EQ(outcome.max_batch_size, 2);
  }
}

TEST_F(BatcherTest, StopAnswersQueuedAndRunningUnavailable) {
  BatcherOptions options = Options();
  options.batching.max_batch_size = 1;
  Create(options);
  RecordingSink* a = Submit(Item({5, 6, 7}));
  RecordingSink* b = Submit(Item({8}));
  batcher_->Pump();
  batcher_->Stop();
  EXPECT_EQ(a->status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(b->status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(engine_->active_sequences(), 0);
  Submit(Item({9}), absl::StatusCode::kUnavailable);
}

TEST_F(BatcherTest, RejectsBadOptions) {
  FakeEngine engine;
  BatcherOptions options = Options();
  options.batching.max_batch_size = 0;
  EXPECT_EQ(
      Batcher::Create(options, &engine, &clock_, &observer_).status().code(),
      absl::StatusCode::kInvalidArgument);
  options = Options();
  options.max_queue_size = 0;
  EXPECT_EQ(
      Batcher::Create(options, &engine, &clock_, &observer_).status().code(),
      absl::StatusCode::kInvalidArgument);
  options = Options();
  options.batching.max_queue_delay = -absl::Milliseconds(1);
  EXPECT_EQ(
      Batcher::Create(options, &engine, &clock_, &observer_).status().code(),
      absl::StatusCode::kInvalidArgument);
}

// ---- Tier 3: the threaded batcher ----

TEST_F(BatcherTest, ThreadedBatcherWaitsOnTheClockNotOnWallTime) {
  BatcherOptions options = Options();
  options.batching.max_queue_delay = absl::Milliseconds(50);
  Create(options);
  batcher_->Start();
  const WorkItem item = Item({5, 6});
  RecordingSink* a = Submit(item);
  clock_.AwaitParked(
      1);  // the inference thread has seen the request and waits for time
  EXPECT_THAT(engine_->added_sources(), IsEmpty());
  EXPECT_FALSE(a->finished());
  clock_.Advance(absl::Milliseconds(50));
  a->Wait();
  ExpectDecoded(*a, item);
}

TEST_F(BatcherTest, ThreadedBatcherServesManyConcurrentSubmitters) {
  BatcherOptions options = Options();
  options.max_queue_size = 1000;
  Create(options);
  batcher_->Start();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  std::vector<std::vector<WorkItem>> items(kThreads);
  absl::BitGen bits;
  for (auto& list : items) {
    for (int i = 0; i < kPerThread; ++i) {
      std::vector<int32_t> source(absl::Uniform(bits, 1, 12));
      for (int32_t& id : source) id = absl::Uniform(bits, 3, 100);
      list.push_back(Item(source, absl::Uniform(bits, 1, 16)));
    }
  }
  std::vector<std::deque<RecordingSink>> sinks(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (const WorkItem& item : items[t]) {
        sinks[t].emplace_back();
        ASSERT_TRUE(batcher_->Submit(item, &sinks[t].back()).ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      sinks[t][i].Wait();
      ExpectDecoded(sinks[t][i], items[t][i]);
    }
  }
  batcher_->Stop();  // before the local sinks go
}

TEST_F(BatcherTest, ThreadedStopAnswersWhatIsLeftUnavailable) {
  BatcherOptions options = Options();
  options.batching.max_batch_size = 1;
  Create(options);
  engine_->HoldSteps();
  batcher_->Start();
  RecordingSink* a = Submit(Item({5, 6, 7, 8, 9, 10}));
  engine_->AwaitBlockedInStep();
  RecordingSink* b = Submit(Item({11}));
  std::thread stopper([&] { batcher_->Stop(); });
  // Stop() sets "stopping" and "not accepting" together: once one shows, the
  // thread will leave after the step it is in.
  while (batcher_->accepting()) std::this_thread::yield();
  engine_->ReleaseSteps();
  stopper.join();
  EXPECT_EQ(a->status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(b->status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(engine_->active_sequences(), 0);
}

// Issue 15 (2) on the threaded batcher: with the bad request ahead, the good
// one used to wait for an unrelated wake-up. The loop parks only with nothing
// left to do, so once it parks the good one must be answered.
TEST_F(BatcherTest, ThreadedBatcherAnswersTheGoodRequestBehindABadOne) {
  for (const auto& [mode, max_batch_size] : kOneAtATimeModes) {
    SCOPED_TRACE(BatchingModeName(mode));
    const auto [bad, good, good_item] = SubmitBadThenGood(mode, max_batch_size);
    batcher_->Start();
    clock_.AwaitParked(1);
    EXPECT_EQ(bad->status().code(), absl::StatusCode::kInvalidArgument);
    ASSERT_TRUE(good->finished()) << "the batcher sleeps with a request queued";
    ExpectDecoded(*good, good_item);
    batcher_->Stop();
  }
}

TEST_F(BatcherTest, AwaitIdleWaitsForAcceptedRequests) {
  Create(Options());
  engine_->HoldSteps();
  batcher_->Start();
  const WorkItem item = Item({5, 6});
  RecordingSink* a = Submit(item);
  engine_->AwaitBlockedInStep();
  batcher_->StopAccepting();
  Submit(Item({7}), absl::StatusCode::kUnavailable);
  bool idle = false;
  std::thread drainer(
      [&] { idle = batcher_->AwaitIdle(absl::InfiniteFuture()); });
  engine_->ReleaseSteps();
  drainer.join();
  EXPECT_TRUE(idle);
  ExpectDecoded(*a, item);
}

TEST_F(BatcherTest, AwaitIdleGivesUpAtTheDeadlineOnTheClock) {
  Create(Options());
  engine_->HoldSteps();
  batcher_->Start();
  Submit(Item({5, 6}));
  engine_->AwaitBlockedInStep();
  bool idle = true;
  std::thread drainer(
      [&] { idle = batcher_->AwaitIdle(clock_.Now() + absl::Seconds(30)); });
  clock_.AwaitParked(1);
  clock_.Advance(absl::Seconds(30));
  drainer.join();
  EXPECT_FALSE(idle);
  engine_->ReleaseSteps();
}

}  // namespace
}  // namespace attnserve::server
