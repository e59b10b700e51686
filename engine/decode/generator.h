#pragma once
// Iteration-level (continuous) batching over a Model.
//
// A Generator holds the active set: sequences that have been encoded and are
// being decoded, each with its own KV cache and encoder K/V. Between steps the
// caller may add new sources (encoded together, one encoder batch) and cancel
// sequences; Step() advances every active sequence by one token at once.
// Finished sequences leave the set inside Step() and their result is returned
// in that step's events. GenerateBatch() ("run this batch to the end") is a
// thin loop over the same calls.
//
// Not thread-safe: one thread (the model's inference thread) makes every call.

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/format/generation_config.h"
#include "engine/model.h"

namespace attnserve::engine {

inline constexpr int kMaxBeamSize = 8;
// Bounds of DecodeOptions::num_return_sequences and ::top_log_probs.
inline constexpr int kMaxNumReturnSequences = 64;
inline constexpr int kMaxTopLogProbs = 20;

enum class FinishReason { kNone, kEos, kLength };

struct DecodeOptions {
  // >= 1; the prefix (start token + tokens) also must fit max_positions. When
  // the limit comes from a generation config, max_length - 1 (HF's max_length
  // counts the start token; the server maps it).
  int max_new_tokens = 16;
  int beam_size = 1;  // 1 = greedy; 1..kMaxBeamSize
  // Beam search ranks hypotheses by sum(log p) / length^length_penalty, where
  // the sum and the length include the EOS token when the hypothesis ended with
  // it (length max_new_tokens when it ended by length).
  float length_penalty = 1.0f;
  // Benchmarks only: never stop at EOS, so every sequence produces
  // max_new_tokens tokens (EOS may then appear among them).
  bool ignore_eos = false;

  // The rules below are Hugging Face's generation config (docs/hf-reference.md,
  // "Decoding"); DecodeOptionsFromGeneration (decode_defaults.h) fills them
  // from a checkpoint's. Their defaults change nothing.

  // The decoder's first input token; -1: the model's decoder_start_id.
  int32_t decoder_start_id = -1;
  // Producing any of these ends a hypothesis (finish reason EOS); empty: the
  // model's eos_id alone.
  std::vector<int32_t> eos_ids;
  // The first generated token, forced (-1: none). A non-empty target_prefix
  // takes its place.
  int32_t forced_bos_id = -1;
  // Forced at the last allowed token (the max_new_tokens-th); with several,
  // any of them may come (greedy takes the lowest id on a tie).
  std::vector<int32_t> forced_eos_ids;
  // Never generated: a one-token word [t] bans t at every step (except a word
  // that is one EOS id, which HF drops); a word [a..., t] bans t right after
  // the tokens a... (the start token never takes part in a match).
  std::vector<std::vector<int32_t>> bad_words;
  // EOS is banned while the prefix, start token included, is shorter than
  // this (HF's min_length: at least min_length - 1 tokens, EOS included).
  int min_length = 0;
  // > 0: no n-gram of this size occurs twice in the prefix (start token
  // included).
  int no_repeat_ngram_size = 0;
  // Beam search's stopping rule (HF's early_stopping false / true / "never").
  EarlyStopping early_stopping = EarlyStopping::kHeuristic;
  // Beam search as attnserve did it before it followed transformers >= 4.50
  // (docs/api.md, "Beam search"): 2 * beam_size candidates walked in order, an
  // EOS among them finishing whatever its rank until beam_size are finished,
  // then stop; at max_new_tokens the live ones finish by length.
  // early_stopping is ignored. Kept because the golden files of
  // tests/data/golden were made that way (scripts/make_golden.py); the
  // server does not use it.
  bool legacy_beam_search = false;
  // Forced as the first generated tokens (e.g. NLLB's target language),
  // overriding every other rule at their steps; they are part of the output.
  // Their log-probs follow the forced-token convention: greedy reports their
  // model log-probs, beam search scores them 0 (as HF scores forced_bos_id).
  // At most max_new_tokens of them; no EOS among them.
  std::vector<int32_t> target_prefix;

  // Issue 19's generation controls, with transformers' generate semantics
  // (its logits processors, in its order; docs/hf-reference.md "Generation
  // controls"). Their defaults change nothing.

