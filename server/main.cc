// attnserve: serves one encoder-decoder model over gRPC (attnserve.v1.Seq2Seq,
// health, reflection). Flags live only here; they fill ServerOptions
// (server.h). docs/server.md describes the behaviour.

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "client/flag_parsing.h"
#include "engine/memory/allocation_policy.h"
#include "engine/model.h"
#include "engine/openmp_waiting.h"
#include "server/batching_policy.h"
#include "server/generator_engine.h"
#include "server/log.h"
#include "server/memory_budget.h"
#include "server/prometheus_metrics.h"
#include "server/server.h"
#include "server/shutdown_signals.h"
#include "server/tls.h"
#include "server/tokenizers/tokenizer.h"

ABSL_FLAG(
    std::string, model_dir, "",
    "Model directory to serve (config.json + model.safetensors). Required.");
ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on for gRPC.");
ABSL_FLAG(int, port, 50051,
          "gRPC port: attnserve.v1.Seq2Seq, grpc.health.v1.Health and server "
          "reflection. "
          "0 picks a free port (printed at startup).");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain of the server: the gRPC port then speaks "
          "TLS only (with --tls_key). Empty: plaintext.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA certificate(s) for mutual TLS: clients must present a "
          "certificate signed by one of them. Needs --tls_cert and --tls_key.");
ABSL_FLAG(int, metrics_port, 8002,
          "Port of the Prometheus endpoint (http://ADDRESS:PORT/metrics); 0 "
          "disables it. Not 9090: Prometheus itself listens there "
          "(docs/metrics.md).");
ABSL_FLAG(std::string, metrics_address, "0.0.0.0",
          "Address the metrics endpoint listens on (IPv4 or IPv6); 127.0.0.1 "
          "keeps it to this host.");
ABSL_FLAG(int, threads, 0,
          "Intra-op (OpenMP) threads of the inference thread; 0 = all cores. "
          "Idle threads spin briefly, then sleep: unless OMP_WAIT_POLICY or "
          "GOMP_SPINCOUNT is set, the server restarts itself with "
          "OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=1000 (docs/server.md).");
ABSL_FLAG(std::string, backend, "dnnl",
          "Engine backend: dnnl (fast) or ref (reference loops).");
ABSL_FLAG(std::string, compute_type, "float32",
          "Number format of the model's linear layers: float32, int8 (int8 "
          "weights with per-row scales, inputs quantized per row, int32 sums; "
          "needs AVX-512 VNNI) or bfloat16 (needs AVX-512 BF16). Weights are "
          "converted at load (docs/engine.md, \"Compute types\").");
ABSL_FLAG(bool, float32_embeddings, false,
          "With --compute_type int8 or bfloat16: keep the token embeddings and "
          "the output projection in float32.");
ABSL_FLAG(std::string, kv_cache_dtype, "float32",
          "Element type of the decoder's self-attention KV caches and the "
          "cross-attention keys/values: float32, or bfloat16 for half their "
          "memory (each key and value rounded once; attention still sums in "
          "float32; runs on any CPU).");
ABSL_FLAG(std::string, batching, "continuous",
          "continuous: requests join and leave the running batch at every "
          "decode step; "
          "dynamic: collect a batch and run it to the end; none: one request "
          "at a time.");
ABSL_FLAG(int, max_batch_size, 32,
          "Most sequences (requests) in the running batch.");
ABSL_FLAG(int, max_batch_tokens, 32768,
          "Token budget of the running batch: the sum over its requests of "
          "beam_size * (source tokens + max_new_tokens). A larger request is "
          "refused RESOURCE_EXHAUSTED.");
ABSL_FLAG(std::string, memory_budget, "auto",
          "Most bytes of engine memory the running batch may hold at worst "
          "(each request's encoder output and caches at full length); a "
          "request over it alone is refused RESOURCE_EXHAUSTED, and limits "
          "left at 0 are lowered so that requests at them fit. auto: 80% of "
          "what the tightest of the cgroup limit, RLIMIT_AS and MemTotal "
          "leaves after loading; none; or bytes with K/M/G/T (e.g. 1536M).");
