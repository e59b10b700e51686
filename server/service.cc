#include "server/service.h"

#include <atomic>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/log.h"
#include "server/status_mapping.h"
#include "server/stream_state.h"

namespace attnserve::server {
namespace {

using Environment = Seq2SeqService::Environment;

absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const std::chrono::system_clock::time_point deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max())
    return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

void LogFailure(const Environment& env, Method method,
                const std::string& request_id, const grpc::Status& status) {
  if (!env.options.log_failures || status.ok()) return;
  LogLine(absl::StrCat(MethodName(method), " ", request_id, ": ",
                       absl::StatusCodeToString(
                           static_cast<absl::StatusCode>(status.error_code())),
                       ": ", status.error_message()));
}

// What both Generate methods share: the call's reactor is the request's sink.
// Subclasses answer the request in OnFinished, and call Done() just before
// they end the call.
//
// Lifetime: the reactor has two holders, gRPC (until OnDone) and the batcher
// (until its OnFinished returns), and the last to let go deletes it. gRPC's own
// rule (OnDone comes after every reaction has returned and Finish completed)
// does not cover the batcher: it calls the sink on its inference thread, which
// is no reaction. The path that failed under ASan (issue 15): a stream's last
// write is in flight when the batcher's OnFinished records the final status,
// so it starts nothing and releases mu_; the write completes (or fails: the
// client went) on a gRPC thread blocked on mu_, whose OnWriteDone finishes the
// call; OnDone follows once OnWriteDone returns, and deleted the reactor while
// the batcher thread was still in OnFinished (the gRPC thread, woken by the
// unlock, may run first): UBSan's check of `this` before the call of Perform
// read the freed object. A unary call's Finish, or one queued before gRPC bound
// the reactor, may likewise end the call before the batcher's OnFinished
// returns. A call that fails Accept never reaches the batcher, and gRPC alone
// holds it.
class GenerateCall : public ResponseSink {
 public:
  bool cancelled() const override {
    return cancelled_.load(std::memory_order_acquire);
  }

 protected:
  GenerateCall(const Environment& env, Method method,
               const v1::GenerateRequest& request)
      : env_(env),
        method_(method),
        started_(env.clock->Now()),
        request_id_(request.request_id().empty() ? NewRequestId()
                                                 : request.request_id()) {}

  // Checks and queues the request; on error the caller answers with the
  // returned status and the batcher never sees the call. Call last in the
  // constructor: once queued, the inference thread may use the sink at once.
  grpc::Status Accept(const grpc::CallbackServerContext& context,
                      const v1::GenerateRequest& request) {
    absl::Status status;
    if (!env_.batcher->accepting()) {
      // Before the checks: a draining server answers every new call
      // UNAVAILABLE.
      status = absl::UnavailableError(
          "the server is shutting down and takes no new requests");
    } else {
      absl::StatusOr<WorkItem> item =
          ToWorkItem(request, env_.options.limits, *env_.model, env_.tokenizer);
      if (item.ok()) {
        // Before Submit: from then on the inference thread may answer.
        seed_ = ReportedSeed(item->decode);
        item->request_id = request_id_;
        item->deadline = DeadlineOf(context);
        return ToGrpcStatus(env_.batcher->Submit(*std::move(item), this));
      }
      status = item.status();
    }
    env_.observer->OnRejected(status.code());
    return ToGrpcStatus(status);
  }

  // From gRPC's OnCancel or a failed write: the batcher drops the request at
  // its next look.
  void MarkCancelled() {
    if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
    env_.batcher->Wake();
    env_.observer->OnCallCancelled();
  }

