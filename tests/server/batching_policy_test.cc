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
  int active_sequences;
  int active_token_cost;
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
  options.max_queue_delay = absl::Milliseconds(10);
  return options;
}

const absl::Time kNever = absl::InfiniteFuture();
constexpr BatchingMode kC = BatchingMode::kContinuous;
constexpr BatchingMode kD = BatchingMode::kDynamic;
constexpr BatchingMode kN = BatchingMode::kNone;

std::vector<PolicyCase> Cases() {
  return {
      {"EmptyQueueWaitsForAnArrival", kC, {}, 0, 0, At(0), {0, kNever}},
      {"EmptyQueueWhileRunning", kC, {}, 2, 20, At(0), {0, kNever}},
      // Idle server: the first batch fills until the oldest request has waited
      // the delay.
      {"IdleWaitsFromOldestArrival",
       kC,
       {{At(0), 10}, {At(7), 10}},
       0,
       0,
       At(8),
       {0, At(10)}},
      {"IdleAdmitsAllWhenOldestIsDue",
       kC,
       {{At(0), 10}, {At(7), 10}},
       0,
       0,
       At(10),
       {2, kNever}},
      {"IdleAdmitsFullBatchAtOnce",
       kC,
       {{At(0), 1}, {At(0), 1}, {At(0), 1}, {At(0), 1}, {At(0), 1}},
       0,
       0,
       At(0),
       {4, kNever}},
      {"IdleAdmitsWhenTokenBudgetIsFull",
       kC,
       {{At(0), 60}, {At(1), 60}},
       0,
       0,
       At(1),
       {1, kNever}},
      {"OversizedRequestRunsAloneOnIdleEngine",
       kC,
       {{At(0), 500}, {At(0), 1}},
       0,
       0,
       At(0),
       {1, kNever}},
      {"UrgentRequestStartsAtOnce",
       kC,
       {{At(0), 10}, {At(1), 10, true}},
       0,
       0,
       At(1),
       {2, kNever}},
      // Running batch: whatever fits joins at once, no delay.
      {"RunningAdmitsWithoutDelay",
       kC,
       {{At(5), 10}},
       1,
       10,
       At(5),
       {1, kNever}},
      {"RunningAdmitsUpToBatchSize",
       kC,
       {{At(0), 1}, {At(0), 1}, {At(0), 1}},
       2,
       2,
       At(0),
       {2, kNever}},
      {"RunningBatchFullAdmitsNothing",
       kC,
       {{At(0), 1}},
       4,
       4,
       At(50),
       {0, kNever}},
      {"RunningTokenBudgetBlocksTheHead",
       kC,
       {{At(0), 50}, {At(0), 1}},
       1,
       60,
       At(0),
       {0, kNever}},
      {"OversizedWaitsForAnIdleEngine",
       kC,
       {{At(0), 500}},
       1,
       1,
       At(0),
       {0, kNever}},
      {"RunningAdmitsPrefixThatFitsBudget",
       kC,
       {{At(0), 30}, {At(0), 30}, {At(0), 1}},
       1,
       40,
       At(0),
       {2, kNever}},
      // Dynamic: the same start rule, but nothing joins a running batch.
      {"DynamicIdleWaits", kD, {{At(0), 10}}, 0, 0, At(3), {0, At(10)}},
      {"DynamicIdleDue",
       kD,
       {{At(0), 10}, {At(9), 10}},
       0,
       0,
       At(12),
       {2, kNever}},
      {"DynamicRunningAdmitsNothing",
       kD,
       {{At(0), 1}},
       1,
       1,
       At(100),
       {0, kNever}},
      {"DynamicIdleFullBatch",
       kD,
       {{At(0), 1}, {At(0), 1}, {At(0), 1}, {At(0), 1}, {At(0), 1}},
       0,
       0,
       At(0),
       {4, kNever}},
      // None: one at a time, no delay.
      {"NoneIdleAdmitsOneAtOnce",
       kN,
       {{At(0), 1}, {At(0), 1}},
       0,
       0,
       At(0),
       {1, kNever}},
      {"NoneRunningAdmitsNothing",
       kN,
       {{At(0), 1}},
       1,
       1,
       At(100),
       {0, kNever}},
  };
}

class PolicyTableTest : public ::testing::TestWithParam<PolicyCase> {};

TEST_P(PolicyTableTest, Decides) {
  const PolicyCase& c = GetParam();
  BatchState state;
  state.queue = c.queue;
  state.active_sequences = c.active_sequences;
  state.active_token_cost = c.active_token_cost;
  const BatchDecision decision = DecideBatch(state, c.now, Options(c.mode));
  EXPECT_EQ(decision.admit, c.expected.admit);
  EXPECT_EQ(decision.wake_at, c.expected.wake_at);
}

INSTANTIATE_TEST_SUITE_P(Policy, PolicyTableTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

TEST(BatchingPolicyTest, ZeroDelayAdmitsAtOnce) {
  BatchingOptions options = Options(kC);
  options.max_queue_delay = absl::ZeroDuration();
  const std::vector<QueuedRequest> queue = {{At(0), 1}};
  BatchState state;
  state.queue = queue;
  EXPECT_EQ(DecideBatch(state, At(0), options), (BatchDecision{1, kNever}));
}

TEST(BatchingPolicyTest, DrainingStartsWithoutWaitingForTheBatchToFill) {
  const std::vector<QueuedRequest> queue = {{At(0), 1}};
  BatchState state;
  state.queue = queue;
  EXPECT_EQ(DecideBatch(state, At(0), Options(kD)), (BatchDecision{0, At(10)}));
  state.draining = true;
  EXPECT_EQ(DecideBatch(state, At(0), Options(kD)), (BatchDecision{1, kNever}));
}

TEST(BatchingPolicyTest, TokenCostCountsBeamsSourceAndNewTokens) {
  engine::DecodeOptions options;
  options.max_new_tokens = 10;
  options.beam_size = 3;
  EXPECT_EQ(TokenCost(5, options), 45);
  options.beam_size = 1;
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
