#include "engine/network/positions.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"

namespace attnserve::engine {
namespace {

bool IsSinusoidal(PositionalEncoding p) {
  return p == PositionalEncoding::kSinusoidal ||
         p == PositionalEncoding::kSinusoidalConcat ||
         p == PositionalEncoding::kSinusoidalFairseq;
}

}  // namespace

void SinusoidalPositionRows(int64_t begin, int64_t end, int d_model,
                            PositionalEncoding layout, int offset,
                            float* rows) {
  const int half = d_model / 2;
  // fairseq's frequencies exp(-i ln(10000) / (half - 1)), in float32 as it
  // (and Hugging Face's M2M100) computes them; the paper's 1 / 10000^(2i/d)
  // in double, rounded once.
  const float fairseq_step =
      half > 1 ? static_cast<float>(std::log(10000.0) / (half - 1)) : 0.0f;
  for (int64_t i = begin; i < end; ++i) {
    float* row = rows + (i - begin) * d_model;
    const int64_t p = i + offset;
    if (layout == PositionalEncoding::kSinusoidalFairseq) {
      for (int j = 0; j < half; ++j) {
        const float angle = static_cast<float>(p) *
                            std::exp(static_cast<float>(j) * -fairseq_step);
        row[j] = std::sin(angle);
        row[half + j] = std::cos(angle);
      }
      if (d_model % 2 != 0) row[d_model - 1] = 0;
      continue;
    }
    for (int j = 0; j < half; ++j) {
      const double angle = p / std::pow(10000.0, 2.0 * j / d_model);
      const float s = static_cast<float>(std::sin(angle));
      const float c = static_cast<float>(std::cos(angle));
      if (layout == PositionalEncoding::kSinusoidal) {
        row[2 * j] = s;
        row[2 * j + 1] = c;
      } else {
        row[j] = s;
        row[half + j] = c;
      }
    }
  }
}

absl::StatusOr<std::unique_ptr<Positions>> Positions::Create(
    const ModelConfig& config, Tensor learned) {
  std::unique_ptr<Positions> p(new Positions());
  p->config_ = config;
  if (config.positional_encoding == PositionalEncoding::kLearned) {
    if (learned.rank() != 2 || learned.dim(0) != config.max_positions ||
        learned.dim(1) != config.d_model) {
      return absl::InternalError("learned position table of the wrong shape");
    }
    p->learned_ = std::move(learned);
  }
  if (IsSinusoidal(config.positional_encoding)) {
    p->block_rows_.reset(
        new const float*[(config.max_positions + kBlockRows - 1) /
                         kBlockRows]());
  }
  return p;
}

void Positions::SequenceIndices(absl::Span<const int32_t> tokens,
                                absl::Span<int32_t> indices) const {
  const bool skip_pads =
      config_.positional_encoding == PositionalEncoding::kSinusoidalFairseq;
  int32_t next = 0;
  for (size_t j = 0; j < tokens.size(); ++j) {
    indices[j] = skip_pads ? next : static_cast<int32_t>(j);
    if (!skip_pads || tokens[j] != config_.pad_id) ++next;
  }
}

absl::Status Positions::AddTo(absl::Span<const int32_t> tokens,
                              absl::Span<const int32_t> indices,
                              float* x) const {
  const PositionalEncoding kind = config_.positional_encoding;
  if (kind == PositionalEncoding::kNone) return absl::OkStatus();
  const int64_t d = config_.d_model;
  if (IsSinusoidal(kind)) {
    int32_t last = 0;
    for (int32_t i : indices) last = std::max(last, i);
    if (absl::Status s = EnsureRows(int64_t{last} + 1); !s.ok()) return s;
  }
  for (size_t r = 0; r < indices.size(); ++r) {
    if (kind == PositionalEncoding::kSinusoidalFairseq &&
        tokens[r] == config_.pad_id) {
      continue;  // fairseq's padding row is all zeros
    }
    const float* pe = kind == PositionalEncoding::kLearned
                          ? learned_.data() + int64_t{indices[r]} * d
                          : Row(indices[r]);
    float* out = x + r * d;
    for (int64_t i = 0; i < d; ++i) out[i] += pe[i];
  }
  return absl::OkStatus();
}

absl::Status Positions::EnsureRows(int64_t count) const {
  if (count <= rows_ready_.load(std::memory_order_acquire)) {
    return absl::OkStatus();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t ready = rows_ready_.load(std::memory_order_relaxed);
  if (count <= ready) return absl::OkStatus();
  const int64_t d = config_.d_model;
  const int64_t blocks = (count + kBlockRows - 1) / kBlockRows;
  auto out_of_memory = [&](absl::string_view detail) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory extending the positional table to ", count,
                     " positions", detail.empty() ? "" : ": ", detail));
  };
  if (blocks_.capacity() < static_cast<size_t>(blocks)) {
    try {
      blocks_.reserve(blocks);
    } catch (const std::bad_alloc&) {
      return out_of_memory("");
    }
  }
  for (int64_t b = static_cast<int64_t>(blocks_.size()); b < blocks; ++b) {
    const int64_t rows =
        std::min(kBlockRows, config_.max_positions - b * kBlockRows);
    Tensor block;
    if (absl::Status s = block.TryReset({rows, d}); !s.ok()) {
      return out_of_memory(s.message());
    }
    block_rows_[b] = block.data();
    blocks_.push_back(std::move(block));  // reserved: cannot throw
  }
  // Whole blocks are filled from `ready` on, so a later count needs no
  // partial refill.
  const int64_t filled =
      std::min(blocks * kBlockRows, int64_t{config_.max_positions});
  for (int64_t b = ready / kBlockRows; b < blocks; ++b) {
    const int64_t begin = std::max(ready, b * kBlockRows);
    const int64_t end = std::min(filled, (b + 1) * kBlockRows);
    SinusoidalPositionRows(begin, end, config_.d_model,
                           config_.positional_encoding, config_.position_offset,
                           blocks_[b].data() + (begin - b * kBlockRows) * d);
  }
  rows_ready_.store(filled, std::memory_order_release);
  return absl::OkStatus();
}

const float* Positions::Row(int64_t index) const {
  return block_rows_[index / kBlockRows] +
         (index % kBlockRows) * config_.d_model;
}

}  // namespace attnserve::engine
