#include "engine/network/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/no_throw.h"
#include "engine/ops/attention.h"
#include "engine/ops/layer_norm.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

// Tokens per slice of the output projection: a batch-32 step's slice of logits
// (512 KB) stays in L2 while it is reduced, where whole rows (4 MB at a 32000
// vocabulary, 32 MB for 32 sources with beam 8) would go through memory.
constexpr int64_t kVocabSliceTokens = 4096;

// Stacks tensors of equal width row-wise ([a, k] + [b, k] -> [a + b, k]) and
// releases them, so fused products (q|k|v, every layer's cross k|v) are one
// matrix without a second copy of the model lingering.
absl::StatusOr<Tensor> ConcatRows(std::vector<Tensor*> parts) {
  int64_t rows = 0;
  for (const Tensor* t : parts) rows += t->dim(0);
  std::vector<int64_t> shape = parts[0]->shape();
  shape[0] = rows;
  Tensor out;
  if (absl::Status s = out.TryReset(shape); !s.ok()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("fusing weights: ", s.message()));
  }
  float* dst = out.data();
  for (Tensor* t : parts) {
    std::memcpy(dst, t->data(), t->size() * sizeof(float));
    dst += t->size();
    t->Release();
  }
  return out;
}

absl::StatusOr<std::unique_ptr<PackedLinear>> PackPlain(const OpContext& ctx,
                                                        LinearWeights& w) {
  return PackLinear(ctx, std::move(w.weight), std::move(w.bias));
}

absl::StatusOr<std::unique_ptr<PackedLinear>> PackFused(
    const OpContext& ctx, std::vector<LinearWeights*> parts) {
  std::vector<Tensor*> weights, biases;
  for (LinearWeights* p : parts) {
    weights.push_back(&p->weight);
    biases.push_back(&p->bias);
  }
  ASSIGN_OR_RETURN(Tensor weight, ConcatRows(weights));
  ASSIGN_OR_RETURN(Tensor bias, ConcatRows(biases));
  return PackLinear(ctx, std::move(weight), std::move(bias));
}

}  // namespace

void SinusoidalPositionRows(int64_t begin, int64_t end, int d_model,
                            PositionalEncoding layout, float* rows) {
  const int half = d_model / 2;
  for (int64_t p = begin; p < end; ++p) {
    float* row = rows + (p - begin) * d_model;
    for (int i = 0; i < half; ++i) {
      // Same frequencies in both layouts: 1 / 10000^(2i / d).
      const double angle = p / std::pow(10000.0, 2.0 * i / d_model);
      const float s = static_cast<float>(std::sin(angle));
      const float c = static_cast<float>(std::cos(angle));
      if (layout == PositionalEncoding::kSinusoidal) {
        row[2 * i] = s;
        row[2 * i + 1] = c;
      } else {
        row[i] = s;
        row[half + i] = c;
      }
    }
  }
}

Transformer::~Transformer() = default;