  // Sampling instead of the arg-max: each step draws the next token from
  // softmax(processed logits / temperature) restricted by top_k and top_p
  // (sampling.h: HF's warpers in HF's order, after every rule above).
  // Greedy only (beam_size 1); beam sampling is not supported.
  bool do_sample = false;
  float temperature = 1.0f;  // > 0 and finite when do_sample
  // > 0: keep the top_k best tokens (exactly top_k: a tie at the k-th goes
  // to the lower id, so top_k = 1 decodes as greedy does); 0 = off.
  int top_k = 0;
  float top_p = 1.0f;  // (0, 1]: nucleus filter; 1 = off
  // The sequence's random stream: draw (sample index, step) depends only on
  // (seed, sample index, step), never on the batch, so equal seeds give
  // equal tokens (sampling.h, UniformDraw).
  uint64_t seed = 0;
  // > 0; 1 = off. HF's repetition penalty over the decoder prefix (start
  // token included): a prefix token's score s becomes s / p if s > 0, else
  // s * p. Greedy and sampling apply it to the logits, beam search to the
  // log-probs (as HF does).
  float repetition_penalty = 1.0f;
  // EOS is banned until this many tokens have been generated (HF's
  // min_new_tokens; counts generated tokens only). > 0 replaces min_length
  // (as HF's generate sets min_length = 1 + min_new_tokens); <=
  // max_new_tokens.
  int min_new_tokens = 0;
  // Never generated, at any step (HF's suppress_tokens), except where a
  // forced token (forced_bos_id, forced_eos_ids, target_prefix) is one: the
  // forced token wins. Ids in [0, vocab).
  std::vector<int32_t> suppress_token_ids;
  // [1, kMaxNumReturnSequences]. Beam search: the n best finished hypotheses
  // (n <= beam_size). Sampling: n independent draws (sample indices
  // 0..n-1, each a decoder row sharing the source's encoder output). Greedy
  // without sampling: 1.
  int num_return_sequences = 1;
  // [0, kMaxTopLogProbs]. > 0: each generated token also reports the best
  // this-many tokens of the model's log-softmax at its step (the raw model
  // log-probs, before any rule; SequenceResult::top_log_probs).
  int top_log_probs = 0;
};

// Decoder rows a sequence occupies (its KV caches, its share of a step):
// beam_size for beam search, num_return_sequences when sampling, else 1.
int DecoderRows(const DecodeOptions& options);

struct TokenLogProb {
  int32_t token = 0;
  float log_prob = 0.0f;
};

struct SequenceResult {
  std::vector<int32_t> output_ids;  // without the start token and without EOS
  // One per output id. Greedy and sampling: log-softmax of the model's
  // logits (a forced token has its model log-prob). Beam: the processed
  // log-prob the score sums, which is the same but 0 for a forced token
  // (HF's convention) and penalised by repetition_penalty.
  std::vector<float> log_probs;
  // Greedy and sampling: sum of log_probs. Beam: the length-penalised score
  // above.
  float score = 0.0f;
  FinishReason finish_reason = FinishReason::kNone;
  // kEos: the EOS id that ended the output (not in output_ids) and its
  // log-prob (counted in a beam score); -1 and 0 otherwise.
  int32_t eos_id = -1;
  float eos_log_prob = 0.0f;
  // DecodeOptions::top_log_probs > 0: one list per output id, best first.
  std::vector<std::vector<TokenLogProb>> top_log_probs;
  // num_return_sequences > 1: the other hypotheses (beam: 2nd best on, best
  // first, fewer than n - 1 only if fewer finished; sampling: draws 1..n-1
  // in order), each without alternatives. The result itself is the best
  // beam hypothesis, or draw 0.
  std::vector<SequenceResult> alternatives;
};

using SequenceId = uint64_t;

struct SequenceInput {
  SequenceId id = 0;  // chosen by the caller; unique among active sequences
  std::vector<int32_t> source;  // token ids, used as given
  DecodeOptions options;
};

// What one Step() did for one active sequence.
struct StepEvent {
  SequenceId id = 0;
  // Tokens decided in this step: greedy and sampling emit each token as it
  // is decoded (nothing for the step that produces EOS; with n samples, the
  // tokens of draw 0, the result: the others arrive as its alternatives);
  // beam search emits nothing until it finishes, then every token.
  std::vector<int32_t> new_ids;
  std::vector<float> new_log_probs;
  // DecodeOptions::top_log_probs > 0: one list per id of new_ids.
  std::vector<std::vector<TokenLogProb>> new_top_log_probs;
  bool finished = false;
  SequenceResult result;  // set when finished with an OK status
  // Not OK: this sequence alone failed in this step (e.g. RESOURCE_EXHAUSTED
  // when its caches could not grow) and has left the active set; `finished` is
  // true and `result` is empty. The other sequences are unaffected. A failure
  // that cannot be pinned on one sequence fails Step() as a whole instead.
  absl::Status status;
};

class Generator {
 public:
  // `model` must outlive the generator.
  static absl::StatusOr<std::unique_ptr<Generator>> Create(const Model* model);
  ~Generator();

