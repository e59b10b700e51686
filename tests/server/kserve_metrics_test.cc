// KServe calls in the Prometheus metrics: attnserve_requests_total and
// attnserve_request_duration_seconds carry protocol="kserve" and the KServe
// method, beside protocol="seq2seq" for Seq2Seq calls on the same server.

#include <map>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/prometheus_metrics.h"
#include "server/server.h"
#include "tests/server/fake_engine.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/kserve_test_client.h"
#include "tests/server/loopback_server_options.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::Contents;
using ::attnserve::server::testing::IdsRequest;

// The value of the series of `family` whose labels are exactly `labels`
// (counters: the count; histograms: the sample count); -1 when there is none.
double Value(const PrometheusMetrics& metrics, const std::string& family,
             const std::map<std::string, std::string>& labels) {
  for (const prometheus::MetricFamily& f : metrics.Collect()) {
    if (f.name != family) continue;
    for (const prometheus::ClientMetric& metric : f.metric) {
      std::map<std::string, std::string> have;
      for (const auto& label : metric.label) have[label.name] = label.value;
      if (have != labels) continue;
      return f.type == prometheus::MetricType::Histogram
                 ? static_cast<double>(metric.histogram.sample_count)
                 : metric.counter.value;
    }
  }
  return -1;
}

TEST(KserveMetricsTest, CallsAreCountedByProtocolMethodAndCode) {
  auto engine = std::make_unique<testing::FakeEngine>();
  PrometheusMetrics metrics(engine->model_info(), 64);
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Create(
      testing::LoopbackServerOptions(), std::move(engine), nullptr, &metrics);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = testing::Connect((*server)->port());
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  auto seq2seq = v1::Seq2Seq::NewStub(channel);

  inference::ModelInferResponse response;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(testing::ModelInfer(
                    *stub,
                    IdsRequest("fake-model", {{5, 6}, {7}}, Contents::kRaw),
                    &response)
                    .ok());
  }
  EXPECT_EQ(testing::ModelInfer(
                *stub, IdsRequest("fake-model", {{5, 600}}, Contents::kRaw),
                &response)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(testing::ModelInfer(
                *stub, IdsRequest("other", {{5}}, Contents::kRaw), &response)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  {
    grpc::ClientContext context;
    inference::ServerLiveResponse live;
    ASSERT_TRUE(stub->ServerLive(&context, {}, &live).ok());
  }
  {
    // One stream, two requests: one answered, one refused in a message.
    grpc::ClientContext context;
    auto stream = stub->ModelStreamInfer(&context);
    ASSERT_TRUE(
        stream->Write(IdsRequest("fake-model", {{5, 6}}, Contents::kRaw)));
    ASSERT_TRUE(
        stream->Write(IdsRequest("fake-model", {{5, 600}}, Contents::kRaw)));
    stream->WritesDone();
    int finals = 0;
    inference::ModelStreamInferResponse message;
    while (stream->Read(&message)) {
      finals += message.infer_response()
                    .parameters()
                    .at("triton_final_response")
                    .bool_param();
    }
    EXPECT_EQ(finals, 2);
    EXPECT_TRUE(stream->Finish().ok());
  }
  {
    v1::GenerateRequest request;
    request.add_input_ids(5);
    v1::GenerateResponse answer;
    ASSERT_TRUE(testing::Generate(*seq2seq, request, &answer).ok());
  }

  const auto kserve = [](const std::string& method, const std::string& code) {
    return std::map<std::string, std::string>{
        {"protocol", "kserve"}, {"method", method}, {"code", code}};
  };
  const std::string requests = "attnserve_requests_total";
  const std::string duration = "attnserve_request_duration_seconds";
  EXPECT_EQ(Value(metrics, requests, kserve("ModelInfer", "OK")), 2);
  EXPECT_EQ(Value(metrics, duration, kserve("ModelInfer", "OK")), 2);
  EXPECT_EQ(Value(metrics, requests, kserve("ModelInfer", "INVALID_ARGUMENT")),
            1);
  EXPECT_EQ(Value(metrics, requests, kserve("ModelInfer", "NOT_FOUND")), 1);
  EXPECT_EQ(Value(metrics, requests, kserve("ServerLive", "OK")), 1);
  EXPECT_EQ(Value(metrics, requests, kserve("ModelStreamInfer", "OK")), 1);
  EXPECT_EQ(
      Value(metrics, requests, kserve("ModelStreamInfer", "INVALID_ARGUMENT")),
      1);
  EXPECT_EQ(
      Value(metrics, requests,
            {{"protocol", "seq2seq"}, {"method", "Generate"}, {"code", "OK"}}),
      1);
  // The OK series of every method exist before any call.
  EXPECT_EQ(Value(metrics, requests, kserve("ModelMetadata", "OK")), 0);
  // Rows are the batcher's requests: 2 x 2 rows + 1 streamed row + the
  // Generate call + the warm-up.
  EXPECT_EQ(Value(metrics, "attnserve_request_input_tokens", {}), 7);
  EXPECT_EQ(Value(metrics, "attnserve_rejected_requests_total",
                  {{"reason", "invalid"}}),
            2);
}

}  // namespace
}  // namespace attnserve::server