absl::StatusOr<std::unique_ptr<Transformer>> Transformer::Create(
    const ModelConfig& config, ModelWeights w, const OpContext& ctx) {
  std::unique_ptr<Transformer> t(new Transformer());
  t->config_ = config;
  t->activation_ = ToLinearActivation(config.activation);
  t->embed_scale_ = config.scale_embedding
                        ? std::sqrt(static_cast<float>(config.d_model))
                        : 1;
  t->position_block_rows_.reset(
      new const float*[(config.max_positions + kPositionBlockRows - 1) /
                       kPositionBlockRows]());
  t->shared_embedding_ = w.shared_embedding;
  t->encoder_embed_ = std::move(w.encoder_embed);
  t->decoder_embed_ = std::move(w.decoder_embed);

  auto norm = [](NormWeights& n) {
    Norm out;
    out.gamma = std::move(n.gamma);
    out.beta = std::move(n.beta);
    return out;
  };
  // The sub-layers every layer has: self-attention and the feed-forward
  // network.
  auto pack_common = [&](auto& lw, EncoderLayer& layer) -> absl::Status {
    ASSIGN_OR_RETURN(
        layer.qkv,
        PackFused(ctx, {&lw.self_attn.q, &lw.self_attn.k, &lw.self_attn.v}));
    ASSIGN_OR_RETURN(layer.o, PackPlain(ctx, lw.self_attn.o));
    layer.self_attn_norm = norm(lw.self_attn_norm);
    ASSIGN_OR_RETURN(layer.fc1, PackPlain(ctx, lw.ffn.fc1));
    ASSIGN_OR_RETURN(layer.fc2, PackPlain(ctx, lw.ffn.fc2));
    layer.ffn_norm = norm(lw.ffn_norm);
    return absl::OkStatus();
  };
  for (EncoderLayerWeights& lw : w.encoder_layers) {
    EncoderLayer layer;
    RETURN_IF_ERROR(pack_common(lw, layer));
    t->encoder_.push_back(std::move(layer));
  }
  std::vector<LinearWeights*> cross_kv;
  for (DecoderLayerWeights& lw : w.decoder_layers) {
    DecoderLayer layer;
    RETURN_IF_ERROR(pack_common(lw, layer));
    ASSIGN_OR_RETURN(layer.cross_q, PackPlain(ctx, lw.cross_attn.q));
    ASSIGN_OR_RETURN(layer.cross_o, PackPlain(ctx, lw.cross_attn.o));
    layer.cross_attn_norm = norm(lw.cross_attn_norm);
    cross_kv.push_back(&lw.cross_attn.k);
    cross_kv.push_back(&lw.cross_attn.v);
    t->decoder_.push_back(std::move(layer));
  }
  ASSIGN_OR_RETURN(t->cross_kv_, PackFused(ctx, cross_kv));
  t->encoder_final_norm_ = norm(w.encoder_final_norm);
  t->decoder_final_norm_ = norm(w.decoder_final_norm);

  // Tied: the decoder's embedding table, which also serves embedding lookups.
  if (!config.tie_output_embedding)
    t->lm_head_weight_ = std::move(w.lm_head_weight);
  Tensor& table =
      config.tie_output_embedding
          ? (t->shared_embedding_ ? t->encoder_embed_ : t->decoder_embed_)
          : t->lm_head_weight_;
  t->lm_head_bias_ = std::move(w.lm_head_bias);
  const Tensor* bias = t->lm_head_bias_.empty() ? nullptr : &t->lm_head_bias_;
  for (int64_t begin = 0; begin < config.vocab_size;
       begin += kVocabSliceTokens) {
    const int64_t end =
        std::min<int64_t>(begin + kVocabSliceTokens, config.vocab_size);
    ASSIGN_OR_RETURN(std::unique_ptr<PackedLinear> slice,
                     PackLinearBorrowed(ctx, table, bias, begin, end));
    // A backend that copied the slice (oneDNN's panels) no longer reads
    // these rows: the table goes below, and meanwhile is not held twice.
    if (!slice->borrows_weights()) {
      table.DiscardRange(begin * config.d_model, end * config.d_model);
    }
    t->lm_head_.push_back(std::move(slice));
  }
  // Where the table also serves embedding lookups, they read the slices
  // instead (Embed), so the model holds it once.
  if (!t->lm_head_.front()->borrows_weights()) table.Release();
  return t;
}

