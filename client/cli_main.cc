// attnserve-cli: one request to an attnserve server (generate), what it serves
// (info), and whether it is serving (health). Its flags live here, but for the
// generation controls it shares with attnserve-bench
// (generation_control_flags.h); they fill the options structs of
// cli_commands.h. docs/client.md describes the tool.

#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "client/channel.h"
#include "client/cli_commands.h"
#include "client/exit_codes.h"
#include "client/flag_parsing.h"
#include "client/generation_control_flags.h"
#include "client/generation_controls.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:50051", "Server address, host:port.");
ABSL_FLAG(bool, tls, false,
          "Connect with TLS, verifying the server against the system roots "
          "(or --tls_ca). For servers started with TLS.");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM file of the CA that signed the server's certificate; implies "
          "--tls.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate for mutual TLS (with --tls_key); implies "
          "--tls.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name the server's certificate must carry when it is not the host "
          "of --addr (e.g. --addr=10.0.0.5:50051 for a certificate of "
          "attnserve.internal); implies --tls.");
ABSL_FLAG(std::optional<absl::Duration>, timeout, std::nullopt,
          "Deadline of the call, e.g. 500ms; unset = 60s for generate, 10s for "
          "info, 5s for health. Connecting waits at most min(timeout, 10s).");
ABSL_FLAG(bool, json, false,
          "Print the response as JSON (protobuf mapping, .proto field names); "
          "with --stream, one JSON object per message.");
// generate
ABSL_FLAG(std::string, ids, "",
          "generate: source token ids, comma-separated (e.g. 5,17,42).");
ABSL_FLAG(std::string, text, "",
          "generate: source text (the model needs a tokenizer).");
ABSL_FLAG(int, max_new_tokens, 0,
          "generate: most tokens to generate; 0 = the server's default.");
ABSL_FLAG(int, beam_size, 0, "generate: beam width; 0 or 1 = greedy.");
ABSL_FLAG(std::optional<float>, length_penalty, std::nullopt,
          "generate: beam score = sum(log p) / len^length_penalty; unset = "
          "the server's 1.0.");
ABSL_FLAG(std::string, source_language, "",
          "generate: language code of --text for a multilingual model "
          "(mBART ro_RO, NLLB fra_Latn, M2M100 fr); \"\" = the model's "
          "src_lang.");
ABSL_FLAG(std::string, target_language, "",
          "generate: language code of the output for a multilingual model "
          "(e.g. fra_Latn), forced as its first token; \"\" = the model's "
          "forced_bos_token_id.");
ABSL_FLAG(std::string, target_prefix_ids, "",
          "generate: token ids forced as the first output tokens, "
          "comma-separated (e.g. 256047).");
ABSL_FLAG(std::string, target_prefix, "",
          "generate: a text whose target-side tokens are forced as the first "
          "output tokens (the model needs a tokenizer).");
// The other generation controls: client/generation_control_flags.cc.
ABSL_FLAG(uint64_t, seed, 0,
          "generate: seed of a sampled request (the same seed draws the same "
          "tokens); 0 = the server picks one and reports it.");
ABSL_FLAG(bool, log_probs, false,
          "generate: ask for the log-prob of every generated token.");
ABSL_FLAG(bool, stream, false,
          "generate: use GenerateStream and print tokens as they arrive.");
// health
ABSL_FLAG(std::string, service, "",
          "health: service name to check; \"\" = the server as a whole, "
          "attnserve.v1.Seq2Seq = the model service.");

