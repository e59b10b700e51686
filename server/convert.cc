#include "server/convert.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/decode/decode_defaults.h"
#include "engine/memory/memory_estimate.h"
#include "engine/quote_text.h"
#include "engine/status_macros.h"
#include "server/batching_policy.h"
#include "server/memory_budget.h"

namespace attnserve::server {
namespace {

// Long enough for any tracing id; bounded because request ids are echoed and
// logged.
constexpr int kMaxRequestIdBytes = 256;

constexpr char kSourceLanguageScope[] =
    "source_language applies only to text requests of a multilingual "
    "tokenizer (mbart, mbart50, nllb, m2m100)";

uint64_t ToMicros(absl::Duration d) {
  return static_cast<uint64_t>(
      std::max<int64_t>(0, absl::ToInt64Microseconds(d)));
}

int64_t RequestBytes(const ModelInfo& model, int source_tokens,
                     const engine::DecodeOptions& options) {
  return EstimateRequestBytes(model, source_tokens, options);
}

// The request with the most decoder rows the limits allow: a beam of
// max_beam_size, or max_num_return_sequences samples when they are more.
engine::DecodeOptions WidestRequest(const RequestLimits& limits,
                                    int max_new_tokens) {
  engine::DecodeOptions options;
  options.max_new_tokens = max_new_tokens;
  if (limits.max_num_return_sequences > limits.max_beam_size) {
    options.do_sample = true;
    options.num_return_sequences = limits.max_num_return_sequences;
  } else {
    options.beam_size = limits.max_beam_size;
  }
  return options;
}

// Why a request of this worst case does not fit the budgets alone; empty when
// it does.
std::string OverBudget(const RequestLimits& limits, const ModelInfo& model,
                       int source_tokens, int max_new_tokens) {
  const engine::DecodeOptions options = WidestRequest(limits, max_new_tokens);
  if (limits.memory_budget_bytes > 0 &&
      RequestBytes(model, source_tokens, options) >
          limits.memory_budget_bytes) {
    return absl::StrCat("the memory budget of ",
                        FormatBytes(limits.memory_budget_bytes),
                        " (--memory_budget)");
  }
  if (limits.max_batch_tokens > 0 &&
      TokenCost(source_tokens, options) > limits.max_batch_tokens) {
    return absl::StrCat("the token budget of ", limits.max_batch_tokens,
                        " (--max_batch_tokens)");
  }
  return "";
}

// Lowers the limits that were derived from max_positions until a request at
// all the limits fits the budgets; the costs grow with both, so the largest
// fitting cap is found by bisection.
absl::Status CapDerivedLimits(bool input_derived, bool new_derived,
                              const ModelInfo& model, RequestLimits* limits) {
  // An explicit limit too large to fit beside even one token of the derived
  // one is the operator's choice (such requests are refused when they come,
  // Batcher::Submit): the derived limit is then sized beside one token of it.
  bool explicit_at_one = false;
  auto reason_at = [&](int cap) {
    const int input_explicit = explicit_at_one ? 1 : limits->max_input_tokens;
    const int new_explicit = explicit_at_one ? 1 : limits->max_new_tokens_limit;
    const int input = input_derived ? std::min(cap, limits->max_input_tokens)
                                    : input_explicit;
    const int new_tokens = new_derived
                               ? std::min(cap, limits->max_new_tokens_limit)
                               : new_explicit;
    return OverBudget(*limits, model, input, new_tokens);
  };
  const int top =
      std::max(limits->max_input_tokens, limits->max_new_tokens_limit);
  if (reason_at(top).empty()) return absl::OkStatus();
  if (!input_derived && !new_derived) return absl::OkStatus();
  if (!reason_at(1).empty()) {
    // Not even one token of the derived limit fits beside the explicit one:
    // size it beside one token of the explicit one instead.
    explicit_at_one = true;
    if (const std::string reason = reason_at(1); !reason.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "even a request of 1 source token and 1 new token at max_beam_size ",
          limits->max_beam_size, " (max_num_return_sequences ",
          limits->max_num_return_sequences, ") exceeds ", reason, " (model ",
          model.name, ")"));
    }
  }
  int fits = 1;
  int over = top;
  while (over - fits > 1) {
    const int mid = fits + (over - fits) / 2;
    (reason_at(mid).empty() ? fits : over) = mid;
  }
  // Named after the budget that binds at the cap, not at the model's limits.
  const std::string binding = reason_at(fits + 1);
  if (input_derived && fits < limits->max_input_tokens) {
    limits->max_input_tokens = fits;
    limits->input_cap_reason = binding;
  }
  if (new_derived && fits < limits->max_new_tokens_limit) {
    limits->max_new_tokens_limit = fits;
    limits->new_tokens_cap_reason = binding;
  }
  return absl::OkStatus();
}

