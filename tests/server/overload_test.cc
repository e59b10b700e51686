// build/attnserve (models/dates) at four times the capacity it just showed,
// with a small queue: it sheds the excess with RESOURCE_EXHAUSTED, faster than
// it serves; every call it accepts gets the answer that request gets alone;
// resident memory stays bounded; and throughput comes back when the load
// stops. Timing is only compared within the run (a noisy shared machine makes
// absolute bounds flaky); scripts/overload.sh measures the absolute figures
// (docs/reliability.md).

#include <algorithm>
#include <atomic>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/attnserve_binary.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/load_driver.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::DatesModelDir;
using ::attnserve::server::testing::DatesRequests;
using ::attnserve::server::testing::HeldOutDates;
using ::attnserve::server::testing::LoadDriver;
using ::attnserve::server::testing::LoadRun;
using ::attnserve::server::testing::Percentile;
using ::attnserve::server::testing::ResidentBytes;
using ::attnserve::server::testing::StartAttnserve;
using ::attnserve::server::testing::StartedServer;
using ::attnserve::server::testing::TestServerFlags;
using ::testing::HasSubstr;

constexpr int kQueueSize = 8;
constexpr int kSources = 64;

// Samples a process's resident memory every 50 ms until destroyed; the peak.
class RssSampler {
 public:
  explicit RssSampler(pid_t pid)
      : thread_([this, pid] {
          while (!stop_.load()) {
            peak_ = std::max<int64_t>(peak_, ResidentBytes(pid).value_or(0));
            absl::SleepFor(absl::Milliseconds(50));
          }
        }) {}
  // Stops sampling and returns the peak.
  int64_t Peak() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return peak_;
  }
  ~RssSampler() { Peak(); }

 private:
  std::atomic<bool> stop_{false};
  int64_t peak_ = 0;  // written by thread_ only until it is joined
  std::thread thread_;
};

double Millis(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

// Every call got the right answer or was shed.
void ExpectServedOrShed(const LoadRun& run, const std::string& phase) {
  EXPECT_EQ(run.Count(grpc::StatusCode::OK) +
                run.Count(grpc::StatusCode::RESOURCE_EXHAUSTED),
            static_cast<int>(run.calls.size()))
      << phase << ": " << run.Describe();
  EXPECT_EQ(run.WrongAnswers(), 0) << phase;
  for (const testing::CallOutcome& call : run.calls) {
    if (call.code == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      EXPECT_THAT(call.message, HasSubstr("queue is full")) << phase;
    }
  }
}

TEST(OverloadTest, ShedsFastAnswersRightStaysBoundedAndRecovers) {
  absl::StatusOr<StartedServer> server = StartAttnserve(TestServerFlags(
      DatesModelDir(), {absl::StrCat("--max_queue_size=", kQueueSize)}));
  ASSERT_TRUE(server.ok()) << server.status();
  const pid_t pid = server->process->pid();

  LoadDriver driver(testing::Connect(server->port),
                    DatesRequests(kSources, 16));
  ASSERT_TRUE(driver.RecordReference().ok());
  const std::vector<testing::HeldOutDate> dates = HeldOutDates(kSources);
  int right = 0;
  for (int i = 0; i < kSources; ++i) {
    right += driver.reference()[i].text() == dates[i].iso;
  }
  // The model is 99.6% right on held-out dates: the reference is sound.
  EXPECT_GE(right, kSources - 3);

  // Capacity: a closed loop of 32 calls (after one to warm up).
  driver.Closed(32, absl::Seconds(1));
  const LoadRun capacity_run = driver.Closed(32, absl::Seconds(3));
  ExpectServedOrShed(capacity_run, "capacity");
  const double capacity = capacity_run.OkPerSecond();
  ASSERT_GT(capacity, 0);
  const int64_t rss_loaded = ResidentBytes(pid).value_or(0);

  // Four times that, in an open loop.
  RssSampler sampler(pid);
  const LoadRun overload = driver.Open(4 * capacity, absl::Seconds(3));
  const int64_t rss_peak = sampler.Peak();
  ExpectServedOrShed(overload, "overload");
  EXPECT_GT(overload.Count(grpc::StatusCode::OK), 0) << overload.Describe();
  EXPECT_GT(overload.Count(grpc::StatusCode::RESOURCE_EXHAUSTED), 0)
      << overload.Describe();
  const std::vector<absl::Duration> shed =
      overload.Latencies(grpc::StatusCode::RESOURCE_EXHAUSTED);
  const std::vector<absl::Duration> served =
      overload.Latencies(grpc::StatusCode::OK);
  // Shedding answers at once; a served call waits for the queue and decodes.
  EXPECT_LT(Percentile(shed, 50), Percentile(served, 50));
  // The queue is bounded, so memory is: what 32 running requests took, plus
  // slack for gRPC's buffers of the calls it refuses.
  EXPECT_LT(rss_peak, rss_loaded + rss_loaded / 2 + (64 << 20))
      << "loaded " << rss_loaded << ", peak " << rss_peak;

  // The load stops: throughput comes back.
  const LoadRun recovered = driver.Closed(32, absl::Seconds(3));
  ExpectServedOrShed(recovered, "recovery");
  EXPECT_GT(recovered.OkPerSecond(), capacity / 3)
      << "capacity " << capacity << "/s, after overload "
      << recovered.OkPerSecond() << "/s";

  std::cout << absl::StrFormat(
      "capacity %.0f OK/s; overload at %.0f/s: %s, shed p50 %.2f ms p99 %.2f "
      "ms, served p50 %.2f ms p99 %.2f ms; RSS loaded %.1f MB, peak %.1f MB; "
      "after: %.0f OK/s\n",
      capacity, 4 * capacity, overload.Describe(), Millis(Percentile(shed, 50)),
      Millis(Percentile(shed, 99)), Millis(Percentile(served, 50)),
      Millis(Percentile(served, 99)), rss_loaded / 1e6, rss_peak / 1e6,
      recovered.OkPerSecond());
}

}  // namespace
}  // namespace attnserve::server
