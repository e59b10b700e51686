#include "server/batcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace attnserve::server {

absl::StatusOr<std::unique_ptr<Batcher>> Batcher::Create(
    const BatcherOptions& options, BatchEngine* engine, Clock* clock,
    ServerObserver* observer) {
  if (engine == nullptr || clock == nullptr || observer == nullptr) {
    return absl::InvalidArgumentError(
        "Batcher needs an engine, a clock and an observer");
  }
  const BatchingOptions& batching = options.batching;
  if (batching.max_batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_batch_size must be >= 1, not ", batching.max_batch_size));
  }
  if (batching.max_batch_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_batch_tokens must be >= 1, not ", batching.max_batch_tokens));
  }
  if (batching.max_batch_memory_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch_memory_bytes must be >= 0 (0: none), not ",
                     batching.max_batch_memory_bytes));
  }
  if (batching.max_queue_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_queue_delay must not be negative, not ",
                     absl::FormatDuration(batching.max_queue_delay)));
  }
  if (options.max_queue_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_queue_size must be >= 1, not ", options.max_queue_size));
  }
  return std::unique_ptr<Batcher>(
      new Batcher(options, engine, clock, observer));
}

Batcher::Batcher(const BatcherOptions& options, BatchEngine* engine,
                 Clock* clock, ServerObserver* observer)
    : options_(options), engine_(engine), clock_(clock), observer_(observer) {}

Batcher::~Batcher() { Stop(); }

absl::Status Batcher::Submit(WorkItem item, ResponseSink* sink) {
  const int source_tokens = static_cast<int>(item.source.size());
  const int token_cost = TokenCost(source_tokens, item.decode);
  const int64_t memory_bytes =
      engine_->EstimateBytes(source_tokens, item.decode);
  // Refused before any work: a request that cannot fit even an empty batch
  // would otherwise have to run alone and hold everyone else up (or never run).
  absl::Status status =
      CheckFitsAlone(token_cost, memory_bytes, options_.batching);
  if (status.ok()) {
    absl::MutexLock lock(&mu_);
    if (!accepting_) {
      status = absl::UnavailableError(
          "the server is shutting down and takes no new requests");
    } else if (static_cast<int>(queue_.size()) >= options_.max_queue_size) {
      status = absl::ResourceExhaustedError(
          absl::StrCat("the request queue is full (", options_.max_queue_size,
                       " waiting requests, max_queue_size); retry later"));
    } else {
      Queued queued;
      queued.token_cost = token_cost;
      queued.memory_bytes = memory_bytes;
      queued.item = std::move(item);
      queued.sink = sink;
      queued.accepted = clock_->Now();
      queue_.push_back(std::move(queued));
      ++generation_;
      ReportLoad();
    }
  }
  if (!status.ok()) observer_->OnRejected(status.code());
  return status;
}

void Batcher::Wake() {
  absl::MutexLock lock(&mu_);
  ++generation_;
}

void Batcher::Start() {
  worker_ = std::thread([this] { Run(); });
}

void Batcher::StopAccepting() {
  absl::MutexLock lock(&mu_);
  accepting_ = false;
  ++generation_;  // queued requests no longer wait for a batch to fill
}

bool Batcher::accepting() const {
  absl::MutexLock lock(&mu_);
  return accepting_;
}

bool Batcher::AwaitIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queue_.empty() && running_count_ == 0;
  };
  return clock_->AwaitWithDeadline(&mu_, absl::Condition(&idle), deadline);
}

void Batcher::Stop() {
  std::call_once(stop_once_, [this] {
    {
      absl::MutexLock lock(&mu_);
      accepting_ = false;
      stop_ = true;
      ++generation_;
    }
    if (worker_.joinable()) {
      worker_.join();  // the thread answers what is left on its way out
    } else {
      AbortAll(absl::UnavailableError(
          "the server shut down before the request finished"));
    }
  });
}

int Batcher::queue_size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

int Batcher::running_size() const {
  absl::MutexLock lock(&mu_);
  return running_count_;
}