ABSL_FLAG(int, max_queue_size, 256,
          "Most requests waiting for admission; more are answered "
          "RESOURCE_EXHAUSTED at once.");
ABSL_FLAG(std::string, max_queue_delay, "auto",
          "How long an idle server lets a first batch fill, counted from the "
          "oldest waiting request's arrival (e.g. 5ms, 0). auto: 0 for "
          "continuous batching (later arrivals join at the next step), 5ms "
          "for dynamic.");
ABSL_FLAG(int, max_input_tokens, 0,
          "Most source tokens per request; 0 = the model's max_positions.");
ABSL_FLAG(int, max_new_tokens_limit, 0,
          "Largest max_new_tokens a request may ask for; 0 = the model's "
          "max_positions - 1.");
ABSL_FLAG(int, default_max_new_tokens, 64,
          "max_new_tokens of requests that send 0 (capped at "
          "--max_new_tokens_limit).");
ABSL_FLAG(int, max_beam_size, 4,
          "Largest beam_size a request may ask for (at most 8).");
ABSL_FLAG(int, max_num_return_sequences, 4,
          "Most hypotheses a request may ask for (num_return_sequences: the "
          "n best of beam search, or n samples, each sample a decoder row); "
          "1..16.");
ABSL_FLAG(int, max_top_log_probs, 5,
          "Most top log-probs a request may ask for per generated token "
          "(top_log_probs); 0 turns them off; at most 20.");
ABSL_FLAG(
    int, max_message_bytes, 1 << 20,
    "Largest request message accepted; larger ones are RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, stream_buffer_tokens, 256,
          "Decoded tokens a GenerateStream call may have waiting for a slow "
          "reader; beyond "
          "that the call is cancelled with RESOURCE_EXHAUSTED instead of "
          "stalling the batch.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(30),
          "On SIGTERM/SIGINT: how long accepted requests get to finish before "
          "they are "
          "answered UNAVAILABLE and the process exits 0.");

