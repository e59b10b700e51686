// The values PrometheusMetrics records, read in-process with Collect() (no
// HTTP): the batcher on simulated time with the fake engine, so every duration
// is exact, then the gRPC server on the real clock for per-call counts.

#include "server/prometheus_metrics.h"

#include <cmath>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/batcher.h"
#include "server/server.h"
#include "tests/server/fake_engine.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/http_get.h"
#include "tests/server/loopback_server_options.h"
#include "tests/server/recording_sink.h"
#include "tests/server/simulated_clock.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::FakeEngine;
using ::attnserve::server::testing::FakeEngineOptions;
using ::attnserve::server::testing::RecordingSink;
using ::attnserve::server::testing::SimulatedClock;
using ::testing::DoubleEq;
using ::testing::DoubleNear;
using ::testing::HasSubstr;

using Labels = std::map<std::string, std::string>;

// One scrape, as Collect() returns it.
class Scrape {
 public:
  explicit Scrape(const PrometheusMetrics& metrics)
      : families_(metrics.Collect()) {}

  // The series of family `name` whose labels include `labels`; fails the test
  // and returns an empty metric when there is none.
  prometheus::ClientMetric Get(const std::string& name,
                               const Labels& labels = {}) const {
    for (const prometheus::MetricFamily& family : families_) {
      if (family.name != name) continue;
      for (const prometheus::ClientMetric& metric : family.metric) {
        int matched = 0;
        for (const prometheus::ClientMetric::Label& label : metric.label) {
          auto it = labels.find(label.name);
          if (it != labels.end() && it->second == label.value) ++matched;
        }
        if (matched == static_cast<int>(labels.size())) return metric;
      }
    }
    ADD_FAILURE() << "no series " << name << " with the labels asked for";
    return {};
  }

  double Counter(const std::string& name, const Labels& labels = {}) const {
    return Get(name, labels).counter.value;
  }
  double Gauge(const std::string& name, const Labels& labels = {}) const {
    return Get(name, labels).gauge.value;
  }
  prometheus::ClientMetric::Histogram Histogram(
      const std::string& name, const Labels& labels = {}) const {
    return Get(name, labels).histogram;
  }
  // How many observations of histogram `name` were <= `bound` (a bucket
  // boundary).
  uint64_t AtMost(const std::string& name, double bound,
                  const Labels& labels = {}) const {
    for (const auto& bucket : Histogram(name, labels).bucket) {
      if (bucket.upper_bound == bound) return bucket.cumulative_count;
    }
    ADD_FAILURE() << name << " has no bucket le=" << bound;
    return 0;
  }

 private:
  std::vector<prometheus::MetricFamily> families_;
};

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// ---- The batcher on simulated time ----

class BatcherMetricsTest : public ::testing::Test {
 protected:
  static constexpr absl::Duration kEncodeCost = absl::Milliseconds(3);
  static constexpr absl::Duration kStepCost = absl::Milliseconds(2);

  void Create(int max_queue_size = 8,
              absl::Duration max_queue_delay = absl::Milliseconds(10)) {
    FakeEngineOptions engine_options;
    engine_options.clock = &clock_;
    engine_options.encode_cost = kEncodeCost;
    engine_options.step_cost = kStepCost;
    engine_options.invalid_token = 99;
    engine_ = std::make_unique<FakeEngine>(engine_options);
    metrics_ = std::make_unique<PrometheusMetrics>(engine_->model_info(),
                                                   max_queue_size);
    BatcherOptions options;
    options.batching.max_batch_size = 4;
    options.batching.max_queue_delay = max_queue_delay;
    options.max_queue_size = max_queue_size;
    absl::StatusOr<std::unique_ptr<Batcher>> batcher =
        Batcher::Create(options, engine_.get(), &clock_, metrics_.get());
    ASSERT_TRUE(batcher.ok()) << batcher.status();
    batcher_ = *std::move(batcher);
  }

  static WorkItem Item(std::vector<int32_t> source,
                       absl::Time deadline = absl::InfiniteFuture()) {
    WorkItem item;
    item.request_id = "test";
    item.source = std::move(source);
    item.decode.max_new_tokens = 16;
    item.deadline = deadline;
    return item;
  }

  RecordingSink* Submit(WorkItem item,
                        absl::StatusCode expected = absl::StatusCode::kOk) {
    sinks_.emplace_back();
    EXPECT_EQ(batcher_->Submit(std::move(item), &sinks_.back()).code(),
              expected);
    return &sinks_.back();
  }

  void PumpUntilIdle() {
    for (int i = 0; i < 1000 && (batcher_->queue_size() > 0 ||
                                 batcher_->running_size() > 0);
         ++i) {
      batcher_->Pump();
    }
    ASSERT_EQ(batcher_->queue_size() + batcher_->running_size(), 0);
  }