// Why a request's language field cannot apply to this model: the family has no
// languages on both sides (none, T5, BART, Marian). Empty when it can.
std::string NoLanguages(const ModelInfo& model, const Tokenizer* tokenizer) {
  if (tokenizer == nullptr) {
    return absl::StrCat("model ", model.name, " has no tokenizer");
  }
  if (!tokenizer->IsMultilingual()) {
    return absl::StrCat("model ", model.name,
                        "'s tokenizer is not one of them");
  }
  return "";
}

// The token id of request.target_language(), or -1 when it is empty.
absl::StatusOr<int32_t> TargetLanguageId(const v1::GenerateRequest& request,
                                         const ModelInfo& model,
                                         const Tokenizer* tokenizer) {
  const std::string& code = request.target_language();
  if (code.empty()) return -1;
  if (const std::string why = NoLanguages(model, tokenizer); !why.empty()) {
    std::string hint;
    // Marian knows ">>fr<<" but as a source token: say where it goes.
    if (tokenizer != nullptr && tokenizer->LanguageId(code).ok()) {
      hint = absl::StrCat(" (this model takes its language token at the start ",
                          "of text, e.g. \">>fr<< ...\")");
    }
    return absl::InvalidArgumentError(
        absl::StrCat("target_language applies only to a model with a "
                     "multilingual tokenizer (mbart, mbart50, nllb, m2m100); ",
                     why, hint));
  }
  absl::StatusOr<int32_t> id = tokenizer->LanguageId(code);
  if (!id.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("target_language: ", id.status().message()));
  }
  return *id;
}

