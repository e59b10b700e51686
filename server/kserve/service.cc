#include "server/kserve/service.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/convert.h"
#include "server/kserve/convert.h"
#include "server/log.h"
#include "server/status_mapping.h"

namespace attnserve::server::kserve {
namespace {

using Environment = InferenceService::Environment;
using StreamReactor =
    grpc::ServerBidiReactor<inference::ModelInferRequest,
                            inference::ModelStreamInferResponse>;

absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const std::chrono::system_clock::time_point deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

// server/status_mapping.h's mapping, plus the one code only this protocol
// returns: NOT_FOUND for an unknown model or version (Triton's code).
grpc::Status ToGrpc(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kNotFound) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        std::string(status.message()));
  }
  return ToGrpcStatus(status);
}

// Logs a failure (as the Seq2Seq service does) and reports the call's end.
void ReportDone(const Environment& env, Method method, const std::string& id,
                absl::Time started, const absl::Status& status) {
  if (env.options.log_failures && !status.ok()) {
    LogLine(absl::StrCat(MethodName(method), " ", id, ": ",
                         absl::StatusCodeToString(status.code()), ": ",
                         status.message()));
  }
  env.observer->OnCallDone(
      method, static_cast<absl::StatusCode>(ToGrpc(status).error_code()),
      env.clock->Now() - started);
}

// The rows of one ModelInferRequest in the batcher: one ResponseSink per row,
// and the request's answer (Answered) once every queued row is answered.
//
// A row that fails fails the request: the other rows are cancelled so that
// they leave the batch, and the request is answered with the first failure.
//
// Lifetime: holders are the owner's (given to the constructor), one for Start
// while it runs and one per queued row until its OnFinished returns; the last
// Release deletes. Subclasses must be final and call Start once fully
// constructed (last in the constructor at the earliest) and hold the object
// meanwhile: once a row is queued, the inference thread calls the hooks.
class RowBatch {
 public:
  virtual ~RowBatch() = default;

 protected:
  RowBatch(const Environment& env, int owner_holds)
      : env_(env), started_(env.clock->Now()), holders_(owner_holds) {}

