// Tier 1 of the batcher tests: the policy as a table of (queue, running batch,
// now, options)
// -> decision.

#include "server/batching_policy.h"

#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace attnserve::server {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);
absl::Time At(int ms) { return kT0 + absl::Milliseconds(ms); }

struct PolicyCase {
  std::string name;
  BatchingMode mode;
  std::vector<QueuedRequest> queue;
  std::vector<RunningRequest> running;
  absl::Time now;
  BatchDecision expected;

  // gtest prints the case by its name (in test listings and ctest).
  friend void PrintTo(const PolicyCase& c, std::ostream* os) { *os << c.name; }
};

BatchingOptions Options(BatchingMode mode) {
  BatchingOptions options;
  options.mode = mode;
  options.max_batch_size = 4;
  options.max_batch_tokens = 100;
  options.max_batch_memory_bytes = 1000;
  options.max_queue_delay = absl::Milliseconds(10);
  return options;
}

const absl::Time kNever = absl::InfiniteFuture();
constexpr BatchingMode kC = BatchingMode::kContinuous;
constexpr BatchingMode kD = BatchingMode::kDynamic;
constexpr BatchingMode kN = BatchingMode::kNone;

// A waiting request that arrived at `ms`, of `tokens` and `bytes`, that takes
// at most `steps` decode steps.
QueuedRequest Q(int ms, int tokens, int steps = 16, int64_t bytes = 0,
                bool urgent = false) {
  return {At(ms), tokens, bytes, steps, urgent};
}
// A running request with `steps` left at worst.
RunningRequest R(int tokens, int steps = 16, int64_t bytes = 0) {
  return {tokens, bytes, steps};
}
BatchDecision Admit(std::vector<int> admit) {
  return {std::move(admit), kNever};
}
BatchDecision WaitUntil(absl::Time t) { return {{}, t}; }
const BatchDecision kNothing = Admit({});

std::vector<PolicyCase> Cases() {
  return {
      {"EmptyQueueWaitsForAnArrival", kC, {}, {}, At(0), kNothing},
      {"EmptyQueueWhileRunning", kC, {}, {R(10), R(10)}, At(0), kNothing},
      // Idle server: the first batch fills until the oldest request has waited
      // the delay.
      {"IdleWaitsFromOldestArrival",
       kC,
       {Q(0, 10), Q(7, 10)},
       {},
       At(8),
       WaitUntil(At(10))},
      {"IdleAdmitsAllWhenOldestIsDue",
       kC,
       {Q(0, 10), Q(7, 10)},
       {},
       At(10),
       Admit({0, 1})},
      {"IdleAdmitsFullBatchAtOnce",
       kC,
       {Q(0, 1), Q(0, 1), Q(0, 1), Q(0, 1), Q(0, 1)},
       {},
       At(0),
       Admit({0, 1, 2, 3})},
      {"IdleAdmitsWhenTokenBudgetIsFull",
       kC,
       {Q(0, 60), Q(1, 60)},
       {},
       At(1),
       Admit({0})},
      {"IdleAdmitsWhenMemoryBudgetIsFull",
       kC,
       {Q(0, 1, 16, 600), Q(1, 1, 16, 600)},
       {},
       At(1),
       Admit({0})},
      {"UrgentRequestStartsAtOnce",
       kC,
       {Q(0, 10), Q(1, 10, 16, 0, true)},
       {},
       At(1),
       Admit({0, 1})},
      // Running batch: whatever fits joins at once, no delay.
      {"RunningAdmitsWithoutDelay", kC, {Q(5, 10)}, {R(10)}, At(5), Admit({0})},
      {"RunningAdmitsUpToBatchSize",
       kC,
       {Q(0, 1), Q(0, 1), Q(0, 1)},
       {R(1), R(1)},
       At(0),
       Admit({0, 1})},
      {"RunningBatchFullAdmitsNothing",
       kC,
       {Q(0, 1, 1)},
       {R(1), R(1), R(1), R(1)},
       At(50),
       kNothing},
      {"RunningAdmitsPrefixThatFitsBudget",
       kC,
       {Q(0, 30), Q(0, 30), Q(0, 1)},
       {R(40)},
       At(0),
       Admit({0, 1})},
      {"RunningMemoryBudgetBlocksTheHead",
       kC,
       {Q(0, 1, 16, 200)},
       {R(1, 16, 900)},
       At(0),
       kNothing},
      {"RunningMemoryBudgetAdmitsWhatFits",
       kC,
       {Q(0, 1, 16, 100)},
       {R(1, 16, 900)},
       At(0),
       Admit({0})},
      // A blocked head: later requests pass it only if, at worst, they finish
      // by the step at which it fits (its shadow step).
      {"BlockedHeadIsPassedByWhatEndsBeforeItFits",
       kC,
       {Q(0, 50), Q(1, 10, 5)},
       {R(60, 10)},
       At(1),
       Admit({1})},
      {"BlockedHeadIsPassedByWhatEndsAtTheStepItFits",
       kC,
       {Q(0, 50), Q(1, 10, 10)},
       {R(60, 10)},
       At(1),
       Admit({1})},
      {"BlockedHeadIsNotPassedByWhatWouldDelayIt",
       kC,
       {Q(0, 50), Q(1, 10, 11)},
       {R(60, 10)},
       At(1),
       kNothing},
      {"PassingRequestsMustFitNow",
       kC,
       {Q(0, 50), Q(1, 45, 2)},
       {R(60, 10)},
       At(1),
       kNothing},
      {"PassingRequestsTakeTheRoomInOrder",
       kC,
       {Q(0, 50), Q(1, 30, 2), Q(2, 30, 2), Q(3, 10, 2)},
       {R(60, 10)},
       At(3),
       Admit({1, 3})},
      {"ShadowIsTheEarliestStepTheHeadFits",
       kC,
       {Q(0, 40, 20), Q(0, 40, 16), Q(0, 10, 5), Q(0, 10, 4)},
       {R(30, 4)},
       At(0),
       Admit({0, 3})},
      {"ShadowCountsMemoryToo",
       kC,
       {Q(0, 1, 16, 500), Q(1, 1, 3, 100)},
       {R(1, 3, 300), R(1, 8, 300)},
       At(1),
       Admit({1})},
      {"IdleBatchIsBackfilledBesideABlockedRequest",
       kC,
       {Q(0, 60, 20), Q(0, 60, 20), Q(0, 10, 5)},
       {},
       At(0),
       Admit({0, 2})},
      // Dynamic: the same start rule, plain FIFO, nothing joins a running
      // batch.
      {"DynamicIdleWaits", kD, {Q(0, 10)}, {}, At(3), WaitUntil(At(10))},
      {"DynamicIdleDue", kD, {Q(0, 10), Q(9, 10)}, {}, At(12), Admit({0, 1})},
      {"DynamicRunningAdmitsNothing", kD, {Q(0, 1)}, {R(1)}, At(100), kNothing},
      {"DynamicIdleFullBatch",
       kD,
       {Q(0, 1), Q(0, 1), Q(0, 1), Q(0, 1), Q(0, 1)},
       {},
       At(0),
       Admit({0, 1, 2, 3})},
      {"DynamicIsFifo",
       kD,
       {Q(0, 60, 20), Q(0, 60, 20), Q(0, 10, 5)},
       {},
       At(0),
       Admit({0})},
      // None: one at a time, no delay.
      {"NoneIdleAdmitsOneAtOnce",
       kN,
       {Q(0, 1), Q(0, 1)},
       {},
       At(0),
       Admit({0})},
      {"NoneRunningAdmitsNothing", kN, {Q(0, 1)}, {R(1)}, At(100), kNothing},
  };
}

