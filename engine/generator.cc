#include "engine/generator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "engine/batching.h"
#include "engine/decoding.h"
#include "engine/ops/log_sum_exp.h"
#include "engine/status_macros.h"
#include "engine/transformer.h"

namespace attnserve::engine {

// Padded rows per encoder call when admitting sources: large enough for
// efficient matrix products, small enough that the encoder's activations stay a
// few MB.
constexpr int64_t kEncoderChunkRows = 512;

// One decoder row: a greedy sequence or one live beam hypothesis.
struct Hypothesis {
  Tensor
      cache;  // self-attention KV cache, Transformer::self_cache_size(capacity)
  int32_t token = 0;  // input token of the next step
  std::vector<int32_t> ids;
  std::vector<float> log_probs;
  double cum_log_prob = 0;
};

struct ActiveSequence {
  SequenceId id = 0;
  DecodeOptions options;
  Tensor cross_kv;  // [src_len, Transformer::cross_kv_width()]
  int32_t src_len = 0;
  int32_t step =
      0;  // tokens generated so far = position of the next input token
  std::vector<Hypothesis> live;
  std::vector<FinishedHypothesis> finished;  // beam search only
};

class Generator::Impl {
 public:
  explicit Impl(const Model* model)
      : model_(model), net_(model->network()), config_(model->config()) {}

  absl::Status Validate(const SequenceInput& in) const;
  absl::Status Add(std::vector<SequenceInput> inputs);
  absl::StatusOr<std::vector<StepEvent>> Step();
  void Cancel(SequenceId id) {
    active_.erase(std::remove_if(active_.begin(), active_.end(),
                                 [id](const auto& s) { return s->id == id; }),
                  active_.end());
  }
  int active_sequences() const { return static_cast<int>(active_.size()); }
  int active_rows() const {
    int rows = 0;
    for (const auto& s : active_) rows += static_cast<int>(s->live.size());
    return rows;
  }

 private:
  // Runs the output projection slice by slice for the n rows of the last
  // DecodeStep and keeps, per row, the best tokens its sequence's decision
  // needs (one for greedy, 2 * beam for beam search) with their log-probs.
  absl::StatusOr<std::vector<std::vector<TokenScore>>> BestTokens(int64_t n);
  // Applies one step's best tokens (rows [first, first + live.size()) of
  // BestTokens) to a sequence; fills `event` and returns true when the
  // sequence has finished.
  bool AdvanceGreedy(ActiveSequence& seq, const std::vector<TokenScore>& best,
                     StepEvent* event);
  bool AdvanceBeam(ActiveSequence& seq,
                   absl::Span<const std::vector<TokenScore>> best,
                   StepEvent* event);
  // Rebuilds seq.live from the chosen children, moving a parent's cache to its
  // first child and copying it for any further child.
  void ReorderBeams(ActiveSequence& seq,
                    const std::vector<BeamCandidate>& children);

  const Model* model_;
  const Transformer& net_;
  const ModelConfig& config_;
  TransformerScratch scratch_;  // decode steps only; small (rows = active rows)
  Tensor logits_;               // [rows, one vocabulary slice]
  std::vector<float> slice_log_sum_exps_;  // [slices, rows]
  std::vector<std::unique_ptr<ActiveSequence>> active_;
};

absl::Status Generator::Impl::Validate(const SequenceInput& in) const {
  if (in.source.empty()) return absl::InvalidArgumentError("source is empty");
  if (static_cast<int64_t>(in.source.size()) > config_.max_positions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "source has ", in.source.size(), " tokens; the model accepts at most ",
        config_.max_positions, " (max_positions)"));
  }
  for (size_t i = 0; i < in.source.size(); ++i) {
    if (in.source[i] < 0 || in.source[i] >= config_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("source id ", in.source[i], " at index ", i,
                       " is outside [0, ", config_.vocab_size, ")"));
    }
  }
  const DecodeOptions& o = in.options;
  if (o.max_new_tokens < 1 || o.max_new_tokens > config_.max_positions) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens ", o.max_new_tokens, " is outside [1, ",
                     config_.max_positions, "] (max_positions)"));
  }
  if (o.beam_size < 1 || o.beam_size > kMaxBeamSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "beam_size ", o.beam_size, " is outside [1, ", kMaxBeamSize, "]"));
  }
  if (!std::isfinite(o.length_penalty) || o.length_penalty < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "length_penalty ", o.length_penalty, " must be finite and >= 0"));
  }
  return absl::OkStatus();
}

