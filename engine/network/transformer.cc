#include "engine/network/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/no_throw.h"
#include "engine/ops/quantize.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

// Tokens per slice of the output projection: a batch-32 step's slice of logits
// (512 KB) stays in L2 while it is reduced, where whole rows (4 MB at a 32000
// vocabulary, 32 MB for 32 sources with beam 8) would go through memory.
constexpr int64_t kVocabSliceTokens = 4096;
// Encoder rows per product when the cross-attention K/V are stored as
// bfloat16: each chunk's float32 K/V (768 KB at the base model's 6144-float
// rows) is rounded into the caller's buffer, so the whole float32 product is
// never held.
constexpr int64_t kCrossKvChunkRows = 32;

}  // namespace

Transformer::~Transformer() = default;

absl::StatusOr<std::unique_ptr<Transformer>> Transformer::Create(
    const ModelConfig& config, ModelWeights w, const OpContext& ctx,
    const Precision& precision) {
  const ComputeType type = precision.compute_type;
  std::unique_ptr<Transformer> t(new Transformer());
  t->config_ = config;
  t->kv_cache_ = precision.kv_cache;
  t->activation_ = ToLinearActivation(config.activation);
  t->embed_scale_ = config.scale_embedding
                        ? std::sqrt(static_cast<float>(config.d_model))
                        : 1;
  auto norm = [&](NormWeights& n) {
    return Norm(config.norm_kind, config.layer_norm_eps, std::move(n));
  };
  // The token tables are converted last (below), once the output projection
  // has taken what it copies of them.
  auto stack = [&](Stack& s, Tensor& positions, NormWeights& embed_norm,
                   Tensor& relative_bias, NormWeights& final_norm,
                   bool bidirectional) -> absl::Status {
    ASSIGN_OR_RETURN(s.positions,
                     Positions::Create(config, std::move(positions)));
    s.embed_norm = norm(embed_norm);
    if (!relative_bias.empty()) {
      s.relative_bias = RelativePositionBias(
          relative_bias, bidirectional, config.relative_attention_max_distance);
      relative_bias.Release();
    }
    s.final_norm = norm(final_norm);
    return absl::OkStatus();
  };
  t->shared_embedding_ = w.shared_embedding;
  RETURN_IF_ERROR(stack(t->encoder_stack_, w.encoder_positions,
                        w.encoder_embed_norm, w.encoder_relative_bias,
                        w.encoder_final_norm, /*bidirectional=*/true));
  RETURN_IF_ERROR(stack(t->decoder_stack_, w.decoder_positions,
                        w.decoder_embed_norm, w.decoder_relative_bias,
                        w.decoder_final_norm, /*bidirectional=*/false));

  // The sub-layers every layer has: self-attention and the feed-forward
  // network.
  auto pack_common = [&](auto& lw, EncoderLayer& layer) -> absl::Status {
    ASSIGN_OR_RETURN(
        layer.qkv,
        PackFused(ctx, {&lw.self_attn.q, &lw.self_attn.k, &lw.self_attn.v},
                  type));
    ASSIGN_OR_RETURN(layer.o, PackWeights(ctx, lw.self_attn.o, type));
    layer.self_attn_norm = norm(lw.self_attn_norm);
    ASSIGN_OR_RETURN(layer.ffn, FeedForward::Pack(ctx, lw.ffn, config.gated_ffn,
                                                  t->activation_, type));
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
    ASSIGN_OR_RETURN(layer.cross_q, PackWeights(ctx, lw.cross_attn.q, type));
    ASSIGN_OR_RETURN(layer.cross_o, PackWeights(ctx, lw.cross_attn.o, type));
    layer.cross_attn_norm = norm(lw.cross_attn_norm);
    cross_kv.push_back(&lw.cross_attn.k);
    cross_kv.push_back(&lw.cross_attn.v);
    t->decoder_.push_back(std::move(layer));
  }
  ASSIGN_OR_RETURN(t->cross_kv_, PackFused(ctx, cross_kv, type));

  // Tied: the decoder's embedding table, which then also serves embedding
  // lookups through the projection (Embed), so the stack keeps none.
  Tensor& table = t->lm_head_weight_;
  if (!config.tie_output_embedding) {
    table = std::move(w.lm_head_weight);
  } else {
    table = std::move(t->shared_embedding_ ? w.encoder_embed : w.decoder_embed);
  }
  t->lm_head_bias_ = std::move(w.lm_head_bias);
  const Tensor* bias = t->lm_head_bias_.empty() ? nullptr : &t->lm_head_bias_;
  for (int64_t begin = 0; begin < config.vocab_size;
       begin += kVocabSliceTokens) {
    const int64_t end =
        std::min<int64_t>(begin + kVocabSliceTokens, config.vocab_size);
    ASSIGN_OR_RETURN(std::unique_ptr<PackedLinear> slice,
                     PackLinearBorrowed(ctx, table, bias, begin, end,
                                        precision.embeddings()));
    // A backend that copied the slice (oneDNN's panels) no longer reads
    // these rows: the table goes below, and meanwhile is not held twice.
    if (!slice->borrows_weights()) {
      table.DiscardRange(begin * config.d_model, end * config.d_model);
    }
    t->lm_head_.push_back(std::move(slice));
  }
  // Slices that copied their rows leave no reader of the table: the model
  // holds it once, in the slices.
  if (!t->lm_head_.front()->borrows_weights()) table.Release();
  // The tables that serve lookups only (untied, or the encoder's own).
  ASSIGN_OR_RETURN(t->encoder_stack_.embed,
                   EmbeddingTable::Create(std::move(w.encoder_embed),
                                          precision.embeddings()));
  ASSIGN_OR_RETURN(t->decoder_stack_.embed,
                   EmbeddingTable::Create(std::move(w.decoder_embed),
                                          precision.embeddings()));
  return t;
}

