// attnserve-bench: a load generator for an attnserve server over the public
// API (async gRPC), for when ghz is not at hand. Its flags live here, but for
// the generation controls it shares with attnserve-cli
// (generation_control_flags.h); they fill LoadOptions and RequestMixOptions.
// docs/client.md describes the tool and its report.

#include <algorithm>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "attnserve/v1/attnserve.grpc.pb.h"
#include "client/bench_report.h"
#include "client/channel.h"
#include "client/exit_codes.h"
#include "client/flag_parsing.h"
#include "client/generation_control_flags.h"
#include "client/generation_controls.h"
#include "client/load_generator.h"
#include "client/request_mix.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, addr, "127.0.0.1:50051", "Server address, host:port.");
ABSL_FLAG(bool, tls, false,
          "Connect with TLS (system roots unless --tls_ca). For servers "
          "started with TLS.");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA file for the server; implies --tls.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate for mutual TLS (with --tls_key).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name the server's certificate must carry when it is not the host "
          "of --addr (e.g. --addr=10.0.0.5:50051 for a certificate of "
          "attnserve.internal); implies --tls.");
// The load
ABSL_FLAG(int, concurrency, 1,
          "Closed loop: calls kept in flight; each finished call is replaced "
          "at once.");
ABSL_FLAG(double, rps, 0,
          "Open loop: calls started per second, whether or not earlier ones "
          "finished. 0 = closed loop.");
ABSL_FLAG(std::string, arrivals, "poisson",
          "Open loop arrival process: poisson (exponential gaps) or uniform.");
ABSL_FLAG(int, max_in_flight, 1000,
          "Open loop: arrivals that find this many calls in flight are not "
          "sent and are reported as dropped by the client.");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "Measure for this long (e.g. 30s), after --warmup. Exclusive with "
          "--requests.");
ABSL_FLAG(int64_t, requests, 0,
          "Measure this many calls (open loop: arrivals), after --warmup; "
          "200 when neither this nor --duration is set.");
ABSL_FLAG(absl::Duration, warmup, absl::ZeroDuration(),
          "Run the load this long first; calls started then are not counted.");
