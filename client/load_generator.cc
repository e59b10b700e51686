#include "client/load_generator.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace attnserve::client {
namespace {

// Tokens a response message carries: its own and, with num_return_sequences,
// those of the other hypotheses (the last message of a stream).
int64_t GeneratedTokens(const v1::GenerateResponse& response) {
  int64_t tokens = response.output_ids_size();
  for (const v1::Hypothesis& other : response.alternatives()) {
    tokens += other.output_ids_size();
  }
  return tokens;
}

// One run of the load: decides when calls start, collects their records.
// Calls finish on gRPC's callback threads.
class LoadRun {
 public:
  LoadRun(v1::Seq2Seq::Stub& stub, RequestMix& mix, const LoadOptions& options)
      : stub_(stub),
        mix_(mix),
        options_(options),
        start_(absl::Now()),
        measure_start_(start_ + options.warmup),
        measure_end_(measure_start_ + options.duration) {}

  LoadResult Run();

  // Called once per call, on any thread, after the call released its gRPC
  // objects.
  void OnCallDone(bool measured, CallRecord record, absl::Time end);

 private:
  struct NextCall {
    v1::GenerateRequest request;
    bool measured;
  };

  // Whether the run still issues calls (arrivals) at `now`.
  bool MoreToIssueLocked(absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Closed loop: the call to start now, or nullopt when the run has issued
  // all it will (then marks issuing as done).
  std::optional<NextCall> TakeNextLocked(absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True exactly once: when nothing is in flight and nothing more will start.
  bool BecameDoneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Starts a call; in_flight_ already counts it. Called without mu_ held: gRPC
  // may run callbacks before returning.
  void Launch(NextCall call);
  void RunOpenLoop();

  v1::Seq2Seq::Stub& stub_;
  RequestMix& mix_ ABSL_GUARDED_BY(mu_);
  const LoadOptions options_;
  const absl::Time start_;
  const absl::Time measure_start_;
  const absl::Time measure_end_;  // duration mode only

  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t measured_issued_ ABSL_GUARDED_BY(mu_) = 0;  // sent or dropped
  bool issuing_done_ ABSL_GUARDED_BY(mu_) = false;
  bool done_reported_ ABSL_GUARDED_BY(mu_) = false;
  LoadResult result_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Time> last_end_ ABSL_GUARDED_BY(mu_);
  // Notified last by a callback thread; unlike a Mutex, safe to destroy as
  // soon as WaitForNotification returns.
  absl::Notification done_;
};

class UnaryCall {
 public:
  UnaryCall(LoadRun* run, v1::GenerateRequest request, bool measured)
      : run_(run), request_(std::move(request)), measured_(measured) {}

  void Start(v1::Seq2Seq::Stub& stub, absl::Duration timeout) {
    start_ = absl::Now();
    context_.set_deadline(absl::ToChronoTime(start_ + timeout));
    stub.async()->Generate(&context_, &request_, &response_,
                           [this](grpc::Status status) { Done(status); });
  }

 private:
  void Done(const grpc::Status& status) {
    const absl::Time end = absl::Now();
    CallRecord record;
    record.code = status.error_code();
    record.latency = end - start_;
    record.generated_tokens = GeneratedTokens(response_);
    LoadRun* run = run_;
    const bool measured = measured_;
    delete this;
    run->OnCallDone(measured, std::move(record), end);
  }

  LoadRun* const run_;
  const v1::GenerateRequest request_;
  const bool measured_;
  grpc::ClientContext context_;
  v1::GenerateResponse response_;
  absl::Time start_;
};

class StreamCall final : public grpc::ClientReadReactor<v1::GenerateResponse> {
 public:
  StreamCall(LoadRun* run, v1::GenerateRequest request, bool measured)
      : run_(run), request_(std::move(request)), measured_(measured) {}

  void Start(v1::Seq2Seq::Stub& stub, absl::Duration timeout) {
    start_ = absl::Now();
    context_.set_deadline(absl::ToChronoTime(start_ + timeout));
    stub.async()->GenerateStream(&context_, &request_, this);
    StartRead(&response_);
    StartCall();  // after this, OnDone may delete `this` at any time
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    if (response_.output_ids_size() > 0) {
      const absl::Time now = absl::Now();
      if (!record_.time_to_first_token.has_value()) {
        record_.time_to_first_token = now - start_;
      } else {
        record_.token_gaps.push_back(now - last_tokens_);
      }
      last_tokens_ = now;
    }
    record_.generated_tokens += GeneratedTokens(response_);
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    const absl::Time end = absl::Now();
    record_.code = status.error_code();
    record_.latency = end - start_;
    LoadRun* run = run_;
    const bool measured = measured_;
    CallRecord record = std::move(record_);
    delete this;
    run->OnCallDone(measured, std::move(record), end);
  }

 private:
  LoadRun* const run_;
  const v1::GenerateRequest request_;
  const bool measured_;
  grpc::ClientContext context_;
  v1::GenerateResponse response_;
  absl::Time start_;
  absl::Time last_tokens_;
  CallRecord record_;
};

bool LoadRun::MoreToIssueLocked(absl::Time now) const {
  if (now < measure_start_) return true;  // warming up
  return options_.requests > 0 ? measured_issued_ < options_.requests
                               : now < measure_end_;
}

std::optional<LoadRun::NextCall> LoadRun::TakeNextLocked(absl::Time now) {
  if (issuing_done_ || !MoreToIssueLocked(now)) {
    issuing_done_ = true;
    return std::nullopt;
  }
  const bool measured = now >= measure_start_;
  if (measured) ++measured_issued_;
  ++in_flight_;
  return NextCall{mix_.Next(), measured};
}

bool LoadRun::BecameDoneLocked() {
  if (!issuing_done_ || in_flight_ > 0 || done_reported_) return false;
  done_reported_ = true;
  return true;
}

void LoadRun::Launch(NextCall call) {
  if (options_.stream) {
    (new StreamCall(this, std::move(call.request), call.measured))
        ->Start(stub_, options_.timeout);
  } else {
    (new UnaryCall(this, std::move(call.request), call.measured))
        ->Start(stub_, options_.timeout);
  }
}

void LoadRun::OnCallDone(bool measured, CallRecord record, absl::Time end) {
  std::optional<NextCall> next;
  bool done = false;
  {
    absl::MutexLock lock(&mu_);
    --in_flight_;
    if (measured) {
      result_.calls.push_back(std::move(record));
      last_end_ = std::max(last_end_.value_or(end), end);
    } else {
      ++result_.warmup_calls;
    }
    if (options_.rps == 0) next = TakeNextLocked(absl::Now());
    done = BecameDoneLocked();
  }
  if (next.has_value()) Launch(*std::move(next));
  if (done) done_.Notify();  // the last use of `this`
}

void LoadRun::RunOpenLoop() {
  std::mt19937_64 rng(options_.seed);
  std::exponential_distribution<double> poisson_gap(options_.rps);
  absl::Time arrival = start_;
  while (true) {
    // Behind schedule (a slow launch), arrivals are sent at once: the schedule
    // stays that of the rate asked for.
    const absl::Duration wait = arrival - absl::Now();
    if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
    std::optional<NextCall> call;
    {
      absl::MutexLock lock(&mu_);
      if (!MoreToIssueLocked(arrival)) break;
      const bool measured = arrival >= measure_start_;
      if (measured) ++measured_issued_;
      if (in_flight_ >= options_.max_in_flight) {
        if (measured) ++result_.dropped;
      } else {
        ++in_flight_;
        call = NextCall{mix_.Next(), measured};
      }
    }
    if (call.has_value()) Launch(*std::move(call));
    const double gap_seconds = options_.arrivals == Arrivals::kPoisson
                                   ? poisson_gap(rng)
                                   : 1.0 / options_.rps;
    arrival += absl::Seconds(gap_seconds);
  }
  bool done = false;
  {
    absl::MutexLock lock(&mu_);
    issuing_done_ = true;
    done = BecameDoneLocked();
  }
  if (done) done_.Notify();
}

LoadResult LoadRun::Run() {
  if (options_.rps > 0) {
    RunOpenLoop();
  } else {
    for (int i = 0; i < options_.concurrency; ++i) {
      std::optional<NextCall> call;
      bool done = false;
      {
        absl::MutexLock lock(&mu_);
        call = TakeNextLocked(absl::Now());
        done = BecameDoneLocked();
      }
      if (done) done_.Notify();
      if (!call.has_value()) break;
      Launch(*std::move(call));
    }
  }
  done_.WaitForNotification();
  absl::MutexLock lock(&mu_);
  if (last_end_.has_value()) {
    result_.elapsed = *last_end_ - measure_start_;
  } else {
    result_.elapsed = options_.duration;
  }
  return std::move(result_);
}

}  // namespace

absl::StatusOr<Arrivals> ParseArrivals(absl::string_view name) {
  if (name == "poisson") return Arrivals::kPoisson;
  if (name == "uniform") return Arrivals::kUniform;
  return absl::InvalidArgumentError(
      absl::StrCat("--arrivals=", name, ": want poisson or uniform"));
}

const char* ArrivalsName(Arrivals arrivals) {
  return arrivals == Arrivals::kPoisson ? "poisson" : "uniform";
}

absl::Status ValidateLoadOptions(const LoadOptions& options) {
  if (options.rps < 0) return absl::InvalidArgumentError("--rps must be >= 0");
  if (options.rps == 0 && options.concurrency < 1) {
    return absl::InvalidArgumentError("--concurrency must be >= 1");
  }
  if (options.rps > 0 && options.max_in_flight < 1) {
    return absl::InvalidArgumentError("--max_in_flight must be >= 1");
  }
  if (options.requests < 0 || options.duration < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--requests and --duration must not be negative");
  }
  if ((options.requests > 0) == (options.duration > absl::ZeroDuration())) {
    return absl::InvalidArgumentError(
        "give exactly one of --requests and --duration");
  }
  if (options.warmup < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--warmup must not be negative");
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--timeout must be positive");
  }
  return absl::OkStatus();
}

std::string DescribeLoad(const LoadOptions& options) {
  std::string text =
      options.rps > 0
          ? absl::StrCat("open loop, ", options.rps, " requests/s (",
                         ArrivalsName(options.arrivals), "), at most ",
                         options.max_in_flight, " in flight")
          : absl::StrCat("closed loop, concurrency ", options.concurrency);
  absl::StrAppend(&text, ", ", options.stream ? "streaming" : "unary", ", ");
  if (options.requests > 0) {
    absl::StrAppend(&text, options.requests, " requests");
  } else {
    absl::StrAppend(&text, absl::FormatDuration(options.duration));
  }
  if (options.warmup > absl::ZeroDuration()) {
    absl::StrAppend(&text, " after ", absl::FormatDuration(options.warmup),
                    " warmup");
  }
  return text;
}

absl::StatusOr<LoadResult> RunLoad(v1::Seq2Seq::Stub& stub, RequestMix& mix,
                                   const LoadOptions& options) {
  if (absl::Status valid = ValidateLoadOptions(options); !valid.ok()) {
    return valid;
  }
  LoadRun run(stub, mix, options);
  return run.Run();
}

}  // namespace attnserve::client
