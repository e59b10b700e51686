#include "server/server.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "engine/status_macros.h"
#include "grpc/grpc.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/clock.h"

namespace attnserve::server {
namespace {

// Answers the warm-up request to the thread waiting in Server::WarmUp.
class WarmUpSink final : public ResponseSink {
 public:
  bool cancelled() const override { return false; }
  absl::Status OnTokens(absl::Span<const int32_t>,
                        absl::Span<const float>) override {
    return absl::OkStatus();
  }
  void OnFinished(const absl::Status& status, const Outcome&) override {
    status_ = status;
    done_.Notify();
  }
  absl::Status Wait() {
    done_.WaitForNotification();
    return status_;
  }

 private:
  absl::Status status_;  // written before done_ is notified
  absl::Notification done_;
};

// Binds the address of `listen_address` ("host:port") as gRPC will, without
// SO_REUSEPORT, and closes it again, so that a port another process listens
// on fails here with one clear line rather than in gRPC's log. Port 0, and
// addresses this does not parse (gRPC's "unix:" and the like), pass: gRPC
// itself still refuses a taken port (GRPC_ARG_ALLOW_REUSEPORT is 0).
absl::Status CheckCanListen(const std::string& listen_address) {
  const size_t colon = listen_address.rfind(':');
  if (colon == std::string::npos) return absl::OkStatus();
  absl::string_view host = absl::string_view(listen_address).substr(0, colon);
  const std::string port = listen_address.substr(colon + 1);
  int port_number = 0;
  if (!absl::SimpleAtoi(port, &port_number) || port_number == 0) {
    return absl::OkStatus();
  }
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* addresses = nullptr;
  if (getaddrinfo(std::string(host).c_str(), port.c_str(), &hints,
                  &addresses) != 0) {
    return absl::OkStatus();  // gRPC resolves it its own way, or says why
  }
  int error = 0;
  for (const addrinfo* a = addresses; a != nullptr && error == 0;
       a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    // As gRPC does: a port whose last connections are in TIME_WAIT is free.
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0) error = errno;
    close(fd);
  }
  freeaddrinfo(addresses);
  if (error == 0) return absl::OkStatus();
  if (error == EADDRINUSE) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", listen_address,
                     ": address already in use (another process listens on "
                     "port ",
                     port, "; --port picks another)"));
  }
  return absl::UnavailableError(absl::StrCat(
      "cannot listen on ", listen_address, ": ", std::strerror(error)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Create(
    const ServerOptions& options, std::unique_ptr<BatchEngine> engine,
    std::unique_ptr<Tokenizer> tokenizer, ServerObserver* observer) {
  if (engine == nullptr)
    return absl::InvalidArgumentError("Server needs an engine");
  if (options.max_message_bytes < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_message_bytes must be >= 1, not ", options.max_message_bytes));
  }
  if (options.stream_buffer_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("stream_buffer_tokens must be >= 1, not ",
                     options.stream_buffer_tokens));
  }
  std::unique_ptr<Server> server(new Server());
  server->options_ = options;
  ASSIGN_OR_RETURN(server->options_.limits,
                   ResolveLimits(options.limits, engine->model_info()));
  server->engine_ = std::move(engine);
  server->tokenizer_ = std::move(tokenizer);
  server->observer_ = observer != nullptr ? observer : &server->noop_observer_;
  RETURN_IF_ERROR(server->Start());
  return server;
}

absl::Status Server::Start() {
  const ModelInfo& model = engine_->model_info();
  const RequestLimits& limits = options_.limits;
  {
    // The largest request the limits allow must be one the engine takes, or
    // clients would get INTERNAL-looking engine errors for requests the server
    // accepted. No thread uses the engine yet.
    engine::SequenceInput largest;
    largest.source.assign(limits.max_input_tokens, model.config.bos_id);
    largest.options.max_new_tokens = limits.max_new_tokens_limit;
    largest.options.beam_size = limits.max_beam_size;
    largest.options.num_return_sequences =
        std::min(limits.max_num_return_sequences, limits.max_beam_size);
    largest.options.top_log_probs =
        std::min(limits.max_top_log_probs, model.config.vocab_size);
    // And the most sampled sequences.
    engine::SequenceInput sampled = largest;
    sampled.options.beam_size = 1;
    sampled.options.do_sample = true;
    sampled.options.num_return_sequences = limits.max_num_return_sequences;
    for (const engine::SequenceInput* input : {&largest, &sampled}) {
      if (absl::Status status = engine_->Validate(*input); !status.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "max_input_tokens / max_new_tokens_limit / max_beam_size / "
            "max_num_return_sequences / max_top_log_probs allow requests "
            "that model ",
            model.name, " does not accept: ", status.message()));
      }
    }
  }
  ASSIGN_OR_RETURN(batcher_, Batcher::Create(options_.batcher, engine_.get(),
                                             RealClock(), observer_));
  batcher_->Start();
  RETURN_IF_ERROR(WarmUp());

  Seq2SeqService::Environment env;
  env.options.limits = limits;
  env.options.max_batch_size = options_.batcher.batching.max_batch_size;
  env.options.stream_buffer_tokens = options_.stream_buffer_tokens;
  env.options.log_failures = options_.log_failures;
  env.batcher = batcher_.get();
  env.model = &model;
  env.tokenizer = tokenizer_.get();
  env.observer = observer_;
  env.clock = RealClock();
  // Both protocols over the one batcher (docs/kserve.md).
  kserve_service_ = std::make_unique<kserve::InferenceService>(env);
  service_ = std::make_unique<Seq2SeqService>(std::move(env));

  RETURN_IF_ERROR(CheckCanListen(options_.listen_address));
  grpc::EnableDefaultHealthCheckService(true);
  // gRPC's default health service is C code whose messages are not in
  // protobuf's generated pool, so reflection listed grpc.health.v1.Health but
  // could not describe it (grpcurl: "target server does not expose service").
  // Linking the generated health.proto (this reference keeps it linked)
  // registers its descriptors, and reflection serves them.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second server on a taken port would
  // start, say it serves, and share the port with the first.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options_.listen_address,
                           options_.credentials != nullptr
                               ? options_.credentials
                               : grpc::InsecureServerCredentials(),
                           &port_);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.RegisterService(service_.get());
  builder.RegisterService(kserve_service_.get());
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || port_ == 0) {
    // gRPC checks a TLS key against its certificate only here, and says why
    // only in its own log.
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options_.listen_address,
        options_.credentials != nullptr
            ? " (address in use, or gRPC refused the TLS certificate and key; "
              "see its log above)"
            : " (address in use?)"));
  }
  // The model is loaded and warmed up: ready for traffic.
  grpc::HealthCheckServiceInterface* health =
      grpc_server_->GetHealthCheckService();
  health->SetServingStatus("", true);
  health->SetServingStatus(kServiceName, true);
  return absl::OkStatus();
}

