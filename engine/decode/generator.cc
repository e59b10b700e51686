#include "engine/decode/generator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <string>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "engine/decode/batching.h"
#include "engine/decode/decoding.h"
#include "engine/decode/logits_rules.h"
#include "engine/decode/sampling.h"
#include "engine/network/transformer.h"
#include "engine/no_throw.h"
#include "engine/ops/log_sum_exp.h"
#include "engine/status_macros.h"

namespace attnserve::engine {

namespace {

// `status` with `what` in front of its message, same code: "out of memory
// <what> (<message>)" for RESOURCE_EXHAUSTED, else "<what>: <message>".
absl::Status Annotate(const absl::Status& status, absl::string_view what) {
  if (absl::IsResourceExhausted(status)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory ", what, " (", status.message(), ")"));
  }
  return absl::Status(status.code(),
                      absl::StrCat(what, ": ", status.message()));
}

// Padded rows per encoder call when admitting sources: large enough for
// efficient matrix products, small enough that the encoder's activations stay a
// few MB.
constexpr int64_t kEncoderChunkRows = 512;

// Self-attention caches start with room for this many positions and double
// as the sequence advances (capped at max_new_tokens), so a request's memory
// follows what it generates, not what it may generate: a sequence allowed a
// million tokens that stops at EOS after ten holds a cache of 16 positions.
// Copying on growth costs each position about one extra copy in all.
constexpr int64_t kInitialCachePositions = 16;

// "12 MiB", for error messages.
std::string MiB(int64_t bytes) {
  return absl::StrCat((bytes + (1 << 20) - 1) >> 20, " MiB");
}

}  // namespace

// One decoder row: a greedy sequence or one live beam hypothesis.
struct Hypothesis {
  // Self-attention KV cache, Transformer::self_cache_size(capacity).
  Tensor cache;
  // Positions the cache has room for: its sequence's cache_capacity, except
  // while a growth that failed halfway waits to be retried.
  int64_t capacity = 0;
  int32_t token = 0;  // input token of the next step
  BeamPath path;      // tokens so far (greedy: with their model log-probs)
  int sample = 0;     // sampling: the draw's index (0..n-1); else 0
};

// A candidate next token of one row.
struct RowToken {
  int32_t token = 0;
  // After the rules (and the warpers when sampled): a processed logit for
  // greedy and sampling, a processed log-prob for beam search.
  float processed = 0;
  float log_prob = 0;  // the model's: log-softmax of the unprocessed logits
};

// One row's next tokens.
struct RowBest {
  // Best first by processed score: the forced tokens in id order when
  // `forced`, the drawn token alone when sampled, else the best unbanned
  // tokens.
  std::vector<RowToken> tokens;
  bool forced = false;  // processed score 0 for each of `tokens`
  // DecodeOptions::top_log_probs > 0: the model's best tokens, best first.
  std::vector<TokenLogProb> top;
};

struct ActiveSequence {
  SequenceId id = 0;
  DecodeOptions options;
  LogitsRules rules;
  BeamSettings beam;  // beam search only
  int32_t start_token = 0;
  Tensor cross_kv;  // [src_len, Transformer::cross_kv_width()]
  int32_t src_len = 0;
  int32_t step =
      0;  // tokens generated so far = position of the next input token
  // Positions every cache of this sequence has room for (spares always, live
  // hypotheses after each PrepareCaches that succeeded); grows geometrically
  // up to options.max_new_tokens.
  int64_t cache_capacity = 0;
  std::vector<Hypothesis> live;
  // Beam search: caches of no live hypothesis, reused when a parent has more
  // children than one (ReorderBeams), so a step allocates nothing.
  std::vector<Tensor> spare_caches;
  std::vector<FinishedHypothesis> finished;  // beam search only
  // Greedy and sampling: one per sample (1 for greedy), filled as each
  // finishes.
  std::vector<SequenceResult> results;
};

// What BestTokens keeps per row while the vocabulary streams past.
struct RowWork {
  RowWork(int keep, int top_log_probs)
      : keep(keep), top(keep), model_top(top_log_probs) {}
  int keep;
  TopTokens top;        // the best after the rules (unsampled rows)
  TopTokens model_top;  // the best before them (top_log_probs)
  RowRule rule;
  // Raw logits of rule.penalised, filled as their slices pass.
  std::vector<float> penalised_raw;
  const ActiveSequence* seq = nullptr;
  const Hypothesis* hypothesis = nullptr;
  bool beam = false;
  int64_t sample_row = -1;  // sampled: its row of BestTokens' full logits
};

class Generator::Impl {
 public:
  explicit Impl(const Model* model)
      : model_(model), net_(model->network()), config_(model->config()) {}

