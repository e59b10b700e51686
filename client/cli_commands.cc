#include "client/cli_commands.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "attnserve/v1/attnserve.grpc.pb.h"
#include "client/exit_codes.h"
#include "client/id_list.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace attnserve::client {
namespace {

// Connects or explains why not; nullopt when connected.
std::optional<int> FailIfUnreachable(const Connection& connection,
                                     absl::Duration timeout,
                                     std::ostream& err) {
  const absl::Status reachable = CheckReachableForCall(connection, timeout);
  if (reachable.ok()) return std::nullopt;
  err << reachable.message() << "\n";
  return kExitUnreachable;
}

int ReportFailure(const grpc::Status& status, std::ostream& err) {
  err << "error: " << FormatStatus(status) << "\n";
  return kExitFailed;
}

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

std::string FinishReasonName(v1::FinishReason reason) {
  return std::string(
      absl::StripPrefix(v1::FinishReason_Name(reason), "FINISH_REASON_"));
}

double Millis(uint64_t micros) { return static_cast<double>(micros) / 1000.0; }

// Each token's top log-probs: "[5:-0.1200 9:-2.3000],[...]".
std::string FormatTopLogProbs(
    const google::protobuf::RepeatedPtrField<v1::TopLogProbs>& top) {
  return absl::StrJoin(
      top, ",", [](std::string* out, const v1::TopLogProbs& step) {
        absl::StrAppend(
            out, "[",
            absl::StrJoin(step.tokens(), " ",
                          [](std::string* piece, const v1::TokenLogProb& t) {
                            absl::StrAppendFormat(piece, "%d:%.4f",
                                                  t.token_id(), t.log_prob());
                          }),
            "]");
      });
}

std::string FormatLogProbs(const google::protobuf::RepeatedField<float>& lps) {
  return absl::StrJoin(lps, ",", [](std::string* out, float value) {
    absl::StrAppendFormat(out, "%.4f", value);
  });
}

// A hypothesis as the output line shows it: its text, or its ids.
std::string OutputLine(bool as_text, const std::string& text,
                       const google::protobuf::RepeatedField<int32_t>& ids) {
  return as_text ? text : absl::StrJoin(ids, ",");
}

// The other hypotheses, one a line, after the first.
void PrintAlternatives(const v1::GenerateResponse& whole, bool as_text,
                       std::ostream& out) {
  for (const v1::Hypothesis& other : whole.alternatives()) {
    out << OutputLine(as_text, other.text(), other.output_ids()) << "\n";
  }
}

// The details of a finished generation: `whole` carries every token (and
// log-probs, top log-probs) and the last message's fields (the only message
// of a unary call, the last of a stream).
void PrintDetails(const v1::GenerateResponse& whole, bool want_log_probs,
                  std::ostream& err) {
  const v1::Timing& timing = whole.timing();
  err << absl::StrFormat(
      "finish_reason=%s tokens=%d score=%.4f total_ms=%.2f queue_ms=%.2f "
      "compute_ms=%.2f batch_size=%u request_id=%s",
      FinishReasonName(whole.finish_reason()), whole.output_ids_size(),
      whole.score(), Millis(timing.total_us()), Millis(timing.queue_us()),
      Millis(timing.compute_us()), timing.batch_size(), whole.request_id());
  if (whole.seed() != 0) err << " seed=" << whole.seed();
  err << "\n";
  if (want_log_probs) {
    err << "log_probs=" << FormatLogProbs(whole.log_probs()) << "\n";
  }
  if (whole.top_log_probs_size() > 0) {
    err << "top_log_probs=" << FormatTopLogProbs(whole.top_log_probs()) << "\n";
  }
  for (int k = 0; k < whole.alternatives_size(); ++k) {
    const v1::Hypothesis& other = whole.alternatives(k);
    err << absl::StrFormat(
        "alternative %d: finish_reason=%s tokens=%d "
        "score=%.4f\n",
        k + 1, FinishReasonName(other.finish_reason()), other.output_ids_size(),
        other.score());
    if (want_log_probs) {
      err << "  log_probs=" << FormatLogProbs(other.log_probs()) << "\n";
    }
    if (other.top_log_probs_size() > 0) {
      err << "  top_log_probs=" << FormatTopLogProbs(other.top_log_probs())
          << "\n";
    }
  }
}

int GenerateUnary(v1::Seq2Seq::Stub& stub, const v1::GenerateRequest& request,
                  const GenerateOptions& options, std::ostream& out,
                  std::ostream& err) {
  grpc::ClientContext context;
  SetDeadline(context, options.timeout);
  v1::GenerateResponse response;
  const grpc::Status status = stub.Generate(&context, request, &response);
  if (!status.ok()) return ReportFailure(status, err);
  if (options.json) {
    out << ToJson(response) << "\n";
    return kExitOk;
  }
  const bool as_text = !request.text().empty() || !response.text().empty();
  out << OutputLine(as_text, response.text(), response.output_ids()) << "\n";
  PrintAlternatives(response, as_text, out);
  PrintDetails(response, options.log_probs, err);
  return kExitOk;
}

int GenerateStreaming(v1::Seq2Seq::Stub& stub,
                      const v1::GenerateRequest& request,
                      const GenerateOptions& options, std::ostream& out,
                      std::ostream& err) {
  grpc::ClientContext context;
  SetDeadline(context, options.timeout);
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      stub.GenerateStream(&context, request);
  v1::GenerateResponse message;
  v1::GenerateResponse last;
  // Every message's tokens, log-probs and top log-probs.
  v1::GenerateResponse streamed;
  // Decided at the first message with tokens, as in the unary case: text when
  // the request was text or the model returns text.
  std::optional<bool> as_text;
  while (reader->Read(&message)) {
    if (options.json) {
      out << ToJson(message) << std::endl;  // flush: one line per message
    } else if (message.output_ids_size() > 0) {
      if (!as_text.has_value()) {
        as_text = !request.text().empty() || !message.text().empty();
      } else if (!*as_text) {
        out << ",";
      }
      out << OutputLine(*as_text, message.text(), message.output_ids())
          << std::flush;
    }
    streamed.mutable_output_ids()->MergeFrom(message.output_ids());
    streamed.mutable_log_probs()->MergeFrom(message.log_probs());
    streamed.mutable_top_log_probs()->MergeFrom(message.top_log_probs());
    last = message;
  }
  const grpc::Status status = reader->Finish();
  if (!options.json) out << "\n";
  if (!status.ok()) return ReportFailure(status, err);
  if (!options.json) {
    v1::GenerateResponse whole = last;
    *whole.mutable_output_ids() = streamed.output_ids();
    *whole.mutable_log_probs() = streamed.log_probs();
    *whole.mutable_top_log_probs() = streamed.top_log_probs();
    // The alternatives come whole in the last message, after the stream.
    PrintAlternatives(
        whole,
        as_text.value_or(!request.text().empty() || !whole.text().empty()),
        out);
    PrintDetails(whole, options.log_probs, err);
  }
  return kExitOk;
}

}  // namespace

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions print_options;
  print_options.preserve_proto_field_names = true;
  print_options.always_print_primitive_fields = true;
  std::string json;
  // Fails only for messages that cannot be mapped (Any with unknown types);
  // ours can.
  (void)google::protobuf::util::MessageToJsonString(message, &json,
                                                    print_options);
  return json;
}