size_t Transformer::weight_bytes() const {
  // The output projection's slices borrow lm_head_weight_ (or the embedding)
  // and lm_head_bias_, or hold copies of the weights.
  size_t bytes =
      lm_head_weight_.bytes() + lm_head_bias_.bytes() + cross_kv_->bytes();
  for (const auto& slice : lm_head_) bytes += slice->bytes();  // copies only
  // Not a sinusoidal table: it fills as sequences reach positions, a cost of
  // use rather than of the weights.
  for (const Stack* s : {&encoder_stack_, &decoder_stack_}) {
    bytes += s->embed.bytes() + s->positions->bytes() + s->embed_norm.bytes() +
             s->relative_bias.bytes() + s->final_norm.bytes();
  }
  auto common_bytes = [&](const EncoderLayer& l) {
    return l.qkv->bytes() + l.o->bytes() + l.ffn.bytes() +
           l.self_attn_norm.bytes() + l.ffn_norm.bytes();
  };
  for (const EncoderLayer& l : encoder_) bytes += common_bytes(l);
  for (const DecoderLayer& l : decoder_) {
    bytes += common_bytes(l) + l.cross_q->bytes() + l.cross_o->bytes() +
             l.cross_attn_norm.bytes();
  }
  return bytes;
}

int64_t Transformer::cross_kv_width() const {
  return static_cast<int64_t>(config_.decoder_layers) * 2 *
         config_.attention_dim();
}

int64_t Transformer::cross_kv_size(int64_t rows) const {
  return kv_cache_ == ComputeType::kBFloat16
             ? Tensor::FloatsFor<uint16_t>(rows * cross_kv_width())
             : rows * cross_kv_width();
}

int64_t Transformer::self_cache_size(int64_t capacity) const {
  const int64_t elements = static_cast<int64_t>(config_.decoder_layers) * 2 *
                           capacity * config_.attention_dim();
  return kv_cache_ == ComputeType::kBFloat16
             ? Tensor::FloatsFor<uint16_t>(elements)
             : elements;
}

