#pragma once
// inference.GRPCInferenceService (the KServe v2 / Triton protocol) on gRPC's
// callback API, beside attnserve.v1.Seq2Seq on the same port and over the same
// batcher: each row of a ModelInferRequest becomes one GenerateRequest
// (server/kserve/convert.h), checked by server/convert.h's ToWorkItem and
// queued like any Generate call, so the two protocols batch together and obey
// the same limits, deadlines, cancellation and drain. As in Seq2SeqService,
// reactions never block: the batcher's inference thread answers the calls.
// docs/kserve.md is the contract.

#include "grpcpp/grpcpp.h"
#include "inference/grpc_service.grpc.pb.h"
#include "server/service.h"

namespace attnserve::server::kserve {

class InferenceService final
    : public inference::GRPCInferenceService::CallbackService {
 public:
  // The Seq2Seq service's: the same batcher, model, tokenizer, limits and
  // stream bounds (stream_buffer_tokens, stream_stall_timeout apply per
  // ModelStreamInfer stream). ServiceOptions::max_batch_size also bounds the
  // rows of one request.
  using Environment = Seq2SeqService::Environment;

  explicit InferenceService(Environment environment)
      : env_(std::move(environment)) {}

  grpc::ServerUnaryReactor* ServerLive(
      grpc::CallbackServerContext* context,
      const inference::ServerLiveRequest* request,
      inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(
      grpc::CallbackServerContext* context,
      const inference::ServerReadyRequest* request,
      inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(
      grpc::CallbackServerContext* context,
      const inference::ModelReadyRequest* request,
      inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(
      grpc::CallbackServerContext* context,
      const inference::ServerMetadataRequest* request,
      inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(
      grpc::CallbackServerContext* context,
      const inference::ModelMetadataRequest* request,
      inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(
      grpc::CallbackServerContext* context,
      const inference::ModelInferRequest* request,
      inference::ModelInferResponse* response) override;
  grpc::ServerBidiReactor<inference::ModelInferRequest,
                          inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* context) override;

 private:
  // Answers a metadata call at once with `status`, reporting it as `method`.
  grpc::ServerUnaryReactor* AnswerNow(grpc::CallbackServerContext* context,
                                      Method method, absl::Time started,
                                      const absl::Status& status);

  const Environment env_;
};

}  // namespace attnserve::server::kserve
