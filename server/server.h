#pragma once
// The whole serving process minus flags: the batcher and its inference thread
// over one engine, and a gRPC server with attnserve.v1.Seq2Seq,
// inference.GRPCInferenceService (KServe v2, docs/kserve.md),
// grpc.health.v1.Health and server reflection on one port.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/batch_engine.h"
#include "server/batcher.h"
#include "server/convert.h"
#include "server/kserve/service.h"
#include "server/metrics.h"
#include "server/service.h"
#include "server/tokenizers/tokenizer.h"

namespace attnserve::server {

// The name under which health reports the API service (besides "", the whole
// server).
inline constexpr char kServiceName[] = "attnserve.v1.Seq2Seq";

struct ServerOptions {
  // host:port to listen on; port 0 picks a free port (see Server::port()).
  std::string listen_address = "0.0.0.0:50051";
  // Credentials of the gRPC port (tls.h makes TLS ones); null: plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // Largest request message accepted; gRPC answers larger ones
  // RESOURCE_EXHAUSTED.
  int max_message_bytes = 1 << 20;
  RequestLimits limits;
  BatcherOptions batcher;
  int stream_buffer_tokens = 256;  // see ServiceOptions
  bool log_failures = true;        // one log line per failed request
};

class Server {
 public:
  // Takes ownership of the engine (and tokenizer, which may be null), checks
  // the options against the model, starts the inference thread, runs one
  // warm-up request through it and then listens. Health is SERVING when this
  // returns. `observer` (null: none) must outlive the server.
  static absl::StatusOr<std::unique_ptr<Server>> Create(
      const ServerOptions& options, std::unique_ptr<BatchEngine> engine,
      std::unique_ptr<Tokenizer> tokenizer = nullptr,
      ServerObserver* observer = nullptr);
  // Shutdown(absl::ZeroDuration()) unless it was called.
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Drains: health NOT_SERVING, new calls UNAVAILABLE, then waits up to `grace`
  // for every accepted request to be answered (what is left then is answered
  // UNAVAILABLE) and stops the gRPC server. Returns whether everything was
  // answered within the grace period. Thread-safe; later calls wait for the
  // first one and return its result.
  bool Shutdown(absl::Duration grace);

  int port() const { return port_; }
  const ServerOptions& options() const { return options_; }  // limits resolved
  const ModelInfo& model_info() const { return engine_->model_info(); }
  // For tests and diagnostics (queue and batch sizes); the server owns it.
  Batcher& batcher() { return *batcher_; }

 private:
  Server() = default;
  absl::Status Start();
  absl::Status WarmUp();

  ServerOptions options_;
  // Declared in dependency order: each member is destroyed before what it uses.
  std::unique_ptr<BatchEngine> engine_;
  std::unique_ptr<Tokenizer> tokenizer_;
  NoopObserver noop_observer_;
  ServerObserver* observer_ = nullptr;
  std::unique_ptr<Batcher> batcher_;
  std::unique_ptr<Seq2SeqService> service_;
  std::unique_ptr<kserve::InferenceService> kserve_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;

  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
  bool drained_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace attnserve::server