absl::Status Server::WarmUp() {
  // One short request through the whole path (queue, encoder, decoder) before
  // health says SERVING, so the first client does not pay for first-touch
  // allocations and oneDNN's JIT.
  const engine::ModelConfig& config = engine_->model_info().config;
  WorkItem item;
  item.request_id = "warm-up";
  item.source = {config.bos_id, config.eos_id};
  item.decode.max_new_tokens =
      std::min(2, options_.limits.max_new_tokens_limit);
  item.urgent = true;  // nothing else is coming to fill a batch
  WarmUpSink sink;
  RETURN_IF_ERROR(batcher_->Submit(std::move(item), &sink));
  if (absl::Status status = sink.Wait(); !status.ok()) {
    return absl::InternalError(
        absl::StrCat("the warm-up request failed: ", status.message()));
  }
  return absl::OkStatus();
}

Server::~Server() { Shutdown(absl::ZeroDuration()); }

bool Server::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return drained_;
  shut_down_ = true;
  const absl::Time deadline = absl::Now() + grace;
  if (grpc_server_ != nullptr) {
    // Both names, "" included: load balancers probe either.
    grpc_server_->GetHealthCheckService()->SetServingStatus(false);
  }
  if (batcher_ != nullptr) {
    batcher_->StopAccepting();
    drained_ = batcher_->AwaitIdle(deadline);
    batcher_->Stop();  // answers what is left UNAVAILABLE
  }
  if (grpc_server_ != nullptr) {
    // Every call has been answered; this waits for the last messages to go out.
    // A client that stopped reading gets at most a second more before gRPC
    // cancels its call.
    const absl::Time flush_deadline =
        std::max(deadline, absl::Now() + absl::Seconds(1));
    grpc_server_->Shutdown(absl::ToChronoTime(flush_deadline));
  }
  return drained_;
}

}  // namespace attnserve::server