  Scrape Collect() const { return Scrape(*metrics_); }

  SimulatedClock clock_;
  std::unique_ptr<FakeEngine> engine_;
  std::unique_ptr<PrometheusMetrics> metrics_;
  std::deque<RecordingSink> sinks_;
  std::unique_ptr<Batcher> batcher_;
};

TEST_F(BatcherMetricsTest, QueueAndComputeTimeLandInTheirHistograms) {
  Create();
  // 3 source tokens: the fake decodes 3 tokens in 3 steps, then EOS in a 4th.
  RecordingSink* sink = Submit(Item({5, 6, 7}));
  batcher_->Pump();  // waits for the batch to fill
  EXPECT_EQ(Collect().Gauge("attnserve_queue_depth"), 1);
  EXPECT_EQ(Collect().Gauge("attnserve_active_sequences"), 0);

  clock_.Advance(absl::Milliseconds(10));
  batcher_->Pump();  // admits, encodes (3 ms), first step (2 ms)
  EXPECT_EQ(Collect().Gauge("attnserve_queue_depth"), 0);
  EXPECT_EQ(Collect().Gauge("attnserve_active_sequences"), 1);
  PumpUntilIdle();
  ASSERT_TRUE(sink->status().ok()) << sink->status();

  const Scrape scrape = Collect();
  EXPECT_EQ(scrape.Gauge("attnserve_active_sequences"), 0);
  // The interval Timing.queue_us reports.
  const auto queue = scrape.Histogram("attnserve_queue_duration_seconds");
  EXPECT_EQ(queue.sample_count, 1u);
  EXPECT_THAT(queue.sample_sum, DoubleEq(Seconds(sink->outcome().queue_time)));
  EXPECT_THAT(queue.sample_sum, DoubleEq(0.010));
  EXPECT_EQ(scrape.AtMost("attnserve_queue_duration_seconds", 0.005), 0u);
  EXPECT_EQ(scrape.AtMost("attnserve_queue_duration_seconds", 0.01), 1u);

  const auto encode = scrape.Histogram("attnserve_encode_duration_seconds");
  const auto step = scrape.Histogram("attnserve_decode_step_duration_seconds");
  EXPECT_EQ(encode.sample_count, 1u);
  EXPECT_THAT(encode.sample_sum, DoubleEq(0.003));
  EXPECT_EQ(step.sample_count, 4u);
  EXPECT_THAT(step.sample_sum, DoubleNear(0.008, 1e-12));
  EXPECT_EQ(scrape.AtMost("attnserve_decode_step_duration_seconds", 0.002), 4u);
  EXPECT_EQ(scrape.AtMost("attnserve_decode_step_duration_seconds", 0.001), 0u);
  // Alone in the engine, the request's compute time is exactly its encode and
  // its steps.
  EXPECT_THAT(encode.sample_sum + step.sample_sum,
              DoubleNear(Seconds(sink->outcome().compute_time), 1e-12));

  // First token: queue 10 + encode 3 + step 2 ms after acceptance; then one
  // token per 2 ms step.
  const auto ttft = scrape.Histogram("attnserve_time_to_first_token_seconds");
  EXPECT_EQ(ttft.sample_count, 1u);
  EXPECT_THAT(ttft.sample_sum, DoubleNear(0.015, 1e-12));
  const auto itl = scrape.Histogram("attnserve_inter_token_latency_seconds");
  EXPECT_EQ(itl.sample_count, 2u);
  EXPECT_THAT(itl.sample_sum, DoubleNear(0.004, 1e-12));

  const auto batch = scrape.Histogram("attnserve_batch_size");
  EXPECT_EQ(batch.sample_count, 4u);
  EXPECT_EQ(scrape.AtMost("attnserve_batch_size", 1), 4u);

  EXPECT_EQ(scrape.Counter("attnserve_input_tokens_total"), 3);
  EXPECT_EQ(scrape.Counter("attnserve_generated_tokens_total"), 3);
  const auto input = scrape.Histogram("attnserve_request_input_tokens");
  const auto generated = scrape.Histogram("attnserve_request_generated_tokens");
  EXPECT_EQ(input.sample_count, 1u);
  EXPECT_EQ(input.sample_sum, 3);
  EXPECT_EQ(generated.sample_count, 1u);
  EXPECT_EQ(generated.sample_sum, 3);
  for (RejectReason reason : kAllRejectReasons) {
    EXPECT_EQ(scrape.Counter("attnserve_rejected_requests_total",
                             {{"reason", RejectReasonName(reason)}}),
              0);
  }
}

