#pragma once
// The commands of attnserve-cli (generate, info, health), over the public API.
// Each takes a plain options struct (filled from flags by cli_main.cc), writes
// its result to `out` and diagnostics to `err`, and returns the process exit
// code (exit_codes.h). Human output by default, protobuf JSON with `json`.

#include <optional>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "attnserve/v1/attnserve.pb.h"
#include "client/channel.h"
#include "client/generation_controls.h"

namespace attnserve::client {

struct GenerateOptions {
  // Exactly one of ids and text is given (nullopt: the flag was not given),
  // and it is not empty.
  std::optional<std::string> ids;   // "5,17,42"
  std::optional<std::string> text;  // needs a model with a tokenizer
  int max_new_tokens = 0;           // 0 = the server's default
  int beam_size = 0;                // 0 or 1 = greedy
  std::optional<float> length_penalty;
  // Language codes of a multilingual model ("fra_Latn"); "" = the model's
  // defaults. The server checks them (source_language: text requests only).
  std::string source_language;
  std::string target_language;
  // Forced first output tokens: ids ("5,6"), or a text the server encodes
  // (the model needs a tokenizer); at most one of them.
  std::optional<std::string> target_prefix_ids;
  std::string target_prefix;
  // Sampling, penalties, bans, hypotheses, top log-probs.
  GenerationControls controls;
  bool log_probs = false;
  bool stream = false;  // GenerateStream: print tokens as they arrive
  bool json = false;    // stream: one JSON object per message (JSON Lines)
  absl::Duration timeout = absl::Seconds(60);  // deadline of the call
};

// The request for `options`, or INVALID_ARGUMENT naming the flag at fault.
absl::StatusOr<v1::GenerateRequest> BuildGenerateRequest(
    const GenerateOptions& options);

// Human output: the generated text (text requests, or a model that returned
// text), else the ids comma-separated, on `out`, then each other hypothesis
// (num_return_sequences) on a line of its own; one line of details (finish
// reason, token count, score, timing, request id, the seed of a sampled
// request; log-probs and top log-probs when asked, and a line per other
// hypothesis) on `err`, so that `out` pipes cleanly.
int RunGenerate(const Connection& connection, const GenerateOptions& options,
                std::ostream& out, std::ostream& err);

struct InfoOptions {
  bool json = false;
  absl::Duration timeout = absl::Seconds(10);
};
int RunInfo(const Connection& connection, const InfoOptions& options,
            std::ostream& out, std::ostream& err);

struct HealthOptions {
  // "" = the whole server; "attnserve.v1.Seq2Seq" = the model service.
  std::string service;
  absl::Duration timeout = absl::Seconds(5);
};
// Prints the serving status (SERVING, NOT_SERVING, ...). Exit 0 only for
// SERVING, so it can be a container health check.
int RunHealth(const Connection& connection, const HealthOptions& options,
              std::ostream& out, std::ostream& err);

// Protobuf's JSON mapping on one line, with the .proto field names
// (input_ids, not inputIds) and default values printed, so that every key is
// always there for scripts.
std::string ToJson(const google::protobuf::Message& message);

}  // namespace attnserve::client
