#include "tests/server/fake_engine.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/batching_policy.h"

namespace attnserve::server::testing {

FakeEngine::FakeEngine(FakeEngineOptions options)
    : options_(std::move(options)) {
  info_.name = options_.name;
  info_.config_json = absl::StrCat(
      "{\"fake\": true, \"vocab_size\": ", options_.vocab_size, "}");
  info_.config.vocab_size = options_.vocab_size;
  info_.config.max_positions = options_.max_positions;
  info_.config.bos_id = 1;
  info_.config.eos_id = 2;
}

namespace {

// Hypothesis `k` of a request (0: the answer; beams rank by k, samples are
// draw k). A sampled one depends on the seed too, so tests can tell seeds
// apart.
engine::SequenceResult Hypothesis(const std::vector<int32_t>& source,
                                  const engine::DecodeOptions& options,
                                  int vocab_size, int k) {
  engine::SequenceResult result;
  const int n = static_cast<int>(source.size());
  const bool eos = options.max_new_tokens > n;
  const int length = eos ? n : options.max_new_tokens;
  const int64_t offset =
      options.beam_size - 1 + 5 * k +
      (options.do_sample ? static_cast<int64_t>(options.seed % 11) + 1 : 0);
  for (int i = 0; i < length; ++i) {
    // Ids 0..2 are special (pad, bos, eos): never produce them as ordinary
    // tokens.
    const int32_t token = static_cast<int32_t>(
        3 + (source[i % n] * 7 + i + offset) % (vocab_size - 3));
    const float log_prob =
        -0.125f * static_cast<float>(1 + token % 4) - 0.25f * k;
    result.output_ids.push_back(token);
    result.log_probs.push_back(log_prob);
    if (options.top_log_probs > 0) {
      // The chosen token first, then the next ids, each less likely.
      std::vector<engine::TokenLogProb> top;
      for (int j = 0; j < options.top_log_probs; ++j) {
        top.push_back(
            {static_cast<int32_t>(3 + (token - 3 + j) % (vocab_size - 3)),
             log_prob - 0.5f * j});
      }
      result.top_log_probs.push_back(std::move(top));
    }
  }
  for (float lp : result.log_probs) result.score += lp;
  if (options.beam_size > 1) {
    result.score /= std::pow(static_cast<float>(length + (eos ? 1 : 0)),
                             options.length_penalty);
  }
  result.finish_reason =
      eos ? engine::FinishReason::kEos : engine::FinishReason::kLength;
  return result;
}

}  // namespace

engine::SequenceResult FakeEngine::Expected(
    const std::vector<int32_t>& source, const engine::DecodeOptions& options,
    int vocab_size) {
  engine::SequenceResult result = Hypothesis(source, options, vocab_size, 0);
  const bool several = options.beam_size > 1 || options.do_sample;
  for (int k = 1; several && k < options.num_return_sequences; ++k) {
    result.alternatives.push_back(Hypothesis(source, options, vocab_size, k));
  }
  return result;
}

int64_t FakeEngine::EstimateBytes(int source_tokens,
                                  const engine::DecodeOptions& options) const {
  return options_.bytes_per_position * TokenCost(source_tokens, options);
}

absl::Status FakeEngine::Validate(const engine::SequenceInput& input) const {
  if (input.source.empty())
    return absl::InvalidArgumentError("source is empty");
  if (static_cast<int>(input.source.size()) > options_.max_positions) {
    return absl::InvalidArgumentError(
        absl::StrCat("source has ", input.source.size(),
                     " tokens; max_positions is ", options_.max_positions));
  }
  for (int32_t id : input.source) {
    if (id < 0 || id >= options_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("source id ", id, " is outside the vocab"));
    }
    if (id == options_.invalid_token) {
      return absl::InvalidArgumentError(
          absl::StrCat("source id ", id, " is rejected by the engine"));
    }
  }
  if (input.options.max_new_tokens < 1 ||
      input.options.max_new_tokens >= options_.max_positions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_new_tokens ", input.options.max_new_tokens, " is out of range"));
  }
  if (input.options.beam_size < 1 ||
      input.options.beam_size > engine::kMaxBeamSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("beam_size ", input.options.beam_size));
  }
  // The engine's rules for the hypotheses (engine/decode/generator.h).
  const int n = input.options.num_return_sequences;
  if (input.options.do_sample && input.options.beam_size > 1) {
    return absl::InvalidArgumentError("sampling with beam_size > 1");
  }
  if (n < 1 || (input.options.beam_size > 1 && n > input.options.beam_size) ||
      (input.options.beam_size == 1 && !input.options.do_sample && n > 1)) {
    return absl::InvalidArgumentError(absl::StrCat("num_return_sequences ", n));
  }
  return absl::OkStatus();
}

