#include "server/convert.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace attnserve::server {
namespace {

// Long enough for any tracing id; bounded because request ids are echoed and
// logged.
constexpr int kMaxRequestIdBytes = 256;

uint64_t ToMicros(absl::Duration d) {
  return static_cast<uint64_t>(
      std::max<int64_t>(0, absl::ToInt64Microseconds(d)));
}

}  // namespace

absl::StatusOr<RequestLimits> ResolveLimits(const RequestLimits& limits,
                                            const ModelInfo& model) {
  const int max_positions = model.config.max_positions;
  RequestLimits resolved = limits;
  if (resolved.max_input_tokens == 0) resolved.max_input_tokens = max_positions;
  // The decoder's prefix is the start token plus the generated tokens.
  if (resolved.max_new_tokens_limit == 0)
    resolved.max_new_tokens_limit = max_positions - 1;
  if (resolved.max_input_tokens < 1 ||
      resolved.max_input_tokens > max_positions) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_input_tokens = ", resolved.max_input_tokens,
                     " must be in [1, ", max_positions, "] (model ", model.name,
                     " has max_positions ", max_positions, ")"));
  }
  if (resolved.max_new_tokens_limit < 1 ||
      resolved.max_new_tokens_limit > max_positions - 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens_limit = ", resolved.max_new_tokens_limit,
                     " must be in [1, ", max_positions - 1, "] (model ",
                     model.name, " has max_positions ", max_positions, ")"));
  }
  if (resolved.default_max_new_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("default_max_new_tokens must be >= 1, not ",
                     resolved.default_max_new_tokens));
  }
  resolved.default_max_new_tokens =
      std::min(resolved.default_max_new_tokens, resolved.max_new_tokens_limit);
  if (resolved.max_beam_size < 1 ||
      resolved.max_beam_size > engine::kMaxBeamSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_beam_size = ", resolved.max_beam_size,
                     " must be in [1, ", engine::kMaxBeamSize, "]"));
  }
  return resolved;
}

absl::StatusOr<WorkItem> ToWorkItem(const v1::GenerateRequest& request,
                                    const RequestLimits& limits,
                                    const ModelInfo& model,
                                    const Tokenizer* tokenizer) {
  const bool has_ids = request.input_ids_size() > 0;
  const bool has_text = !request.text().empty();
  if (has_ids && has_text) {
    return absl::InvalidArgumentError(
        "exactly one of input_ids and text must be set; the request sets both");
  }
  if (!has_ids && !has_text) {
    return absl::InvalidArgumentError(
        "exactly one of input_ids and text must be set; the request sets "
        "neither (an empty "
        "source is not allowed)");
  }
  if (request.request_id().size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id has ", request.request_id().size(),
                     " bytes; the limit is ", kMaxRequestIdBytes));
  }
  // Request ids are logged and echoed: printable ASCII only, so that one
  // cannot forge a log line (a newline) or smuggle terminal escapes.
  for (size_t i = 0; i < request.request_id().size(); ++i) {
    const unsigned char c = request.request_id()[i];
    if (c < 0x20 || c > 0x7E) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "request_id byte %d is 0x%02X; request ids take printable ASCII "
          "only (0x20-0x7E)",
          i, c));
    }
  }

  WorkItem item;
  if (has_text) {
    if (tokenizer == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "text requires a tokenizer; model ", model.name, " has none"));
    }
    absl::StatusOr<std::vector<int32_t>> ids =
        tokenizer->Encode(request.text());
    if (!ids.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("text: ", ids.status().message()));
    }
    item.source = *std::move(ids);
    if (model.config.add_eos_to_source)
      item.source.push_back(model.config.eos_id);
    if (item.source.empty()) {
      return absl::InvalidArgumentError(
          "text encodes to no tokens (an empty source)");
    }
  } else {
    item.source.assign(request.input_ids().begin(), request.input_ids().end());
  }
  const char* source_field = has_text ? "text" : "input_ids";
  if (static_cast<int>(item.source.size()) > limits.max_input_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        source_field, " has ", item.source.size(), " tokens; the limit is ",
        limits.max_input_tokens, " (max_input_tokens)"));
  }
  const int vocab_size = model.config.vocab_size;
  for (size_t i = 0; i < item.source.size(); ++i) {
    if (item.source[i] < 0 || item.source[i] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          source_field, "[", i, "] = ", item.source[i], " is outside [0, ",
          vocab_size, ") (the model's vocab_size)"));
    }
  }

  if (request.max_new_tokens() >
      static_cast<uint32_t>(limits.max_new_tokens_limit)) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens = ", request.max_new_tokens(),
                     " is above the limit of ", limits.max_new_tokens_limit,
                     " (max_new_tokens_limit)"));
  }
  item.decode.max_new_tokens = request.max_new_tokens() == 0
                                   ? limits.default_max_new_tokens
                                   : static_cast<int>(request.max_new_tokens());
  if (request.beam_size() > static_cast<uint32_t>(limits.max_beam_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "beam_size = ", request.beam_size(), " is above the limit of ",
        limits.max_beam_size, " (max_beam_size)"));
  }
  item.decode.beam_size =
      std::max<int>(1, static_cast<int>(request.beam_size()));
  if (request.has_length_penalty()) {
    const float penalty = request.length_penalty();
    if (!std::isfinite(penalty) || penalty < 0.0f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "length_penalty = ", penalty, " must be a finite number >= 0"));
    }
    item.decode.length_penalty = penalty;
  }
  return item;
}

