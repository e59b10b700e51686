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
#include "engine/model.h"

namespace attnserve::engine {

inline constexpr int kMaxBeamSize = 8;

enum class FinishReason { kNone, kEos, kLength };

struct DecodeOptions {
  int max_new_tokens = 16;  // >= 1; the prefix (start token + tokens) also must
                            // fit max_positions
  int beam_size = 1;        // 1 = greedy; 1..kMaxBeamSize
  // Beam search ranks hypotheses by sum(log p) / length^length_penalty, where
  // the sum and the length include the EOS token when the hypothesis ended with
  // it.
  float length_penalty = 1.0f;
  // Benchmarks only: never stop at EOS, so every sequence produces
  // max_new_tokens tokens (EOS may then appear among them).
  bool ignore_eos = false;
};

struct SequenceResult {
  std::vector<int32_t> output_ids;  // without the start token and without EOS
  std::vector<float> log_probs;  // log-softmax of each output id, same length
  // Greedy: sum of log_probs. Beam: the length-penalised score above.
  float score = 0.0f;
  FinishReason finish_reason = FinishReason::kNone;
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
  // Tokens decided in this step: greedy emits each token as it is decoded
  // (nothing for the step that produces EOS); beam search emits nothing until
  // it finishes, then every token.
  std::vector<int32_t> new_ids;
  std::vector<float> new_log_probs;
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
  // outside [1, kMaxBeamSize], a non-finite or negative length_penalty.
  // INVALID_ARGUMENT naming the field and the limit.
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
  int active_rows() const;       // decoder rows: the sum of their beam sizes
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
