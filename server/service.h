#pragma once
// attnserve.v1.Seq2Seq on gRPC's callback API. Reactions never block: a call is
// checked and queued on the batcher (or answered at once), and the batcher's
// inference thread finishes it through the call's reactor, which deletes itself
// once both gRPC and the batcher are done with it.

#include <utility>

#include "absl/time/time.h"
#include "attnserve/v1/attnserve.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/batch_engine.h"
#include "server/batcher.h"
#include "server/clock.h"
#include "server/convert.h"
#include "server/metrics.h"
#include "server/tokenizers/tokenizer.h"

namespace attnserve::server {

struct ServiceOptions {
  RequestLimits limits;    // resolved (ResolveLimits)
  int max_batch_size = 0;  // reported by GetModelInfo
  // A streaming call whose reader has not taken a message for
  // stream_stall_timeout while more than stream_buffer_tokens decoded tokens
  // wait behind it is dropped with RESOURCE_EXHAUSTED (stream_state.h says
  // why both).
  int stream_buffer_tokens = 256;
  absl::Duration stream_stall_timeout = absl::Seconds(1);
  bool log_failures = true;  // one log line per failed request
};

class Seq2SeqService final : public v1::Seq2Seq::CallbackService {
 public:
  // What a call needs; every pointer must outlive the service and its calls.
  struct Environment {
    ServiceOptions options;
    Batcher* batcher = nullptr;
    const ModelInfo* model = nullptr;
    const Tokenizer* tokenizer = nullptr;  // may be null
    ServerObserver* observer = nullptr;
    // Times calls for the observer; the batcher's clock, so a call's duration
    // and its Timing agree.
    Clock* clock = nullptr;
  };

  explicit Seq2SeqService(Environment environment)
      : env_(std::move(environment)) {}

  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* context,
                                     const v1::GenerateRequest* request,
                                     v1::GenerateResponse* response) override;
  grpc::ServerWriteReactor<v1::GenerateResponse>* GenerateStream(
      grpc::CallbackServerContext* context,
      const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* GetModelInfo(
      grpc::CallbackServerContext* context,
      const v1::GetModelInfoRequest* request,
      v1::GetModelInfoResponse* response) override;

 private:
  const Environment env_;
};

}  // namespace attnserve::server
