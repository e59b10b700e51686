#pragma once
// What one GenerateStream call has to send, between the inference thread (which
// adds tokens and, last, the request's end) and gRPC (which writes one message
// at a time).
//
// Tokens that arrive while a write is in flight are merged into one pending
// message ("the tokens decoded since the previous message", as the API says),
// so a slow reader gets fewer, larger messages and the batch never waits for
// it.
//
// A reader that stopped reading is given up with RESOURCE_EXHAUSTED, so that
// its sequence leaves the batch: when tokens arrive while more than
// max_pending_tokens wait behind a write that has been in flight for at least
// stall_timeout. Why both, and why time rather than tokens alone: gRPC
// completes a write once HTTP/2 flow control let it out, so a write in flight
// is exactly what the reader has not taken yet; tokens that can be handed to a
// write at once (a beam's whole output, which comes in one burst) never wait
// and never count. But how many tokens the engine decodes during one write says
// nothing about the reader: a fast engine (or one that starves gRPC's threads
// of the CPU) decodes many during a write that a fast reader completes in a
// millisecond. Only time tells a reader that stopped from one that is merely
// behind a burst; the token bound keeps a reader that is slow but nearly caught
// up (few tokens waiting) from being dropped. The memory a stream buffers is at
// most its max_new_tokens tokens in any case.
//
// Not thread-safe: the call's reactor guards it with its mutex and performs the
// returned actions after releasing it.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "attnserve/v1/attnserve.pb.h"
#include "grpcpp/support/status.h"
#include "server/request.h"
#include "server/tokenizers/tokenizer.h"

namespace attnserve::server {

class StreamState {
 public:
  // `tokenizer` may be null and must outlive the state. max_pending_tokens
  // >= 1.
  StreamState(std::string request_id, bool with_log_probs,
              const Tokenizer* tokenizer, int max_pending_tokens,
              absl::Duration stall_timeout);

  // Queues tokens for the next message, with their top log-probs (one list
  // per id, or none when the request did not ask); `now` is when they
  // arrived. RESOURCE_EXHAUSTED when the reader stopped reading (see above),
  // CANCELLED when the stream is broken; the request should then be dropped.
  absl::Status AddTokens(
      absl::Span<const int32_t> ids, absl::Span<const float> log_probs,
      absl::Span<const std::vector<engine::TokenLogProb>> top_log_probs,
      absl::Time now);
  absl::Status AddTokens(absl::Span<const int32_t> ids,
                         absl::Span<const float> log_probs, absl::Time now) {
    return AddTokens(ids, log_probs, {}, now);
  }

  // The request's end: with OK, `outcome` completes the last message
  // (finish_reason, score, timing, the other hypotheses whole and `seed`,
  // GenerateResponse.seed: ReportedSeed); otherwise the call ends with the
  // mapped status and unsent tokens are dropped. Once only.
  void Finish(const absl::Status& status, const Outcome& outcome,
              uint64_t seed = 0);

  struct Action {
    enum class Kind { kNone, kWrite, kWriteAndFinish, kFinish };
    Kind kind = Kind::kNone;
    // kWrite, kWriteAndFinish: owned by the state, unchanged until the write
    // completes.
    const v1::GenerateResponse* message = nullptr;
    grpc::Status status;  // kWriteAndFinish, kFinish
  };
  // What to start now (`now`: when a write it starts begins to wait for the
  // reader). At most one write is in flight, and the call is finished once.
  Action Next(absl::Time now);

  // The write started by the last kWrite completed; !ok means the stream is
  // broken.
  void WriteDone(bool ok);

  // Tokens waiting behind the write in flight (or for the next Next()).
  int pending_tokens() const { return pending_.output_ids_size(); }

 private:
  const std::string request_id_;
  const bool with_log_probs_;
  const Tokenizer* const tokenizer_;
  const int max_pending_tokens_;
  const absl::Duration stall_timeout_;

  v1::GenerateResponse pending_;  // accumulating; meaningful when has_pending_
  bool has_pending_ = false;
  // Some earlier piece of the stream had text (Tokenizer::Decode's
  // `continues`).
  bool text_added_ = false;
  v1::GenerateResponse in_flight_;  // being written
  bool writing_ = false;
  absl::Time write_started_;  // of the write in flight
  bool broken_ = false;
  std::optional<grpc::Status> final_status_;
  bool finish_started_ = false;
};

}  // namespace attnserve::server