namespace attnserve::client {
namespace {

// The files whose flags are attnserve-cli's.
constexpr absl::string_view kFlagFiles[] = {"client/cli_main.cc",
                                            kGenerationControlFlagsFile};
constexpr char kUsage[] =
    "usage: attnserve-cli [--addr=host:port] COMMAND [flags]\n"
    "\n"
    "commands:\n"
    "  generate --ids=5,17,42 | --text=\"...\" [--max_new_tokens=N] "
    "[--beam_size=N]\n"
    "           [--length_penalty=X] [--source_language=CODE] "
    "[--target_language=CODE]\n"
    "           [--target_prefix_ids=IDS | --target_prefix=TEXT]\n"
    "           [--temperature=X] [--top_k=N] [--top_p=X] [--seed=N] "
    "[--do_sample]\n"
    "           [--repetition_penalty=X] [--no_repeat_ngram_size=N] "
    "[--min_new_tokens=N]\n"
    "           [--suppress_token_ids=IDS] [--bad_words=IDS;IDS] "
    "[--num_return_sequences=N]\n"
    "           [--top_log_probs=N] [--log_probs] [--stream] [--json]\n"
    "  info     [--json]      the model, its limits and config\n"
    "  health   [--service=NAME]   exit 0 only when SERVING\n"
    "\n"
    "exit codes: 0 ok, 1 the server answered an error (or not SERVING),\n"
    "            2 cannot reach the server, 64 bad flags or arguments.\n";

// --help's headings; flags in none of them are listed under "Other flags".
const std::vector<FlagGroup>& FlagGroups() {
  static const auto* groups = new std::vector<FlagGroup>{
      {"Connection",
       {"addr", "timeout", "tls", "tls_ca", "tls_cert", "tls_key",
        "tls_server_name"}},
      {"generate",
       {"ids", "text", "max_new_tokens", "beam_size", "length_penalty",
        "source_language", "target_language", "target_prefix_ids",
        "target_prefix", "log_probs", "stream"}},
      {"generate: generation controls", GenerationControlFlagNames("seed")},
      {"health", {"service"}},
      {"Output", {"json"}},
  };
  return *groups;
}

int UsageError(absl::string_view message) {
  std::cerr << "attnserve-cli: " << message
            << "\nrun attnserve-cli --help for usage\n";
  return kExitUsage;
}

int Run(int argc, char** argv) {
  absl::StatusOr<CommandLine> command_line =
      ParseCommandLineStrict(argc, argv, kFlagFiles);
  if (!command_line.ok()) return UsageError(command_line.status().message());
  if (command_line->help) {
    std::cout << FlagsHelp(kUsage, kFlagFiles, FlagGroups());
    return kExitOk;
  }
  if (command_line->positional.size() != 1) {
    return UsageError("want exactly one command: generate, info or health");
  }
  const std::string& command = command_line->positional[0];
  if (command != "generate" && command != "info" && command != "health") {
    return UsageError("unknown command \"" + command +
                      "\" (want generate, info or health)");
  }

  ChannelOptions channel_options;
  channel_options.address = absl::GetFlag(FLAGS_addr);
  channel_options.tls = absl::GetFlag(FLAGS_tls);
  channel_options.tls_ca_file = absl::GetFlag(FLAGS_tls_ca);
  channel_options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  channel_options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  channel_options.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  absl::StatusOr<Connection> connection = Connect(channel_options);
  if (!connection.ok()) return UsageError(connection.status().message());

  // Each command's options struct holds its own default timeout.
  const std::optional<absl::Duration> timeout = absl::GetFlag(FLAGS_timeout);
  if (timeout.has_value() && *timeout <= absl::ZeroDuration()) {
    return UsageError("--timeout must be positive");
  }
  if (command == "generate") {
    GenerateOptions options;
    // Given and empty (--text="") is not the same mistake as not given.
    if (command_line->Given("ids")) options.ids = absl::GetFlag(FLAGS_ids);
    if (command_line->Given("text")) options.text = absl::GetFlag(FLAGS_text);
    options.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
    options.beam_size = absl::GetFlag(FLAGS_beam_size);
    options.length_penalty = absl::GetFlag(FLAGS_length_penalty);
    options.source_language = absl::GetFlag(FLAGS_source_language);
    options.target_language = absl::GetFlag(FLAGS_target_language);
    if (command_line->Given("target_prefix_ids")) {
      options.target_prefix_ids = absl::GetFlag(FLAGS_target_prefix_ids);
    }
    options.target_prefix = absl::GetFlag(FLAGS_target_prefix);
    options.controls = GenerationControlsFromFlags();
    options.controls.seed = absl::GetFlag(FLAGS_seed);
    options.log_probs = absl::GetFlag(FLAGS_log_probs);
    options.stream = absl::GetFlag(FLAGS_stream);
    options.json = absl::GetFlag(FLAGS_json);
    options.timeout = timeout.value_or(options.timeout);
    // Checked here too, so that a usage error says how to get help.
    absl::StatusOr<v1::GenerateRequest> request = BuildGenerateRequest(options);
    if (!request.ok()) return UsageError(request.status().message());
    return RunGenerate(*connection, options, std::cout, std::cerr);
  }
  if (command == "info") {
    InfoOptions options;
    options.json = absl::GetFlag(FLAGS_json);
    options.timeout = timeout.value_or(options.timeout);
    return RunInfo(*connection, options, std::cout, std::cerr);
  }
  HealthOptions options;
  options.service = absl::GetFlag(FLAGS_service);
  options.timeout = timeout.value_or(options.timeout);
  return RunHealth(*connection, options, std::cout, std::cerr);
}

}  // namespace
}  // namespace attnserve::client

int main(int argc, char** argv) { return attnserve::client::Run(argc, argv); }
