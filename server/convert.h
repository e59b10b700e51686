#pragma once
// The one place where API messages (attnserve.v1) and the server's and engine's
// types meet: request checks with the messages of docs/api.md, and
// response filling.

#include <cstdint>
#include <string>
#include <vector>

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
  // Most hypotheses a request may ask for (num_return_sequences), beam or
  // sampled; each sampled one is a decoder row. 1..kMaxNumReturnSequences.
  int max_num_return_sequences = 4;
  // Most top log-probs per generated token (top_log_probs); 0 turns them off.
  // 0..kMaxTopLogProbs.
  int max_top_log_probs = 5;

  // The budgets of the running batch (BatchingOptions' max_batch_memory_bytes
  // and max_batch_tokens; 0: none), which every request must fit alone. Limits
  // left at 0 are derived from max_positions and then lowered, when needed,
  // until a request at all the limits (max_beam_size and
  // max_num_return_sequences included) fits them, so that with default limits
  // every valid request can run.
  int64_t memory_budget_bytes = 0;
  int max_batch_tokens = 0;
  // Set by ResolveLimits when it lowered a derived limit: why ("the memory
  // budget of 1.2 GiB (--memory_budget)"); a request above such a limit is
  // RESOURCE_EXHAUSTED (too big for this server) rather than INVALID_ARGUMENT.
  std::string input_cap_reason;       // max_input_tokens
  std::string new_tokens_cap_reason;  // max_new_tokens_limit
};

// The hard bounds of the flags --max_num_return_sequences and
// --max_top_log_probs.
inline constexpr int kMaxNumReturnSequences = 16;
inline constexpr int kMaxTopLogProbs = 20;

// Replaces zeros by the model's limits (capped by the budgets, above) and caps
// the default; INVALID_ARGUMENT naming the limit when it is out of range or
// above what the model accepts, or when the budgets leave no room for a
// one-token request at max_beam_size (or max_num_return_sequences sampled
// rows, when more). The memory a request needs is EstimateRequestBytes, as
// GeneratorEngine estimates it.
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

// The request's generation controls (temperature, top_k, top_p, seed,
// repetition_penalty, no_repeat_ngram_size, min_new_tokens,
// suppress_token_ids, bad_words, num_return_sequences, top_log_probs,
// do_sample) over `options`, which holds the model's defaults
// (engine::DecodeOptionsFromGeneration) with max_new_tokens and beam_size
// already resolved for the request. INVALID_ARGUMENT naming the field and the
// bound. A sampled request without a seed gets one (NewSeed). Part of
// ToWorkItem; apart so that tests can give it any defaults.
absl::Status ApplyGenerationControls(const v1::GenerateRequest& request,
                                     const RequestLimits& limits,
                                     const ModelInfo& model,
                                     engine::DecodeOptions* options);

// The most bytes of engine memory a request of `source_tokens` tokens decoded
// with `options` can hold: engine::SequenceMemoryBytes at the model's thread
// count and KV cache dtype (its decoder rows are beams or samples alike).
int64_t EstimateRequestBytes(const ModelInfo& model, int source_tokens,
                             const engine::DecodeOptions& options);

// A process-unique id for requests that come without one.
std::string NewRequestId();

// A random seed for a sampled request that sent none: in [1, 2^53), so that
// it survives every client's JSON numbers when it is sent back to replay the
// draw.
uint64_t NewSeed();

// GenerateResponse.seed for a request decoded with `options`: its seed when it
// samples, else 0.
uint64_t ReportedSeed(const engine::DecodeOptions& options);

// What a request's responses carry besides its results, fixed when it is
// accepted.
struct ResponseOptions {
  bool with_log_probs = false;           // GenerateRequest.return_log_probs
  uint64_t seed = 0;                     // ReportedSeed
  const Tokenizer* tokenizer = nullptr;  // may be null
};

// Appends tokens (and their log-probs when `with_log_probs`, and the text piece
// when there is a tokenizer) to `response`. `continues`: text of the same
// output was already appended to an earlier message (streaming), so the text
// piece joins onto it (see Tokenizer::Decode).
void AppendTokens(absl::Span<const int32_t> ids,
                  absl::Span<const float> log_probs, bool with_log_probs,
                  const Tokenizer* tokenizer, bool continues,
                  v1::GenerateResponse* response);

// Appends the top log-probs of some generated tokens (one list per token,
// best first) to `out`.
void AppendTopLogProbs(
    absl::Span<const std::vector<engine::TokenLogProb>> top,
    google::protobuf::RepeatedPtrField<v1::TopLogProbs>* out);

// Sets what the last message of a request carries: finish_reason, score and
// timing.
void SetSummary(const Outcome& outcome, v1::GenerateResponse* response);

// The last message's summary (SetSummary), the other hypotheses whole
// (alternatives, with text when there is a tokenizer) and the seed.
void SetFinal(const Outcome& outcome, const ResponseOptions& options,
              v1::GenerateResponse* response);

// A whole unary response: the result's tokens, log-probs when asked, text,
// top log-probs, and SetFinal.
void FillResponse(const Outcome& outcome, const ResponseOptions& options,
                  v1::GenerateResponse* response);

v1::FinishReason ToProto(engine::FinishReason reason);

v1::GetModelInfoResponse MakeModelInfoResponse(const ModelInfo& model,
                                               const RequestLimits& limits,
                                               int max_batch_size,
                                               bool has_tokenizer);

}  // namespace attnserve::server