TEST_F(BatcherMetricsTest, RequestsEncodedTogetherShareAStep) {
  Create(/*max_queue_size=*/8, /*max_queue_delay=*/absl::ZeroDuration());
  Submit(Item({5, 6}));
  Submit(Item({7, 8, 9, 10}));
  PumpUntilIdle();
  const Scrape scrape = Collect();
  EXPECT_EQ(scrape.Histogram("attnserve_encode_duration_seconds").sample_count,
            1u);
  EXPECT_EQ(scrape.Counter("attnserve_input_tokens_total"), 6);
  EXPECT_EQ(scrape.Counter("attnserve_generated_tokens_total"), 6);
  // Steps 1-3 run both (the first ends after 2 tokens and its EOS step), steps
  // 4-5 the second alone.
  const auto batch = scrape.Histogram("attnserve_batch_size");
  EXPECT_EQ(batch.sample_count, 5u);
  EXPECT_EQ(batch.sample_sum, 2 * 3 + 1 * 2);
  EXPECT_EQ(scrape.AtMost("attnserve_batch_size", 1), 2u);
  EXPECT_EQ(
      scrape.Histogram("attnserve_time_to_first_token_seconds").sample_count,
      2u);
  EXPECT_EQ(scrape.Histogram("attnserve_request_input_tokens").sample_count,
            2u);
}

TEST_F(BatcherMetricsTest, CountsRejectionsByReason) {
  Create(/*max_queue_size=*/2);
  const absl::Time soon = clock_.Now() + absl::Milliseconds(1);
  Submit(Item({5}, soon));
  RecordingSink* cancelled = Submit(Item({6}));
  Submit(Item({7}), absl::StatusCode::kResourceExhausted);
  cancelled->Cancel();
  clock_.Advance(absl::Milliseconds(2));
  batcher_->Pump();  // the deadline passed; the other was cancelled

  Submit(Item({99}));  // the engine's own check rejects id 99
  RecordingSink* slow = Submit(Item({8, 9}));
  slow->FailTokens(absl::ResourceExhaustedError("reader too slow"));
  clock_.Advance(absl::Milliseconds(10));
  PumpUntilIdle();
  batcher_->StopAccepting();
  Submit(Item({10}), absl::StatusCode::kUnavailable);

  const Scrape scrape = Collect();
  for (RejectReason reason : kAllRejectReasons) {
    EXPECT_EQ(scrape.Counter("attnserve_rejected_requests_total",
                             {{"reason", RejectReasonName(reason)}}),
              1)
        << RejectReasonName(reason);
  }
  EXPECT_EQ(scrape.Gauge("attnserve_queue_depth"), 0);
}

TEST(RejectReasonTest, MapsCodesByWhereTheyHappen) {
  using absl::StatusCode;
  EXPECT_EQ(RejectReasonOf(StatusCode::kResourceExhausted, false),
            RejectReason::kQueueFull);
  EXPECT_EQ(RejectReasonOf(StatusCode::kResourceExhausted, true),
            RejectReason::kSlowReader);
  for (bool queued : {false, true}) {
    EXPECT_EQ(RejectReasonOf(StatusCode::kInvalidArgument, queued),
              RejectReason::kInvalid);
    EXPECT_EQ(RejectReasonOf(StatusCode::kUnavailable, queued),
              RejectReason::kDraining);
    EXPECT_EQ(RejectReasonOf(StatusCode::kDeadlineExceeded, queued),
              RejectReason::kDeadline);
    EXPECT_EQ(RejectReasonOf(StatusCode::kCancelled, queued),
              RejectReason::kCancelled);
    EXPECT_EQ(RejectReasonOf(StatusCode::kOk, queued), std::nullopt);
    EXPECT_EQ(RejectReasonOf(StatusCode::kInternal, queued), std::nullopt);
  }
  EXPECT_STREQ(RejectReasonName(RejectReason::kQueueFull), "queue_full");
  EXPECT_STREQ(MethodName(Method::kGenerateStream), "GenerateStream");
}

// ---- Families, model info, exposition ----

TEST(PrometheusMetricsTest, DescribesTheModelAndTheQueue) {
  FakeEngine engine;
  PrometheusMetrics metrics(engine.model_info(), 77);
  const Scrape scrape(metrics);
  EXPECT_EQ(scrape.Gauge("attnserve_model_info", {{"model", "fake-model"},
                                                  {"vocab_size", "100"},
                                                  {"layers", "0+0"}}),
            1);
  EXPECT_EQ(scrape.Gauge("attnserve_queue_capacity"), 77);
  // Latency buckets from 100 µs to 60 s.
  const auto buckets = scrape
                           .Histogram("attnserve_request_duration_seconds",
                                      {{"method", "Generate"}, {"code", "OK"}})
                           .bucket;
  ASSERT_GE(buckets.size(), 3u);
  EXPECT_EQ(buckets.front().upper_bound, 0.0001);
  EXPECT_EQ(buckets[buckets.size() - 2].upper_bound, 60);
  EXPECT_TRUE(std::isinf(buckets.back().upper_bound));
  // The process collector is part of every scrape.
  // (Its CPU time may still be 0 ticks in a fresh test process.)
  EXPECT_GT(scrape.Gauge("process_resident_memory_bytes"), 0);
}