  // Checks `request` and queues its rows. Answered comes exactly once, from
  // here when nothing could be queued, else from the inference thread (or
  // here, when the last row was answered before Start returned).
  void Start(const inference::ModelInferRequest& request, absl::Time deadline) {
    Hold();
    id_ = request.id();
    log_id_ = request.id().empty() ? NewRequestId() : request.id();
    std::vector<WorkItem> items;
    absl::Status status = Plan(request, &items);
    if (!status.ok()) {
      env_.observer->OnRejected(status.code());
      {
        absl::MutexLock lock(&mu_);
        answered_ = true;
      }
      Answered(status, {});
      Release();
      return;
    }
    const int rows = static_cast<int>(items.size());
    outcomes_.resize(rows);
    for (int b = 0; b < rows; ++b) {
      sinks_.push_back(std::make_unique<RowSink>(this, b));
    }
    const absl::Time queue_deadline =
        plan_.queue_timeout == absl::InfiniteDuration()
            ? absl::InfiniteFuture()
            : env_.clock->Now() + plan_.queue_timeout;
    for (int b = 0; b < rows; ++b) {
      WorkItem& item = items[b];
      item.request_id = rows == 1 ? log_id_ : absl::StrCat(log_id_, "/", b);
      item.deadline = deadline;
      item.queue_deadline = queue_deadline;
      Hold();
      {
        absl::MutexLock lock(&mu_);
        ++pending_;
      }
      // The batcher reports a refusal to the observer itself.
      absl::Status submitted =
          env_.batcher->Submit(std::move(item), sinks_[b].get());
      if (!submitted.ok()) {
        {
          absl::MutexLock lock(&mu_);
          --pending_;
          if (failure_.ok()) failure_ = RowStatus(b, submitted);
        }
        Release();
        Cancel();
        break;
      }
    }
    FinishStep([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { starting_ = false; });
    Release();
  }

  // The rows of the request leave the batch (the client went, or a row
  // failed). Thread-safe.
  void Cancel() {
    if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
    env_.batcher->Wake();
  }

  void Hold() { holders_.fetch_add(1, std::memory_order_relaxed); }
  void Release() {
    if (holders_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Tokens of row `row` (the inference thread); a non-OK status fails the row.
  virtual absl::Status OnRowTokens(int row, absl::Span<const int32_t> ids) = 0;
  // The request's answer: OK with every row's outcome, or the failure.
  virtual void Answered(const absl::Status& status,
                        std::vector<Outcome> outcomes) = 0;

  int rows() const { return static_cast<int>(sinks_.size()); }
  const std::string& id() const { return id_; }          // the request's
  const std::string& log_id() const { return log_id_; }  // id, or one made
  absl::Time started() const { return started_; }

  const Environment& env_;
  InferPlan plan_;  // set by Start before any row is queued

 private:
  class RowSink final : public ResponseSink {
   public:
    RowSink(RowBatch* batch, int row) : batch_(batch), row_(row) {}
    bool cancelled() const override {
      return batch_->cancelled_.load(std::memory_order_acquire);
    }
    absl::Status OnTokens(absl::Span<const int32_t> ids,
                          absl::Span<const float>) override {
      return batch_->OnRowTokens(row_, ids);
    }
    void OnFinished(const absl::Status& status,
                    const Outcome& outcome) override {
      batch_->RowFinished(row_, status, outcome);
    }

   private:
    RowBatch* const batch_;
    const int row_;
  };

  absl::Status Plan(const inference::ModelInferRequest& request,
                    std::vector<WorkItem>* items) {
    if (!env_.batcher->accepting()) {
      // Before the checks, as Seq2Seq answers: a draining server takes
      // nothing new.
      return absl::UnavailableError(
          "the server is shutting down and takes no new requests");
    }
    absl::StatusOr<InferPlan> plan =
        ToInferPlan(request, *env_.model, env_.tokenizer != nullptr,
                    std::max(1, env_.options.max_batch_size));
    if (!plan.ok()) return plan.status();
    plan_ = *std::move(plan);
    const int rows = static_cast<int>(plan_.rows.size());
    for (int b = 0; b < rows; ++b) {
      absl::StatusOr<WorkItem> item = ToWorkItem(
          plan_.rows[b], env_.options.limits, *env_.model, env_.tokenizer);
      if (!item.ok()) return RowStatus(rows > 1 ? b : -1, item.status());
      items->push_back(*std::move(item));
    }
    // All rows or none: a batch the queue cannot take whole is refused before
    // any row runs. (Submit still refuses a row whose place was taken since.)
    const int max_queue = env_.batcher->options().max_queue_size;
    if (const int queued = env_.batcher->queue_size();
        queued + rows > max_queue) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the request queue is full for ", rows, " rows (", queued, " of ",
          max_queue, " places taken, max_queue_size); retry later"));
    }
    return absl::OkStatus();
  }

  // `status` with the row named, when there are several (row -1: one).
  absl::Status RowStatus(int row, const absl::Status& status) const {
    if (row < 0 || plan_.rows.size() <= 1) return status;
    return absl::Status(status.code(),
                        absl::StrCat("row ", row, ": ", status.message()));
  }

  void RowFinished(int row, const absl::Status& status,
                   const Outcome& outcome) {
    bool failed_first = false;
    FinishStep([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      --pending_;
      if (status.ok()) {
        outcomes_[row] = outcome;
      } else if (failure_.ok()) {
        failure_ = RowStatus(row, status);
        failed_first = true;
      }
    });
    if (failed_first) Cancel();
    Release();  // last: Answered may have ended the call
  }

  // Runs `change` under mu_ and answers the request if it completed it.
  template <typename Change>
  void FinishStep(Change change) {
    absl::Status status;
    std::vector<Outcome> outcomes;
    {
      absl::MutexLock lock(&mu_);
      change();
      if (starting_ || pending_ > 0 || answered_) return;
      answered_ = true;
      status = failure_;
      if (status.ok()) outcomes = std::move(outcomes_);
    }
    Answered(status, std::move(outcomes));
  }

  const absl::Time started_;
  std::string id_;
  std::string log_id_;
  std::vector<std::unique_ptr<RowSink>> sinks_;  // set before any is queued
  std::atomic<bool> cancelled_{false};
  std::atomic<int> holders_;

  absl::Mutex mu_;
  bool starting_ ABSL_GUARDED_BY(mu_) = true;  // Start is still queueing
  int pending_ ABSL_GUARDED_BY(mu_) = 0;       // rows queued, not answered
  bool answered_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);           // the first
  std::vector<Outcome> outcomes_ ABSL_GUARDED_BY(mu_);  // by row
};

