#pragma once
// A deterministic stand-in for the engine, so the batcher and the service can
// be tested without a model, on simulated time, with the engine held at a step
// when a test needs a batch or a queue to stay put. Never sleeps.
//
// What it decodes: a source of n tokens yields n tokens and then EOS when
// max_new_tokens > n, else max_new_tokens tokens (LENGTH). Token i depends only
// on the source, i, the beam size and (sampling) the seed, so a sequence
// decodes the same whatever else is in the batch. Greedy and sampling emit a
// token per step (and nothing on the EOS step), beams emit everything when
// they finish, as engine::Generator does. With num_return_sequences > 1 (beam
// or sampling) the result has that many hypotheses (alternatives: hypothesis
// k shifts the tokens by 5k and each log-prob by -k/4); with top_log_probs,
// each token's list starts with the token itself, then the next ids.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/batch_engine.h"
#include "tests/server/simulated_clock.h"

namespace attnserve::server::testing {

struct FakeEngineOptions {
  std::string name = "fake-model";
  int vocab_size = 100;
  int max_positions = 64;
  // When set, Add advances it by encode_cost and Step by step_cost (simulated
  // compute).
  SimulatedClock* clock = nullptr;
  absl::Duration encode_cost = absl::ZeroDuration();
  absl::Duration step_cost = absl::ZeroDuration();
  // Validate rejects sources that contain this id (an engine-only check); -1:
  // none.
  int invalid_token = -1;
  // EstimateBytes: this many bytes per position the request can hold
  // (TokenCost); 0 estimates 0.
  int64_t bytes_per_position = 0;
  // Add fails with RESOURCE_EXHAUSTED (adding nothing) when the group's summed
  // source tokens exceed this; -1: never.
  int add_token_capacity = -1;
};

class FakeEngine final : public BatchEngine {
 public:
  explicit FakeEngine(FakeEngineOptions options = {});

  // What the fake decodes for `source` alone.
  static engine::SequenceResult Expected(const std::vector<int32_t>& source,
                                         const engine::DecodeOptions& options,
                                         int vocab_size);
  engine::SequenceResult Expected(const std::vector<int32_t>& source,
                                  const engine::DecodeOptions& options) const {
    return Expected(source, options, options_.vocab_size);
  }

  const ModelInfo& model_info() const override { return info_; }
  int64_t EstimateBytes(int source_tokens,
                        const engine::DecodeOptions& options) const override;
  absl::Status Validate(const engine::SequenceInput& input) const override;
  absl::Status Add(std::vector<engine::SequenceInput> inputs) override;
  absl::StatusOr<std::vector<engine::StepEvent>> Step() override;
  void Cancel(engine::SequenceId id) override;
  int active_sequences() const override;

  // Controls; thread-safe. Steps run freely until HoldSteps(); then each Step()
  // waits (in real time) until AllowSteps() grants it or ReleaseSteps() lets
  // all run again.
  void HoldSteps();
  void AllowSteps(int n);
  void ReleaseSteps();
  // Waits until the inference thread is blocked at a held step.
  void AwaitBlockedInStep();
  void FailNextAdd(absl::Status status);
  void FailNextStep(absl::Status status);
  // In the next step, every active sequence whose source contains `token`
  // fails alone with `status` (StepEvent::status) and leaves the active set.
  void FailSequencesInNextStep(int32_t token, absl::Status status);

  // Records; thread-safe.
  std::vector<std::vector<int32_t>> added_sources()
      const;                           // every source ever added
  std::vector<int> add_sizes() const;  // sources per Add call
  std::vector<engine::SequenceId> cancelled()
      const;               // Cancel calls for active ids
  int max_active() const;  // largest batch stepped
  int steps() const;

 private:
  struct Active {
    engine::SequenceInput input;
    engine::SequenceResult expected;
    int emitted = 0;  // tokens produced so far
  };

  const FakeEngineOptions options_;
  ModelInfo info_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<engine::SequenceId, Active> active_ ABSL_GUARDED_BY(mu_);
  int steps_allowed_ ABSL_GUARDED_BY(mu_) = -1;  // -1: unlimited
  bool blocked_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status next_add_error_ ABSL_GUARDED_BY(mu_);
  absl::Status next_step_error_ ABSL_GUARDED_BY(mu_);
  int32_t failing_token_ ABSL_GUARDED_BY(mu_) = -1;
  absl::Status failing_status_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<int32_t>> added_sources_ ABSL_GUARDED_BY(mu_);
  std::vector<int> add_sizes_ ABSL_GUARDED_BY(mu_);
  std::vector<engine::SequenceId> cancelled_ ABSL_GUARDED_BY(mu_);
  int max_active_ ABSL_GUARDED_BY(mu_) = 0;
  int steps_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace attnserve::server::testing