// target_language, then target_prefix_ids or target_prefix, onto `options`
// (max_new_tokens, eos_ids and forced_bos_id already set). A non-empty
// target_prefix_ids takes the place of the model's forced_bos_id
// (engine/decode/logits_rules.h), so the language token, which is what
// forced_bos_token_id forces, goes first. A text prefix cannot name that
// token (it is encoded without special tokens), so the forced BOS stays
// before it: decoder_start, forced BOS, text, as a transformers user forces
// it with decoder_input_ids.
absl::Status SetTargetPrefix(const v1::GenerateRequest& request,
                             const ModelInfo& model, const Tokenizer* tokenizer,
                             engine::DecodeOptions* options) {
  const bool has_ids = request.target_prefix_ids_size() > 0;
  const bool has_text = !request.target_prefix().empty();
  if (has_ids && has_text) {
    return absl::InvalidArgumentError(
        "at most one of target_prefix_ids and target_prefix may be set; the "
        "request sets both");
  }
  ASSIGN_OR_RETURN(int32_t first, TargetLanguageId(request, model, tokenizer));
  if (!has_ids && !has_text && first < 0) return absl::OkStatus();
  // What the first forced token is, for the messages.
  std::string first_name =
      absl::StrCat("target_language ",
                   engine::QuoteText(request.target_language()), "'s token id");
  const char* field = has_ids ? "target_prefix_ids" : "target_prefix";
  std::vector<int32_t> prefix;
  if (has_text) {
    if (tokenizer == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("target_prefix requires a tokenizer; model ", model.name,
                       " has none"));
    }
    absl::StatusOr<std::vector<int32_t>> ids =
        tokenizer->EncodeTargetPrefix(request.target_prefix());
    if (!ids.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("target_prefix: ", ids.status().message()));
    }
    if (ids->empty()) {
      return absl::InvalidArgumentError("target_prefix encodes to no tokens");
    }
    prefix = *std::move(ids);
    if (first < 0 && options->forced_bos_id >= 0) {
      first = options->forced_bos_id;
      first_name = "the generation config's forced_bos_token_id";
    }
  } else {
    prefix.assign(request.target_prefix_ids().begin(),
                  request.target_prefix_ids().end());
  }
  const size_t total = prefix.size() + (first >= 0 ? 1 : 0);
  if (static_cast<int>(total) > options->max_new_tokens) {
    const char* first_field = request.target_language().empty()
                                  ? "the forced BOS (forced_bos_token_id)"
                                  : "target_language";
    return absl::InvalidArgumentError(absl::StrCat(
        first >= 0 ? absl::StrCat(first_field, " and ", field, " make ", total,
                                  " tokens")
                   : absl::StrCat(field, " has ", total, " tokens"),
        "; max_new_tokens is ", options->max_new_tokens,
        " (the prefix is part of the output)"));
  }
  const std::vector<int32_t> eos =
      options->eos_ids.empty() ? std::vector<int32_t>{model.config.eos_id}
                               : options->eos_ids;
  // Names the field and what is wrong with one of its tokens, or is empty.
  const auto check = [&](const std::string& name, int32_t id) -> std::string {
    if (id < 0 || id >= model.config.vocab_size) {
      return absl::StrCat(name, " = ", id, " is outside [0, ",
                          model.config.vocab_size,
                          ") (the model's vocab_size)");
    }
    if (std::find(eos.begin(), eos.end(), id) != eos.end()) {
      return absl::StrCat(name, " = ", id,
                          " is an EOS id: the output would end inside its "
                          "prefix");
    }
    return "";
  };
  if (first >= 0) {
    // The tokenizer's or the generation config's id: a tokenizer bigger than
    // the model is not the client's mistake, but still must not reach the
    // engine.
    if (std::string bad = check(first_name, first); !bad.empty()) {
      return absl::InvalidArgumentError(bad);
    }
  }
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::string bad = check(absl::StrCat(field, "[", i, "]"), prefix[i]);
        !bad.empty()) {
      return absl::InvalidArgumentError(bad);
    }
  }
  options->target_prefix.clear();
  if (first >= 0) options->target_prefix.push_back(first);
  options->target_prefix.insert(options->target_prefix.end(), prefix.begin(),
                                prefix.end());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RequestLimits> ResolveLimits(const RequestLimits& limits,
                                            const ModelInfo& model) {
  const int max_positions = model.config.max_positions;
  RequestLimits resolved = limits;
  resolved.input_cap_reason.clear();
  resolved.new_tokens_cap_reason.clear();
  const bool input_derived = resolved.max_input_tokens == 0;
  const bool new_derived = resolved.max_new_tokens_limit == 0;
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
  if (resolved.max_beam_size < 1 ||
      resolved.max_beam_size > engine::kMaxBeamSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_beam_size = ", resolved.max_beam_size,
                     " must be in [1, ", engine::kMaxBeamSize, "]"));
  }
  if (resolved.max_num_return_sequences < 1 ||
      resolved.max_num_return_sequences > kMaxNumReturnSequences) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_num_return_sequences = ", resolved.max_num_return_sequences,
        " must be in [1, ", kMaxNumReturnSequences, "]"));
  }
  if (resolved.max_top_log_probs < 0 ||
      resolved.max_top_log_probs > kMaxTopLogProbs) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_top_log_probs = ", resolved.max_top_log_probs,
                     " must be in [0, ", kMaxTopLogProbs, "]"));
  }
  if (resolved.memory_budget_bytes < 0 || resolved.max_batch_tokens < 0) {
    return absl::InvalidArgumentError(
        "memory_budget_bytes and max_batch_tokens must be >= 0 (0: none)");
  }
  if (absl::Status capped =
          CapDerivedLimits(input_derived, new_derived, model, &resolved);
      !capped.ok()) {
    return capped;
  }
  if (resolved.default_max_new_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("default_max_new_tokens must be >= 1, not ",
                     resolved.default_max_new_tokens));
  }
  resolved.default_max_new_tokens =
      std::min(resolved.default_max_new_tokens, resolved.max_new_tokens_limit);
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
  const std::string& source_language = request.source_language();
  if (!source_language.empty() && !has_text) {
    return absl::InvalidArgumentError(
        absl::StrCat(kSourceLanguageScope, "; the request sends input_ids"));
  }
  if (has_text) {
    if (tokenizer == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "text requires a tokenizer; model ", model.name, " has none"));
    }
    if (!source_language.empty()) {
      if (const std::string why = NoLanguages(model, tokenizer); !why.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(kSourceLanguageScope, "; ", why));
      }
      // Checked apart, so that an unknown code names this field, not text.
      if (absl::StatusOr<int32_t> id = tokenizer->LanguageId(source_language);
          !id.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("source_language: ", id.status().message()));
      }
    }
    absl::StatusOr<std::vector<int32_t>> ids =
        tokenizer->EncodeFrom(request.text(), source_language);
    if (!ids.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("text: ", ids.status().message()));
    }
    item.source = *std::move(ids);
    if (model.config.add_eos_to_source && !tokenizer->EncodesSpecialTokens())
      item.source.push_back(model.config.eos_id);
    if (item.source.empty()) {
      return absl::InvalidArgumentError(
          "text encodes to no tokens (an empty source)");
    }
  } else {
    item.source.assign(request.input_ids().begin(), request.input_ids().end());
  }
  const char* source_field = has_text ? "text" : "input_ids";
  if (static_cast<int>(item.source.size()) > limits.max_input_tokens &&
      !limits.input_cap_reason.empty()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        source_field, " has ", item.source.size(), " tokens; the limit is ",
        limits.max_input_tokens,
        " (max_input_tokens, lowered from the model's max_positions to fit ",
        limits.input_cap_reason, ")"));
  }
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
          static_cast<uint32_t>(limits.max_new_tokens_limit) &&
      !limits.new_tokens_cap_reason.empty()) {
    engine::DecodeOptions asked;  // at beam_size 1, the least it can need
    asked.max_new_tokens = static_cast<int>(
        std::min<uint32_t>(request.max_new_tokens(), INT32_MAX));
    return absl::ResourceExhaustedError(absl::StrCat(
        "max_new_tokens = ", request.max_new_tokens(), " may need up to ",
        FormatBytes(
            RequestBytes(model, static_cast<int>(item.source.size()), asked)),
        " of engine memory even at beam_size 1; the limit is ",
        limits.max_new_tokens_limit,
        " (max_new_tokens_limit, lowered from the model's max_positions to "
        "fit ",
        limits.new_tokens_cap_reason, ")"));
  }
  if (request.max_new_tokens() >
      static_cast<uint32_t>(limits.max_new_tokens_limit)) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens = ", request.max_new_tokens(),
                     " is above the limit of ", limits.max_new_tokens_limit,
                     " (max_new_tokens_limit)"));
  }
  // What the request leaves unset comes from the model's generation config
  // (its rules always do: a request cannot change them).
  const engine::GenerationConfig& generation = model.generation;
  item.decode = engine::DecodeOptionsFromGeneration(generation);
  if (request.max_new_tokens() != 0) {
    item.decode.max_new_tokens = static_cast<int>(request.max_new_tokens());
  } else if (generation.max_length > 1) {
    // HF's max_length counts the start token.
    item.decode.max_new_tokens =
        std::min(generation.max_length - 1, limits.max_new_tokens_limit);
  } else {
    item.decode.max_new_tokens = limits.default_max_new_tokens;
  }
  if (request.beam_size() > static_cast<uint32_t>(limits.max_beam_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "beam_size = ", request.beam_size(), " is above the limit of ",
        limits.max_beam_size, " (max_beam_size)"));
  }
  // 0: the model's num_beams, within the server's limit.
  item.decode.beam_size =
      request.beam_size() != 0
          ? static_cast<int>(request.beam_size())
          : std::clamp(generation.num_beams, 1, limits.max_beam_size);
  if (request.has_length_penalty()) {
    const float penalty = request.length_penalty();
    if (!std::isfinite(penalty) || penalty < 0.0f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "length_penalty = ", penalty, " must be a finite number >= 0"));
    }
    item.decode.length_penalty = penalty;
  }
  RETURN_IF_ERROR(
      ApplyGenerationControls(request, limits, model, &item.decode));
  RETURN_IF_ERROR(SetTargetPrefix(request, model, tokenizer, &item.decode));
  return item;
}

