#pragma once
// The one place where API messages (attnserve.v1) and the server's and engine's
// types meet: request checks with the messages of docs/api.md, and
// response filling.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "attnserve/v1/attnserve.pb.h"
#include "engine/decode/generator.h"
#include "server/batch_engine.h"
#include "server/request.h"
#include "server/tokenizers/tokenizer.h"

namespace attnserve::server {

// The server's own limits on requests (flags of the same names).
struct RequestLimits {
  int max_input_tokens = 0;      // source tokens; 0 = the model's max_positions
  int max_new_tokens_limit = 0;  // 0 = the model's max_positions - 1
  int default_max_new_tokens =
      64;  // for requests that say 0; capped at max_new_tokens_limit
  int max_beam_size = 4;  // 1..engine::kMaxBeamSize

  // The budgets of the running batch (BatchingOptions' max_batch_memory_bytes
  // and max_batch_tokens; 0: none), which every request must fit alone. Limits
  // left at 0 are derived from max_positions and then lowered, when needed,
  // until a request at all the limits (max_beam_size included) fits them, so
  // that with default limits every valid request can run.
  int64_t memory_budget_bytes = 0;
  int max_batch_tokens = 0;
  // Set by ResolveLimits when it lowered a derived limit: why ("the memory
  // budget of 1.2 GiB (--memory_budget)"); a request above such a limit is
  // RESOURCE_EXHAUSTED (too big for this server) rather than INVALID_ARGUMENT.
  std::string input_cap_reason;       // max_input_tokens
  std::string new_tokens_cap_reason;  // max_new_tokens_limit
};

// Replaces zeros by the model's limits (capped by the budgets, above) and caps
// the default; INVALID_ARGUMENT naming the limit when it is out of range or
// above what the model accepts, or when the budgets leave no room for a
// one-token request at max_beam_size. The memory a request needs is
// engine::SequenceMemoryBytes of the model's config, as GeneratorEngine
// estimates it.
absl::StatusOr<RequestLimits> ResolveLimits(const RequestLimits& limits,
                                            const ModelInfo& model);

// Checks a request against the API rules, the model and `limits` (resolved) and
// makes the batcher's work item; `tokenizer` may be null. INVALID_ARGUMENT with
// a message that names the field and the limit. The request id and the deadline
// are left for the caller to set.
absl::StatusOr<WorkItem> ToWorkItem(const v1::GenerateRequest& request,
                                    const RequestLimits& limits,
                                    const ModelInfo& model,
                                    const Tokenizer* tokenizer);

// A process-unique id for requests that come without one.
std::string NewRequestId();

// Appends tokens (and their log-probs when `with_log_probs`, and the text piece
// when there is a tokenizer) to `response`. `continues`: text of the same
// output was already appended to an earlier message (streaming), so the text
// piece joins onto it (see Tokenizer::Decode).
void AppendTokens(absl::Span<const int32_t> ids,
                  absl::Span<const float> log_probs, bool with_log_probs,
                  const Tokenizer* tokenizer, bool continues,
                  v1::GenerateResponse* response);

// Sets what the last message of a request carries: finish_reason, score and
// timing.
void SetSummary(const Outcome& outcome, v1::GenerateResponse* response);

v1::FinishReason ToProto(engine::FinishReason reason);

v1::GetModelInfoResponse MakeModelInfoResponse(const ModelInfo& model,
                                               const RequestLimits& limits,
                                               int max_batch_size,
                                               bool has_tokenizer);

}  // namespace attnserve::server
