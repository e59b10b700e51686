// The load generator against the fake service: every call it makes is
// counted, with the status the server answered. No assertion depends on how
// fast anything runs.

#include "client/load_generator.h"

#include <map>

#include "client/request_mix.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_seq2seq.h"

namespace attnserve::client {
namespace {

using testing::FakeServer;
using ::testing::HasSubstr;

RequestMix Mix(RequestMixOptions options) {
  absl::StatusOr<RequestMix> mix = RequestMix::Create(std::move(options));
  EXPECT_TRUE(mix.ok()) << mix.status();
  return *std::move(mix);
}

// Random sources; max_new_tokens 1..4, so about a quarter of the calls are
// rejected by the fake (kRejectMaxNewTokens).
RequestMixOptions RandomMix() {
  RequestMixOptions options;
  options.src_len = *LengthDistribution::Parse("1:5");
  options.max_new_tokens = *LengthDistribution::Parse("1:4");
  options.vocab_size = testing::kVocabSize;
  options.excluded_ids = {0, 1, 2, testing::kHoldId};
  return options;
}

std::map<grpc::StatusCode, int> ClientCounts(const LoadResult& result) {
  std::map<grpc::StatusCode, int> counts;
  for (const CallRecord& call : result.calls) ++counts[call.code];
  return counts;
}

int64_t OkTokens(const LoadResult& result) {
  int64_t tokens = 0;
  for (const CallRecord& call : result.calls) {
    if (call.code == grpc::StatusCode::OK) tokens += call.generated_tokens;
  }
  return tokens;
}

class LoadGeneratorTest : public ::testing::Test {
 protected:
  LoadGeneratorTest()
      : channel_(grpc::CreateChannel(server_.address(),
                                     grpc::InsecureChannelCredentials())),
        stub_(channel_) {}

  FakeServer server_;
  std::shared_ptr<grpc::Channel> channel_;
  v1::Seq2Seq::Stub stub_;
};

TEST_F(LoadGeneratorTest, ClosedLoopCountsEveryCallAndStatus) {
  RequestMix mix = Mix(RandomMix());
  LoadOptions options;
  options.concurrency = 4;
  options.requests = 60;
  absl::StatusOr<LoadResult> result = RunLoad(stub_, mix, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->calls.size(), 60u);
  EXPECT_EQ(result->warmup_calls, 0);
  EXPECT_EQ(result->dropped, 0);
  EXPECT_EQ(ClientCounts(*result), server_.service().status_counts());
  EXPECT_EQ(ClientCounts(*result).count(grpc::StatusCode::RESOURCE_EXHAUSTED),
            1u);
  EXPECT_EQ(OkTokens(*result), server_.service().generated_tokens());
  for (const CallRecord& call : result->calls) {
    EXPECT_FALSE(call.time_to_first_token.has_value());
  }
}

TEST_F(LoadGeneratorTest, StreamingRecordsFirstTokenAndGaps) {
  RequestMix mix = Mix(RandomMix());
  LoadOptions options;
  options.concurrency = 3;
  options.requests = 30;
  options.stream = true;
  absl::StatusOr<LoadResult> result = RunLoad(stub_, mix, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->calls.size(), 30u);
  EXPECT_EQ(ClientCounts(*result), server_.service().status_counts());
  EXPECT_EQ(OkTokens(*result), server_.service().generated_tokens());
  for (const CallRecord& call : result->calls) {
    if (call.code != grpc::StatusCode::OK) continue;
    // The fake streams one token per message.
    ASSERT_TRUE(call.time_to_first_token.has_value());
    EXPECT_LE(*call.time_to_first_token, call.latency);
    EXPECT_EQ(static_cast<int64_t>(call.token_gaps.size()),
              call.generated_tokens - 1);
  }
}

TEST_F(LoadGeneratorTest, EveryHypothesisCountsAsGeneratedTokens) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "unary");
    FakeServer server;
    auto channel = grpc::CreateChannel(server.address(),
                                       grpc::InsecureChannelCredentials());
    v1::Seq2Seq::Stub stub(channel);
    RequestMixOptions mix_options = RandomMix();
    mix_options.max_new_tokens = LengthDistribution(2);
    mix_options.controls.temperature = 1.0f;
    mix_options.controls.num_return_sequences = 3;
    RequestMix mix = Mix(mix_options);
    LoadOptions options;
    options.concurrency = 2;
    options.requests = 10;
    options.stream = stream;
    absl::StatusOr<LoadResult> result = RunLoad(stub, mix, options);
    ASSERT_TRUE(result.ok()) << result.status();
    for (const CallRecord& call : result->calls) {
      ASSERT_EQ(call.code, grpc::StatusCode::OK);
      EXPECT_EQ(call.generated_tokens, 3 * 2);
    }
    EXPECT_EQ(OkTokens(*result), server.service().generated_tokens());
  }
}

TEST_F(LoadGeneratorTest, WarmupCallsAreNotMeasured) {
  RequestMix mix = Mix(RandomMix());
  LoadOptions options;
  options.concurrency = 2;
  options.requests = 10;
  options.warmup = absl::Milliseconds(100);
  absl::StatusOr<LoadResult> result = RunLoad(stub_, mix, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->calls.size(), 10u);
  int server_total = 0;
  for (const auto& [code, count] : server_.service().status_counts()) {
    server_total += count;
  }
  EXPECT_EQ(server_total, 10 + result->warmup_calls);
}