void Batcher::Run() {
  while (true) {
    uint64_t seen = 0;
    const PumpResult result = PumpOnce(&seen);
    absl::MutexLock lock(&mu_);
    if (stop_) break;
    if (result.did_work()) continue;
    auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return generation_ != seen || stop_;
    };
    clock_->AwaitWithDeadline(&mu_, absl::Condition(&changed), result.wake_at);
  }
  AbortAll(absl::UnavailableError(
      "the server shut down before the request finished"));
}

Batcher::PumpResult Batcher::Pump() { return PumpOnce(nullptr); }

absl::Status Batcher::Abandoned(const ResponseSink& sink, absl::Time deadline,
                                absl::Time now, bool running) const {
  // The deadline comes first: gRPC also cancels a call whose deadline passed,
  // and the caller should learn which of the two happened.
  if (now >= deadline) {
    return absl::DeadlineExceededError(
        running ? "the deadline passed while decoding"
                : "the deadline passed while queued");
  }
  if (sink.cancelled())
    return absl::CancelledError("the client cancelled the call");
  return absl::OkStatus();
}

Batcher::PumpResult Batcher::PumpOnce(uint64_t* generation) {
  absl::MutexLock pump_lock(&pump_mu_);
  PumpResult result;
  const absl::Time now = clock_->Now();

  // Running sequences whose caller is gone leave first, so their slots count as
  // free in this iteration's admission.
  for (auto it = running_.begin(); it != running_.end();) {
    const absl::Status status =
        Abandoned(*it->second.sink, it->second.deadline, now, /*running=*/true);
    if (status.ok()) {
      ++it;
      continue;
    }
    engine_->Cancel(it->first);
    AnswerRunning(it++, status);
    ++result.dropped;
  }

  std::vector<std::pair<Queued, absl::Status>> abandoned;
  std::vector<Queued> admitting;
  {
    absl::MutexLock lock(&mu_);
    if (generation != nullptr) *generation = generation_;

    std::deque<Queued> waiting;
    for (Queued& queued : queue_) {
      absl::Status status =
          Abandoned(*queued.sink, queued.item.deadline, now, false);
      if (status.ok() && now >= queued.item.queue_deadline) {
        status = absl::DeadlineExceededError(
            "the request's queue timeout passed while queued");
      }
      if (status.ok()) {
        waiting.push_back(std::move(queued));
      } else {
        abandoned.emplace_back(std::move(queued), std::move(status));
      }
    }
    queue_.swap(waiting);

    std::vector<QueuedRequest> view;
    view.reserve(queue_.size());
    for (const Queued& queued : queue_) {
      view.push_back({queued.accepted, queued.token_cost, queued.memory_bytes,
                      queued.item.decode.max_new_tokens, queued.item.urgent});
    }
    std::vector<RunningRequest> running;
    running.reserve(running_.size());
    for (const auto& [id, r] : running_) {
      running.push_back(
          {r.token_cost, r.memory_bytes, std::max(0, r.max_steps - r.steps)});
    }
    BatchState state;
    state.queue = view;
    state.running = running;
    state.draining = !accepting_;
    const BatchDecision decision = DecideBatch(state, now, options_.batching);

    if (!decision.admit.empty()) {
      std::deque<Queued> staying;
      size_t next = 0;
      for (int i = 0; i < static_cast<int>(queue_.size()); ++i) {
        if (next < decision.admit.size() && decision.admit[next] == i) {
          admitting.push_back(std::move(queue_[i]));
          ++next;
        } else {
          staying.push_back(std::move(queue_[i]));
        }
      }
      queue_.swap(staying);
    }
    result.wake_at = decision.wake_at;
    for (const Queued& queued : queue_) {
      result.wake_at = std::min(
          {result.wake_at, queued.item.deadline, queued.item.queue_deadline});
    }
    // Requests on their way from the queue to the engine still count as
    // running, so that AwaitIdle never sees a moment where they are in neither.
    running_count_ = static_cast<int>(running_.size() + admitting.size());
    ReportLoad();
  }

  // Sinks are called without mu_, so that a sink may call back into the
  // batcher.
  for (auto& [queued, status] : abandoned) {
    AnswerQueued(queued, status);
    ++result.answered_early;
  }
  if (!admitting.empty()) Admit(std::move(admitting), &result);
  if (!running_.empty()) StepEngine(&result);

  absl::MutexLock lock(&mu_);
  running_count_ = static_cast<int>(running_.size());
  ReportLoad();
  return result;
}

