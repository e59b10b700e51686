#include "client/bench_report.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnserve::client {
namespace {

using ::testing::HasSubstr;

CallRecord Call(grpc::StatusCode code, int latency_ms, int tokens) {
  CallRecord call;
  call.code = code;
  call.latency = absl::Milliseconds(latency_ms);
  call.generated_tokens = tokens;
  return call;
}

LoadResult UnaryResult() {
  LoadResult result;
  for (int ms = 1; ms <= 8; ++ms) {
    result.calls.push_back(Call(grpc::StatusCode::OK, ms, 10));
  }
  // Fast rejections: counted, but not in the latency figures.
  result.calls.push_back(Call(grpc::StatusCode::RESOURCE_EXHAUSTED, 1, 0));
  result.calls.push_back(Call(grpc::StatusCode::RESOURCE_EXHAUSTED, 3, 0));
  result.dropped = 3;
  result.warmup_calls = 4;
  result.elapsed = absl::Seconds(2);
  return result;
}

TEST(SummarizeTest, CountsRatesAndOkLatencies) {
  const BenchSummary summary = Summarize(UnaryResult(), /*stream=*/false);
  EXPECT_EQ(summary.count, 10);
  EXPECT_EQ(summary.ok, 8);
  EXPECT_EQ(summary.dropped, 3);
  EXPECT_EQ(summary.warmup_calls, 4);
  EXPECT_DOUBLE_EQ(summary.requests_per_second, 5.0);
  EXPECT_EQ(summary.generated_tokens, 80);
  EXPECT_DOUBLE_EQ(summary.generated_tokens_per_second, 40.0);
  ASSERT_TRUE(summary.latency.has_value());
  EXPECT_EQ(summary.latency->count, 8);
  EXPECT_EQ(summary.latency->min, absl::Milliseconds(1));
  EXPECT_EQ(summary.latency->p50, absl::Milliseconds(4));
  EXPECT_EQ(summary.latency->max, absl::Milliseconds(8));
  EXPECT_FALSE(summary.time_to_first_token.has_value());
  EXPECT_FALSE(summary.inter_token.has_value());
  EXPECT_EQ(summary.status_counts, (std::map<std::string, int64_t>{
                                       {"OK", 8}, {"RESOURCE_EXHAUSTED", 2}}));
}

TEST(SummarizeTest, FailedLatenciesByCode) {
  LoadResult result = UnaryResult();
  result.calls.push_back(Call(grpc::StatusCode::DEADLINE_EXCEEDED, 50, 0));
  const BenchSummary summary = Summarize(result, /*stream=*/false);
  ASSERT_EQ(summary.failed_latency.size(), 2u);
  const LatencyStats& shed = summary.failed_latency.at("RESOURCE_EXHAUSTED");
  EXPECT_EQ(shed.count, 2);
  EXPECT_EQ(shed.min, absl::Milliseconds(1));
  EXPECT_EQ(shed.p99, absl::Milliseconds(3));
  EXPECT_EQ(summary.failed_latency.at("DEADLINE_EXCEEDED").max,
            absl::Milliseconds(50));
  EXPECT_EQ(summary.latency->max, absl::Milliseconds(8)) << "OK calls only";
}

TEST(SummarizeTest, StreamingFiguresFromOkCalls) {
  LoadResult result;
  CallRecord call = Call(grpc::StatusCode::OK, 10, 3);
  call.time_to_first_token = absl::Milliseconds(4);
  call.token_gaps = {absl::Milliseconds(2), absl::Milliseconds(3)};
  result.calls.push_back(call);
  CallRecord failed = Call(grpc::StatusCode::DEADLINE_EXCEEDED, 50, 1);
  failed.time_to_first_token = absl::Milliseconds(40);
  result.calls.push_back(failed);
  result.elapsed = absl::Seconds(1);
  const BenchSummary summary = Summarize(result, /*stream=*/true);
  ASSERT_TRUE(summary.time_to_first_token.has_value());
  EXPECT_EQ(summary.time_to_first_token->count, 1);
  EXPECT_EQ(summary.time_to_first_token->max, absl::Milliseconds(4));
  ASSERT_TRUE(summary.inter_token.has_value());
  EXPECT_EQ(summary.inter_token->count, 2);
  EXPECT_EQ(summary.inter_token->p50, absl::Milliseconds(2));
  EXPECT_EQ(summary.generated_tokens, 3);
}

TEST(SummarizeTest, NothingMeasured) {
  const BenchSummary summary = Summarize(LoadResult(), /*stream=*/true);
  EXPECT_EQ(summary.count, 0);
  EXPECT_EQ(summary.requests_per_second, 0.0);
  EXPECT_FALSE(summary.latency.has_value());
  EXPECT_FALSE(summary.time_to_first_token.has_value());
  EXPECT_THAT(FormatSummary(summary), HasSubstr("no call succeeded"));
}

TEST(SummaryToJsonTest, HasTheDocumentedKeys) {
  const nlohmann::json json =
      SummaryToJson(Summarize(UnaryResult(), /*stream=*/false));
  EXPECT_EQ(json["count"], 10);
  EXPECT_EQ(json["ok"], 8);
  EXPECT_EQ(json["dropped_by_client"], 3);
  EXPECT_EQ(json["warmup_calls"], 4);
  EXPECT_DOUBLE_EQ(json["elapsed_s"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(json["requests_per_s"].get<double>(), 5.0);
  EXPECT_EQ(json["generated_tokens"], 80);
  EXPECT_DOUBLE_EQ(json["generated_tokens_per_s"].get<double>(), 40.0);
  const nlohmann::json& latency = json["latency_ms"];
  EXPECT_EQ(latency["count"], 8);
  for (const char* key :
       {"min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"}) {
    EXPECT_TRUE(latency.contains(key)) << key;
  }
  EXPECT_DOUBLE_EQ(latency["p50"].get<double>(), 4.0);
  EXPECT_DOUBLE_EQ(latency["mean"].get<double>(), 4.5);
  EXPECT_TRUE(json["time_to_first_token_ms"].is_null());
  EXPECT_TRUE(json["inter_token_ms"].is_null());
  EXPECT_EQ(json["status_codes"]["OK"], 8);
  EXPECT_EQ(json["status_codes"]["RESOURCE_EXHAUSTED"], 2);
  EXPECT_EQ(json["failed_latency_ms"]["RESOURCE_EXHAUSTED"]["count"], 2);
  EXPECT_DOUBLE_EQ(
      json["failed_latency_ms"]["RESOURCE_EXHAUSTED"]["p99"].get<double>(),
      3.0);
  EXPECT_FALSE(json["failed_latency_ms"].contains("OK"));
}

TEST(FormatSummaryTest, ShowsTotalsTableAndStatuses) {
  const std::string text =
      FormatSummary(Summarize(UnaryResult(), /*stream=*/false));
  EXPECT_THAT(text, HasSubstr("Count:             10 (OK 8)"));
  EXPECT_THAT(text, HasSubstr("Requests/s:        5.00"));
  EXPECT_THAT(text, HasSubstr("80 (40.00 tokens/s)"));
  EXPECT_THAT(text, HasSubstr("Dropped by client: 3"));
  EXPECT_THAT(text, HasSubstr("p99.9"));
  EXPECT_THAT(text, HasSubstr("latency"));
  EXPECT_EQ(text.find("first token"), std::string::npos);
  EXPECT_THAT(text, HasSubstr("RESOURCE_EXHAUSTED   2"));
  EXPECT_THAT(text, HasSubstr("(ms, failed calls)"));
  EXPECT_THAT(text, HasSubstr("  RESOURCE_EXHAUSTED      1.00      2.00"));
}

}  // namespace
}  // namespace attnserve::client