  // Checks an input against the model without touching the active set: empty
  // source, source longer than max_positions, an id outside [0, vocab),
  // max_new_tokens < 1 or with the prefix beyond max_positions, beam_size
  // outside [1, kMaxBeamSize], a non-finite or negative length_penalty; an id
  // of the rules outside [0, vocab) (decoder_start_id, eos_ids,
  // forced_bos_id, forced_eos_ids, bad_words, target_prefix,
  // suppress_token_ids), an empty bad word, a negative min_length or
  // no_repeat_ngram_size, a target_prefix longer than max_new_tokens or
  // holding an EOS id; the generation controls: do_sample with beam_size > 1,
  // temperature not finite and > 0 when sampling, top_k < 0, top_p outside
  // (0, 1], repetition_penalty not finite and > 0, min_new_tokens outside
  // [0, max_new_tokens], num_return_sequences outside
  // [1, kMaxNumReturnSequences], above beam_size, or > 1 for greedy without
  // sampling, top_log_probs outside [0, kMaxTopLogProbs]. INVALID_ARGUMENT
  // naming the field and the limit.
  absl::Status Validate(const SequenceInput& input) const;

  // Validates, then encodes all inputs in one encoder batch and adds them to
  // the active set. On error nothing is added and the generator is as before.
  // An id already active is INVALID_ARGUMENT; memory that cannot be had
  // (encoder scratch, cross-attention keys and values, the first cache
  // blocks) is RESOURCE_EXHAUSTED ("out of memory encoding 3 sources of up
  // to 4096 tokens (...)").
  absl::Status Add(std::vector<SequenceInput> inputs);

  // Advances every active sequence by one token; returns one event per sequence
  // that was active (in no particular order). Finished sequences are removed
  // before it returns. With no active sequence it returns no events.
  //
  // Memory: each sequence's caches grow (geometrically, up to its
  // max_new_tokens) before the step's shared work. A sequence whose growth
  // fails gets an event with status RESOURCE_EXHAUSTED ("out of memory
  // growing the KV cache of sequence 7 to 65536 positions (...)"),
  // finished = true and no tokens, and leaves; the others step as they would
  // have without it. A failure in the shared work (activations, logits,
  // oneDNN's scratch) fails the whole call with RESOURCE_EXHAUSTED (INTERNAL
  // for other faults); then no sequence has advanced or left, and Cancel,
  // Add and Step work as before. No exception escapes.
  absl::StatusOr<std::vector<StepEvent>> Step();

  // Drops a sequence from the active set (cancelled, deadline passed). Unknown
  // ids are ignored. Its memory is freed now; the next Step() no longer
  // computes it.
  void Cancel(SequenceId id);

  int active_sequences() const;  // sources being decoded
  // Decoder rows: the live hypotheses of every sequence (at most
  // DecoderRows(options) each).
  int active_rows() const;
  bool empty() const { return active_sequences() == 0; }

 private:
  class Impl;
  explicit Generator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Decodes every source with the same options and returns results in input
// order: Add all, then Step until the set is empty. The first failed
// sequence's status (or Step's) is the call's.
absl::StatusOr<std::vector<SequenceResult>> GenerateBatch(
    const Model& model, const std::vector<std::vector<int32_t>>& sources,
    const DecodeOptions& options);

}  // namespace attnserve::engine