size_t Transformer::weight_bytes() const {
  // The output projection's slices borrow lm_head_weight_ (or the embedding)
  // and lm_head_bias_, or hold copies of the weights.
  size_t bytes = encoder_embed_.bytes() + decoder_embed_.bytes() +
                 lm_head_weight_.bytes() + lm_head_bias_.bytes() +
                 cross_kv_->bytes();
  for (const auto& slice : lm_head_) bytes += slice->bytes();  // copies only
  // Not the positional table: it fills as sequences reach positions
  // (EnsurePositions), a cost of use rather than of the weights.
  auto norm_bytes = [](const Norm& n) {
    return n.gamma.bytes() + n.beta.bytes();
  };
  auto common_bytes = [&](const EncoderLayer& l) {
    return l.qkv->bytes() + l.o->bytes() + l.fc1->bytes() + l.fc2->bytes() +
           norm_bytes(l.self_attn_norm) + norm_bytes(l.ffn_norm);
  };
  for (const EncoderLayer& l : encoder_) bytes += common_bytes(l);
  for (const DecoderLayer& l : decoder_) {
    bytes += common_bytes(l) + l.cross_q->bytes() + l.cross_o->bytes() +
             norm_bytes(l.cross_attn_norm);
  }
  return bytes + norm_bytes(encoder_final_norm_) +
         norm_bytes(decoder_final_norm_);
}

int64_t Transformer::cross_kv_width() const {
  return static_cast<int64_t>(config_.decoder_layers) * 2 * config_.d_model;
}

int64_t Transformer::self_cache_size(int64_t capacity) const {
  return static_cast<int64_t>(config_.decoder_layers) * 2 * capacity *
         config_.d_model;
}

absl::Status Transformer::EnsurePositions(int64_t count) const {
  if (count <= positions_ready_.load(std::memory_order_acquire)) {
    return absl::OkStatus();
  }
  std::lock_guard<std::mutex> lock(positions_mutex_);
  const int64_t ready = positions_ready_.load(std::memory_order_relaxed);
  if (count <= ready) return absl::OkStatus();
  const int64_t d = config_.d_model;
  const int64_t blocks = (count + kPositionBlockRows - 1) / kPositionBlockRows;
  if (position_blocks_.capacity() < static_cast<size_t>(blocks)) {
    try {
      position_blocks_.reserve(blocks);
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          absl::StrCat("out of memory extending the positional table to ",
                       count, " positions"));
    }
  }
  for (int64_t b = static_cast<int64_t>(position_blocks_.size()); b < blocks;
       ++b) {
    const int64_t rows = std::min(
        kPositionBlockRows, config_.max_positions - b * kPositionBlockRows);
    Tensor block;
    if (absl::Status s = block.TryReset({rows, d}); !s.ok()) {
      return absl::ResourceExhaustedError(
          absl::StrCat("out of memory extending the positional table to ",
                       count, " positions: ", s.message()));
    }
    position_block_rows_[b] = block.data();
    position_blocks_.push_back(std::move(block));  // reserved: cannot throw
  }
  // Whole blocks are filled from `ready` on, so a later count needs no
  // partial refill.
  const int64_t filled =
      std::min(blocks * kPositionBlockRows, int64_t{config_.max_positions});
  for (int64_t b = ready / kPositionBlockRows; b < blocks; ++b) {
    const int64_t begin = std::max(ready, b * kPositionBlockRows);
    const int64_t end = std::min(filled, (b + 1) * kPositionBlockRows);
    SinusoidalPositionRows(
        begin, end, config_.d_model, config_.positional_encoding,
        position_blocks_[b].data() + (begin - b * kPositionBlockRows) * d);
  }
  positions_ready_.store(filled, std::memory_order_release);
  return absl::OkStatus();
}

const float* Transformer::PositionRow(int64_t position) const {
  return position_block_rows_[position / kPositionBlockRows] +
         (position % kPositionBlockRows) * config_.d_model;
}

absl::Status Transformer::Embed(const Tensor& table,
                                absl::Span<const int32_t> tokens,
                                absl::Span<const int32_t> positions,
                                float* x) const {
  const int64_t d = config_.d_model;
  int32_t last = 0;
  for (int32_t p : positions) last = std::max(last, p);
  RETURN_IF_ERROR(EnsurePositions(int64_t{last} + 1));
  for (size_t r = 0; r < tokens.size(); ++r) {
    float* out = x + r * d;
    if (table.empty()) {  // only the output projection holds it (Create)
      lm_head_[tokens[r] / kVocabSliceTokens]->CopyWeightRow(
          tokens[r] % kVocabSliceTokens, out);
    } else {
      std::memcpy(out, table.data() + tokens[r] * d, d * sizeof(float));
    }
    const float* p = PositionRow(positions[r]);
    for (int64_t i = 0; i < d; ++i) out[i] = out[i] * embed_scale_ + p[i];
  }
  return absl::OkStatus();
}