absl::Status Transformer::Embed(const OpContext& ctx, const Stack& stack,
                                const EmbeddingTable& table,
                                absl::Span<const int32_t> tokens,
                                absl::Span<const int32_t> indices,
                                float* x) const {
  const int64_t d = config_.d_model;
  for (size_t r = 0; r < tokens.size(); ++r) {
    float* out = x + r * d;
    if (table.empty()) {  // only the output projection holds it (Create)
      lm_head_[tokens[r] / kVocabSliceTokens]->CopyWeightRow(
          tokens[r] % kVocabSliceTokens, out);
    } else {
      table.CopyRow(tokens[r], out);
    }
    if (embed_scale_ != 1.0f) {
      for (int64_t i = 0; i < d; ++i) out[i] *= embed_scale_;
    }
  }
  RETURN_IF_ERROR(stack.positions->AddTo(tokens, indices, x));
  if (!stack.embed_norm.present()) return absl::OkStatus();
  return stack.embed_norm.Apply(ctx, x, static_cast<int64_t>(tokens.size()), x);
}

template <typename Sublayer>
absl::Status Transformer::Residual(const OpContext& ctx, const Norm& norm,
                                   int64_t rows, TransformerScratch* s,
                                   Sublayer sublayer) const {
  float* x = s->x.data();
  if (config_.norm_placement == NormPlacement::kPre) {
    // x = x + sublayer(N(x))
    s->h.Reset({rows, config_.d_model});
    RETURN_IF_ERROR(norm.Apply(ctx, x, rows, s->h.data()));
    return sublayer(s->h.data());
  }
  // x = N(x + sublayer(x))
  RETURN_IF_ERROR(sublayer(x));
  return norm.Apply(ctx, x, rows, x);
}

AttentionArgs Transformer::BaseAttention() const {
  AttentionArgs a;
  a.num_heads = config_.num_heads;
  a.head_dim = config_.head_dim();
  if (!config_.scale_attention) a.scale = 1.0f;
  return a;
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
  const int64_t a_dim = config_.attention_dim();
  const int64_t rows = batch * src_len;
  // Padding slots get pad_id so that any garbage the caller left there is never
  // read as an index; their rows are masked out of every attention.
  std::vector<int32_t> ids(tokens.begin(), tokens.end());
  s->positions.resize(rows);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = lengths[b]; j < src_len; ++j) {
      ids[b * src_len + j] = config_.pad_id;
    }
    encoder_stack_.positions->SequenceIndices(
        absl::MakeConstSpan(ids).subspan(b * src_len, src_len),
        absl::MakeSpan(s->positions).subspan(b * src_len, src_len));
  }
  s->x.Reset({rows, d});
  RETURN_IF_ERROR(Embed(ctx, encoder_stack_, encoder_stack_.embed, ids,
                        s->positions, s->x.data()));

  // Relative position bias over every key-query distance of this batch.
  const bool relative = encoder_stack_.relative_bias.present();
  if (relative) {
    encoder_stack_.relative_bias.Fill(-(src_len - 1), src_len - 1,
                                      &s->position_bias);
  }
  s->k_ptrs.resize(batch);
  s->v_ptrs.resize(batch);
  for (const EncoderLayer& layer : encoder_) {
    RETURN_IF_ERROR(
        Residual(ctx, layer.self_attn_norm, rows, s, [&](const float* in) {
          s->qkv.Reset({rows, 3 * a_dim});
          s->attn.Reset({rows, a_dim});
          RETURN_IF_ERROR(Linear(ctx, *layer.qkv, in, rows, s->qkv.data()));
          for (int64_t b = 0; b < batch; ++b) {
            s->k_ptrs[b] = s->qkv.data() + b * src_len * 3 * a_dim + a_dim;
            s->v_ptrs[b] = s->qkv.data() + b * src_len * 3 * a_dim + 2 * a_dim;
          }
          AttentionArgs a = BaseAttention();
          a.batch = batch;
          a.q_len = src_len;
          a.q = s->qkv.data();
          a.q_seq_stride = src_len * 3 * a_dim;
          a.q_row_stride = 3 * a_dim;
          a.k = s->k_ptrs;
          a.v = s->v_ptrs;
          a.kv_row_stride = 3 * a_dim;
          a.kv_lengths = lengths;
          a.out = s->attn.data();
          a.out_seq_stride = src_len * a_dim;
          a.out_row_stride = a_dim;
          if (relative) {
            a.position_bias = s->position_bias.data();
            a.position_bias_head_stride = 2 * src_len - 1;
            a.position_bias_center = src_len - 1;
          }
          RETURN_IF_ERROR(Attention(ctx, a));
          return Linear(ctx, *layer.o, s->attn.data(), rows, s->x.data(),
                        {LinearActivation::kNone, true});
        }));
    RETURN_IF_ERROR(
        Residual(ctx, layer.ffn_norm, rows, s, [&](const float* in) {
          return layer.ffn.Run(ctx, in, rows, &s->ffn, &s->gated, s->x.data());
        }));
  }
  if (encoder_stack_.final_norm.present()) {
    RETURN_IF_ERROR(
        encoder_stack_.final_norm.Apply(ctx, s->x.data(), rows, s->x.data()));
  }
  std::swap(s->x, s->memory);
  return absl::OkStatus();
}