  // One holder lets go; the last deletes the call. gRPC's is OnDone, the
  // batcher's the end of OnFinished (or of a constructor whose Accept failed).
  void Release() {
    if (holders_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Logs a failure and reports the call's end.
  void Done(const grpc::Status& status) const {
    LogFailure(env_, method_, request_id_, status);
    env_.observer->OnCallDone(
        method_, static_cast<absl::StatusCode>(status.error_code()),
        env_.clock->Now() - started_);
  }

  const Environment& env_;
  const Method method_;
  const absl::Time started_;      // when the call reached the service
  const std::string request_id_;  // the request's, or one the server made
  // GenerateResponse.seed; set by Accept before the batcher sees the call.
  uint64_t seed_ = 0;

 private:
  std::atomic<bool> cancelled_{false};
  std::atomic<int> holders_{2};  // gRPC and the batcher
};

class UnaryCall final : public grpc::ServerUnaryReactor, public GenerateCall {
 public:
  UnaryCall(const Environment& env, grpc::CallbackServerContext* context,
            const v1::GenerateRequest* request, v1::GenerateResponse* response)
      : GenerateCall(env, Method::kGenerate, *request),
        response_(response),
        with_log_probs_(request->return_log_probs()) {
    const grpc::Status status = Accept(*context, *request);
    if (!status.ok()) {
      Release();  // the batcher never saw the call; before Finish may end it
      Done(status);
      Finish(status);
    }
  }

  absl::Status OnTokens(absl::Span<const int32_t>,
                        absl::Span<const float>) override {
    return absl::OkStatus();  // the whole output comes with OnFinished
  }

  void OnFinished(const absl::Status& status, const Outcome& outcome) override {
    if (!status.ok()) {
      const grpc::Status answer = ToGrpcStatus(status);
      Done(answer);
      Finish(answer);
    } else {
      ResponseOptions options;
      options.with_log_probs = with_log_probs_;
      options.seed = seed_;
      options.tokenizer = env_.tokenizer;
      FillResponse(outcome, options, response_);
      response_->set_request_id(request_id_);
      Done(grpc::Status::OK);
      Finish(grpc::Status::OK);
    }
    Release();  // last: OnDone may have run already
  }

  void OnCancel() override { MarkCancelled(); }
  void OnDone() override { Release(); }

 private:
  v1::GenerateResponse* const response_;
  const bool with_log_probs_;
};

class StreamCall final : public grpc::ServerWriteReactor<v1::GenerateResponse>,
                         public GenerateCall {
 public:
  StreamCall(const Environment& env, grpc::CallbackServerContext* context,
             const v1::GenerateRequest* request)
      : GenerateCall(env, Method::kGenerateStream, *request),
        state_(request_id_, request->return_log_probs(), env.tokenizer,
               env.options.stream_buffer_tokens,
               env.options.stream_stall_timeout) {
    const grpc::Status status = Accept(*context, *request);
    if (!status.ok()) {
      Release();  // the batcher never saw the call; before Finish may end it
      Done(status);
      Finish(status);
    }
  }

  absl::Status OnTokens(absl::Span<const int32_t> ids,
                        absl::Span<const float> log_probs) override {
    return Add(ids, log_probs, {});
  }

  absl::Status OnStepTokens(const engine::StepEvent& event) override {
    return Add(event.new_ids, event.new_log_probs, event.new_top_log_probs);
  }

  void OnFinished(const absl::Status& status, const Outcome& outcome) override {
    const absl::Time now = env_.clock->Now();
    StreamState::Action action;
    {
      absl::MutexLock lock(&mu_);
      state_.Finish(status, outcome, seed_);
      action = state_.Next(now);
    }
    // Another thread may end the call from here on (OnWriteDone, once a write
    // in flight completes); the batcher's hold keeps `this` until Release.
    Perform(action);
    Release();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) MarkCancelled();
    const absl::Time now = env_.clock->Now();
    StreamState::Action action;
    {
      absl::MutexLock lock(&mu_);
      state_.WriteDone(ok);
      action = state_.Next(now);
    }
    Perform(action);
  }

  void OnCancel() override { MarkCancelled(); }
  void OnDone() override { Release(); }

 private:
  absl::Status Add(
      absl::Span<const int32_t> ids, absl::Span<const float> log_probs,
      absl::Span<const std::vector<engine::TokenLogProb>> top_log_probs) {
    const absl::Time now = env_.clock->Now();
    StreamState::Action action;
    absl::Status added;
    {
      absl::MutexLock lock(&mu_);
      added = state_.AddTokens(ids, log_probs, top_log_probs, now);
      action = state_.Next(now);
    }
    Perform(action);
    return added;
  }

  // Outside mu_: gRPC may run reactions of this call on other threads
  // meanwhile.
  void Perform(const StreamState::Action& action) {
    switch (action.kind) {
      case StreamState::Action::Kind::kNone:
        break;
      case StreamState::Action::Kind::kWrite:
        StartWrite(action.message);
        break;
      case StreamState::Action::Kind::kWriteAndFinish:
        Done(action.status);
        StartWriteAndFinish(action.message, grpc::WriteOptions(),
                            action.status);
        break;
      case StreamState::Action::Kind::kFinish:
        Done(action.status);
        Finish(action.status);
        break;
    }
  }

  absl::Mutex mu_;
  StreamState state_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerUnaryReactor* Seq2SeqService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request,
    v1::GenerateResponse* response) {
  return new UnaryCall(env_, context, request, response);
}

grpc::ServerWriteReactor<v1::GenerateResponse>* Seq2SeqService::GenerateStream(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  return new StreamCall(env_, context, request);
}

grpc::ServerUnaryReactor* Seq2SeqService::GetModelInfo(
    grpc::CallbackServerContext* context,
    const v1::GetModelInfoRequest* request,
    v1::GetModelInfoResponse* response) {
  const absl::Time started = env_.clock->Now();
  *response = MakeModelInfoResponse(*env_.model, env_.options.limits,
                                    env_.options.max_batch_size,
                                    env_.tokenizer != nullptr);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  env_.observer->OnCallDone(Method::kGetModelInfo, absl::StatusCode::kOk,
                            env_.clock->Now() - started);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace attnserve::server