TEST_F(LoadGeneratorTest, DurationModeMeasuresEveryCallItSends) {
  RequestMix mix = Mix(RandomMix());
  LoadOptions options;
  options.concurrency = 2;
  options.duration = absl::Milliseconds(100);
  absl::StatusOr<LoadResult> result = RunLoad(stub_, mix, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(ClientCounts(*result), server_.service().status_counts());
}

TEST_F(LoadGeneratorTest, OpenLoopAccountsForEveryArrival) {
  RequestMix mix = Mix(RandomMix());
  LoadOptions options;
  options.rps = 500;
  options.requests = 30;
  absl::StatusOr<LoadResult> result = RunLoad(stub_, mix, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(static_cast<int64_t>(result->calls.size()) + result->dropped, 30);
  EXPECT_EQ(ClientCounts(*result), server_.service().status_counts());
}

TEST_F(LoadGeneratorTest, OpenLoopDropsArrivalsBeyondTheInFlightCap) {
  // Every call is held by the server until its deadline, so with at most one
  // in flight the first arrival is sent and the other nine (issued within
  // ~10 ms, long before the 2 s deadline) are dropped by the client.
  RequestMixOptions mix_options;
  mix_options.sources = {{{testing::kHoldId}, ""}};
  RequestMix mix = Mix(mix_options);
  LoadOptions options;
  options.rps = 1000;
  options.arrivals = Arrivals::kUniform;
  options.max_in_flight = 1;
  options.requests = 10;
  options.timeout = absl::Seconds(2);
  absl::StatusOr<LoadResult> result = RunLoad(stub_, mix, options);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->calls.size(), 1u);
  EXPECT_EQ(result->calls[0].code, grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(result->dropped, 9);
}

TEST(LoadGeneratorUnreachableTest, CallsFailUnavailable) {
  std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(
      testing::UnusedAddress(), grpc::InsecureChannelCredentials());
  v1::Seq2Seq::Stub stub(channel);
  RequestMix mix = Mix(RandomMix());
  LoadOptions options;
  options.concurrency = 2;
  options.requests = 5;
  absl::StatusOr<LoadResult> result = RunLoad(stub, mix, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(
      ClientCounts(*result),
      (std::map<grpc::StatusCode, int>{{grpc::StatusCode::UNAVAILABLE, 5}}));
}

TEST(ValidateLoadOptionsTest, RejectsInconsistentOptions) {
  LoadOptions valid;
  valid.requests = 10;
  EXPECT_TRUE(ValidateLoadOptions(valid).ok());

  LoadOptions both = valid;
  both.duration = absl::Seconds(1);
  EXPECT_THAT(ValidateLoadOptions(both).message(),
              HasSubstr("exactly one of --requests and --duration"));
  LoadOptions neither;
  EXPECT_FALSE(ValidateLoadOptions(neither).ok());
  LoadOptions no_concurrency = valid;
  no_concurrency.concurrency = 0;
  EXPECT_THAT(ValidateLoadOptions(no_concurrency).message(),
              HasSubstr("--concurrency"));
  LoadOptions open_loop = valid;
  open_loop.rps = 10;
  open_loop.concurrency = 0;  // ignored in an open loop
  EXPECT_TRUE(ValidateLoadOptions(open_loop).ok());
  open_loop.max_in_flight = 0;
  EXPECT_THAT(ValidateLoadOptions(open_loop).message(),
              HasSubstr("--max_in_flight"));
  LoadOptions negative_rps = valid;
  negative_rps.rps = -1;
  EXPECT_FALSE(ValidateLoadOptions(negative_rps).ok());
  LoadOptions negative_warmup = valid;
  negative_warmup.warmup = absl::Seconds(-1);
  EXPECT_FALSE(ValidateLoadOptions(negative_warmup).ok());
  LoadOptions no_timeout = valid;
  no_timeout.timeout = absl::ZeroDuration();
  EXPECT_FALSE(ValidateLoadOptions(no_timeout).ok());
  // RunLoad checks them before any call.
  v1::Seq2Seq::Stub stub(grpc::CreateChannel(
      testing::UnusedAddress(), grpc::InsecureChannelCredentials()));
  RequestMix mix = Mix(RandomMix());
  EXPECT_EQ(RunLoad(stub, mix, both).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DescribeLoadTest, SaysWhatRuns) {
  LoadOptions closed;
  closed.concurrency = 32;
  closed.requests = 2000;
  closed.warmup = absl::Seconds(2);
  EXPECT_EQ(DescribeLoad(closed),
            "closed loop, concurrency 32, unary, 2000 requests after 2s "
            "warmup");
  LoadOptions open;
  open.rps = 50;
  open.arrivals = Arrivals::kUniform;
  open.max_in_flight = 100;
  open.duration = absl::Seconds(30);
  open.stream = true;
  EXPECT_EQ(DescribeLoad(open),
            "open loop, 50 requests/s (uniform), at most 100 in flight, "
            "streaming, 30s");
}

TEST(ParseArrivalsTest, Names) {
  EXPECT_EQ(*ParseArrivals("poisson"), Arrivals::kPoisson);
  EXPECT_EQ(*ParseArrivals("uniform"), Arrivals::kUniform);
  EXPECT_FALSE(ParseArrivals("bursty").ok());
  EXPECT_STREQ(ArrivalsName(Arrivals::kUniform), "uniform");
}

}  // namespace
}  // namespace attnserve::client