absl::Status Transformer::ApplyNorm(const OpContext& ctx, const Norm& norm,
                                    float* x, int64_t rows) const {
  return LayerNorm(ctx, x, rows, config_.d_model, norm.gamma.data(),
                   norm.beta.data(), config_.layer_norm_eps, x);
}

template <typename Sublayer>
absl::Status Transformer::Residual(const OpContext& ctx, const Norm& norm,
                                   int64_t rows, TransformerScratch* s,
                                   Sublayer sublayer) const {
  float* x = s->x.data();
  if (config_.norm_placement == NormPlacement::kPre) {
    // x = x + sublayer(LN(x))
    s->h.Reset({rows, config_.d_model});
    RETURN_IF_ERROR(LayerNorm(ctx, x, rows, config_.d_model, norm.gamma.data(),
                              norm.beta.data(), config_.layer_norm_eps,
                              s->h.data()));
    return sublayer(s->h.data());
  }
  // x = LN(x + sublayer(x))
  RETURN_IF_ERROR(sublayer(x));
  return ApplyNorm(ctx, norm, x, rows);
}

absl::Status Transformer::Ffn(const OpContext& ctx, const PackedLinear& fc1,
                              const PackedLinear& fc2, const float* in,
                              int64_t rows, TransformerScratch* s) const {
  s->ffn.Reset({rows, config_.ffn_dim});
  RETURN_IF_ERROR(
      Linear(ctx, fc1, in, rows, s->ffn.data(), {activation_, false}));
  return Linear(ctx, fc2, s->ffn.data(), rows, s->x.data(),
                {LinearActivation::kNone, true});
}

absl::Status Transformer::Encode(const OpContext& ctx,
                                 absl::Span<const int32_t> tokens,
                                 int64_t batch, int64_t src_len,
                                 absl::Span<const int32_t> lengths,
                                 TransformerScratch* s) const {
  return NoThrow(
      [&] {
        return absl::StrCat("in the encoder (", batch, " x ", src_len, ")");
      },
      [&] { return EncodeBody(ctx, tokens, batch, src_len, lengths, s); });
}