// What Generate answers for one row: its ids and their text.
RowAnswer AnswerOf(const Outcome& outcome, const Tokenizer* tokenizer) {
  v1::GenerateResponse response;
  AppendTokens(outcome.result.output_ids, {}, /*with_log_probs=*/false,
               tokenizer, /*continues=*/false, &response);
  return {{response.output_ids().begin(), response.output_ids().end()},
          response.text()};
}

class InferCall final : public grpc::ServerUnaryReactor, public RowBatch {
 public:
  InferCall(const Environment& env, grpc::CallbackServerContext* context,
            const inference::ModelInferRequest* request,
            inference::ModelInferResponse* response)
      : RowBatch(env, /*owner_holds=*/1), response_(response) {
    Start(*request, DeadlineOf(*context));
  }

  void OnCancel() override {
    env_.observer->OnCallCancelled();
    Cancel();
  }
  void OnDone() override { Release(); }

 private:
  absl::Status OnRowTokens(int, absl::Span<const int32_t>) override {
    return absl::OkStatus();  // the whole output comes with the answer
  }

  void Answered(const absl::Status& status,
                std::vector<Outcome> outcomes) override {
    ReportDone(env_, Method::kModelInfer, log_id(), started(), status);
    if (!status.ok()) {
      Finish(ToGrpc(status));
      return;
    }
    std::vector<RowAnswer> rows;
    for (const Outcome& outcome : outcomes) {
      rows.push_back(AnswerOf(outcome, env_.tokenizer));
    }
    SetResponseHeader(id(), *env_.model, response_);
    AppendOutputs(rows, plan_.outputs, env_.model->config.pad_id, response_);
    Finish(grpc::Status::OK);
  }

  inference::ModelInferResponse* const response_;
};

class StreamCall;

// One request of a ModelStreamInfer stream.
class StreamRequest final : public RowBatch {
 public:
  // Starts `request` on `call`'s behalf; it deletes itself once answered.
  // Call with the stream's mutex not held.
  static void Begin(const Environment& env, StreamCall* call,
                    const inference::ModelInferRequest& request,
                    absl::Time deadline);
  ~StreamRequest() override;

  void CancelRows() { Cancel(); }

 private:
  absl::Status OnRowTokens(int row, absl::Span<const int32_t> ids) override;
  void Answered(const absl::Status& status,
                std::vector<Outcome> outcomes) override;

  StreamRequest(const Environment& env, StreamCall* call);

  StreamCall* const call_;
  const uint64_t serial_;
  // Per row: whether earlier pieces had text (Tokenizer::Decode's
  // `continues`). The inference thread's alone.
  std::vector<bool> text_started_;
};

// The stream: reads requests one at a time and starts each (they run
// concurrently), and writes their pieces one at a time in the order they come.
// Pieces of one row that wait behind a write are merged into one message.
//
// A reader that stops reading is given up as GenerateStream's is
// (stream_state.h says why both bounds): a row whose tokens arrive while more
// than stream_buffer_tokens wait behind a write in flight for
// stream_stall_timeout fails RESOURCE_EXHAUSTED.
//
// Lifetime: gRPC holds it until OnDone, each StreamRequest until destroyed.
class StreamCall final : public StreamReactor {
 public:
  StreamCall(const Environment& env, grpc::CallbackServerContext* context)
      : env_(env), deadline_(DeadlineOf(*context)) {
    StartRead(&request_);
  }

  // A message waiting to be written.
  struct Pending {
    uint64_t request = 0;  // StreamRequest serial
    std::string id;
    std::vector<Output> outputs;
    int row = -1;  // a piece of this row; -1: the request's end
    RowAnswer piece;
    std::string error;  // the request's end with this error
  };

  uint64_t Attach(StreamRequest* request) {
    holders_.fetch_add(1, std::memory_order_relaxed);
    absl::MutexLock lock(&mu_);
    live_.push_back(request);
    return ++serials_;
  }

  void Detach(StreamRequest* request) {
    Perform(Locked([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      live_.erase(std::find(live_.begin(), live_.end(), request));
    }));
    Release();
  }