std::string NewRequestId() {
  // Random rather than a counter so that ids from restarts and replicas do not
  // collide in shared logs.
  thread_local absl::BitGen bits;
  return absl::StrFormat("req-%016x", absl::Uniform<uint64_t>(bits));
}

void AppendTokens(absl::Span<const int32_t> ids,
                  absl::Span<const float> log_probs, bool with_log_probs,
                  const Tokenizer* tokenizer, bool continues,
                  v1::GenerateResponse* response) {
  response->mutable_output_ids()->Add(ids.begin(), ids.end());
  if (with_log_probs)
    response->mutable_log_probs()->Add(log_probs.begin(), log_probs.end());
  if (tokenizer != nullptr)
    response->mutable_text()->append(tokenizer->Decode(ids, continues));
}

void SetSummary(const Outcome& outcome, v1::GenerateResponse* response) {
  response->set_finish_reason(ToProto(outcome.result.finish_reason));
  response->set_score(outcome.result.score);
  v1::Timing* timing = response->mutable_timing();
  timing->set_queue_us(ToMicros(outcome.queue_time));
  timing->set_compute_us(ToMicros(outcome.compute_time));
  timing->set_total_us(ToMicros(outcome.total_time));
  timing->set_batch_size(static_cast<uint32_t>(outcome.max_batch_size));
}

v1::FinishReason ToProto(engine::FinishReason reason) {
  switch (reason) {
    case engine::FinishReason::kEos:
      return v1::FINISH_REASON_EOS;
    case engine::FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case engine::FinishReason::kNone:
      return v1::FINISH_REASON_UNSPECIFIED;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

v1::GetModelInfoResponse MakeModelInfoResponse(const ModelInfo& model,
                                               const RequestLimits& limits,
                                               int max_batch_size,
                                               bool has_tokenizer) {
  v1::GetModelInfoResponse response;
  response.set_model_name(model.name);
  response.set_config_json(model.config_json);
  response.set_max_batch_size(static_cast<uint32_t>(max_batch_size));
  response.set_max_input_tokens(static_cast<uint32_t>(limits.max_input_tokens));
  response.set_max_new_tokens_limit(
      static_cast<uint32_t>(limits.max_new_tokens_limit));
  response.set_has_tokenizer(has_tokenizer);
  return response;
}

}  // namespace attnserve::server