absl::Status ApplyGenerationControls(const v1::GenerateRequest& request,
                                     const RequestLimits& limits,
                                     const ModelInfo& model,
                                     engine::DecodeOptions* options) {
  const int vocab_size = model.config.vocab_size;
  // Sampling. Its parameters are checked whether or not the request samples.
  const float temperature = request.temperature();
  if (temperature != 0.0f && !(std::isfinite(temperature) && temperature > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature = ", temperature,
                     " must be a finite number >= 0 (0: the model's default)"));
  }
  const float top_p = request.top_p();
  if (!(top_p >= 0.0f && top_p <= 1.0f)) {  // NaN fails too
    return absl::InvalidArgumentError(absl::StrCat(
        "top_p = ", top_p, " must be in [0, 1] (0: the model's default)"));
  }
  const bool sets_sampling =
      temperature != 0.0f || request.top_k() != 0 || top_p != 0.0f;
  if (request.has_do_sample() && !request.do_sample() && sets_sampling) {
    return absl::InvalidArgumentError(
        "temperature, top_k and top_p apply only to sampling; the request "
        "sets do_sample = false");
  }
  // Whether the request itself asks to sample (or not to); unset: the model's
  // do_sample.
  const bool explicit_sampling = request.has_do_sample() || sets_sampling;
  if (explicit_sampling) {
    options->do_sample = request.has_do_sample() ? request.do_sample() : true;
    // A request that samples does not inherit the model's num_beams: beam
    // sampling is not supported, and the request did not ask for beams.
    if (options->do_sample && request.beam_size() == 0) options->beam_size = 1;
  }
  if (options->do_sample && options->beam_size > 1) {
    if (explicit_sampling) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sampling (temperature, top_k, top_p or do_sample) needs beam_size "
          "1, not ",
          options->beam_size, " (beam sampling is not supported)"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "beam_size = ", options->beam_size, " with sampling: model ",
        model.name,
        "'s generation config samples (do_sample); send do_sample = false "
        "for beam search"));
  }
  if (options->do_sample) {
    if (temperature != 0.0f) options->temperature = temperature;
    // More than the vocabulary keeps every token, as transformers clamps it.
    if (request.top_k() != 0) {
      options->top_k = static_cast<int>(std::min<uint32_t>(
          request.top_k(), static_cast<uint32_t>(vocab_size)));
    }
    if (top_p != 0.0f) options->top_p = top_p;
    options->seed = request.seed() != 0 ? request.seed() : NewSeed();
  }

  if (request.repetition_penalty() != 0.0f) {
    const float penalty = request.repetition_penalty();
    if (!(std::isfinite(penalty) && penalty > 0.0f)) {
      return absl::InvalidArgumentError(
          absl::StrCat("repetition_penalty = ", penalty,
                       " must be a finite number > 0 (1: off; 0: the model's "
                       "default)"));
    }
    options->repetition_penalty = penalty;
  }
  if (request.no_repeat_ngram_size() != 0) {
    // No prefix is longer than max_positions, so a larger n-gram never
    // repeats: bounded there so that the conversion to int is safe.
    if (request.no_repeat_ngram_size() >
        static_cast<uint32_t>(model.config.max_positions)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "no_repeat_ngram_size = ", request.no_repeat_ngram_size(),
          " is above the model's max_positions (", model.config.max_positions,
          ")"));
    }
    options->no_repeat_ngram_size =
        static_cast<int>(request.no_repeat_ngram_size());
  }
  if (request.min_new_tokens() != 0) {
    if (request.min_new_tokens() >
        static_cast<uint32_t>(options->max_new_tokens)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "min_new_tokens = ", request.min_new_tokens(),
          " is above max_new_tokens (", options->max_new_tokens, ")"));
    }
    options->min_new_tokens = static_cast<int>(request.min_new_tokens());
  }
  // The request's bans add to the model's: those guard tokens a checkpoint
  // must never produce (Marian bans its pad id), which transformers' override
  // of the whole list would let through.
  const auto out_of_vocab = [vocab_size](const std::string& name, int32_t id) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " = ", id, " is outside [0, ", vocab_size,
                     ") (the model's vocab_size)"));
  };
  for (int i = 0; i < request.suppress_token_ids_size(); ++i) {
    const int32_t id = request.suppress_token_ids(i);
    if (id < 0 || id >= vocab_size) {
      return out_of_vocab(absl::StrCat("suppress_token_ids[", i, "]"), id);
    }
    options->suppress_token_ids.push_back(id);
  }
  if (request.suppress_token_ids_size() > 0) {
    std::vector<int32_t> distinct = options->suppress_token_ids;
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()),
                   distinct.end());
    if (static_cast<int>(distinct.size()) >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("suppress_token_ids leave no token of the vocabulary (",
                       vocab_size, ") to generate"));
    }
  }
  for (int w = 0; w < request.bad_words_size(); ++w) {
    const v1::TokenIds& word = request.bad_words(w);
    if (word.ids_size() == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad_words[", w, "] is empty"));
    }
    for (int i = 0; i < word.ids_size(); ++i) {
      if (word.ids(i) < 0 || word.ids(i) >= vocab_size) {
        return out_of_vocab(absl::StrCat("bad_words[", w, "].ids[", i, "]"),
                            word.ids(i));
      }
    }
    options->bad_words.emplace_back(word.ids().begin(), word.ids().end());
  }

  // Hypotheses: beam search returns up to beam_size, sampling draws any
  // number, greedy decoding has one answer.
  const int most = options->beam_size > 1 ? options->beam_size
                   : options->do_sample   ? limits.max_num_return_sequences
                                          : 1;
  if (request.num_return_sequences() != 0) {
    const uint32_t n = request.num_return_sequences();
    if (n > static_cast<uint32_t>(limits.max_num_return_sequences)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "num_return_sequences = ", n, " is above the limit of ",
          limits.max_num_return_sequences, " (max_num_return_sequences)"));
    }
    if (n > static_cast<uint32_t>(most)) {
      return absl::InvalidArgumentError(
          options->beam_size > 1
              ? absl::StrCat("num_return_sequences = ", n,
                             " is above beam_size (", options->beam_size,
                             "): beam search returns at most beam_size "
                             "hypotheses")
              : absl::StrCat("num_return_sequences = ", n,
                             " needs beam search (beam_size >= ", n,
                             ") or sampling; greedy decoding has one answer"));
    }
    options->num_return_sequences = static_cast<int>(n);
  } else {
    // The model's default, within what this request's decoding can return
    // (as its num_beams is capped at max_beam_size).
    options->num_return_sequences =
        std::clamp(options->num_return_sequences, 1, std::max(most, 1));
  }

  if (request.top_log_probs() >
      static_cast<uint32_t>(limits.max_top_log_probs)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "top_log_probs = ", request.top_log_probs(), " is above the limit of ",
        limits.max_top_log_probs, " (max_top_log_probs)"));
  }
  options->top_log_probs =
      std::min(static_cast<int>(request.top_log_probs()), vocab_size);
  return absl::OkStatus();
}