TEST(PrometheusMetricsTest, ServesTheTextFormatOverHttp) {
  FakeEngine engine;
  PrometheusMetrics metrics(engine.model_info(), 8);
  metrics.OnCallDone(Method::kGenerate, absl::StatusCode::kOk,
                     absl::Milliseconds(30));
  absl::StatusOr<int> port = metrics.Serve("127.0.0.1", 0);
  ASSERT_TRUE(port.ok()) << port.status();
  absl::StatusOr<testing::HttpResponse> response =
      testing::HttpGet(*port, "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  EXPECT_THAT(response->body,
              HasSubstr("# TYPE attnserve_request_duration_seconds histogram"));
  EXPECT_THAT(
      response->body,
      HasSubstr("attnserve_request_duration_seconds_bucket{code=\"OK\","
                "method=\"Generate\",protocol=\"seq2seq\",le=\"0.05\"} 1"));
  EXPECT_THAT(response->body,
              HasSubstr("attnserve_requests_total{code=\"OK\",method="
                        "\"Generate\",protocol=\"seq2seq\"} 1"));
  EXPECT_THAT(response->body, HasSubstr("process_resident_memory_bytes "));

  // A second exposer on the same port cannot listen.
  PrometheusMetrics other(engine.model_info(), 8);
  absl::StatusOr<int> taken = other.Serve("127.0.0.1", *port);
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kUnavailable);
}

// ---- The gRPC server on the real clock ----

TEST(ServerMetricsTest, CountsEveryCallByMethodAndCode) {
  auto engine = std::make_unique<FakeEngine>();
  PrometheusMetrics metrics(engine->model_info(), 64);
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Create(
      testing::LoopbackServerOptions(), std::move(engine), nullptr, &metrics);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::Seq2Seq::NewStub(testing::Connect((*server)->port()));

  v1::GenerateRequest request;
  for (int id : {5, 6, 7, 8}) request.add_input_ids(id);
  request.set_max_new_tokens(6);
  double server_total_seconds = 0;
  for (int i = 0; i < 5; ++i) {
    v1::GenerateResponse response;
    ASSERT_TRUE(testing::Generate(*stub, request, &response).ok());
    server_total_seconds += response.timing().total_us() * 1e-6;
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(testing::GenerateStream(*stub, request).status.ok());
  }
  v1::GenerateRequest invalid = request;
  invalid.add_input_ids(500);  // outside the fake's vocab of 100
  for (int i = 0; i < 2; ++i) {
    v1::GenerateResponse response;
    EXPECT_EQ(testing::Generate(*stub, invalid, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext context;
    v1::GetModelInfoResponse info;
    ASSERT_TRUE(
        stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  }

  // Each call is recorded before its answer is sent: no waiting needed.
  const Scrape scrape(metrics);
  const Labels generate_ok = {{"method", "Generate"}, {"code", "OK"}};
  const Labels stream_ok = {{"method", "GenerateStream"}, {"code", "OK"}};
  const Labels generate_invalid = {{"method", "Generate"},
                                   {"code", "INVALID_ARGUMENT"}};
  const Labels info_ok = {{"method", "GetModelInfo"}, {"code", "OK"}};
  EXPECT_EQ(scrape.Counter("attnserve_requests_total", generate_ok), 5);
  EXPECT_EQ(scrape.Counter("attnserve_requests_total", stream_ok), 3);
  EXPECT_EQ(scrape.Counter("attnserve_requests_total", generate_invalid), 2);
  EXPECT_EQ(scrape.Counter("attnserve_requests_total", info_ok), 1);
  const std::string duration = "attnserve_request_duration_seconds";
  EXPECT_EQ(scrape.Histogram(duration, generate_ok).sample_count, 5u);
  EXPECT_EQ(scrape.Histogram(duration, stream_ok).sample_count, 3u);
  EXPECT_EQ(scrape.Histogram(duration, generate_invalid).sample_count, 2u);
  EXPECT_EQ(scrape.Histogram(duration, info_ok).sample_count, 1u);
  // A call lasts at least from its acceptance to its answer (Timing.total).
  EXPECT_GE(scrape.Histogram(duration, generate_ok).sample_sum,
            server_total_seconds);
  EXPECT_EQ(scrape.Counter("attnserve_rejected_requests_total",
                           {{"reason", "invalid"}}),
            2);
  // The 8 accepted requests and the warm-up reached the batcher.
  EXPECT_EQ(scrape.Histogram("attnserve_request_input_tokens").sample_count,
            9u);
}

}  // namespace
}  // namespace attnserve::server