absl::Status Generator::Impl::Add(std::vector<SequenceInput> inputs) {
  if (inputs.empty()) return absl::OkStatus();
  absl::flat_hash_set<SequenceId> ids;
  for (const auto& s : active_) ids.insert(s->id);
  for (const SequenceInput& in : inputs) {
    RETURN_IF_ERROR(Validate(in));
    if (!ids.insert(in.id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence id ", in.id, " is already active"));
    }
  }

  // Encode in length order and in chunks of bounded padded size: little
  // padding, and the encoder's buffers (which live only for this call) stay
  // small however many sources come. The active set keeps just each source's
  // cross-attention K/V.
  const size_t count = inputs.size();
  std::vector<int32_t> lengths(count);
  for (size_t i = 0; i < count; ++i)
    lengths[i] = static_cast<int32_t>(inputs[i].source.size());
  const std::vector<size_t> order = OrderByLength(lengths);
  std::vector<int32_t> sorted_lengths(count);
  for (size_t i = 0; i < count; ++i) sorted_lengths[i] = lengths[order[i]];

  const OpContext& ctx = model_->context();
  const int64_t d = config_.d_model;
  const int64_t width = net_.cross_kv_width();
  std::vector<std::unique_ptr<ActiveSequence>> added(count);
  TransformerScratch encoder_scratch;
  for (auto [begin, end] :
       PlanEncoderChunks(sorted_lengths, kEncoderChunkRows)) {
    const int64_t batch = static_cast<int64_t>(end - begin);
    const int64_t src_len = sorted_lengths[end - 1];
    std::vector<int32_t> tokens(batch * src_len, config_.pad_id);
    for (int64_t b = 0; b < batch; ++b) {
      const std::vector<int32_t>& source = inputs[order[begin + b]].source;
      std::copy(source.begin(), source.end(), tokens.begin() + b * src_len);
    }
    const absl::Span<const int32_t> chunk_lengths(sorted_lengths.data() + begin,
                                                  batch);
    RETURN_IF_ERROR(net_.Encode(ctx, tokens, batch, src_len, chunk_lengths,
                                &encoder_scratch));
    for (int64_t b = 0; b < batch; ++b) {
      const size_t i = order[begin + b];
      auto seq = std::make_unique<ActiveSequence>();
      seq->id = inputs[i].id;
      seq->options = inputs[i].options;
      seq->src_len = lengths[i];
      // Straight into the sequence's own tensor (a source's rows are
      // contiguous), so no second copy of the chunk's K/V ever exists.
      seq->cross_kv.Reset({lengths[i], width});
      RETURN_IF_ERROR(net_.CrossKeyValues(
          ctx, encoder_scratch.memory.data() + b * src_len * d, lengths[i],
          seq->cross_kv.data()));
      added[i] = std::move(seq);
    }
  }
  encoder_scratch = TransformerScratch();
  for (auto& seq : added) {
    Hypothesis start;
    start.cache.Reset({net_.self_cache_size(seq->options.max_new_tokens)});
    start.token = config_.decoder_start_id;
    seq->live.push_back(std::move(start));
    active_.push_back(std::move(seq));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StepEvent>> Generator::Impl::Step() {
  std::vector<StepEvent> events;
  if (active_.empty()) return events;
  std::vector<DecoderRow> rows;
  for (const auto& seq : active_) {
    for (Hypothesis& h : seq->live) {
      DecoderRow row;
      row.token = h.token;
      row.position = seq->step;
      row.self_cache = h.cache.data();
      row.cache_capacity = seq->options.max_new_tokens;
      row.cross_kv = seq->cross_kv.data();
      row.src_len = seq->src_len;
      rows.push_back(row);
    }
  }
  const int64_t n = static_cast<int64_t>(rows.size());
  RETURN_IF_ERROR(net_.DecodeStep(model_->context(), rows, &scratch_));
  ASSIGN_OR_RETURN(std::vector<std::vector<TokenScore>> best, BestTokens(n));

  int64_t first_row = 0;
  std::vector<std::unique_ptr<ActiveSequence>> still_active;
  for (auto& seq : active_) {
    StepEvent event;
    event.id = seq->id;
    const absl::Span<const std::vector<TokenScore>> seq_best(
        best.data() + first_row, seq->live.size());
    first_row += static_cast<int64_t>(seq->live.size());
    const bool done = seq->options.beam_size == 1
                          ? AdvanceGreedy(*seq, seq_best[0], &event)
                          : AdvanceBeam(*seq, seq_best, &event);
    event.finished = done;
    events.push_back(std::move(event));
    if (!done) still_active.push_back(std::move(seq));
  }
  active_ = std::move(still_active);
  return events;
}

absl::StatusOr<std::vector<std::vector<TokenScore>>>
Generator::Impl::BestTokens(int64_t n) {
  std::vector<TopTokens> tops;
  tops.reserve(n);
  for (const auto& seq : active_) {
    const int beam = seq->options.beam_size;
    for (size_t i = 0; i < seq->live.size(); ++i)
      tops.emplace_back(beam == 1 ? 1 : 2 * beam);
  }
  const OpContext& ctx = model_->context();
  const int slices = net_.vocab_slices();
  slice_log_sum_exps_.resize(static_cast<size_t>(slices) * n);
  for (int slice = 0; slice < slices; ++slice) {
    const int64_t first = net_.vocab_slice_begin(slice);
    const int64_t width = net_.vocab_slice_begin(slice + 1) - first;
    logits_.Reset({n, width});
    RETURN_IF_ERROR(
        net_.ProjectVocabSlice(ctx, scratch_, n, slice, logits_.data()));
    RETURN_IF_ERROR(LogSumExp(ctx, logits_.data(), n, width,
                              slice_log_sum_exps_.data() + slice * n));
    for (int64_t r = 0; r < n; ++r) {
      tops[r].Add(logits_.data() + r * width, static_cast<int32_t>(first),
                  width);
    }
  }
  // Log-probs of the kept tokens: logit - the row's log-sum-exp.
  std::vector<std::vector<TokenScore>> best(n);
  std::vector<float> row_lse(slices);
  for (int64_t r = 0; r < n; ++r) {
    for (int slice = 0; slice < slices; ++slice)
      row_lse[slice] = slice_log_sum_exps_[slice * n + r];
    const float lse = CombineLogSumExps(row_lse);
    best[r] = tops[r].best();
    for (TokenScore& t : best[r]) t.score -= lse;
  }
  return best;
}

bool Generator::Impl::AdvanceGreedy(ActiveSequence& seq,
                                    const std::vector<TokenScore>& best,
                                    StepEvent* event) {
  Hypothesis& h = seq.live[0];
  const int32_t token = best[0].token;
  const float log_prob = best[0].score;
  ++seq.step;
  SequenceResult& result = event->result;
  if (token == config_.eos_id && !seq.options.ignore_eos) {
    result.finish_reason = FinishReason::kEos;
  } else {
    h.ids.push_back(token);
    h.log_probs.push_back(log_prob);
    h.cum_log_prob += log_prob;
    h.token = token;
    event->new_ids.push_back(token);
    event->new_log_probs.push_back(log_prob);
    if (seq.step < seq.options.max_new_tokens) return false;
    result.finish_reason = FinishReason::kLength;
  }
  result.output_ids = std::move(h.ids);
  result.log_probs = std::move(h.log_probs);
  result.score = static_cast<float>(h.cum_log_prob);
  return true;
}

bool Generator::Impl::AdvanceBeam(
    ActiveSequence& seq, absl::Span<const std::vector<TokenScore>> best,
    StepEvent* event) {
  const int beam = seq.options.beam_size;
  std::vector<double> cum(seq.live.size());
  for (size_t i = 0; i < seq.live.size(); ++i)
    cum[i] = seq.live[i].cum_log_prob;
  const std::vector<BeamCandidate> candidates =
      TopBeamCandidates(best, cum, 2 * beam);

  std::vector<BeamCandidate> children;
  for (const BeamCandidate& c : candidates) {
    const Hypothesis& parent = seq.live[c.hypothesis];
    if (c.token == config_.eos_id && !seq.options.ignore_eos) {
      if (static_cast<int>(seq.finished.size()) >= beam) continue;
      FinishedHypothesis f;
      f.ids = parent.ids;
      f.log_probs = parent.log_probs;
      f.score = LengthPenalisedScore(c.cum_log_prob, parent.ids.size() + 1,
                                     seq.options.length_penalty);
      f.finish_reason = FinishReason::kEos;
      seq.finished.push_back(std::move(f));
    } else if (static_cast<int>(children.size()) < beam) {
      children.push_back(c);
    }
  }
  ++seq.step;
  ReorderBeams(seq, children);

  const bool done = static_cast<int>(seq.finished.size()) >= beam ||
                    seq.live.empty() || seq.step >= seq.options.max_new_tokens;
  if (!done) return false;
  if (static_cast<int>(seq.finished.size()) < beam) {
    for (Hypothesis& h : seq.live) {
      FinishedHypothesis f;
      f.score = LengthPenalisedScore(h.cum_log_prob, h.ids.size(),
                                     seq.options.length_penalty);
      f.ids = std::move(h.ids);
      f.log_probs = std::move(h.log_probs);
      f.finish_reason = FinishReason::kLength;
      seq.finished.push_back(std::move(f));
    }
  }
  FinishedHypothesis& winner = seq.finished[BestFinished(seq.finished)];
  SequenceResult& result = event->result;
  result.output_ids = std::move(winner.ids);
  result.log_probs = std::move(winner.log_probs);
  result.score = static_cast<float>(winner.score);
  result.finish_reason = winner.finish_reason;
  event->new_ids = result.output_ids;
  event->new_log_probs = result.log_probs;
  return true;
}

void Generator::Impl::ReorderBeams(ActiveSequence& seq,
                                   const std::vector<BeamCandidate>& children) {
  const int64_t d = config_.d_model;
  const int64_t capacity = seq.options.max_new_tokens;
  // Positions [0, step) of every layer's keys and values are filled.
  const int64_t filled = static_cast<int64_t>(seq.step) * d;
  std::vector<Hypothesis> next(children.size());
  std::vector<int> owner(seq.live.size(),
                         -1);  // child that took the parent's cache
  for (size_t c = 0; c < children.size(); ++c) {
    const int p = children[c].hypothesis;
    Hypothesis& parent = seq.live[p];
    Hypothesis& child = next[c];
    if (owner[p] < 0) {
      owner[p] = static_cast<int>(c);
      child.cache = std::move(parent.cache);
    } else {
      const Tensor& source = next[owner[p]].cache;
      child.cache.Reset(source.shape());
      for (int64_t block = 0; block < 2 * config_.decoder_layers; ++block) {
        std::memcpy(child.cache.data() + block * capacity * d,
                    source.data() + block * capacity * d,
                    filled * sizeof(float));
      }
    }
    child.ids = parent.ids;
    child.ids.push_back(children[c].token);
    child.log_probs = parent.log_probs;
    child.log_probs.push_back(children[c].log_prob);
    child.cum_log_prob = children[c].cum_log_prob;
    child.token = children[c].token;
  }
  seq.live = std::move(next);
}

Generator::Generator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Generator::~Generator() = default;

absl::StatusOr<std::unique_ptr<Generator>> Generator::Create(
    const Model* model) {
  if (model == nullptr)
    return absl::InvalidArgumentError("Generator needs a model");
  return std::unique_ptr<Generator>(
      new Generator(std::make_unique<Impl>(model)));
}

absl::Status Generator::Validate(const SequenceInput& input) const {
  return impl_->Validate(input);
}
absl::Status Generator::Add(std::vector<SequenceInput> inputs) {
  return impl_->Add(std::move(inputs));
}
absl::StatusOr<std::vector<StepEvent>> Generator::Step() {
  return impl_->Step();
}
void Generator::Cancel(SequenceId id) { impl_->Cancel(id); }
int Generator::active_sequences() const { return impl_->active_sequences(); }
int Generator::active_rows() const { return impl_->active_rows(); }

absl::StatusOr<std::vector<SequenceResult>> GenerateBatch(
    const Model& model, const std::vector<std::vector<int32_t>>& sources,
    const DecodeOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<Generator> generator,
                   Generator::Create(&model));
  std::vector<SequenceInput> inputs(sources.size());
  for (size_t i = 0; i < sources.size(); ++i) {
    inputs[i].id = i;
    inputs[i].source = sources[i];
    inputs[i].options = options;
  }
  RETURN_IF_ERROR(generator->Add(std::move(inputs)));
  std::vector<SequenceResult> results(sources.size());
  while (!generator->empty()) {
    ASSIGN_OR_RETURN(std::vector<StepEvent> events, generator->Step());
    for (StepEvent& e : events) {
      if (e.finished) results[e.id] = std::move(e.result);
    }
  }
  return results;
}

}  // namespace attnserve::engine