absl::StatusOr<v1::GenerateRequest> BuildGenerateRequest(
    const GenerateOptions& options) {
  if (options.ids.has_value() == options.text.has_value()) {
    return absl::InvalidArgumentError(
        "give exactly one of --ids (e.g. --ids=5,17,42) and --text");
  }
  if (options.text.has_value() && options.text->empty()) {
    return absl::InvalidArgumentError(
        "--text is empty: give the text to send, e.g. --text=\"Monday, 23 "
        "November 2026\"");
  }
  if (options.ids.has_value() && options.ids->empty()) {
    return absl::InvalidArgumentError(
        "--ids is empty: give the source token ids, e.g. --ids=5,17,42");
  }
  if (options.max_new_tokens < 0) {
    return absl::InvalidArgumentError("--max_new_tokens must be >= 0");
  }
  if (options.beam_size < 0) {
    return absl::InvalidArgumentError("--beam_size must be >= 0");
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--timeout must be positive");
  }
  v1::GenerateRequest request;
  if (options.ids.has_value()) {
    absl::StatusOr<std::vector<int32_t>> ids = ParseIdList(*options.ids);
    if (!ids.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--ids: ", ids.status().message()));
    }
    request.mutable_input_ids()->Add(ids->begin(), ids->end());
  } else {
    request.set_text(*options.text);
  }
  request.set_max_new_tokens(options.max_new_tokens);
  request.set_beam_size(options.beam_size);
  if (options.length_penalty.has_value()) {
    request.set_length_penalty(*options.length_penalty);
  }
  request.set_return_log_probs(options.log_probs);
  request.set_source_language(options.source_language);
  request.set_target_language(options.target_language);
  if (options.target_prefix_ids.has_value() && !options.target_prefix.empty()) {
    return absl::InvalidArgumentError(
        "give at most one of --target_prefix_ids and --target_prefix");
  }
  if (options.target_prefix_ids.has_value()) {
    absl::StatusOr<std::vector<int32_t>> ids =
        ParseIdList(*options.target_prefix_ids);
    if (!ids.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--target_prefix_ids: ", ids.status().message()));
    }
    request.mutable_target_prefix_ids()->Add(ids->begin(), ids->end());
  }
  request.set_target_prefix(options.target_prefix);
  if (absl::Status controls =
          ApplyGenerationControls(options.controls, &request);
      !controls.ok()) {
    return controls;
  }
  return request;
}