class PolicyTableTest : public ::testing::TestWithParam<PolicyCase> {};

TEST_P(PolicyTableTest, Decides) {
  const PolicyCase& c = GetParam();
  BatchState state;
  state.queue = c.queue;
  state.running = c.running;
  const BatchDecision decision = DecideBatch(state, c.now, Options(c.mode));
  EXPECT_EQ(decision.admit, c.expected.admit);
  EXPECT_EQ(decision.wake_at, c.expected.wake_at);
}

INSTANTIATE_TEST_SUITE_P(Policy, PolicyTableTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

TEST(BatchingPolicyTest, ZeroDelayAdmitsAtOnce) {
  BatchingOptions options = Options(kC);
  options.max_queue_delay = absl::ZeroDuration();
  const std::vector<QueuedRequest> queue = {Q(0, 1)};
  BatchState state;
  state.queue = queue;
  EXPECT_EQ(DecideBatch(state, At(0), options), Admit({0}));
}

TEST(BatchingPolicyTest, DrainingStartsWithoutWaitingForTheBatchToFill) {
  const std::vector<QueuedRequest> queue = {Q(0, 1)};
  BatchState state;
  state.queue = queue;
  EXPECT_EQ(DecideBatch(state, At(0), Options(kD)), WaitUntil(At(10)));
  state.draining = true;
  EXPECT_EQ(DecideBatch(state, At(0), Options(kD)), Admit({0}));
}

TEST(BatchingPolicyTest, NoMemoryBudgetCountsNoBytes) {
  BatchingOptions options = Options(kC);
  options.max_batch_memory_bytes = 0;
  const std::vector<QueuedRequest> queue = {Q(0, 1, 16, int64_t{1} << 50)};
  const std::vector<RunningRequest> running = {R(1, 16, int64_t{1} << 50)};
  BatchState state;
  state.queue = queue;
  state.running = running;
  EXPECT_EQ(DecideBatch(state, At(0), options), Admit({0}));
}

// However many short requests keep coming, a blocked head is admitted by the
// time the running batch's worst case says it fits: the passing requests never
// hold it up.
TEST(BatchingPolicyTest, BlockedHeadIsNotStarvedByShortRequests) {
  const BatchingOptions options = Options(kC);
  std::vector<RunningRequest> running = {R(60, 10)};
  std::vector<QueuedRequest> queue = {Q(0, 50, 30)};
  int head_admitted_at = -1;
  for (int step = 0; step < 40 && head_admitted_at < 0; ++step) {
    queue.push_back(Q(step, 5, 3));  // a short request every step
    BatchState state;
    state.queue = queue;
    state.running = running;
    const BatchDecision decision = DecideBatch(state, At(step), options);
    std::vector<QueuedRequest> staying;
    for (int i = 0, next = 0; i < static_cast<int>(queue.size()); ++i) {
      if (next < static_cast<int>(decision.admit.size()) &&
          decision.admit[next] == i) {
        ++next;
        if (i == 0 && queue[i].token_cost == 50) head_admitted_at = step;
        running.push_back(R(queue[i].token_cost, queue[i].max_steps));
      } else {
        staying.push_back(queue[i]);
      }
    }
    queue = staying;
    // One decode step: everything advances, what reached 0 leaves.
    std::vector<RunningRequest> left;
    for (RunningRequest r : running) {
      if (--r.remaining_steps > 0) left.push_back(r);
    }
    running = left;
  }
  // The first request finishes after its 10th step; the head joins before the
  // 11th (step index 10).
  EXPECT_EQ(head_admitted_at, 10);
}

TEST(BatchingPolicyTest, CheckFitsAloneNamesTheCostTheBudgetAndTheFlag) {
  const BatchingOptions options = Options(kC);
  EXPECT_TRUE(CheckFitsAlone(100, 1000, options).ok());
  const absl::Status tokens = CheckFitsAlone(101, 0, options);
  EXPECT_EQ(tokens.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(tokens.message().find("101 tokens"), std::string::npos) << tokens;
  EXPECT_NE(tokens.message().find("100 (--max_batch_tokens)"),
            std::string::npos)
      << tokens;
  const absl::Status bytes = CheckFitsAlone(1, 1001, options);
  EXPECT_EQ(bytes.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(bytes.message().find("1001 bytes"), std::string::npos) << bytes;
  EXPECT_NE(bytes.message().find("1000 bytes (--memory_budget)"),
            std::string::npos)
      << bytes;
  BatchingOptions no_budget = options;
  no_budget.max_batch_memory_bytes = 0;
  EXPECT_TRUE(CheckFitsAlone(1, int64_t{1} << 60, no_budget).ok());
}

TEST(BatchingPolicyTest, TokenCostCountsBeamsSourceAndNewTokens) {
  engine::DecodeOptions options;
  options.max_new_tokens = 10;
  options.beam_size = 3;
  EXPECT_EQ(TokenCost(5, options), 45);
  options.beam_size = 1;
  EXPECT_EQ(TokenCost(5, options), 15);
}

TEST(BatchingPolicyTest, TokenCostCountsSampledSequencesAsRows) {
  engine::DecodeOptions options;
  options.max_new_tokens = 10;
  options.num_return_sequences = 4;
  EXPECT_EQ(TokenCost(5, options), 15) << "greedy: one row whatever n says";
  options.do_sample = true;
  EXPECT_EQ(TokenCost(5, options), 60);
  options.num_return_sequences = 1;
  EXPECT_EQ(TokenCost(5, options), 15);
}

TEST(BatchingPolicyTest, ParsesModeNames) {
  for (BatchingMode mode : {kC, kD, kN}) {
    absl::StatusOr<BatchingMode> parsed =
        ParseBatchingMode(BatchingModeName(mode));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, mode);
  }
  absl::StatusOr<BatchingMode> bad = ParseBatchingMode("static");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("continuous, dynamic, none"),
            std::string::npos);
}

TEST(BatchingPolicyTest, QueueDelayAutoDependsOnTheMode) {
  EXPECT_EQ(*ParseQueueDelay("auto", kC), absl::ZeroDuration());
  EXPECT_EQ(*ParseQueueDelay("auto", kN), absl::ZeroDuration());
  EXPECT_EQ(*ParseQueueDelay("auto", kD), absl::Milliseconds(5));
  EXPECT_EQ(*ParseQueueDelay("250us", kC), absl::Microseconds(250));
  EXPECT_EQ(*ParseQueueDelay("0", kD), absl::ZeroDuration());
  for (const char* bad : {"-1ms", "inf", "soon", ""}) {
    absl::StatusOr<absl::Duration> parsed = ParseQueueDelay(bad, kD);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_NE(parsed.status().message().find("max_queue_delay"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace attnserve::server