ABSL_FLAG(bool, stream, false,
          "Use GenerateStream and report time to first token and inter-token "
          "gaps.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(60), "Deadline of each call.");
// The requests
ABSL_FLAG(std::string, src_len, "8:32",
          "Source lengths of random sources: N, MIN:MAX (uniform) or a "
          "mixture MIN:MAX@WEIGHT,... (e.g. 4:16@3,64:128@1).");
ABSL_FLAG(std::string, max_new_tokens, "16",
          "max_new_tokens of each request, same forms as --src_len (e.g. "
          "4:64); 0 = the server's default.");
ABSL_FLAG(std::string, sources_file, "",
          "Sources to send in order (cycling) instead of random ones: one per "
          "line, comma-separated ids, or text with --text.");
ABSL_FLAG(bool, text, false,
          "The lines of --sources_file are text (the model needs a "
          "tokenizer).");
ABSL_FLAG(int, vocab_size, 0,
          "Random source ids are drawn from [0, vocab_size) minus the special "
          "ids; 0 = the model's, from GetModelInfo.");
ABSL_FLAG(int, beam_size, 0, "beam_size of each request; 0 or 1 = greedy.");
ABSL_FLAG(int64_t, seed, 1, "Seed of the request mix and of arrivals.");
// Generation controls, sent with every request (docs/api.md)
// (the other controls: client/generation_control_flags.cc)
ABSL_FLAG(uint64_t, sampling_seed, 0,
          "Seed of every sampled request (each then draws as the others of "
          "its source); 0 = the server picks one per request.");
ABSL_FLAG(bool, json, false,
          "Print the report as one JSON object (keys in docs/client.md).");

namespace attnserve::client {
namespace {

// The files whose flags are attnserve-bench's.
constexpr absl::string_view kFlagFiles[] = {"client/bench_main.cc",
                                            kGenerationControlFlagsFile};
constexpr char kUsage[] =
    "usage: attnserve-bench [--addr=host:port] [--concurrency=N | --rps=R]\n"
    "                       [--requests=N | --duration=D] [--warmup=D] "
    "[--stream]\n"
    "                       [--src_len=MIN:MAX | --sources_file=F [--text]]\n"
    "                       [--max_new_tokens=N|MIN:MAX] [--temperature=X "
    "...] [--json]\n"
    "\n"
    "exit codes: 0 the run finished (see the status counts), 1 no call "
    "succeeded\n"
    "            or model info failed, 2 cannot reach the server, 64 bad "
    "flags.\n";

// --help's headings; flags in none of them are listed under "Other flags".
const std::vector<FlagGroup>& FlagGroups() {
  static const auto* groups = new std::vector<FlagGroup>{
      {"Connection",
       {"addr", "tls", "tls_ca", "tls_cert", "tls_key", "tls_server_name"}},
      {"The load",
       {"concurrency", "rps", "arrivals", "max_in_flight", "duration",
        "requests", "warmup", "stream", "timeout"}},
      {"The requests",
       {"src_len", "max_new_tokens", "sources_file", "text", "vocab_size",
        "beam_size", "seed"}},
      {"Generation controls", GenerationControlFlagNames("sampling_seed")},
      {"Output", {"json"}},
  };
  return *groups;
}

int UsageError(absl::string_view message) {
  std::cerr << "attnserve-bench: " << message
            << "\nrun attnserve-bench --help for usage\n";
  return kExitUsage;
}

absl::StatusOr<LoadOptions> LoadOptionsFromFlags() {
  LoadOptions options;
  options.concurrency = absl::GetFlag(FLAGS_concurrency);
  options.rps = absl::GetFlag(FLAGS_rps);
  absl::StatusOr<Arrivals> arrivals =
      ParseArrivals(absl::GetFlag(FLAGS_arrivals));
  if (!arrivals.ok()) return arrivals.status();
  options.arrivals = *arrivals;
  options.max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  options.duration = absl::GetFlag(FLAGS_duration);
  options.requests = absl::GetFlag(FLAGS_requests);
  if (options.requests == 0 && options.duration == absl::ZeroDuration()) {
    options.requests = 200;
  }
  options.warmup = absl::GetFlag(FLAGS_warmup);
  options.stream = absl::GetFlag(FLAGS_stream);
  options.timeout = absl::GetFlag(FLAGS_timeout);
  options.seed = static_cast<uint64_t>(absl::GetFlag(FLAGS_seed));
  if (absl::Status valid = ValidateLoadOptions(options); !valid.ok()) {
    return valid;
  }
  return options;
}

// The request mix's options that come from flags alone; the vocabulary comes
// from the server.
absl::StatusOr<RequestMixOptions> MixOptionsFromFlags() {
  RequestMixOptions options;
  absl::StatusOr<LengthDistribution> src_len =
      LengthDistribution::Parse(absl::GetFlag(FLAGS_src_len));
  if (!src_len.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--src_len: ", src_len.status().message()));
  }
  options.src_len = *src_len;
  absl::StatusOr<LengthDistribution> max_new_tokens =
      LengthDistribution::Parse(absl::GetFlag(FLAGS_max_new_tokens));
  if (!max_new_tokens.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_new_tokens: ", max_new_tokens.status().message()));
  }
  options.max_new_tokens = *max_new_tokens;
  const std::string sources_file = absl::GetFlag(FLAGS_sources_file);
  const bool text = absl::GetFlag(FLAGS_text);
  if (text && sources_file.empty()) {
    return absl::InvalidArgumentError(
        "--text needs --sources_file (random sources are token ids)");
  }
  if (!sources_file.empty()) {
    absl::StatusOr<std::vector<Source>> sources =
        ReadSourcesFile(sources_file, text);
    if (!sources.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--sources_file: ", sources.status().message()));
    }
    options.sources = *std::move(sources);
  }
  options.vocab_size = absl::GetFlag(FLAGS_vocab_size);
  options.beam_size = absl::GetFlag(FLAGS_beam_size);
  options.seed = static_cast<uint64_t>(absl::GetFlag(FLAGS_seed));
  options.controls = GenerationControlsFromFlags();
  options.controls.seed = absl::GetFlag(FLAGS_sampling_seed);
  // Checked before connecting, as the other flags are.
  v1::GenerateRequest checked;
  if (absl::Status status = ApplyGenerationControls(options.controls, &checked);
      !status.ok()) {
    return status;
  }
  return options;
}

nlohmann::json ConfigJson(const LoadOptions& load,
                          const RequestMixOptions& mix) {
  return {{"mode", load.rps > 0 ? "open" : "closed"},
          {"concurrency", load.concurrency},
          {"rps", load.rps},
          {"arrivals", ArrivalsName(load.arrivals)},
          {"max_in_flight", load.max_in_flight},
          {"requests", load.requests},
          {"duration_s", absl::ToDoubleSeconds(load.duration)},
          {"warmup_s", absl::ToDoubleSeconds(load.warmup)},
          {"stream", load.stream},
          {"src_len", mix.sources.empty() ? mix.src_len.ToString() : "file"},
          {"max_new_tokens", mix.max_new_tokens.ToString()},
          {"beam_size", mix.beam_size},
          {"controls", DescribeGenerationControls(mix.controls)},
          {"seed", mix.seed}};
}

int Run(int argc, char** argv) {
  absl::StatusOr<CommandLine> command_line =
      ParseCommandLineStrict(argc, argv, kFlagFiles);
  if (!command_line.ok()) return UsageError(command_line.status().message());
  if (command_line->help) {
    std::cout << FlagsHelp(kUsage, kFlagFiles, FlagGroups());
    return kExitOk;
  }
  if (!command_line->positional.empty()) {
    return UsageError("unexpected argument \"" + command_line->positional[0] +
                      "\"");
  }
  absl::StatusOr<LoadOptions> load = LoadOptionsFromFlags();
  if (!load.ok()) return UsageError(load.status().message());
  absl::StatusOr<RequestMixOptions> mix_options = MixOptionsFromFlags();
  if (!mix_options.ok()) return UsageError(mix_options.status().message());

  ChannelOptions channel_options;
  channel_options.address = absl::GetFlag(FLAGS_addr);
  channel_options.tls = absl::GetFlag(FLAGS_tls);
  channel_options.tls_ca_file = absl::GetFlag(FLAGS_tls_ca);
  channel_options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  channel_options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  channel_options.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  absl::StatusOr<Connection> connection = Connect(channel_options);
  if (!connection.ok()) return UsageError(connection.status().message());
  if (absl::Status reachable =
          CheckReachableForCall(*connection, load->timeout);
      !reachable.ok()) {
    std::cerr << reachable.message() << "\n";
    return kExitUnreachable;
  }

  v1::Seq2Seq::Stub stub(connection->channel);
  v1::GetModelInfoResponse info;
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    const grpc::Status status =
        stub.GetModelInfo(&context, v1::GetModelInfoRequest(), &info);
    if (!status.ok()) {
      std::cerr << "attnserve-bench: GetModelInfo failed: "
                << FormatStatus(status) << "\n";
      return kExitFailed;
    }
  }
  if (absl::GetFlag(FLAGS_text) && !info.has_tokenizer()) {
    return UsageError("--text: the model " + info.model_name() +
                      " has no tokenizer");
  }
  // The config's special ids are left out of random sources even when
  // --vocab_size overrides its size.
  absl::StatusOr<ModelVocab> vocab = ParseModelVocab(info.config_json());
  if (vocab.ok()) {
    mix_options->excluded_ids = vocab->special_ids;
    if (mix_options->vocab_size == 0) {
      mix_options->vocab_size = vocab->vocab_size;
    }
  } else if (mix_options->vocab_size == 0 && mix_options->sources.empty()) {
    return UsageError(
        absl::StrCat("pass --vocab_size: ", vocab.status().message()));
  }
  if (mix_options->sources.empty() && info.max_input_tokens() > 0 &&
      mix_options->src_len.max() > static_cast<int>(info.max_input_tokens())) {
    std::cerr << "attnserve-bench: warning: --src_len goes up to "
              << mix_options->src_len.max() << ", the server takes at most "
              << info.max_input_tokens() << " (longer: INVALID_ARGUMENT)\n";
  }
  if (info.max_new_tokens_limit() > 0 &&
      mix_options->max_new_tokens.max() >
          static_cast<int>(info.max_new_tokens_limit())) {
    std::cerr << "attnserve-bench: warning: --max_new_tokens goes up to "
              << mix_options->max_new_tokens.max() << ", the server's limit is "
              << info.max_new_tokens_limit() << " (above: INVALID_ARGUMENT)\n";
  }
  const nlohmann::json config = ConfigJson(*load, *mix_options);
  const std::string controls = config["controls"].get<std::string>();
  absl::StatusOr<RequestMix> mix = RequestMix::Create(*std::move(mix_options));
  if (!mix.ok()) return UsageError(mix.status().message());

  std::cerr << "attnserve-bench: " << info.model_name() << " at "
            << connection->address << ": " << DescribeLoad(*load)
            << "; src_len " << config["src_len"].get<std::string>()
            << ", max_new_tokens "
            << config["max_new_tokens"].get<std::string>()
            << (controls.empty() ? "" : ", " + controls) << std::endl;
  absl::StatusOr<LoadResult> result = RunLoad(stub, *mix, *load);
  if (!result.ok()) return UsageError(result.status().message());
  const BenchSummary summary = Summarize(*result, load->stream);
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json report = SummaryToJson(summary);
    report["address"] = connection->address;
    report["model"] = info.model_name();
    report["config"] = config;
    std::cout << report.dump() << "\n";
  } else {
    std::cout << FormatSummary(summary);
  }
  return summary.count > 0 && summary.ok == 0 ? kExitFailed : kExitOk;
}

}  // namespace
}  // namespace attnserve::client

int main(int argc, char** argv) { return attnserve::client::Run(argc, argv); }