  absl::Status Validate(const SequenceInput& in) const;
  absl::Status ValidateRules(const DecodeOptions& o) const;
  absl::Status ValidateControls(const DecodeOptions& o) const;
  absl::Status Add(std::vector<SequenceInput> inputs);
  absl::Status AddBody(std::vector<SequenceInput> inputs);
  absl::StatusOr<std::vector<StepEvent>> Step();
  // Step's body; may throw std::bad_alloc where no sequence is at fault.
  absl::StatusOr<std::vector<StepEvent>> StepBody();
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
  // needs after its rules (RuleForRow: banned tokens skipped, forced ones
  // alone): one for greedy, K for beam search, with their model log-probs.
  absl::StatusOr<std::vector<RowBest>> BestTokens(
      absl::Span<ActiveSequence* const> stepping, int64_t n);
  // Before the step's shared work: gives every cache of `seq` room for the
  // position this step writes, and beam search a cache for each hypothesis
  // it may have after the step. RESOURCE_EXHAUSTED naming the sequence when
  // that memory cannot be had (the sequence is then unchanged but for
  // capacity already grown).
  absl::Status PrepareCaches(ActiveSequence& seq);
  // A cache tensor with room for `capacity` positions.
  absl::Status NewCache(int64_t capacity, Tensor* cache) const;
  // Copies positions [0, positions) of every layer's keys and values from a
  // cache with room for from_capacity positions to one with to_capacity.
  void CopyCache(const Tensor& from, int64_t from_capacity, int64_t positions,
                 int64_t to_capacity, Tensor* to) const;
  // Applies one step's best tokens (rows [first, first + live.size()) of
  // BestTokens) to a sequence; fills `event` and returns true when the
  // sequence has finished.
  // Greedy and sampling: each live row takes its token; rows that end leave
  // seq.live (their result kept in seq.results); the sequence finishes with
  // its last row.
  bool AdvanceRows(ActiveSequence& seq, absl::Span<const RowBest> best,
                   StepEvent* event);
  bool AdvanceBeam(ActiveSequence& seq, absl::Span<const RowBest> best,
                   StepEvent* event);
  // The draw of a sampled row from its whole row of raw `logits` ([vocab])
  // and their log-sum-exp: the rules, the warpers, then DrawToken with the
  // row's (seed, sample, step).
  RowToken Sample(const RowWork& w, const float* logits, int64_t vocab,
                  float lse);
  // Rebuilds seq.live from the chosen children, moving a parent's cache to its
  // first child and copying it into a spare cache (or one of a parent left
  // without children) for any further child. `tops`: empty, or each live
  // row's top log-probs of this step.
  void ReorderBeams(ActiveSequence& seq,
                    const std::vector<BeamCandidate>& children,
                    absl::Span<const std::vector<TokenLogProb>> tops);

  const Model* model_;
  const Transformer& net_;
  const ModelConfig& config_;
  TransformerScratch scratch_;  // decode steps only; small (rows = active rows)
  Tensor logits_;               // [rows, one vocabulary slice]
  std::vector<float> slice_log_sum_exps_;  // [slices, rows]
  std::vector<int32_t> prefix_;            // RuleForRow's argument, reused
  Tensor sample_logits_;     // [sampled rows, vocab]; sampled steps only
  std::vector<float> warp_;  // Sample's row, reused
  std::vector<int32_t> warp_order_;  // WarpScores' scratch, reused
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
  return ValidateRules(o);
}

absl::Status Generator::Impl::ValidateRules(const DecodeOptions& o) const {
  const int32_t vocab = config_.vocab_size;
  auto outside = [&](const std::string& what, int32_t id) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " = ", id, " is outside [0, ", vocab,
                     ") (the model's vocab_size)"));
  };
  auto in_vocab = [&](int32_t id) { return id >= 0 && id < vocab; };
  if (o.decoder_start_id != -1 && !in_vocab(o.decoder_start_id))
    return outside("decoder_start_id", o.decoder_start_id);
  if (o.forced_bos_id != -1 && !in_vocab(o.forced_bos_id))
    return outside("forced_bos_id", o.forced_bos_id);
  for (size_t i = 0; i < o.eos_ids.size(); ++i) {
    if (!in_vocab(o.eos_ids[i]))
      return outside(absl::StrCat("eos_ids[", i, "]"), o.eos_ids[i]);
  }
  for (size_t i = 0; i < o.forced_eos_ids.size(); ++i) {
    if (!in_vocab(o.forced_eos_ids[i]))
      return outside(absl::StrCat("forced_eos_ids[", i, "]"),
                     o.forced_eos_ids[i]);
  }
  for (size_t w = 0; w < o.bad_words.size(); ++w) {
    if (o.bad_words[w].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad_words[", w, "] is empty"));
    }
    for (size_t i = 0; i < o.bad_words[w].size(); ++i) {
      if (!in_vocab(o.bad_words[w][i]))
        return outside(absl::StrCat("bad_words[", w, "][", i, "]"),
                       o.bad_words[w][i]);
    }
  }
  if (o.min_length < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_length ", o.min_length, " must be >= 0"));
  }
  if (o.no_repeat_ngram_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no_repeat_ngram_size ", o.no_repeat_ngram_size, " must be >= 0"));
  }
  switch (o.early_stopping) {
    case EarlyStopping::kHeuristic:
    case EarlyStopping::kTrue:
    case EarlyStopping::kNever:
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("early_stopping has no meaning for the value ",
                       static_cast<int>(o.early_stopping)));
  }
  if (o.target_prefix.size() > static_cast<size_t>(o.max_new_tokens)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target_prefix has ", o.target_prefix.size(),
        " tokens; at most max_new_tokens = ", o.max_new_tokens, " fit"));
  }
  const std::vector<int32_t> eos =
      o.eos_ids.empty() ? std::vector<int32_t>{config_.eos_id} : o.eos_ids;
  for (size_t i = 0; i < o.target_prefix.size(); ++i) {
    const int32_t id = o.target_prefix[i];
    if (!in_vocab(id))
      return outside(absl::StrCat("target_prefix[", i, "]"), id);
    if (!o.ignore_eos && std::find(eos.begin(), eos.end(), id) != eos.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "target_prefix[", i, "] = ", id,
          " is an EOS id: the output would end inside its prefix"));
    }
  }
  for (size_t i = 0; i < o.suppress_token_ids.size(); ++i) {
    if (!in_vocab(o.suppress_token_ids[i]))
      return outside(absl::StrCat("suppress_token_ids[", i, "]"),
                     o.suppress_token_ids[i]);
  }
  return ValidateControls(o);
}