  // A piece of a row; merged into the last waiting message when that is a
  // piece of the same row.
  absl::Status AddPiece(uint64_t request, const std::string& id,
                        const std::vector<Output>& outputs, int row,
                        absl::Span<const int32_t> ids, std::string text) {
    const absl::Time now = env_.clock->Now();
    absl::Status added;
    Perform(Locked(
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          if (broken_) {
            added = absl::CancelledError("the stream is broken");
            return;
          }
          if (!queue_.empty() && queue_.back().request == request &&
              queue_.back().row == row) {
            RowAnswer& piece = queue_.back().piece;
            piece.output_ids.insert(piece.output_ids.end(), ids.begin(),
                                    ids.end());
            piece.text += text;
          } else {
            Pending pending;
            pending.request = request;
            pending.id = id;
            pending.outputs = outputs;
            pending.row = row;
            pending.piece.output_ids.assign(ids.begin(), ids.end());
            pending.piece.text = std::move(text);
            queue_.push_back(std::move(pending));
          }
          queued_tokens_ += static_cast<int>(ids.size());
          if (writing_ && queued_tokens_ > env_.options.stream_buffer_tokens &&
              now - write_started_ >= env_.options.stream_stall_timeout) {
            added = absl::ResourceExhaustedError(absl::StrCat(
                "the stream's reader took no message for ",
                absl::FormatDuration(now - write_started_), " while ",
                queued_tokens_, " decoded tokens waited (stream_buffer_tokens ",
                env_.options.stream_buffer_tokens, ")"));
          }
        },
        now));
    return added;
  }

  // The end of a request: its error, or the final (empty) response.
  void AddEnd(uint64_t request, const std::string& id, std::string error) {
    Perform(Locked([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      if (broken_) return;
      Pending pending;
      pending.request = request;
      pending.id = id;
      pending.error = std::move(error);
      queue_.push_back(std::move(pending));
    }));
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client closed its side (or the stream broke): answer what runs.
      Perform(Locked(
          [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { reads_done_ = true; }));
      return;
    }
    // Starts the request (it copies what it needs) before the next read
    // reuses request_.
    StreamRequest::Begin(env_, this, request_, deadline_);
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    Perform(Locked([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      writing_ = false;
      if (!ok) Break();
    }));
  }

  void OnCancel() override {
    env_.observer->OnCallCancelled();
    Perform(Locked([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { Break(); }));
  }

  void OnDone() override { Release(); }

 private:
  struct Action {
    bool write = false;
    bool finish = false;
  };

  // Runs `change` under mu_ and decides what to start next.
  template <typename Change>
  Action Locked(Change change, absl::Time now = absl::InfinitePast()) {
    absl::MutexLock lock(&mu_);
    change();
    Action action;
    if (writing_ || finished_) return action;
    if (!queue_.empty()) {
      if (now == absl::InfinitePast()) now = env_.clock->Now();
      Build(queue_.front(), &in_flight_);
      if (queue_.front().row >= 0) {
        queued_tokens_ -=
            static_cast<int>(queue_.front().piece.output_ids.size());
      }
      queue_.pop_front();
      writing_ = true;
      write_started_ = now;
      action.write = true;
    } else if (reads_done_ && live_.empty()) {
      finished_ = true;
      action.finish = true;
    }
    return action;
  }

  // Outside mu_: gRPC may run this call's reactions on other threads.
  void Perform(const Action& action) {
    if (action.write) StartWrite(&in_flight_);
    if (action.finish) {
      // A broken stream has no one to tell; a whole one ends OK (each
      // request's errors went in its messages).
      Finish(grpc::Status::OK);
    }
  }

  // The stream cannot carry more: drop what waits, and the requests still
  // running leave the batch.
  void Break() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (broken_) return;
    broken_ = true;
    queue_.clear();
    queued_tokens_ = 0;
    for (StreamRequest* request : live_) request->CancelRows();
  }

  void Build(const Pending& pending,
             inference::ModelStreamInferResponse* message) const {
    message->Clear();
    inference::ModelInferResponse* response = message->mutable_infer_response();
    SetResponseHeader(pending.id, *env_.model, response);
    auto& parameters = *response->mutable_parameters();
    parameters[std::string(kFinalResponseParameter)].set_bool_param(
        pending.row < 0);
    if (pending.row >= 0) {
      parameters[std::string(kBatchIndexParameter)].set_int64_param(
          pending.row);
      AppendOutputs(absl::MakeConstSpan(&pending.piece, 1), pending.outputs,
                    env_.model->config.pad_id, response);
    } else if (!pending.error.empty()) {
      message->set_error_message(pending.error);
    }
  }

  void Release() {
    if (holders_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  const Environment& env_;
  const absl::Time deadline_;  // the stream's, for every request on it
  inference::ModelInferRequest request_;  // being read
  std::atomic<int> holders_{1};           // gRPC and each StreamRequest

  absl::Mutex mu_;
  uint64_t serials_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<StreamRequest*> live_ ABSL_GUARDED_BY(mu_);
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  int queued_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  inference::ModelStreamInferResponse in_flight_;  // written; guarded by
                                                   // writing_
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time write_started_ ABSL_GUARDED_BY(mu_);
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

StreamRequest::StreamRequest(const Environment& env, StreamCall* call)
    : RowBatch(env, /*owner_holds=*/1),
      call_(call),
      serial_(call->Attach(this)),
      text_started_(std::max(1, env.options.max_batch_size), false) {}

void StreamRequest::Begin(const Environment& env, StreamCall* call,
                          const inference::ModelInferRequest& request,
                          absl::Time deadline) {
  // Started once constructed: it may be answered, and deleted, within Start.
  StreamRequest* started = new StreamRequest(env, call);
  started->Start(request, deadline);
  started->Release();
}

StreamRequest::~StreamRequest() { call_->Detach(this); }

absl::Status StreamRequest::OnRowTokens(int row,
                                        absl::Span<const int32_t> ids) {
  std::string text;
  if (env_.tokenizer != nullptr) {
    text = env_.tokenizer->Decode(ids, text_started_[row]);
    if (!text.empty()) text_started_[row] = true;
  }
  return call_->AddPiece(serial_, id(), plan_.outputs, row, ids,
                         std::move(text));
}

void StreamRequest::Answered(const absl::Status& status, std::vector<Outcome>) {
  ReportDone(env_, Method::kModelStreamInfer, log_id(), started(), status);
  const grpc::Status answer = ToGrpc(status);
  call_->AddEnd(
      serial_, id(),
      status.ok()
          ? ""
          : absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(
                             answer.error_code())),
                         ": ", answer.error_message()));
}

}  // namespace