absl::Status Transformer::CrossKeyValues(const OpContext& ctx,
                                         const float* memory, int64_t rows,
                                         float* out) const {
  ctx.Enter();
  return NoThrow("in the cross-attention keys and values", [&] {
    if (kv_cache_ != ComputeType::kBFloat16)
      return Linear(ctx, *cross_kv_, memory, rows, out);
    const int64_t width = cross_kv_width();
    std::vector<float> chunk(std::min(rows, kCrossKvChunkRows) * width);
    uint16_t* out_bf16 = reinterpret_cast<uint16_t*>(out);
    for (int64_t first = 0; first < rows; first += kCrossKvChunkRows) {
      const int64_t count = std::min(kCrossKvChunkRows, rows - first);
      RETURN_IF_ERROR(Linear(ctx, *cross_kv_, memory + first * config_.d_model,
                             count, chunk.data()));
      RoundRowToBFloat16(chunk.data(), count * width, out_bf16 + first * width);
    }
    return absl::OkStatus();
  });
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
  const int64_t a_dim = config_.attention_dim();
  std::vector<int32_t> tokens(n);
  s->positions.resize(n);
  int32_t last_position = 0;
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
    s->positions[r] = row.position;
    last_position = std::max(last_position, row.position);
  }
  s->x.Reset({n, d});
  RETURN_IF_ERROR(
      Embed(ctx, decoder_stack_,
            shared_embedding_ ? encoder_stack_.embed : decoder_stack_.embed,
            tokens, s->positions, s->x.data()));
  // Causal relative bias: a step's query at position p sees keys [0, p], so
  // only distances [-p, 0] of the new position's row are needed.
  const bool relative = decoder_stack_.relative_bias.present();
  if (relative) {
    decoder_stack_.relative_bias.Fill(-last_position, 0, &s->position_bias);
  }
  const bool bf16 = kv_cache_ == ComputeType::kBFloat16;
  s->k_ptrs.resize(bf16 ? 0 : n);
  s->v_ptrs.resize(bf16 ? 0 : n);
  s->k_bf16_ptrs.resize(bf16 ? n : 0);
  s->v_bf16_ptrs.resize(bf16 ? n : 0);
  s->lengths.resize(n);
  s->attn.Reset({n, a_dim});

  // One query per row: every row is its own "sequence" of the attention op.
  auto attend = [&](const float* q, int64_t q_stride, int64_t kv_row_stride,
                    bool with_bias) {
    AttentionArgs a = BaseAttention();
    a.batch = n;
    a.q_len = 1;
    a.q = q;
    a.q_seq_stride = q_stride;
    a.q_row_stride = q_stride;
    a.kv_type = kv_cache_;
    a.k = s->k_ptrs;
    a.v = s->v_ptrs;
    a.k_bf16 = s->k_bf16_ptrs;
    a.v_bf16 = s->v_bf16_ptrs;
    a.kv_row_stride = kv_row_stride;
    a.kv_lengths = s->lengths;
    a.out = s->attn.data();
    a.out_seq_stride = a_dim;
    a.out_row_stride = a_dim;
    if (with_bias) {
      a.position_bias = s->position_bias.data();
      a.position_bias_head_stride = int64_t{last_position} + 1;
      a.position_bias_center = last_position;
      a.q_positions = s->positions;
    }
    return Attention(ctx, a);
  };

  const int64_t cross_width = cross_kv_width();
  for (size_t l = 0; l < decoder_.size(); ++l) {
    const DecoderLayer& layer = decoder_[l];
    RETURN_IF_ERROR(
        Residual(ctx, layer.self_attn_norm, n, s, [&](const float* in) {
          s->qkv.Reset({n, 3 * a_dim});
          RETURN_IF_ERROR(Linear(ctx, *layer.qkv, in, n, s->qkv.data()));
          for (int64_t r = 0; r < n; ++r) {
            const DecoderRow& row = rows[r];
            // Element offsets of this layer's keys and of the new position.
            const int64_t k_at = l * 2 * row.cache_capacity * a_dim;
            const int64_t v_at = k_at + row.cache_capacity * a_dim;
            const int64_t new_row = row.position * a_dim;
            const float* qkv = s->qkv.data() + r * 3 * a_dim;
            if (bf16) {
              uint16_t* cache = static_cast<uint16_t*>(row.self_cache);
              RoundRowToBFloat16(qkv + a_dim, a_dim, cache + k_at + new_row);
              RoundRowToBFloat16(qkv + 2 * a_dim, a_dim,
                                 cache + v_at + new_row);
              s->k_bf16_ptrs[r] = cache + k_at;
              s->v_bf16_ptrs[r] = cache + v_at;
            } else {
              float* cache = static_cast<float*>(row.self_cache);
              std::memcpy(cache + k_at + new_row, qkv + a_dim,
                          a_dim * sizeof(float));
              std::memcpy(cache + v_at + new_row, qkv + 2 * a_dim,
                          a_dim * sizeof(float));
              s->k_ptrs[r] = cache + k_at;
              s->v_ptrs[r] = cache + v_at;
            }
            s->lengths[r] = row.position + 1;
          }
          RETURN_IF_ERROR(attend(s->qkv.data(), 3 * a_dim, a_dim, relative));
          return Linear(ctx, *layer.o, s->attn.data(), n, s->x.data(),
                        {LinearActivation::kNone, true});
        }));
    RETURN_IF_ERROR(
        Residual(ctx, layer.cross_attn_norm, n, s, [&](const float* in) {
          s->q.Reset({n, a_dim});
          RETURN_IF_ERROR(Linear(ctx, *layer.cross_q, in, n, s->q.data()));
          for (int64_t r = 0; r < n; ++r) {
            const int64_t k_at = l * 2 * a_dim;  // this layer's keys in a row
            if (bf16) {
              const auto* kv = static_cast<const uint16_t*>(rows[r].cross_kv);
              s->k_bf16_ptrs[r] = kv + k_at;
              s->v_bf16_ptrs[r] = kv + k_at + a_dim;
            } else {
              const auto* kv = static_cast<const float*>(rows[r].cross_kv);
              s->k_ptrs[r] = kv + k_at;
              s->v_ptrs[r] = kv + k_at + a_dim;
            }
            s->lengths[r] = rows[r].src_len;
          }
          RETURN_IF_ERROR(attend(s->q.data(), a_dim, cross_width, false));
          return Linear(ctx, *layer.cross_o, s->attn.data(), n, s->x.data(),
                        {LinearActivation::kNone, true});
        }));
    RETURN_IF_ERROR(Residual(ctx, layer.ffn_norm, n, s, [&](const float* in) {
      return layer.ffn.Run(ctx, in, n, &s->ffn, &s->gated, s->x.data());
    }));
  }
  float* x = s->x.data();
  if (decoder_stack_.final_norm.present()) {
    RETURN_IF_ERROR(decoder_stack_.final_norm.Apply(ctx, x, n, x));
  }
  if (config_.output_scale != 1.0f) {
    for (int64_t i = 0; i < n * d; ++i) x[i] *= config_.output_scale;
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