absl::Status Generator::Impl::ValidateControls(const DecodeOptions& o) const {
  auto invalid = [](auto... parts) {
    return absl::InvalidArgumentError(absl::StrCat(parts...));
  };
  if (o.do_sample && o.beam_size > 1) {
    return invalid("do_sample with beam_size ", o.beam_size,
                   ": sampling draws from greedy rows only (beam_size 1); "
                   "beam sampling is not supported");
  }
  if (o.do_sample && !(std::isfinite(o.temperature) && o.temperature > 0)) {
    return invalid("temperature ", o.temperature,
                   " must be finite and > 0 when sampling");
  }
  if (o.top_k < 0) return invalid("top_k ", o.top_k, " must be >= 0 (0 = off)");
  if (!(o.top_p > 0 && o.top_p <= 1))
    return invalid("top_p ", o.top_p, " is outside (0, 1] (1 = off)");
  if (!(std::isfinite(o.repetition_penalty) && o.repetition_penalty > 0)) {
    return invalid("repetition_penalty ", o.repetition_penalty,
                   " must be finite and > 0 (1 = off)");
  }
  if (o.min_new_tokens < 0 || o.min_new_tokens > o.max_new_tokens) {
    return invalid("min_new_tokens ", o.min_new_tokens,
                   " is outside [0, max_new_tokens = ", o.max_new_tokens, "]");
  }
  const int n = o.num_return_sequences;
  if (n < 1 || n > kMaxNumReturnSequences) {
    return invalid("num_return_sequences ", n, " is outside [1, ",
                   kMaxNumReturnSequences, "]");
  }
  if (o.beam_size > 1 && n > o.beam_size) {
    return invalid("num_return_sequences ", n, " is above beam_size ",
                   o.beam_size,
                   ": beam search returns at most beam_size hypotheses");
  }
  if (o.beam_size == 1 && !o.do_sample && n != 1) {
    return invalid("num_return_sequences ", n,
                   " needs do_sample or beam_size >= ", n,
                   ": greedy search has a single hypothesis");
  }
  if (o.top_log_probs < 0 || o.top_log_probs > kMaxTopLogProbs) {
    return invalid("top_log_probs ", o.top_log_probs, " is outside [0, ",
                   kMaxTopLogProbs, "]");
  }
  return absl::OkStatus();
}

absl::Status Generator::Impl::NewCache(int64_t capacity, Tensor* cache) const {
  return cache->TryReset({net_.self_cache_size(capacity)});
}

void Generator::Impl::CopyCache(const Tensor& from, int64_t from_capacity,
                                int64_t positions, int64_t to_capacity,
                                Tensor* to) const {
  // Bytes of a cache row: A elements of the network's cache type.
  const int64_t row =
      config_.attention_dim() * ComputeTypeBytes(net_.kv_cache_type());
  const char* src = reinterpret_cast<const char*>(from.data());
  char* dst = reinterpret_cast<char*>(to->data());
  for (int64_t block = 0; block < 2 * config_.decoder_layers; ++block) {
    std::memcpy(dst + block * to_capacity * row,
                src + block * from_capacity * row, positions * row);
  }
}

