// The metrics as Prometheus itself sees them: Debian's real `prometheus`
// scrapes build/attnserve (a tiny real model) every second while the test sends
// load over gRPC, then the test asks Prometheus's HTTP API for what the issue
// promises. promtool checks the exposition, the rules and the configuration.
//
// Needs the `prometheus` package (scripts/setup.sh installs it). Without it
// these tests fail, on purpose: CI must not pass without the check.

#include <signal.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/engine/test_model_writer.h"
#include "tests/server/attnserve_binary.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/http_get.h"
#include "tests/server/subprocess.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::FindInPath;
using ::attnserve::server::testing::FreeLoopbackPort;
using ::attnserve::server::testing::HttpGet;
using ::attnserve::server::testing::HttpResponse;
using ::attnserve::server::testing::RunProgram;
using ::attnserve::server::testing::RunResult;
using ::attnserve::server::testing::StartAttnserve;
using ::attnserve::server::testing::StartedServer;
using ::attnserve::server::testing::Subprocess;
using ::attnserve::server::testing::SubprocessOptions;
using ::testing::HasSubstr;
namespace model_testing = ::attnserve::engine::testing;

constexpr char kNotInstalled[] =
    " is not installed. It comes with Debian's `prometheus` package: run "
    "scripts/setup.sh (or apt-get install prometheus).";

std::string SourcePath(const std::string& relative) {
  return absl::StrCat(ATTNSERVE_SOURCE_DIR, "/", relative);
}

// promtool with `args`; a test failure (with its output) unless it passes.
void ExpectPromtoolPasses(const std::vector<std::string>& args,
                          const std::string& stdin_path = "") {
  const std::optional<std::string> promtool = FindInPath("promtool");
  ASSERT_TRUE(promtool.has_value()) << "promtool" << kNotInstalled;
  std::vector<std::string> argv = {*promtool};
  argv.insert(argv.end(), args.begin(), args.end());
  const RunResult result = RunProgram(argv, stdin_path);
  EXPECT_EQ(result.exit_code, std::optional<int>(0))
      << "promtool " << absl::StrJoin(args, " ") << ":\n"
      << result.output;
}

TEST(PromtoolTest, DeployRulesAndConfigAreValid) {
  ExpectPromtoolPasses(
      {"check", "rules",
       SourcePath("deploy/prometheus/rules/attnserve_recording.yml"),
       SourcePath("deploy/prometheus/rules/attnserve_alerts.yml")});
  ExpectPromtoolPasses(
      {"check", "config", SourcePath("deploy/prometheus/prometheus.yml")});
}

TEST(PromtoolTest, AlertsFireAsTheirTestsSay) {
  ExpectPromtoolPasses(
      {"test", "rules", SourcePath("deploy/prometheus/rules_test.yml")});
}

// An instant query's result vector: [{"metric": {...}, "value": [t, "v"]}].
absl::StatusOr<nlohmann::json> Query(int port, const std::string& promql) {
  absl::StatusOr<HttpResponse> response = HttpGet(
      port, absl::StrCat("/api/v1/query?query=", testing::UrlEncode(promql)));
  if (!response.ok()) return response.status();
  const nlohmann::json answer = nlohmann::json::parse(
      response->body, nullptr, /*allow_exceptions=*/false);
  if (response->status != 200 || answer.is_discarded() ||
      answer.value("status", "") != "success") {
    return absl::InternalError(absl::StrCat(
        "query ", promql, ": HTTP ", response->status, " ", response->body));
  }
  return answer["data"]["result"];
}

// The value of one result element ("NaN" and "+Inf" included).
double ValueOf(const nlohmann::json& element) {
  double value = std::nan("");
  if (!absl::SimpleAtod(element["value"][1].get<std::string>(), &value)) {
    ADD_FAILURE() << "not a number: " << element.dump();
  }
  return value;
}

// Asks `promql` until `done` holds for its result (the scrape and the rules run
// every second), at most `timeout`. Returns the last result.
nlohmann::json PollQuery(int port, const std::string& promql,
                         const std::function<bool(const nlohmann::json&)>& done,
                         absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time give_up = absl::Now() + timeout;
  nlohmann::json last;
  while (true) {
    absl::StatusOr<nlohmann::json> result = Query(port, promql);
    if (result.ok()) {
      last = *result;
      if (done(last)) return last;
    }
    if (absl::Now() >= give_up) {
      ADD_FAILURE() << "after " << absl::FormatDuration(timeout) << ", "
                    << promql << " still gives "
                    << (result.ok() ? last.dump() : result.status().ToString());
      return last;
    }
    absl::SleepFor(absl::Milliseconds(250));
  }
}

