#include "tests/server/load_driver.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/process_metrics.h"

namespace attnserve::server::testing {

struct LoadDriver::Call {
  grpc::ClientContext context;
  v1::GenerateResponse response;
  int example = 0;
  absl::Time start;
};

std::map<grpc::StatusCode, int> LoadRun::CodeCounts() const {
  std::map<grpc::StatusCode, int> counts;
  for (const CallOutcome& call : calls) ++counts[call.code];
  return counts;
}

int LoadRun::Count(grpc::StatusCode code) const {
  return static_cast<int>(
      std::count_if(calls.begin(), calls.end(),
                    [code](const CallOutcome& c) { return c.code == code; }));
}

int LoadRun::WrongAnswers() const {
  return static_cast<int>(
      std::count_if(calls.begin(), calls.end(), [](const CallOutcome& c) {
        return c.code == grpc::StatusCode::OK && !c.correct;
      }));
}

double LoadRun::OkPerSecond() const {
  const double seconds = absl::ToDoubleSeconds(elapsed);
  return seconds > 0 ? Count(grpc::StatusCode::OK) / seconds : 0.0;
}

std::vector<absl::Duration> LoadRun::Latencies(grpc::StatusCode code) const {
  std::vector<absl::Duration> latencies;
  for (const CallOutcome& call : calls) {
    if (call.code == code) latencies.push_back(call.end - call.start);
  }
  std::sort(latencies.begin(), latencies.end());
  return latencies;
}

std::string LoadRun::Describe() const {
  std::vector<std::string> parts;
  for (const auto& [code, count] : CodeCounts()) {
    parts.push_back(absl::StrCat(
        absl::StatusCodeToString(static_cast<absl::StatusCode>(code)), " ",
        count));
  }
  return absl::StrCat(absl::StrJoin(parts, ", "), " in ",
                      absl::FormatDuration(elapsed));
}

absl::Duration Percentile(const std::vector<absl::Duration>& sorted, double q) {
  if (sorted.empty()) return absl::ZeroDuration();
  const size_t rank = static_cast<size_t>(
      std::ceil(q / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

LoadDriver::LoadDriver(std::shared_ptr<grpc::Channel> channel,
                       std::vector<v1::GenerateRequest> requests,
                       absl::Duration timeout)
    : stub_(v1::Seq2Seq::NewStub(channel)),
      requests_(std::move(requests)),
      timeout_(timeout) {}

absl::Status LoadDriver::RecordReference() {
  reference_.clear();
  for (const v1::GenerateRequest& request : requests_) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
    v1::GenerateResponse response;
    const grpc::Status status = stub_->Generate(&context, request, &response);
    if (!status.ok()) {
      return absl::Status(
          static_cast<absl::StatusCode>(status.error_code()),
          absl::StrCat("reference call: ", status.error_message()));
    }
    reference_.push_back(std::move(response));
  }
  return absl::OkStatus();
}

void LoadDriver::Launch() {
  auto* call = new Call;
  {
    absl::MutexLock lock(&mu_);
    call->example = next_example_;
    next_example_ = (next_example_ + 1) % static_cast<int>(requests_.size());
    ++in_flight_;
  }
  call->start = absl::Now();
  call->context.set_deadline(absl::ToChronoTime(call->start + timeout_));
  stub_->async()->Generate(
      &call->context, &requests_[call->example], &call->response,
      [this, call](grpc::Status status) { Finished(call, status); });
}

void LoadDriver::Finished(Call* call, const grpc::Status& status) {
  CallOutcome outcome;
  outcome.example = call->example;
  outcome.start = call->start;
  outcome.end = absl::Now();
  outcome.code = status.error_code();
  outcome.message = status.error_message();
  if (status.ok() && call->example < static_cast<int>(reference_.size())) {
    const v1::GenerateResponse& expected = reference_[call->example];
    outcome.correct = std::equal(
        call->response.output_ids().begin(), call->response.output_ids().end(),
        expected.output_ids().begin(), expected.output_ids().end());
    outcome.correct =
        outcome.correct && call->response.text() == expected.text() &&
        call->response.finish_reason() == expected.finish_reason();
  }
  delete call;
  bool replace = false;
  {
    absl::MutexLock lock(&mu_);
    outcomes_.push_back(std::move(outcome));
    replace = absl::Now() < replace_until_;
  }
  // Started before this one counts as finished, so in_flight_ only reaches 0
  // when the loop is over.
  if (replace) Launch();
  absl::MutexLock lock(&mu_);
  --in_flight_;
}

LoadRun LoadDriver::Collect(absl::Time started) {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* in_flight) { return *in_flight == 0; }, &in_flight_));
  LoadRun run;
  run.calls = std::move(outcomes_);
  outcomes_.clear();
  absl::Time last = started;
  for (const CallOutcome& call : run.calls) last = std::max(last, call.end);
  run.elapsed = last - started;
  replace_until_ = absl::InfinitePast();
  return run;
}

LoadRun LoadDriver::Closed(int concurrency, absl::Duration duration) {
  const absl::Time started = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    replace_until_ = started + duration;
  }
  for (int i = 0; i < concurrency; ++i) Launch();
  return Collect(started);
}

LoadRun LoadDriver::Open(double rps, absl::Duration duration) {
  const absl::Time started = absl::Now();
  const absl::Duration gap = absl::Seconds(1.0 / rps);
  const int64_t calls =
      static_cast<int64_t>(rps * absl::ToDoubleSeconds(duration));
  for (int64_t i = 0; i < calls; ++i) {
    // Arrival times are fixed in advance: a late start does not shift the
    // ones after it, so the rate holds even when the client is descheduled.
    const absl::Time due = started + gap * i;
    const absl::Time now = absl::Now();
    if (due > now) absl::SleepFor(due - now);
    Launch();
  }
  return Collect(started);
}

int LoadDriver::in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

std::vector<HeldOutDate> HeldOutDates(int count) {
  std::ifstream tsv(
      absl::StrCat(ATTNSERVE_SOURCE_DIR, "/tests/data/dates_heldout.tsv"));
  std::vector<HeldOutDate> dates;
  for (std::string line;
       static_cast<int>(dates.size()) < count && std::getline(tsv, line);) {
    const std::pair<std::string, std::string> fields =
        absl::StrSplit(line, absl::MaxSplits('\t', 1));
    dates.push_back({fields.first, fields.second});
  }
  return dates;
}

std::vector<v1::GenerateRequest> DatesRequests(int count, int max_new_tokens) {
  std::vector<v1::GenerateRequest> requests;
  for (const HeldOutDate& date : HeldOutDates(count)) {
    v1::GenerateRequest request;
    request.set_text(date.source);
    request.set_max_new_tokens(max_new_tokens);
    requests.push_back(std::move(request));
  }
  return requests;
}

absl::StatusOr<int64_t> ResidentBytes(pid_t pid) {
  std::ifstream file(absl::StrCat("/proc/", pid, "/stat"));
  std::stringstream text;
  text << file.rdbuf();
  absl::StatusOr<ProcessStat> stat =
      ParseProcessStat(text.str(), sysconf(_SC_CLK_TCK));
  if (!stat.ok()) return stat.status();
  return stat->resident_pages * sysconf(_SC_PAGESIZE);
}

}  // namespace attnserve::server::testing