absl::Status Generator::Impl::Add(std::vector<SequenceInput> inputs) {
  if (inputs.empty()) return absl::OkStatus();
  int64_t longest = 0;
  for (const SequenceInput& in : inputs)
    longest = std::max<int64_t>(longest, in.source.size());
  const size_t count = inputs.size();
  // Everything Add allocates is local until the end, so on any error the
  // active set is as it was.
  return NoThrow(
      [&] {
        return absl::StrCat("encoding ", count, " sources of up to ", longest,
                            " tokens");
      },
      [&] { return AddBody(std::move(inputs)); });
}

absl::Status Generator::Impl::AddBody(std::vector<SequenceInput> inputs) {
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
    if (absl::Status status = net_.Encode(ctx, tokens, batch, src_len,
                                          chunk_lengths, &encoder_scratch);
        !status.ok()) {
      return Annotate(status,
                      absl::StrCat("encoding ", count, " sources of up to ",
                                   sorted_lengths.back(), " tokens"));
    }
    for (int64_t b = 0; b < batch; ++b) {
      const size_t i = order[begin + b];
      auto seq = std::make_unique<ActiveSequence>();
      seq->id = inputs[i].id;
      seq->options = inputs[i].options;
      seq->rules = MakeLogitsRules(seq->options, config_.eos_id);
      seq->beam = MakeBeamSettings(seq->options, seq->rules.eos_ids);
      seq->start_token = seq->options.decoder_start_id >= 0
                             ? seq->options.decoder_start_id
                             : config_.decoder_start_id;
      seq->src_len = lengths[i];
      // Straight into the sequence's own tensor (a source's rows are
      // contiguous), so no second copy of the chunk's K/V ever exists.
      if (absl::Status status =
              seq->cross_kv.TryReset({net_.cross_kv_size(lengths[i])});
          !status.ok()) {
        return Annotate(status,
                        absl::StrCat("encoding ", count, " sources of up to ",
                                     sorted_lengths.back(),
                                     " tokens (cross-attention keys "
                                     "and values of sequence ",
                                     seq->id, ")"));
      }
      RETURN_IF_ERROR(net_.CrossKeyValues(
          ctx, encoder_scratch.memory.data() + b * src_len * d, lengths[i],
          seq->cross_kv.data()));
      added[i] = std::move(seq);
    }
  }
  encoder_scratch = TransformerScratch();
  for (auto& seq : added) {
    seq->cache_capacity =
        std::min<int64_t>(kInitialCachePositions, seq->options.max_new_tokens);
    // Beam search starts from one hypothesis; n samples from n rows that
    // share the source's cross-attention keys and values.
    const int rows = seq->options.beam_size > 1 ? 1 : DecoderRows(seq->options);
    if (seq->options.beam_size == 1) seq->results.resize(rows);
    for (int sample = 0; sample < rows; ++sample) {
      Hypothesis start;
      start.capacity = seq->cache_capacity;
      if (absl::Status status = NewCache(seq->cache_capacity, &start.cache);
          !status.ok()) {
        return Annotate(status, absl::StrCat("allocating the KV cache of "
                                             "sequence ",
                                             seq->id));
      }
      start.token = seq->start_token;
      start.sample = sample;
      seq->live.push_back(std::move(start));
    }
  }
  // Reserved first, so that moving the new sequences in cannot fail halfway.
  active_.reserve(active_.size() + added.size());
  for (auto& seq : added) active_.push_back(std::move(seq));
  return absl::OkStatus();
}

