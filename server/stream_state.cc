#include "server/stream_state.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/convert.h"
#include "server/status_mapping.h"

namespace attnserve::server {

StreamState::StreamState(std::string request_id, bool with_log_probs,
                         const Tokenizer* tokenizer, int max_pending_tokens,
                         absl::Duration stall_timeout)
    : request_id_(std::move(request_id)),
      with_log_probs_(with_log_probs),
      tokenizer_(tokenizer),
      max_pending_tokens_(max_pending_tokens),
      stall_timeout_(stall_timeout) {}

absl::Status StreamState::AddTokens(
    absl::Span<const int32_t> ids, absl::Span<const float> log_probs,
    absl::Span<const std::vector<engine::TokenLogProb>> top_log_probs,
    absl::Time now) {
  if (broken_) return absl::CancelledError("the stream to the client broke");
  // Without a write in flight the tokens go out at the next Next(), however
  // many they are: they wait for no reader.
  if (writing_) {
    const int waiting =
        pending_.output_ids_size() + static_cast<int>(ids.size());
    const absl::Duration stalled = now - write_started_;
    if (waiting > max_pending_tokens_ && stalled >= stall_timeout_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the client reads the stream too slowly: it has not taken a message "
          "for ",
          absl::FormatDuration(absl::Trunc(stalled, absl::Milliseconds(1))),
          " and ", waiting,
          " decoded tokens are waiting to be sent (limits: "
          "stream_buffer_tokens ",
          max_pending_tokens_, " tokens, after ",
          absl::FormatDuration(stall_timeout_), ")"));
    }
  }
  const size_t text_before = pending_.text().size();
  AppendTokens(ids, log_probs, with_log_probs_, tokenizer_,
               /*continues=*/text_added_, &pending_);
  AppendTopLogProbs(top_log_probs, pending_.mutable_top_log_probs());
  text_added_ = text_added_ || pending_.text().size() > text_before;
  has_pending_ = true;
  return absl::OkStatus();
}

void StreamState::Finish(const absl::Status& status, const Outcome& outcome,
                         uint64_t seed) {
  if (final_status_.has_value()) return;
  final_status_ = status.ok() && broken_
                      ? grpc::Status(grpc::StatusCode::CANCELLED,
                                     "the stream to the client broke")
                      : ToGrpcStatus(status);
  if (final_status_->ok()) {
    ResponseOptions options;
    options.with_log_probs = with_log_probs_;
    options.seed = seed;
    options.tokenizer = tokenizer_;
    SetFinal(outcome, options, &pending_);
    has_pending_ = true;
  } else {
    // Never sent: a failed call ends with its status only.
    pending_.Clear();
    has_pending_ = false;
  }
}

StreamState::Action StreamState::Next(absl::Time now) {
  Action action;
  if (writing_ || finish_started_) return action;
  if (final_status_.has_value()) {
    finish_started_ = true;
    action.status = *final_status_;
    if (final_status_->ok()) {
      pending_.set_request_id(request_id_);
      in_flight_ = std::move(pending_);
      action.kind = Action::Kind::kWriteAndFinish;
      action.message = &in_flight_;
    } else {
      action.kind = Action::Kind::kFinish;
    }
    return action;
  }
  if (has_pending_ && !broken_) {
    pending_.set_request_id(request_id_);
    in_flight_ = std::move(pending_);
    pending_.Clear();
    has_pending_ = false;
    writing_ = true;
    write_started_ = now;
    action.kind = Action::Kind::kWrite;
    action.message = &in_flight_;
  }
  return action;
}

void StreamState::WriteDone(bool ok) {
  writing_ = false;
  if (!ok) broken_ = true;
}

}  // namespace attnserve::server