absl::Status Transformer::EncodeBody(const OpContext& ctx,
                                     absl::Span<const int32_t> tokens,
                                     int64_t batch, int64_t src_len,
                                     absl::Span<const int32_t> lengths,
                                     TransformerScratch* s) const {
  if (batch < 1 || src_len < 1 || src_len > config_.max_positions ||
      static_cast<int64_t>(tokens.size()) != batch * src_len ||
      static_cast<int64_t>(lengths.size()) != batch) {
    return absl::InvalidArgumentError(
        absl::StrCat("Encode: bad batch shape ", batch, " x ", src_len));
  }
  ctx.Enter();
  const int64_t d = config_.d_model;
  const int64_t rows = batch * src_len;
  // Padding slots get pad_id so that any garbage the caller left there is never
  // read as an index; their rows are masked out of every attention.
  std::vector<int32_t> ids(tokens.begin(), tokens.end());
  std::vector<int32_t> positions(rows);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < src_len; ++j) {
      positions[b * src_len + j] = static_cast<int32_t>(j);
      if (j >= lengths[b]) ids[b * src_len + j] = config_.pad_id;
    }
  }
  s->x.Reset({rows, d});
  RETURN_IF_ERROR(Embed(encoder_embed_, ids, positions, s->x.data()));

  s->k_ptrs.resize(batch);
  s->v_ptrs.resize(batch);
  for (const EncoderLayer& layer : encoder_) {
    RETURN_IF_ERROR(
        Residual(ctx, layer.self_attn_norm, rows, s, [&](const float* in) {
          s->qkv.Reset({rows, 3 * d});
          s->attn.Reset({rows, d});
          RETURN_IF_ERROR(Linear(ctx, *layer.qkv, in, rows, s->qkv.data()));
          for (int64_t b = 0; b < batch; ++b) {
            s->k_ptrs[b] = s->qkv.data() + b * src_len * 3 * d + d;
            s->v_ptrs[b] = s->qkv.data() + b * src_len * 3 * d + 2 * d;
          }
          AttentionArgs a;
          a.num_heads = config_.num_heads;
          a.head_dim = config_.head_dim();
          a.batch = batch;
          a.q_len = src_len;
          a.q = s->qkv.data();
          a.q_seq_stride = src_len * 3 * d;
          a.q_row_stride = 3 * d;
          a.k = s->k_ptrs;
          a.v = s->v_ptrs;
          a.kv_row_stride = 3 * d;
          a.kv_lengths = lengths;
          a.out = s->attn.data();
          a.out_seq_stride = src_len * d;
          a.out_row_stride = d;
          RETURN_IF_ERROR(Attention(ctx, a));
          return Linear(ctx, *layer.o, s->attn.data(), rows, s->x.data(),
                        {LinearActivation::kNone, true});
        }));
    RETURN_IF_ERROR(
        Residual(ctx, layer.ffn_norm, rows, s, [&](const float* in) {
          return Ffn(ctx, *layer.fc1, *layer.fc2, in, rows, s);
        }));
  }
  if (encoder_final_norm_.present()) {
    RETURN_IF_ERROR(ApplyNorm(ctx, encoder_final_norm_, s->x.data(), rows));
  }
  std::swap(s->x, s->memory);
  return absl::OkStatus();
}

absl::Status Transformer::CrossKeyValues(const OpContext& ctx,
                                         const float* memory, int64_t rows,
                                         float* out) const {
  ctx.Enter();
  return NoThrow("in the cross-attention keys and values",
                 [&] { return Linear(ctx, *cross_kv_, memory, rows, out); });
}

absl::Status Transformer::DecodeStep(const OpContext& ctx,
                                     absl::Span<const DecoderRow> rows,
                                     TransformerScratch* s) const {
  return NoThrow(
      [&] {
        return absl::StrCat("in a decoder step of ", rows.size(), " rows");
      },
      [&] { return DecodeStepBody(ctx, rows, s); });
}