// A single-element result whose value is `expected`.
std::function<bool(const nlohmann::json&)> Equals(double expected) {
  return [expected](const nlohmann::json& result) {
    return result.size() == 1 && ValueOf(result[0]) == expected;
  };
}

// The element whose labels include `labels`, or null.
const nlohmann::json* Find(const nlohmann::json& result,
                           const nlohmann::json& labels) {
  for (const nlohmann::json& element : result) {
    bool match = true;
    for (const auto& [name, value] : labels.items()) {
      match = match && element["metric"].value(name, "") == value;
    }
    if (match) return &element;
  }
  return nullptr;
}

// What the test sent, and the slowest call as the client saw it.
struct Load {
  int calls = 0;
  int generate_ok = 0;
  int accepted = 0;  // calls that reached the batcher
  int invalid = 0;
  absl::Duration slowest;
};

Load SendLoad(int port) {
  std::shared_ptr<grpc::Channel> channel = testing::Connect(port);
  absl::Mutex mu;
  Load load;
  // `accepted`: answered OK after the batcher ran it.
  auto record = [&](absl::Duration took, bool accepted, bool generate) {
    absl::MutexLock lock(&mu);
    ++load.calls;
    load.slowest = std::max(load.slowest, took);
    if (accepted) ++load.accepted;
    if (accepted && generate) ++load.generate_ok;
  };
  // 4 clients x 6 unary calls, so batches form; sources of 3-10 ids in the
  // tiny model's vocab of 53.
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      auto stub = v1::Seq2Seq::NewStub(channel);
      for (int i = 0; i < 6; ++i) {
        v1::GenerateRequest request;
        for (int t = 0; t < 3 + (c + i) % 8; ++t) {
          request.add_input_ids(3 + (c * 7 + i * 5 + t) % 50);
        }
        request.set_max_new_tokens(8);
        v1::GenerateResponse response;
        const absl::Time start = absl::Now();
        const grpc::Status status =
            testing::Generate(*stub, request, &response);
        EXPECT_TRUE(status.ok()) << status.error_message();
        record(absl::Now() - start, status.ok(), true);
      }
    });
  }
  for (std::thread& client : clients) client.join();

  auto stub = v1::Seq2Seq::NewStub(channel);
  for (int i = 0; i < 6; ++i) {
    v1::GenerateRequest request;
    for (int id : {4, 5, 6, 7 + i}) request.add_input_ids(id);
    request.set_max_new_tokens(6);
    const absl::Time start = absl::Now();
    const testing::StreamResult stream =
        testing::GenerateStream(*stub, request);
    EXPECT_TRUE(stream.status.ok()) << stream.status.error_message();
    record(absl::Now() - start, stream.status.ok(), false);
  }
  for (int i = 0; i < 3; ++i) {
    v1::GenerateRequest request;
    for (int id : {4, 999}) request.add_input_ids(id);  // outside the vocab
    v1::GenerateResponse response;
    const absl::Time start = absl::Now();
    EXPECT_EQ(testing::Generate(*stub, request, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    record(absl::Now() - start, false, true);
    ++load.invalid;
  }
  grpc::ClientContext context;
  v1::GetModelInfoResponse info;
  const absl::Time start = absl::Now();
  EXPECT_TRUE(
      stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  record(absl::Now() - start, false, false);
  return load;
}

// The smallest latency bucket bound >= `seconds` (docs/metrics.md).
double BucketBoundAbove(double seconds) {
  for (double bound : {0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                       0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0}) {
    if (bound >= seconds) return bound;
  }
  return INFINITY;
}

TEST(PrometheusIntegrationTest, ScrapesTheServerUnderLoad) {
  const std::optional<std::string> prometheus = FindInPath("prometheus");
  ASSERT_TRUE(prometheus.has_value()) << "prometheus" << kNotInstalled;

  // The server: build/attnserve on a tiny real model, metrics on loopback.
  const int metrics_port = FreeLoopbackPort();
  ASSERT_NE(metrics_port, 0);
  absl::StatusOr<StartedServer> server = StartAttnserve(
      {absl::StrCat("--model_dir=",
                    SourcePath("tests/data/golden/post_relu_tied_interleaved")),
       "--host=127.0.0.1", "--port=0", "--threads=1",
       "--metrics_address=127.0.0.1",
       absl::StrCat("--metrics_port=", metrics_port), "--shutdown_grace=5s"});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_THAT(server->startup_line,
              HasSubstr(absl::StrCat(
                  "metrics on http://127.0.0.1:", metrics_port, "/metrics")));

  // Prometheus: scrapes it every second, evaluates deploy/'s rules every
  // second, keeps its data in a temporary directory.
  model_testing::TempDir dir("prometheus_test");
  const std::string config = absl::StrCat(dir.path(), "/prometheus.yml");
  model_testing::WriteFile(
      config,
      absl::StrCat(
          "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
          "rule_files:\n",
          "  - ", SourcePath("deploy/prometheus/rules/attnserve_recording.yml"),
          "\n  - ", SourcePath("deploy/prometheus/rules/attnserve_alerts.yml"),
          "\nscrape_configs:\n  - job_name: attnserve\n"
          "    static_configs:\n      - targets: ['127.0.0.1:",
          metrics_port, "']\n"));
  ExpectPromtoolPasses({"check", "config", config});
  const int api_port = FreeLoopbackPort();
  SubprocessOptions options;
  options.stderr_path = absl::StrCat(dir.path(), "/prometheus.log");
  Subprocess prometheus_process(
      {*prometheus, absl::StrCat("--config.file=", config),
       absl::StrCat("--storage.tsdb.path=", dir.path(), "/data"),
       absl::StrCat("--web.listen-address=127.0.0.1:", api_port)},
      options);
  ASSERT_TRUE(prometheus_process.started());

  // Before the load: Prometheus is up and has scraped the idle server once, so
  // that rate() sees the counters grow from that sample.
  PollQuery(api_port, "up{job=\"attnserve\"}", Equals(1));

  const Load load = SendLoad(server->port);
  ASSERT_EQ(load.calls, 34);

  // The exposition as Prometheus reads it passes promtool's checks and lints.
  absl::StatusOr<HttpResponse> exposition = HttpGet(metrics_port, "/metrics");
  ASSERT_TRUE(exposition.ok()) << exposition.status();
  const std::string scrape_file = absl::StrCat(dir.path(), "/metrics.txt");
  model_testing::WriteFile(scrape_file, exposition->body);
  ExpectPromtoolPasses({"check", "metrics"}, scrape_file);

  // Every call counted once, by method and code.
  PollQuery(api_port, "sum(attnserve_requests_total)", Equals(load.calls));
  PollQuery(api_port,
            "sum(attnserve_requests_total{method=\"Generate\",code=\"OK\"})",
            Equals(load.generate_ok));
  PollQuery(api_port,
            "sum(attnserve_requests_total{code=\"INVALID_ARGUMENT\"})",
            Equals(load.invalid));
  PollQuery(api_port,
            "sum(attnserve_rejected_requests_total{reason=\"invalid\"})",
            Equals(load.invalid));
  // The batcher saw the accepted requests and the server's warm-up request.
  PollQuery(api_port, "sum(attnserve_request_input_tokens_count)",
            Equals(load.accepted + 1));

  // The query: p99 per {method,code}. The successful Generate calls'
  // is a latency no larger than the bucket holding the slowest call the
  // client saw (the server's part of a call is within the client's).
  const nlohmann::json p99 = PollQuery(
      api_port,
      "histogram_quantile(0.99, rate(attnserve_request_duration_seconds_bucket"
      "[1m]))",
      [](const nlohmann::json& result) {
        const nlohmann::json* generate =
            Find(result, {{"method", "Generate"}, {"code", "OK"}});
        return generate != nullptr && std::isfinite(ValueOf(*generate));
      });
  if (const nlohmann::json* generate =
          Find(p99, {{"method", "Generate"}, {"code", "OK"}})) {
    const double seconds = ValueOf(*generate);
    EXPECT_GT(seconds, 0);
    EXPECT_LE(seconds,
              BucketBoundAbove(absl::ToDoubleSeconds(load.slowest)) * 1.000001)
        << "slowest call seen by the client: " << load.slowest;
  }

  // deploy/'s recording rules evaluate on the real series.
  PollQuery(api_port,
            "job_method:attnserve_request_duration_seconds:p99_5m{method="
            "\"Generate\"}",
            [](const nlohmann::json& result) {
              return result.size() == 1 && std::isfinite(ValueOf(result[0]));
            });
  PollQuery(api_port, "job:attnserve_generated_tokens:rate5m",
            [](const nlohmann::json& result) {
              return result.size() == 1 && ValueOf(result[0]) > 0;
            });
  PollQuery(api_port,
            "attnserve_model_info{model=\"post_relu_tied_interleaved\","
            "d_model=\"32\",layers=\"2+2\"}",
            Equals(1));
  PollQuery(api_port, "process_resident_memory_bytes{job=\"attnserve\"}",
            [](const nlohmann::json& result) {
              return result.size() == 1 && ValueOf(result[0]) > 1e6;
            });

  prometheus_process.Signal(SIGTERM);
  EXPECT_EQ(prometheus_process.Wait(absl::Seconds(20)), std::optional<int>(0));
  server->process->Signal(SIGTERM);
  EXPECT_EQ(server->process->Wait(absl::Seconds(20)), std::optional<int>(0));
}

}  // namespace
}  // namespace attnserve::server