namespace attnserve::server {
namespace {

constexpr char kUsage[] =
    "Serves a Transformer encoder-decoder model over gRPC.\n"
    "usage: attnserve --model_dir=DIR [--port=50051] [flags]\n";

bool IsMainFile(absl::string_view path) {
  return absl::EndsWith(path, "server/main.cc");
}

// The source path from the project root ("server/main.cc") or from Abseil's
// ("absl/flags/parse.cc"), never the build machine's absolute path, in the
// help that Abseil prints itself (--helpon, --helpmatch).
std::string NormalizeFilename(absl::string_view path) {
  for (absl::string_view root : {"/server/", "/absl/"}) {
    const size_t at = path.rfind(root);
    if (at != absl::string_view::npos) return std::string(path.substr(at + 1));
  }
  const size_t slash = path.rfind('/');
  return std::string(slash == absl::string_view::npos ? path
                                                      : path.substr(slash + 1));
}

// --help lists the flags under these headings, in this order. A flag defined
// above and named in no group is listed under "Other flags", never dropped:
// add new flags to the group they belong to.
const std::vector<client::FlagGroup>& FlagGroups() {
  static const auto* groups = new std::vector<client::FlagGroup>{
      {"Model and engine",
       {"model_dir", "backend", "threads", "compute_type", "float32_embeddings",
        "kv_cache_dtype"}},
      {"gRPC endpoint",
       {"host", "port", "tls_cert", "tls_key", "tls_client_ca",
        "max_message_bytes"}},
      {"Prometheus metrics", {"metrics_port", "metrics_address"}},
      {"Batching and queueing",
       {"batching", "max_batch_size", "max_batch_tokens", "memory_budget",
        "max_queue_size", "max_queue_delay"}},
      {"Request limits",
       {"max_input_tokens", "max_new_tokens_limit", "default_max_new_tokens",
        "max_beam_size", "max_num_return_sequences", "max_top_log_probs",
        "stream_buffer_tokens"}},
      {"Shutdown", {"shutdown_grace"}},
  };
  return *groups;
}

// Our --help: the usage line and this file's flags by group, with their
// defaults (the tools' renderer, client/flag_parsing.h). Abseil's own --help
// lists flags by the absolute path of the file that defines them and exits 1,
// which reads as a failure.
std::string HelpText() {
  std::string text = client::FlagsHelp(kUsage, "server/main.cc", FlagGroups());
  if (!absl::EndsWith(text, "\n\n")) text += "\n";
  text +=
      "Abseil's own flags work too: --flagfile=FILE (one --flag=value a "
      "line),\n--fromenv=NAME,... (from FLAGS_NAME variables), "
      "--helpon=FILE, --helpmatch=TEXT.\n";
  return text;
}

// Whether argv asks for help (--help, -h, --helpshort, --helpfull; before any
// "--"), which Run answers with HelpText and exit 0.
bool WantsHelp(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") return false;
    if (!absl::ConsumePrefix(&arg, "--")) {
      if (!absl::ConsumePrefix(&arg, "-")) continue;
    }
    if (arg == "help" || arg == "h" || arg == "helpshort" ||
        arg == "helpfull") {
      return true;
    }
  }
  return false;
}

TlsFiles TlsFilesFromFlags() {
  TlsFiles tls;
  tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  tls.key_file = absl::GetFlag(FLAGS_tls_key);
  tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  return tls;
}

absl::StatusOr<ServerOptions> OptionsFromFlags() {
  ServerOptions options;
  options.listen_address =
      absl::StrCat(absl::GetFlag(FLAGS_host), ":", absl::GetFlag(FLAGS_port));
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(TlsFilesFromFlags());
  if (!credentials.ok()) return credentials.status();
  options.credentials = *std::move(credentials);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.stream_buffer_tokens = absl::GetFlag(FLAGS_stream_buffer_tokens);
  options.limits.max_input_tokens = absl::GetFlag(FLAGS_max_input_tokens);
  options.limits.max_new_tokens_limit =
      absl::GetFlag(FLAGS_max_new_tokens_limit);
  options.limits.default_max_new_tokens =
      absl::GetFlag(FLAGS_default_max_new_tokens);
  options.limits.max_beam_size = absl::GetFlag(FLAGS_max_beam_size);
  options.limits.max_num_return_sequences =
      absl::GetFlag(FLAGS_max_num_return_sequences);
  options.limits.max_top_log_probs = absl::GetFlag(FLAGS_max_top_log_probs);
  options.batcher.max_queue_size = absl::GetFlag(FLAGS_max_queue_size);
  BatchingOptions& batching = options.batcher.batching;
  absl::StatusOr<BatchingMode> mode =
      ParseBatchingMode(absl::GetFlag(FLAGS_batching));
  if (!mode.ok()) return mode.status();
  batching.mode = *mode;
  batching.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  batching.max_batch_tokens = absl::GetFlag(FLAGS_max_batch_tokens);
  absl::StatusOr<absl::Duration> delay =
      ParseQueueDelay(absl::GetFlag(FLAGS_max_queue_delay), batching.mode);
  if (!delay.ok()) return delay.status();
  batching.max_queue_delay = *delay;
  return options;
}

int Run() {
  // Before any thread exists (gRPC's, OpenMP's, the inference thread), so that
  // every thread inherits the mask; a signal during startup exits at once.
  const std::unique_ptr<ShutdownSignals> signals = ShutdownSignals::Start();

  const std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  if (model_dir.empty()) {
    LogLine("--model_dir is required (see --help)");
    return 2;
  }
  absl::StatusOr<ServerOptions> options = OptionsFromFlags();
  if (!options.ok()) {
    LogLine(absl::StrCat("bad flags: ", options.status().message()));
    return 2;
  }
  const int metrics_port = absl::GetFlag(FLAGS_metrics_port);
  if (metrics_port < 0 || metrics_port > 65535) {
    LogLine(absl::StrCat("--metrics_port must be in [0, 65535], not ",
                         metrics_port));
    return 2;
  }
  absl::StatusOr<engine::Backend> backend =
      engine::ParseBackend(absl::GetFlag(FLAGS_backend));
  if (!backend.ok()) {
    LogLine(absl::StrCat("--backend: ", backend.status().message()));
    return 2;
  }
  absl::StatusOr<engine::ComputeType> compute_type =
      engine::ParseComputeType(absl::GetFlag(FLAGS_compute_type));
  if (!compute_type.ok()) {
    LogLine(absl::StrCat("--compute_type: ", compute_type.status().message()));
    return 2;
  }
  absl::StatusOr<engine::ComputeType> kv_cache_dtype =
      engine::ParseComputeType(absl::GetFlag(FLAGS_kv_cache_dtype));
  if (kv_cache_dtype.ok() && *kv_cache_dtype == engine::ComputeType::kInt8) {
    kv_cache_dtype =
        absl::InvalidArgumentError("must be float32 or bfloat16, got int8");
  }
  if (!kv_cache_dtype.ok()) {
    LogLine(
        absl::StrCat("--kv_cache_dtype: ", kv_cache_dtype.status().message()));
    return 2;
  }
  engine::ModelOptions model_options;
  model_options.backend = *backend;
  model_options.precision.kv_cache = *kv_cache_dtype;
  model_options.precision.compute_type = *compute_type;
  model_options.precision.float32_embeddings =
      absl::GetFlag(FLAGS_float32_embeddings);
  model_options.threads = absl::GetFlag(FLAGS_threads);
  if (model_options.threads <= 0) {
    model_options.threads =
        static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }

  // The memory budget (docs/server.md, "Memory"): weights that cannot fit
  // fail before loading, a model that leaves no room for requests after.
  absl::StatusOr<MemoryBudgetSetting> budget_setting =
      ParseMemoryBudget(absl::GetFlag(FLAGS_memory_budget));
  if (!budget_setting.ok()) {
    LogLine(absl::StrCat("bad flags: ", budget_setting.status().message()));
    return 2;
  }
  if (absl::Status fits = CheckWeightsFit(model_dir, ReadMemoryLimits());
      !fits.ok()) {
    LogLine(
        absl::StrCat("cannot load model ", model_dir, ": ", fits.message()));
    return 1;
  }
  absl::StatusOr<std::unique_ptr<GeneratorEngine>> engine =
      GeneratorEngine::Load(model_dir, model_options);
  if (!engine.ok()) {
    LogLine(absl::StrCat("cannot load model ", model_dir, ": ",
                         engine.status().message()));
    return 1;
  }
  std::string budget_line;  // said in the startup line
  {
    engine::DecodeOptions smallest;
    smallest.max_new_tokens = 1;
    absl::StatusOr<MemoryBudget> budget =
        ResolveMemoryBudget(*budget_setting, ReadMemoryLimits(),
                            (*engine)->EstimateBytes(1, smallest));
    if (!budget.ok()) {
      LogLine(absl::StrCat("cannot serve model ", model_dir, ": ",
                           budget.status().message()));
      return 1;
    }
    budget_line = budget->description;
    options->batcher.batching.max_batch_memory_bytes = budget->bytes;
    options->limits.memory_budget_bytes = budget->bytes;
    options->limits.max_batch_tokens =
        options->batcher.batching.max_batch_tokens;
  }
  for (const std::string& warning : (*engine)->model_info().warnings) {
    LogLine(absl::StrCat("model ", model_dir, ": ", warning));
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      LoadTokenizer(model_dir);
  if (!tokenizer.ok()) {
    LogLine(absl::StrCat("cannot load the tokenizer of ", model_dir, ": ",
                         tokenizer.status().message()));
    return 1;
  }
  const bool has_tokenizer = *tokenizer != nullptr;

  // Declared before the server, which reports to it, so it outlives it. Bound
  // before the server starts, so a taken port fails before the warm-up.
  PrometheusMetrics metrics((*engine)->model_info(),
                            options->batcher.max_queue_size);
  std::string metrics_line = ", metrics off";
  if (metrics_port != 0) {
    const std::string address = absl::GetFlag(FLAGS_metrics_address);
    absl::StatusOr<int> port = metrics.Serve(address, metrics_port);
    if (!port.ok()) {
      LogLine(absl::StrCat("--metrics_port: ", port.status().message()));
      return 1;
    }
    metrics_line =
        absl::StrCat(", metrics on http://", address, ":", *port, "/metrics");
  }

  absl::StatusOr<std::unique_ptr<Server>> server = Server::Create(
      *options, *std::move(engine), *std::move(tokenizer), &metrics);
  if (!server.ok()) {
    LogLine(absl::StrCat("cannot start: ", server.status().message()));
    // INVALID_ARGUMENT: the flags do not fit (each other or the model).
    return server.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  const ServerOptions& resolved = (*server)->options();
  const BatchingOptions& batching = resolved.batcher.batching;
  std::printf(
      "attnserve: serving model %s (layout %s, compute_type %s, "
      "kv_cache_dtype %s; "
      "attnserve.v1.Seq2Seq, inference.GRPCInferenceService, health, "
      "reflection) on %s:%d; "
      "batching=%s max_batch_size=%d max_queue_delay=%s, backend=%s "
      "threads=%d (%s)%s%s, %s, %s\n",
      (*server)->model_info().name.c_str(),
      (*server)->model_info().layout.c_str(),
      (*server)->model_info().compute_type.c_str(),
      (*server)->model_info().kv_cache_dtype.c_str(),
      absl::GetFlag(FLAGS_host).c_str(), (*server)->port(),
      BatchingModeName(batching.mode), batching.max_batch_size,
      absl::FormatDuration(batching.max_queue_delay).c_str(),
      engine::BackendName(model_options.backend), model_options.threads,
      engine::OpenMpWaitingDescription().c_str(),
      has_tokenizer ? ", text+ids" : ", token ids only", metrics_line.c_str(),
      budget_line.c_str(), TlsModeName(TlsFilesFromFlags()));
  std::fflush(stdout);

  signals->Serving();
  const int signal_number = signals->WaitForSignal();
  const absl::Duration grace = absl::GetFlag(FLAGS_shutdown_grace);
  LogLine(absl::StrCat(
      signal_number == SIGTERM ? "SIGTERM" : "SIGINT",
      ": draining (health NOT_SERVING, new calls UNAVAILABLE) for up to ",
      absl::FormatDuration(grace)));
  const bool drained = (*server)->Shutdown(grace);
  LogLine(drained ? "drained: every accepted request was answered; exiting"
                  : "grace period over: unfinished requests were answered "
                    "UNAVAILABLE; exiting");
  return 0;
}

}  // namespace
}  // namespace attnserve::server

int main(int argc, char** argv) {
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = &attnserve::server::IsMainFile;
  usage.contains_helpshort_flags = &attnserve::server::IsMainFile;
  usage.normalize_filename = &attnserve::server::NormalizeFilename;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(attnserve::server::kUsage);
  if (attnserve::server::WantsHelp(argc, argv)) {
    std::fputs(attnserve::server::HelpText().c_str(), stdout);
    return 0;
  }
  attnserve::engine::UseServingOpenMpWaiting(argv);
  attnserve::engine::UseServingAllocationPolicy();
  absl::ParseCommandLine(argc, argv);
  return attnserve::server::Run();
}