grpc::ServerUnaryReactor* InferenceService::AnswerNow(
    grpc::CallbackServerContext* context, Method method, absl::Time started,
    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ReportDone(env_, method, "-", started, status);
  reactor->Finish(ToGrpc(status));
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  const absl::Time started = env_.clock->Now();
  response->set_live(true);
  return AnswerNow(context, Method::kServerLive, started, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  const absl::Time started = env_.clock->Now();
  // Health is SERVING exactly while the batcher accepts: both start once the
  // model is warm and both stop when a drain begins.
  response->set_ready(env_.batcher->accepting());
  return AnswerNow(context, Method::kServerReady, started, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(
    grpc::CallbackServerContext* context,
    const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  const absl::Time started = env_.clock->Now();
  const absl::Status status =
      CheckModel(request->name(), request->version(), *env_.model);
  if (status.ok()) response->set_ready(env_.batcher->accepting());
  return AnswerNow(context, Method::kModelReady, started, status);
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context,
    const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  const absl::Time started = env_.clock->Now();
  *response = MakeServerMetadata();
  return AnswerNow(context, Method::kServerMetadata, started, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    grpc::CallbackServerContext* context,
    const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  const absl::Time started = env_.clock->Now();
  const absl::Status status =
      CheckModel(request->name(), request->version(), *env_.model);
  if (status.ok()) {
    *response = MakeModelMetadata(*env_.model, env_.tokenizer != nullptr);
  }
  return AnswerNow(context, Method::kModelMetadata, started, status);
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(
    grpc::CallbackServerContext* context,
    const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  return new InferCall(env_, context, request, response);
}

grpc::ServerBidiReactor<inference::ModelInferRequest,
                        inference::ModelStreamInferResponse>*
InferenceService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  return new StreamCall(env_, context);
}

}  // namespace attnserve::server::kserve