int RunGenerate(const Connection& connection, const GenerateOptions& options,
                std::ostream& out, std::ostream& err) {
  absl::StatusOr<v1::GenerateRequest> request = BuildGenerateRequest(options);
  if (!request.ok()) {
    err << request.status().message() << "\n";
    return kExitUsage;
  }
  if (std::optional<int> exit_code =
          FailIfUnreachable(connection, options.timeout, err)) {
    return *exit_code;
  }
  v1::Seq2Seq::Stub stub(connection.channel);
  return options.stream ? GenerateStreaming(stub, *request, options, out, err)
                        : GenerateUnary(stub, *request, options, out, err);
}

int RunInfo(const Connection& connection, const InfoOptions& options,
            std::ostream& out, std::ostream& err) {
  if (std::optional<int> exit_code =
          FailIfUnreachable(connection, options.timeout, err)) {
    return *exit_code;
  }
  v1::Seq2Seq::Stub stub(connection.channel);
  grpc::ClientContext context;
  SetDeadline(context, options.timeout);
  v1::GetModelInfoResponse info;
  const grpc::Status status =
      stub.GetModelInfo(&context, v1::GetModelInfoRequest(), &info);
  if (!status.ok()) return ReportFailure(status, err);
  if (options.json) {
    out << ToJson(info) << "\n";
    return kExitOk;
  }
  out << absl::StrFormat(
      "model_name:           %s\nhas_tokenizer:        %s\n"
      "max_batch_size:       %u\nmax_input_tokens:     %u\n"
      "max_new_tokens_limit: %u\n",
      info.model_name(), info.has_tokenizer() ? "yes" : "no",
      info.max_batch_size(), info.max_input_tokens(),
      info.max_new_tokens_limit());
  // ordered_json keeps the file's key order.
  const nlohmann::ordered_json config = nlohmann::ordered_json::parse(
      info.config_json(), nullptr, /*allow_exceptions=*/false);
  out << "config:\n"
      << (config.is_discarded() ? info.config_json() : config.dump(2)) << "\n";
  return kExitOk;
}

int RunHealth(const Connection& connection, const HealthOptions& options,
              std::ostream& out, std::ostream& err) {
  if (std::optional<int> exit_code =
          FailIfUnreachable(connection, options.timeout, err)) {
    return *exit_code;
  }
  grpc::health::v1::Health::Stub stub(connection.channel);
  grpc::ClientContext context;
  SetDeadline(context, options.timeout);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(options.service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub.Check(&context, request, &response);
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
    err << "unknown service \"" << options.service
        << "\" (the server has no health status for it)\n";
    return kExitFailed;
  }
  if (!status.ok()) return ReportFailure(status, err);
  out << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
             response.status())
      << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING
             ? kExitOk
             : kExitFailed;
}

}  // namespace attnserve::client