void Batcher::Admit(std::vector<Queued> admitting, PumpResult* result) {
  const absl::Time now = clock_->Now();
  std::vector<engine::SequenceInput> inputs;
  std::vector<std::pair<engine::SequenceId, Running>> admitted;
  for (Queued& queued : admitting) {
    engine::SequenceInput input;
    input.id = next_sequence_id_++;
    input.source = std::move(queued.item.source);
    input.options = queued.item.decode;
    // The server checked the request against its own limits; the engine's own
    // check is the last word (and keeps one bad request from failing the whole
    // encoder batch).
    if (absl::Status valid = engine_->Validate(input); !valid.ok()) {
      Outcome outcome;
      Answer(queued.sink, valid, outcome, queued.accepted,
             static_cast<int>(input.source.size()), 0);
      ++result->answered_at_admission;
      continue;
    }
    Running running;
    running.sink = queued.sink;
    running.request_id = std::move(queued.item.request_id);
    running.accepted = queued.accepted;
    running.deadline = queued.item.deadline;
    running.input_tokens = static_cast<int>(input.source.size());
    running.token_cost = queued.token_cost;
    running.memory_bytes = queued.memory_bytes;
    running.max_steps = input.options.max_new_tokens;
    running.outcome.queue_time = now - queued.accepted;
    observer_->OnAdmitted(running.outcome.queue_time);
    admitted.emplace_back(input.id, std::move(running));
    inputs.push_back(std::move(input));
  }
  if (!inputs.empty()) AddGroup(std::move(inputs), std::move(admitted), result);
}

void Batcher::AddGroup(
    std::vector<engine::SequenceInput> inputs,
    std::vector<std::pair<engine::SequenceId, Running>> admitted,
    PumpResult* result) {
  const int count = static_cast<int>(inputs.size());
  int tokens = 0;
  for (const engine::SequenceInput& input : inputs) {
    tokens += static_cast<int>(input.source.size());
  }
  // Add takes its inputs; keep a copy to retry with (sources are small next to
  // what encoding them costs).
  std::vector<engine::SequenceInput> retry;
  if (count > 1) retry = inputs;
  const absl::Time start = clock_->Now();
  const absl::Status added = engine_->Add(std::move(inputs));
  const absl::Duration took = clock_->Now() - start;
  if (added.ok()) {
    observer_->OnEncode(count, tokens, took);
    for (auto& [id, running] : admitted) {
      running.outcome.compute_time += took / count;
      running_.emplace(id, std::move(running));
    }
    result->admitted += count;
    return;
  }
  const bool exhausted = added.code() == absl::StatusCode::kResourceExhausted;
  if (exhausted && count > 1) {
    // On error nothing was added: find the request(s) too big to encode by
    // encoding each half on its own.
    const int half = count / 2;
    std::vector<engine::SequenceInput> second(
        std::make_move_iterator(retry.begin() + half),
        std::make_move_iterator(retry.end()));
    retry.resize(half);
    std::vector<std::pair<engine::SequenceId, Running>> second_admitted(
        std::make_move_iterator(admitted.begin() + half),
        std::make_move_iterator(admitted.end()));
    admitted.resize(half);
    AddGroup(std::move(retry), std::move(admitted), result);
    AddGroup(std::move(second), std::move(second_admitted), result);
    return;
  }
  // One request the engine has no memory for keeps the engine's status; any
  // other failure after input that passed Validate is the engine's fault, not
  // the client's.
  const absl::Status error =
      exhausted
          ? absl::ResourceExhaustedError(absl::StrCat(
                "the engine could not encode the request: ", added.message()))
          : absl::InternalError(absl::StrCat(
                "the engine failed to encode the batch: ", added.message()));
  for (auto& [id, running] : admitted) {
    Answer(running.sink, error, running.outcome, running.accepted,
           running.input_tokens, 0);
    ++result->answered_at_admission;
  }
}

