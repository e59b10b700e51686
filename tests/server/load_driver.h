#pragma once
// Load for the tests that run build/attnserve under stress (overload, SIGTERM
// in the middle of load, restarts): many Generate calls in flight through
// gRPC's callback API, each answer checked against the answer the same request
// got alone. attnserve-bench measures; this checks correctness, which the bench
// cannot.

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "attnserve/v1/attnserve.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace attnserve::server::testing {

// One call of a load run.
struct CallOutcome {
  int example = 0;  // index into the driver's requests
  absl::Time start, end;
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
  bool correct = false;  // OK and the same output as the reference
};

// What a run did, for assertions and for the figures a test prints.
struct LoadRun {
  std::vector<CallOutcome> calls;  // in order of completion
  absl::Duration elapsed;          // first start -> last end

  std::map<grpc::StatusCode, int> CodeCounts() const;
  int Count(grpc::StatusCode code) const;
  int WrongAnswers() const;  // OK calls whose output differs
  double OkPerSecond() const;
  // The latencies of the calls that ended with `code`, sorted.
  std::vector<absl::Duration> Latencies(grpc::StatusCode code) const;
  // "OK 120, RESOURCE_EXHAUSTED 40" for failure messages.
  std::string Describe() const;
};

// Nearest-rank percentile of sorted latencies (q in [0, 100]); zero when empty.
absl::Duration Percentile(const std::vector<absl::Duration>& sorted, double q);

class LoadDriver {
 public:
  // `requests` are sent cycling; each call's deadline is `timeout`.
  LoadDriver(std::shared_ptr<grpc::Channel> channel,
             std::vector<v1::GenerateRequest> requests,
             absl::Duration timeout = absl::Seconds(60));
  LoadDriver(const LoadDriver&) = delete;
  LoadDriver& operator=(const LoadDriver&) = delete;

  // Sends every request alone, one after another, and keeps the answers as
  // the reference the loaded calls must reproduce. An error if one fails.
  absl::Status RecordReference();
  const std::vector<v1::GenerateResponse>& reference() const {
    return reference_;
  }

  // Closed loop: `concurrency` calls in flight for `duration` (each finished
  // call is replaced at once). Returns when every call has finished.
  LoadRun Closed(int concurrency, absl::Duration duration);
  // Open loop: `rps` calls started per second, evenly spaced, for `duration`,
  // whether or not earlier ones finished. Returns when every call has
  // finished.
  LoadRun Open(double rps, absl::Duration duration);

  // Calls started and not yet finished (thread-safe).
  int in_flight() const;

 private:
  struct Call;
  void Launch() ABSL_LOCKS_EXCLUDED(mu_);
  void Finished(Call* call, const grpc::Status& status);
  LoadRun Collect(absl::Time started) ABSL_LOCKS_EXCLUDED(mu_);

  std::unique_ptr<v1::Seq2Seq::Stub> stub_;
  const std::vector<v1::GenerateRequest> requests_;
  const absl::Duration timeout_;
  std::vector<v1::GenerateResponse> reference_;

  mutable absl::Mutex mu_;
  int next_example_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  // Closed loop: finished calls are replaced until then.
  absl::Time replace_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::vector<CallOutcome> outcomes_ ABSL_GUARDED_BY(mu_);
};

// The first `count` lines of tests/data/dates_heldout.tsv: a date as people
// write it, and the ISO 8601 date it means.
struct HeldOutDate {
  std::string source;
  std::string iso;
};
std::vector<HeldOutDate> HeldOutDates(int count);
// Text requests for models/dates, one per held-out date.
std::vector<v1::GenerateRequest> DatesRequests(int count, int max_new_tokens);

// Resident memory of a process (from /proc/PID/stat), in bytes.
absl::StatusOr<int64_t> ResidentBytes(pid_t pid);

}  // namespace attnserve::server::testing