int64_t EstimateRequestBytes(const ModelInfo& model, int source_tokens,
                             const engine::DecodeOptions& options) {
  return engine::SequenceMemoryBytes(model.config, source_tokens, options,
                                     model.threads, model.kv_cache);
}

std::string NewRequestId() {
  // Random rather than a counter so that ids from restarts and replicas do not
  // collide in shared logs.
  thread_local absl::BitGen bits;
  return absl::StrFormat("req-%016x", absl::Uniform<uint64_t>(bits));
}

uint64_t NewSeed() {
  thread_local absl::BitGen bits;
  return absl::Uniform<uint64_t>(absl::IntervalClosedOpen, bits, 1,
                                 uint64_t{1} << 53);
}

uint64_t ReportedSeed(const engine::DecodeOptions& options) {
  return options.do_sample ? options.seed : 0;
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

void AppendTopLogProbs(
    absl::Span<const std::vector<engine::TokenLogProb>> top,
    google::protobuf::RepeatedPtrField<v1::TopLogProbs>* out) {
  for (const std::vector<engine::TokenLogProb>& step : top) {
    v1::TopLogProbs* list = out->Add();
    for (const engine::TokenLogProb& token : step) {
      v1::TokenLogProb* entry = list->add_tokens();
      entry->set_token_id(token.token);
      entry->set_log_prob(token.log_prob);
    }
  }
}

void SetFinal(const Outcome& outcome, const ResponseOptions& options,
              v1::GenerateResponse* response) {
  SetSummary(outcome, response);
  for (const engine::SequenceResult& other : outcome.result.alternatives) {
    v1::Hypothesis* hypothesis = response->add_alternatives();
    hypothesis->mutable_output_ids()->Add(other.output_ids.begin(),
                                          other.output_ids.end());
    if (options.tokenizer != nullptr) {
      hypothesis->set_text(
          options.tokenizer->Decode(other.output_ids, /*continues=*/false));
    }
    hypothesis->set_score(other.score);
    if (options.with_log_probs) {
      hypothesis->mutable_log_probs()->Add(other.log_probs.begin(),
                                           other.log_probs.end());
    }
    hypothesis->set_finish_reason(ToProto(other.finish_reason));
    AppendTopLogProbs(other.top_log_probs, hypothesis->mutable_top_log_probs());
  }
  response->set_seed(options.seed);
}

void FillResponse(const Outcome& outcome, const ResponseOptions& options,
                  v1::GenerateResponse* response) {
  AppendTokens(outcome.result.output_ids, outcome.result.log_probs,
               options.with_log_probs, options.tokenizer, /*continues=*/false,
               response);
  AppendTopLogProbs(outcome.result.top_log_probs,
                    response->mutable_top_log_probs());
  SetFinal(outcome, options, response);
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
  response.set_layout(model.layout);
  response.set_compute_type(model.compute_type);
  response.set_kv_cache_dtype(model.kv_cache_dtype);
  response.set_max_batch_size(static_cast<uint32_t>(max_batch_size));
  response.set_max_input_tokens(static_cast<uint32_t>(limits.max_input_tokens));
  response.set_max_new_tokens_limit(
      static_cast<uint32_t>(limits.max_new_tokens_limit));
  response.set_has_tokenizer(has_tokenizer);
  return response;
}

}  // namespace attnserve::server