absl::Status FakeEngine::Add(std::vector<engine::SequenceInput> inputs) {
  for (const engine::SequenceInput& input : inputs) {
    if (absl::Status status = Validate(input); !status.ok()) return status;
  }
  absl::MutexLock lock(&mu_);
  if (!next_add_error_.ok())
    return std::exchange(next_add_error_, absl::OkStatus());
  if (options_.add_token_capacity >= 0) {
    int tokens = 0;
    for (const engine::SequenceInput& input : inputs) {
      tokens += static_cast<int>(input.source.size());
    }
    if (tokens > options_.add_token_capacity) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot encode ", tokens, " source tokens at once (",
                       options_.add_token_capacity, " fit)"));
    }
  }
  for (const engine::SequenceInput& input : inputs) {
    if (active_.contains(input.id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", input.id, " is active"));
    }
  }
  if (options_.clock != nullptr) options_.clock->Advance(options_.encode_cost);
  add_sizes_.push_back(static_cast<int>(inputs.size()));
  for (engine::SequenceInput& input : inputs) {
    added_sources_.push_back(input.source);
    Active active;
    active.expected = Expected(input.source, input.options);
    active.input = std::move(input);
    active_.emplace(active.input.id, std::move(active));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<engine::StepEvent>> FakeEngine::Step() {
  absl::MutexLock lock(&mu_);
  blocked_ = true;
  mu_.Await(absl::Condition(
      +[](int* allowed) { return *allowed != 0; }, &steps_allowed_));
  blocked_ = false;
  if (steps_allowed_ > 0) --steps_allowed_;
  if (!next_step_error_.ok())
    return std::exchange(next_step_error_, absl::OkStatus());
  if (active_.empty()) return std::vector<engine::StepEvent>();

  ++steps_;
  max_active_ = std::max(max_active_, static_cast<int>(active_.size()));
  if (options_.clock != nullptr) options_.clock->Advance(options_.step_cost);
  std::vector<engine::StepEvent> events;
  const int32_t failing = std::exchange(failing_token_, -1);
  for (auto it = active_.begin(); it != active_.end();) {
    Active& active = it->second;
    if (failing >= 0 &&
        std::find(active.input.source.begin(), active.input.source.end(),
                  failing) != active.input.source.end()) {
      engine::StepEvent event;
      event.id = it->first;
      event.finished = true;
      event.status = failing_status_;
      events.push_back(std::move(event));
      active_.erase(it++);
      continue;
    }
    const engine::SequenceResult& expected = active.expected;
    const int length = static_cast<int>(expected.output_ids.size());
    const bool greedy = active.input.options.beam_size == 1;
    engine::StepEvent event;
    event.id = it->first;
    if (active.emitted < length) {
      if (greedy) {
        event.new_ids.push_back(expected.output_ids[active.emitted]);
        event.new_log_probs.push_back(expected.log_probs[active.emitted]);
        if (!expected.top_log_probs.empty()) {
          event.new_top_log_probs.push_back(
              expected.top_log_probs[active.emitted]);
        }
      }
      ++active.emitted;
    } else {
      ++active.emitted;  // the EOS step
    }
    const bool eos = expected.finish_reason == engine::FinishReason::kEos;
    event.finished = active.emitted == (eos ? length + 1 : length);
    if (event.finished) {
      if (!greedy) {
        event.new_ids = expected.output_ids;
        event.new_log_probs = expected.log_probs;
        event.new_top_log_probs = expected.top_log_probs;
      }
      event.result = expected;
    }
    events.push_back(std::move(event));
    if (events.back().finished) {
      active_.erase(it++);
    } else {
      ++it;
    }
  }
  return events;
}

void FakeEngine::Cancel(engine::SequenceId id) {
  absl::MutexLock lock(&mu_);
  if (active_.erase(id) > 0) cancelled_.push_back(id);
}

int FakeEngine::active_sequences() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(active_.size());
}

void FakeEngine::HoldSteps() {
  absl::MutexLock lock(&mu_);
  steps_allowed_ = 0;
}

void FakeEngine::AllowSteps(int n) {
  absl::MutexLock lock(&mu_);
  if (steps_allowed_ >= 0) steps_allowed_ += n;
}

void FakeEngine::ReleaseSteps() {
  absl::MutexLock lock(&mu_);
  steps_allowed_ = -1;
}

void FakeEngine::AwaitBlockedInStep() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&blocked_));
}

void FakeEngine::FailNextAdd(absl::Status status) {
  absl::MutexLock lock(&mu_);
  next_add_error_ = std::move(status);
}

void FakeEngine::FailSequencesInNextStep(int32_t token, absl::Status status) {
  absl::MutexLock lock(&mu_);
  failing_token_ = token;
  failing_status_ = std::move(status);
}

void FakeEngine::FailNextStep(absl::Status status) {
  absl::MutexLock lock(&mu_);
  next_step_error_ = std::move(status);
}

std::vector<std::vector<int32_t>> FakeEngine::added_sources() const {
  absl::MutexLock lock(&mu_);
  return added_sources_;
}

std::vector<int> FakeEngine::add_sizes() const {
  absl::MutexLock lock(&mu_);
  return add_sizes_;
}

std::vector<engine::SequenceId> FakeEngine::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

int FakeEngine::max_active() const {
  absl::MutexLock lock(&mu_);
  return max_active_;
}

int FakeEngine::steps() const {
  absl::MutexLock lock(&mu_);
  return steps_;
}

}  // namespace attnserve::server::testing