absl::Status Generator::Impl::PrepareCaches(ActiveSequence& seq) {
  const int64_t needed = int64_t{seq.step} + 1;  // this step writes `step`
  const int beam = seq.options.beam_size;
  const int rows = DecoderRows(seq.options);
  if (needed > seq.cache_capacity) {
    seq.cache_capacity = std::min<int64_t>(
        seq.options.max_new_tokens, std::max(2 * seq.cache_capacity, needed));
    seq.spare_caches.clear();  // too small now; made afresh below
  }
  const int64_t capacity = seq.cache_capacity;
  auto failed = [&](const absl::Status& status) {
    const int64_t bytes =
        net_.self_cache_size(capacity) * static_cast<int64_t>(sizeof(float));
    return absl::ResourceExhaustedError(absl::StrCat(
        "out of memory growing the KV cache of sequence ", seq.id, " to ",
        capacity, " positions (", MiB(bytes), " per hypothesis, ", rows,
        rows == 1 ? " hypothesis" : " hypotheses", "): ", status.message()));
  };
  // One hypothesis at a time, so the old and the new cache coexist for one
  // only. Each records its own capacity, so a growth that fails halfway
  // leaves every cache consistent (and the next Step retries the rest).
  for (Hypothesis& h : seq.live) {
    if (h.capacity >= capacity) continue;
    Tensor grown;
    if (absl::Status status = NewCache(capacity, &grown); !status.ok())
      return failed(status);
    CopyCache(h.cache, h.capacity, seq.step, capacity, &grown);
    h.cache = std::move(grown);
    h.capacity = capacity;
  }
  if (beam > 1) {
    while (seq.live.size() + seq.spare_caches.size() <
           static_cast<size_t>(beam)) {
      Tensor spare;
      if (absl::Status status = NewCache(capacity, &spare); !status.ok())
        return failed(status);
      seq.spare_caches.push_back(std::move(spare));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StepEvent>> Generator::Impl::Step() {
  absl::StatusOr<std::vector<StepEvent>> events;
  absl::Status status = NoThrow(
      [&] {
        return absl::StrCat("in a decode step of ", active_.size(),
                            " sequences");
      },
      [&] {
        events = StepBody();
        return events.status();
      });
  if (!status.ok()) return status;
  return events;
}

absl::StatusOr<std::vector<StepEvent>> Generator::Impl::StepBody() {
  std::vector<StepEvent> events;
  if (active_.empty()) return events;
  events.reserve(active_.size());
  // Each sequence's own memory first: one whose caches cannot grow fails
  // alone, before any shared work, and the others step as if it had not been
  // there.
  std::vector<absl::Status> own(active_.size());
  std::vector<ActiveSequence*> stepping;
  stepping.reserve(active_.size());
  std::vector<DecoderRow> rows;
  for (size_t i = 0; i < active_.size(); ++i) {
    ActiveSequence& seq = *active_[i];
    own[i] = PrepareCaches(seq);
    if (!own[i].ok()) continue;
    stepping.push_back(&seq);
    for (Hypothesis& h : seq.live) {
      DecoderRow row;
      row.token = h.token;
      row.position = seq.step;
      row.self_cache = h.cache.data();
      row.cache_capacity = h.capacity;
      row.cross_kv = seq.cross_kv.data();
      row.src_len = seq.src_len;
      rows.push_back(row);
    }
  }
  std::vector<RowBest> best;
  if (!rows.empty()) {
    // Shared work: a failure here fails the step as a whole. Nothing has
    // advanced yet (a sequence that failed above stays active too), so the
    // caller may cancel, retry or add.
    const int64_t n = static_cast<int64_t>(rows.size());
    RETURN_IF_ERROR(net_.DecodeStep(model_->context(), rows, &scratch_));
    ASSIGN_OR_RETURN(best, BestTokens(stepping, n));
  }

  int64_t first_row = 0;
  std::vector<std::unique_ptr<ActiveSequence>> still_active;
  still_active.reserve(active_.size());
  for (size_t i = 0; i < active_.size(); ++i) {
    std::unique_ptr<ActiveSequence>& seq = active_[i];
    StepEvent event;
    event.id = seq->id;
    bool done = true;
    if (!own[i].ok()) {
      event.status = std::move(own[i]);
    } else {
      const absl::Span<const RowBest> seq_best(best.data() + first_row,
                                               seq->live.size());
      first_row += static_cast<int64_t>(seq->live.size());
      // What is left to allocate here belongs to this sequence alone (its
      // token lists; beam search's caches were prepared above).
      event.status =
          NoThrow([&] { return absl::StrCat("advancing sequence ", seq->id); },
                  [&] {
                    done = seq->options.beam_size == 1
                               ? AdvanceRows(*seq, seq_best, &event)
                               : AdvanceBeam(*seq, seq_best, &event);
                    return absl::OkStatus();
                  });
    }
    if (!event.status.ok()) {
      done = true;
      event.new_ids.clear();
      event.new_log_probs.clear();
      event.new_top_log_probs.clear();
      event.result = SequenceResult();
    }
    event.finished = done;
    events.push_back(std::move(event));
    if (!done) still_active.push_back(std::move(seq));
  }
  active_ = std::move(still_active);
  return events;
}

namespace {

// a before b in a row's list of best tokens: the higher processed score (NaN
// last), then the lower id, as TopTokens ranks.
bool RanksBefore(const RowToken& a, const RowToken& b) {
  const bool a_nan = std::isnan(a.processed);
  if (a_nan != std::isnan(b.processed)) return !a_nan;
  if (!a_nan && a.processed != b.processed) return a.processed > b.processed;
  return a.token < b.token;
}

std::vector<TokenLogProb> ModelTopLogProbs(const std::vector<TokenScore>& top,
                                           float lse) {
  std::vector<TokenLogProb> out;
  out.reserve(top.size());
  for (const TokenScore& t : top) out.push_back({t.token, t.score - lse});
  return out;
}

}  // namespace

absl::StatusOr<std::vector<RowBest>> Generator::Impl::BestTokens(
    absl::Span<ActiveSequence* const> stepping, int64_t n) {
  std::vector<RowWork> work;
  work.reserve(n);
  int64_t sampled = 0;
  for (const ActiveSequence* seq : stepping) {
    const DecodeOptions& o = seq->options;
    const bool beam = o.beam_size > 1;
    for (const Hypothesis& h : seq->live) {
      const int keep = o.do_sample ? 0 : beam ? seq->beam.candidates : 1;
      RowWork& w = work.emplace_back(keep, o.top_log_probs);
      w.seq = seq;
      w.hypothesis = &h;
      w.beam = beam;
      if (o.do_sample) w.sample_row = sampled++;
      prefix_.assign(1, seq->start_token);
      prefix_.insert(prefix_.end(), h.path.ids.begin(), h.path.ids.end());
      w.rule = RuleForRow(seq->rules, prefix_);
      w.penalised_raw.resize(w.rule.penalised.size());
    }
  }
  std::vector<RowBest> best(n);
  for (int64_t r = 0; r < n; ++r) {
    if (work[r].sample_row >= 0) continue;  // decided on the whole row below
    best[r].forced = !work[r].rule.forced.empty();
    for (int32_t t : work[r].rule.forced)
      best[r].tokens.push_back({t, 0.0f, 0.0f});
  }
  const OpContext& ctx = model_->context();
  const int slices = net_.vocab_slices();
  const int64_t vocab = net_.vocab_slice_begin(slices);
  // Sampled rows only: their whole rows of logits, [sampled, vocab].
  if (sampled > 0) RETURN_IF_ERROR(sample_logits_.TryReset({sampled, vocab}));
  slice_log_sum_exps_.resize(static_cast<size_t>(slices) * n);
  for (int slice = 0; slice < slices; ++slice) {
    const int64_t first = net_.vocab_slice_begin(slice);
    const int64_t width = net_.vocab_slice_begin(slice + 1) - first;
    RETURN_IF_ERROR(logits_.TryReset({n, width}));
    RETURN_IF_ERROR(
        net_.ProjectVocabSlice(ctx, scratch_, n, slice, logits_.data()));
    // Of the unprocessed logits: log-probs are the model's (HF's beam search
    // takes log_softmax before its processors, without renormalising).
    RETURN_IF_ERROR(LogSumExp(ctx, logits_.data(), n, width,
                              slice_log_sum_exps_.data() + slice * n));
    for (int64_t r = 0; r < n; ++r) {
      float* row = logits_.data() + r * width;
      RowWork& w = work[r];
      // The model's best tokens, before any rule (no-op unless asked).
      w.model_top.Add(row, static_cast<int32_t>(first), width);
      if (w.sample_row >= 0) {
        std::memcpy(sample_logits_.data() + w.sample_row * vocab + first, row,
                    width * sizeof(float));
        continue;
      }
      if (best[r].forced) {
        for (RowToken& t : best[r].tokens) {
          if (t.token >= first && t.token < first + width)
            t.log_prob = row[t.token - first];
        }
        continue;
      }
      // Penalised tokens leave the stream with their raw logits kept: their
      // processed score is settled once the row's log-sum-exp is known.
      const std::vector<int32_t>& penalised = w.rule.penalised;
      for (auto it =
               std::lower_bound(penalised.begin(), penalised.end(), first);
           it != penalised.end() && *it < first + width; ++it) {
        w.penalised_raw[it - penalised.begin()] = row[*it - first];
        row[*it - first] = -std::numeric_limits<float>::infinity();
      }
      const std::vector<int32_t>& banned = w.rule.banned;
      for (auto it = std::lower_bound(banned.begin(), banned.end(), first);
           it != banned.end() && *it < first + width; ++it) {
        row[*it - first] = -std::numeric_limits<float>::infinity();
      }
      w.top.Add(row, static_cast<int32_t>(first), width);
    }
  }
  std::vector<float> row_lse(slices);
  for (int64_t r = 0; r < n; ++r) {
    for (int slice = 0; slice < slices; ++slice)
      row_lse[slice] = slice_log_sum_exps_[slice * n + r];
    const float lse = CombineLogSumExps(row_lse);
    RowWork& w = work[r];
    RowBest& b = best[r];
    if (w.seq->options.top_log_probs > 0)
      b.top = ModelTopLogProbs(w.model_top.best(), lse);
    if (w.sample_row >= 0) {
      b.tokens.push_back(
          Sample(w, sample_logits_.data() + w.sample_row * vocab, vocab, lse));
      continue;
    }
    if (b.forced) {
      for (RowToken& t : b.tokens) t.log_prob -= lse;
      continue;
    }
    // Greedy ranks processed logits, beam search processed log-probs (HF's
    // processors see log_softmax there); unpenalised, both are the model's.
    const float shift = w.beam ? lse : 0.0f;
    const std::vector<TokenScore>& kept = w.top.best();
    const std::vector<int32_t>& penalised = w.rule.penalised;
    b.tokens.reserve(kept.size() + penalised.size());
    for (const TokenScore& t : kept) {
      // A penalised token is in the stream only as its -inf stand-in.
      if (!penalised.empty() &&
          std::binary_search(penalised.begin(), penalised.end(), t.token))
        continue;
      b.tokens.push_back({t.token, t.score - shift, t.score - lse});
    }
    if (penalised.empty()) continue;
    for (size_t j = 0; j < penalised.size(); ++j) {
      const float raw = w.penalised_raw[j];
      b.tokens.push_back({penalised[j],
                          RepetitionPenalised(raw - shift, w.rule.penalty),
                          raw - lse});
    }
    std::sort(b.tokens.begin(), b.tokens.end(), RanksBefore);
    if (b.tokens.size() > static_cast<size_t>(w.keep)) b.tokens.resize(w.keep);
  }
  return best;
}

RowToken Generator::Impl::Sample(const RowWork& w, const float* logits,
                                 int64_t vocab, float lse) {
  const DecodeOptions& o = w.seq->options;
  warp_.assign(logits, logits + vocab);
  ApplyRowRule(w.rule, absl::MakeSpan(warp_));
  WarpScores({o.temperature, o.top_k, o.top_p}, absl::MakeSpan(warp_),
             &warp_order_);
  const int32_t token = DrawToken(
      warp_, UniformDraw(o.seed, static_cast<uint64_t>(w.hypothesis->sample),
                         static_cast<uint64_t>(w.seq->step)));
  return {token, warp_[token], logits[token] - lse};
}

bool Generator::Impl::AdvanceRows(ActiveSequence& seq,
                                  absl::Span<const RowBest> best,
                                  StepEvent* event) {
  ++seq.step;
  const bool want_top = seq.options.top_log_probs > 0;
  size_t kept = 0;
  for (size_t i = 0; i < seq.live.size(); ++i) {
    Hypothesis& h = seq.live[i];
    // Forced tokens all score 0 after the rules: the lowest id wins, as HF's
    // arg-max takes the first.
    const int32_t token = best[i].tokens[0].token;
    const float log_prob = best[i].tokens[0].log_prob;
    // Events stream the tokens of sample 0, the result.
    const bool streams = h.sample == 0;
    SequenceResult& result = seq.results[h.sample];
    bool finished = true;
    if (!seq.options.ignore_eos &&
        std::binary_search(seq.rules.eos_ids.begin(), seq.rules.eos_ids.end(),
                           token)) {
      result.finish_reason = FinishReason::kEos;
      result.eos_id = token;
      result.eos_log_prob = log_prob;
    } else {
      h.path.ids.push_back(token);
      h.path.log_probs.push_back(log_prob);
      h.path.cum_log_prob += log_prob;
      if (want_top) h.path.top_log_probs.push_back(best[i].top);
      h.token = token;
      if (streams) {
        event->new_ids.push_back(token);
        event->new_log_probs.push_back(log_prob);
        if (want_top) event->new_top_log_probs.push_back(best[i].top);
      }
      finished = seq.step >= seq.options.max_new_tokens;
      if (finished) result.finish_reason = FinishReason::kLength;
    }
    if (!finished) {
      if (kept != i) seq.live[kept] = std::move(h);
      ++kept;
      continue;
    }
    // Greedy and sampling score the sum of the output's log_probs.
    result.output_ids = std::move(h.path.ids);
    result.log_probs = std::move(h.path.log_probs);
    result.score = static_cast<float>(h.path.cum_log_prob);
    result.top_log_probs = std::move(h.path.top_log_probs);
  }
  seq.live.erase(seq.live.begin() + kept, seq.live.end());
  if (!seq.live.empty()) return false;
  event->result = std::move(seq.results[0]);
  for (size_t s = 1; s < seq.results.size(); ++s)
    event->result.alternatives.push_back(std::move(seq.results[s]));
  return true;
}

namespace {

SequenceResult ResultOf(FinishedHypothesis&& f) {
  SequenceResult r;
  r.output_ids = std::move(f.ids);
  r.log_probs = std::move(f.log_probs);
  r.score = static_cast<float>(f.score);
  r.finish_reason = f.finish_reason;
  r.eos_id = f.eos_id;
  r.eos_log_prob = f.eos_log_prob;
  r.top_log_probs = std::move(f.top_log_probs);
  return r;
}

}  // namespace

bool Generator::Impl::AdvanceBeam(ActiveSequence& seq,
                                  absl::Span<const RowBest> best,
                                  StepEvent* event) {
  // Beam search scores the processed log-probs: a forced token adds 0.
  std::vector<std::vector<TokenScore>> processed(best.size());
  std::vector<BeamPath> paths(seq.live.size());
  const bool want_top = seq.options.top_log_probs > 0;
  std::vector<std::vector<TokenLogProb>> tops;
  if (want_top) tops.resize(best.size());
  for (size_t h = 0; h < best.size(); ++h) {
    processed[h].reserve(best[h].tokens.size());
    for (const RowToken& t : best[h].tokens)
      processed[h].push_back({t.token, best[h].forced ? 0.0f : t.processed});
    if (want_top) tops[h] = best[h].top;
    // Moved out and back below: the step only reads them.
    paths[h] = std::move(seq.live[h].path);
  }
  const BeamStepOutcome outcome =
      BeamSearchStep(seq.beam, seq.step, paths, processed, &seq.finished, tops);
  for (size_t h = 0; h < paths.size(); ++h)
    seq.live[h].path = std::move(paths[h]);
  ++seq.step;
  if (!outcome.done) {
    ReorderBeams(seq, outcome.children, tops);
    return false;
  }
  // The n best, best first (the legacy search only puts the best first).
  std::stable_sort(
      seq.finished.begin(), seq.finished.end(),
      [](const FinishedHypothesis& a, const FinishedHypothesis& b) {
        return a.score > b.score;
      });
  const size_t n =
      std::min<size_t>(seq.finished.size(), seq.options.num_return_sequences);
  SequenceResult& result = event->result;
  result = ResultOf(std::move(seq.finished[0]));
  for (size_t i = 1; i < n; ++i)
    result.alternatives.push_back(ResultOf(std::move(seq.finished[i])));
  event->new_ids = result.output_ids;
  event->new_log_probs = result.log_probs;
  event->new_top_log_probs = result.top_log_probs;
  return true;
}

void Generator::Impl::ReorderBeams(
    ActiveSequence& seq, const std::vector<BeamCandidate>& children,
    absl::Span<const std::vector<TokenLogProb>> tops) {
  const int64_t capacity = seq.cache_capacity;
  std::vector<Hypothesis> next(children.size());
  // Child that took the parent's cache.
  std::vector<int> owner(seq.live.size(), -1);
  for (size_t c = 0; c < children.size(); ++c) {
    const int p = children[c].hypothesis;
    if (owner[p] >= 0) continue;
    owner[p] = static_cast<int>(c);
    next[c].cache = std::move(seq.live[p].cache);
    next[c].capacity = seq.live[p].capacity;
  }
  // Caches of parents without children are free for the further children of
  // the others, beside the spares PrepareCaches made.
  for (size_t p = 0; p < seq.live.size(); ++p) {
    if (owner[p] < 0) seq.spare_caches.push_back(std::move(seq.live[p].cache));
  }
  for (size_t c = 0; c < children.size(); ++c) {
    const int p = children[c].hypothesis;
    Hypothesis& parent = seq.live[p];
    Hypothesis& child = next[c];
    if (owner[p] != static_cast<int>(c)) {
      if (!seq.spare_caches.empty()) {
        child.cache = std::move(seq.spare_caches.back());
        seq.spare_caches.pop_back();
      } else {  // not expected: PrepareCaches made one per child
        child.cache.Reset({net_.self_cache_size(capacity)});
      }
      child.capacity = capacity;
      CopyCache(next[owner[p]].cache, capacity, seq.step, capacity,
                &child.cache);
    }
    child.path.ids = parent.path.ids;
    child.path.ids.push_back(children[c].token);
    child.path.log_probs = parent.path.log_probs;
    child.path.log_probs.push_back(children[c].log_prob);
    child.path.cum_log_prob = children[c].cum_log_prob;
    if (!tops.empty()) {
      child.path.top_log_probs = parent.path.top_log_probs;
      child.path.top_log_probs.push_back(tops[p]);
    }
    child.token = children[c].token;
  }
  seq.live = std::move(next);
}

namespace {
absl::StatusOr<std::vector<SequenceResult>> GenerateBatchBody(
    const Model& model, const std::vector<std::vector<int32_t>>& sources,
    const DecodeOptions& options);
}  // namespace

Generator::Generator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Generator::~Generator() = default;

absl::StatusOr<std::unique_ptr<Generator>> Generator::Create(
    const Model* model) {
  if (model == nullptr)
    return absl::InvalidArgumentError("Generator needs a model");
  try {
    return std::unique_ptr<Generator>(
        new Generator(std::make_unique<Impl>(model)));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory creating a Generator");
  }
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
  absl::StatusOr<std::vector<SequenceResult>> results;
  absl::Status status = NoThrow(
      [&] {
        return absl::StrCat("decoding a batch of ", sources.size(), " sources");
      },
      [&] {
        results = GenerateBatchBody(model, sources, options);
        return results.status();
      });
  if (!status.ok()) return status;
  return results;
}

namespace {
absl::StatusOr<std::vector<SequenceResult>> GenerateBatchBody(
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
      if (!e.status.ok()) return e.status;
      if (e.finished) results[e.id] = std::move(e.result);
    }
  }
  return results;
}

}  // namespace
}  // namespace attnserve::engine