void Batcher::StepEngine(PumpResult* result) {
  const int batch_size = static_cast<int>(running_.size());
  const absl::Time start = clock_->Now();
  absl::StatusOr<std::vector<engine::StepEvent>> events = engine_->Step();
  const absl::Time end = clock_->Now();
  const absl::Duration took = end - start;
  result->stepped = true;
  if (!events.ok()) {
    // No sequence can be blamed: all of them fail, with the engine's code.
    const absl::Status error =
        absl::Status(events.status().code(),
                     absl::StrCat("the engine failed a decode step: ",
                                  events.status().message()));
    while (!running_.empty()) {
      auto it = running_.begin();
      engine_->Cancel(it->first);  // its state is unknown after a failed step
      AnswerRunning(it, error);
      ++result->dropped;
    }
    return;
  }
  observer_->OnStep(batch_size, took);
  for (auto& [id, running] : running_) {
    running.outcome.compute_time += took / batch_size;
    running.outcome.max_batch_size =
        std::max(running.outcome.max_batch_size, batch_size);
    ++running.steps;
  }
  for (engine::StepEvent& event : *events) {
    auto it = running_.find(event.id);
    if (it == running_.end())
      continue;  // not ours; the engine reports only what we added
    Running& running = it->second;
    if (!event.status.ok()) {
      // This sequence alone failed and has left the engine; the rest go on.
      AnswerRunning(it, event.status);
      ++result->failed;
      continue;
    }
    if (!event.new_ids.empty()) {
      const bool first = running.generated_tokens == 0;
      observer_->OnTokens(
          static_cast<int>(event.new_ids.size()), first,
          end - (first ? running.accepted : running.last_tokens));
      running.last_tokens = end;
      running.generated_tokens += static_cast<int>(event.new_ids.size());
      absl::Status delivered = running.sink->OnStepTokens(event);
      if (!delivered.ok()) {
        if (!event.finished) engine_->Cancel(event.id);
        AnswerRunning(it, delivered);
        ++result->dropped;
        continue;
      }
    }
    if (event.finished) {
      running.outcome.result = std::move(event.result);
      AnswerRunning(it, absl::OkStatus());
      ++result->finished;
    }
  }
}

void Batcher::AbortAll(const absl::Status& status) {
  absl::MutexLock pump_lock(&pump_mu_);
  std::deque<Queued> queued;
  {
    absl::MutexLock lock(&mu_);
    queued.swap(queue_);
  }
  for (Queued& request : queued) AnswerQueued(request, status);
  while (!running_.empty()) {
    auto it = running_.begin();
    engine_->Cancel(it->first);
    AnswerRunning(it, status);
  }
  absl::MutexLock lock(&mu_);
  running_count_ = 0;
  ReportLoad();
}

void Batcher::ReportLoad() {
  observer_->OnLoad(static_cast<int>(queue_.size()), running_count_);
}

void Batcher::AnswerQueued(Queued& queued, const absl::Status& status) {
  Outcome outcome;
  Answer(queued.sink, status, outcome, queued.accepted,
         static_cast<int>(queued.item.source.size()), 0);
}

void Batcher::AnswerRunning(RunningMap::iterator it,
                            const absl::Status& status) {
  Running running = std::move(it->second);
  running_.erase(it);
  Answer(running.sink, status, running.outcome, running.accepted,
         running.input_tokens, running.generated_tokens);
}

void Batcher::Answer(ResponseSink* sink, const absl::Status& status,
                     Outcome& outcome, absl::Time accepted, int input_tokens,
                     int generated_tokens) {
  outcome.total_time = clock_->Now() - accepted;
  RequestStats stats;
  stats.queue = outcome.queue_time;
  stats.compute = outcome.compute_time;
  stats.total = outcome.total_time;
  stats.input_tokens = input_tokens;
  stats.generated_tokens = generated_tokens;
  stats.max_batch_size = outcome.max_batch_size;
  observer_->OnFinished(status.code(), stats);
  sink->OnFinished(status, outcome);
}

}  // namespace attnserve::server
