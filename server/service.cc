#include "server/service.h"

#include <atomic>
#include <chrono>
#include <string>
#include <utility>

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

 private:
  std::atomic<bool> cancelled_{false};
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
      return;
    }
    AppendTokens(outcome.result.output_ids, outcome.result.log_probs,
                 with_log_probs_, env_.tokenizer, /*continues=*/false,
                 response_);
    SetSummary(outcome, response_);
    response_->set_request_id(request_id_);
    Done(grpc::Status::OK);
    Finish(grpc::Status::OK);
  }

  void OnCancel() override { MarkCancelled(); }
  void OnDone() override { delete this; }

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
               env.options.stream_buffer_tokens) {
    const grpc::Status status = Accept(*context, *request);
    if (!status.ok()) {
      Done(status);
      Finish(status);
    }
  }

  absl::Status OnTokens(absl::Span<const int32_t> ids,
                        absl::Span<const float> log_probs) override {
    StreamState::Action action;
    absl::Status added;
    {
      absl::MutexLock lock(&mu_);
      added = state_.AddTokens(ids, log_probs);
      action = state_.Next();
    }
    Perform(action);
    return added;
  }

  void OnFinished(const absl::Status& status, const Outcome& outcome) override {
    StreamState::Action action;
    {
      absl::MutexLock lock(&mu_);
      state_.Finish(status, outcome);
      action = state_.Next();
    }
    Perform(action);  // may end the call: nothing of `this` is used after it
  }

  void OnWriteDone(bool ok) override {
    if (!ok) MarkCancelled();
    StreamState::Action action;
    {
      absl::MutexLock lock(&mu_);
      state_.WriteDone(ok);
      action = state_.Next();
    }
    Perform(action);
  }

  void OnCancel() override { MarkCancelled(); }
  void OnDone() override { delete this; }

 private:
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