absl::Status Transformer::DecodeStepBody(const OpContext& ctx,
                                         absl::Span<const DecoderRow> rows,
                                         TransformerScratch* s) const {
  const int64_t n = static_cast<int64_t>(rows.size());
  if (n == 0) return absl::OkStatus();
  ctx.Enter();
  const int64_t d = config_.d_model;
  std::vector<int32_t> tokens(n), positions(n);
  for (int64_t r = 0; r < n; ++r) {
    const DecoderRow& row = rows[r];
    if (row.position < 0 || row.position >= row.cache_capacity ||
        row.position >= config_.max_positions || row.token < 0 ||
        row.token >= config_.vocab_size || row.src_len < 1) {
      return absl::InternalError(absl::StrCat("DecodeStep: bad row ", r,
                                              " (position ", row.position,
                                              ", token ", row.token, ")"));
    }
    tokens[r] = row.token;
    positions[r] = row.position;
  }
  s->x.Reset({n, d});
  RETURN_IF_ERROR(Embed(shared_embedding_ ? encoder_embed_ : decoder_embed_,
                        tokens, positions, s->x.data()));
  s->k_ptrs.resize(n);
  s->v_ptrs.resize(n);
  s->lengths.resize(n);
  s->attn.Reset({n, d});

  // One query per row: every row is its own "sequence" of the attention op.
  auto attend = [&](const float* q, int64_t q_stride, int64_t kv_row_stride) {
    AttentionArgs a;
    a.num_heads = config_.num_heads;
    a.head_dim = config_.head_dim();
    a.batch = n;
    a.q_len = 1;
    a.q = q;
    a.q_seq_stride = q_stride;
    a.q_row_stride = q_stride;
    a.k = s->k_ptrs;
    a.v = s->v_ptrs;
    a.kv_row_stride = kv_row_stride;
    a.kv_lengths = s->lengths;
    a.out = s->attn.data();
    a.out_seq_stride = d;
    a.out_row_stride = d;
    return Attention(ctx, a);
  };

  const int64_t cross_width = cross_kv_width();
  for (size_t l = 0; l < decoder_.size(); ++l) {
    const DecoderLayer& layer = decoder_[l];
    RETURN_IF_ERROR(
        Residual(ctx, layer.self_attn_norm, n, s, [&](const float* in) {
          s->qkv.Reset({n, 3 * d});
          RETURN_IF_ERROR(Linear(ctx, *layer.qkv, in, n, s->qkv.data()));
          for (int64_t r = 0; r < n; ++r) {
            const DecoderRow& row = rows[r];
            float* k_cache = row.self_cache + l * 2 * row.cache_capacity * d;
            float* v_cache = k_cache + row.cache_capacity * d;
            const float* qkv = s->qkv.data() + r * 3 * d;
            std::memcpy(k_cache + row.position * d, qkv + d, d * sizeof(float));
            std::memcpy(v_cache + row.position * d, qkv + 2 * d,
                        d * sizeof(float));
            s->k_ptrs[r] = k_cache;
            s->v_ptrs[r] = v_cache;
            s->lengths[r] = row.position + 1;
          }
          RETURN_IF_ERROR(attend(s->qkv.data(), 3 * d, d));
          return Linear(ctx, *layer.o, s->attn.data(), n, s->x.data(),
                        {LinearActivation::kNone, true});
        }));
    RETURN_IF_ERROR(
        Residual(ctx, layer.cross_attn_norm, n, s, [&](const float* in) {
          s->q.Reset({n, d});
          RETURN_IF_ERROR(Linear(ctx, *layer.cross_q, in, n, s->q.data()));
          for (int64_t r = 0; r < n; ++r) {
            s->k_ptrs[r] = rows[r].cross_kv + l * 2 * d;
            s->v_ptrs[r] = rows[r].cross_kv + l * 2 * d + d;
            s->lengths[r] = rows[r].src_len;
          }
          RETURN_IF_ERROR(attend(s->q.data(), d, cross_width));
          return Linear(ctx, *layer.cross_o, s->attn.data(), n, s->x.data(),
                        {LinearActivation::kNone, true});
        }));
    RETURN_IF_ERROR(Residual(ctx, layer.ffn_norm, n, s, [&](const float* in) {
      return Ffn(ctx, *layer.fc1, *layer.fc2, in, n, s);
    }));
  }
  if (decoder_final_norm_.present()) {
    RETURN_IF_ERROR(ApplyNorm(ctx, decoder_final_norm_, s->x.data(), n));
  }
  return absl::OkStatus();
}

int64_t Transformer::vocab_slice_begin(int slice) const {
  return std::min<int64_t>(int64_t{slice} * kVocabSliceTokens,
                           config_.vocab_size);
}

absl::Status Transformer::ProjectVocabSlice(const OpContext& ctx,
                                            const TransformerScratch& s,
                                            int64_t rows, int slice,
                                            float* out) const {
  if (slice < 0 || slice >= vocab_slices() || rows < 0 ||
      rows * config_.d_model > s.x.size()) {
    return absl::InternalError(absl::StrCat("ProjectVocabSlice: bad slice ",
                                            slice, " or rows ", rows));
  }
  ctx.Enter();
  return NoThrow("in the output projection", [&] {
    return Linear(ctx, *lm_head_[slice], s.x.data(), rows, out);
  });
}

}  // namespace attnserve::engine
