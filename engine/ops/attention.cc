#include "engine/ops/attention.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "engine/ops/op_bodies.h"

namespace attnserve::engine {
namespace {

absl::Status CheckAttentionArgs(const AttentionArgs& a) {
  if (a.num_heads <= 0 || a.head_dim <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("attention: num_heads and head_dim must be positive, got ",
                     a.num_heads, " and ", a.head_dim));
  }
  if (a.batch < 0 || a.q_len < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attention: negative batch ", a.batch, " or q_len ", a.q_len));
  }
  if (a.kv_type != ComputeType::kFloat32 &&
      a.kv_type != ComputeType::kBFloat16) {
    return absl::InvalidArgumentError(
        absl::StrCat("attention: keys and values must be float32 or bfloat16, "
                     "got ",
                     ComputeTypeName(a.kv_type)));
  }
  const bool bf16 = a.kv_type == ComputeType::kBFloat16;
  if (!(bf16 ? a.k.empty() && a.v.empty()
             : a.k_bf16.empty() && a.v_bf16.empty())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attention: kv_type is ", ComputeTypeName(a.kv_type), " but the ",
        bf16 ? "float32 k and v" : "bfloat16 k_bf16 and v_bf16",
        " spans are set"));
  }
  const size_t k_size = bf16 ? a.k_bf16.size() : a.k.size();
  const size_t v_size = bf16 ? a.v_bf16.size() : a.v.size();
  if (static_cast<int64_t>(k_size) != a.batch ||
      static_cast<int64_t>(v_size) != a.batch ||
      static_cast<int64_t>(a.kv_lengths.size()) != a.batch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attention: k, v and kv_lengths need one entry per sequence (batch ",
        a.batch, "), got ", k_size, ", ", v_size, " and ",
        a.kv_lengths.size()));
  }
  const int64_t width = int64_t{a.num_heads} * a.head_dim;
  for (int64_t b = 0; b < a.batch; ++b) {
    if (a.kv_lengths[b] < 1) {
      return absl::InvalidArgumentError(absl::StrCat("attention: kv_lengths[",
                                                     b, "] = ", a.kv_lengths[b],
                                                     ", must be >= 1"));
    }
    if (bf16 ? a.k_bf16[b] == nullptr || a.v_bf16[b] == nullptr
             : a.k[b] == nullptr || a.v[b] == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("attention: null k or v pointer for sequence ", b));
    }
  }
  if (a.batch > 0 && a.q_len > 0 && (a.q == nullptr || a.out == nullptr)) {
    return absl::InvalidArgumentError("attention: null q or out pointer");
  }
  // Rows narrower than all heads would overlap; the fast body also hands these
  // strides to sgemm as leading dimensions.
  if (a.kv_row_stride < width) {
    return absl::InvalidArgumentError(
        absl::StrCat("attention: kv_row_stride ", a.kv_row_stride,
                     " is less than num_heads * head_dim = ", width));
  }
  if (a.q_len > 1 && (a.q_row_stride < width || a.out_row_stride < width)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attention: q_row_stride ", a.q_row_stride, " and out_row_stride ",
        a.out_row_stride, " must be >= num_heads * head_dim = ", width));
  }
  if (a.q_seq_stride < 0 || a.out_seq_stride < 0) {
    return absl::InvalidArgumentError("attention: negative sequence stride");
  }
  if (a.scale.has_value() && !std::isfinite(*a.scale)) {
    return absl::InvalidArgumentError(
        absl::StrCat("attention: scale must be finite, got ", *a.scale));
  }
  if (!a.q_positions.empty()) {
    if (static_cast<int64_t>(a.q_positions.size()) != a.batch) {
      return absl::InvalidArgumentError(absl::StrCat(
          "attention: q_positions needs one entry per sequence (batch ",
          a.batch, ") or none, got ", a.q_positions.size()));
    }
    for (int64_t b = 0; b < a.batch; ++b) {
      if (a.q_positions[b] < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("attention: q_positions[", b, "] = ", a.q_positions[b],
                         ", must be >= 0"));
      }
    }
  }
  // The bias buffer's extent is the caller's to know, but key 0 always counts
  // (lengths are >= 1), so its index for head 0 and each sequence's last
  // query, center - position, must not fall before the buffer.
  if (a.position_bias != nullptr) {
    if (a.position_bias_head_stride < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("attention: negative position_bias_head_stride ",
                       a.position_bias_head_stride));
    }
    for (int64_t b = 0; b < a.batch && a.q_len > 0; ++b) {
      const int64_t last =
          (a.q_positions.empty() ? 0 : a.q_positions[b]) + a.q_len - 1;
      if (a.position_bias_center < last) {
        return absl::InvalidArgumentError(absl::StrCat(
            "attention: position_bias_center ", a.position_bias_center,
            " is less than the position ", last, " of sequence ", b,
            "'s last query, so key 0's bias would lie before position_bias"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Attention(const OpContext& ctx, const AttentionArgs& args) {
  if (absl::Status status = CheckAttentionArgs(args); !status.ok())
    return status;
  if (args.batch == 0 || args.q_len == 0) return absl::OkStatus();
  switch (ctx.backend()) {
    case Backend::kReference:
      internal::AttentionRef(args);
      return absl::OkStatus();
    case Backend::kDnnl:
      return internal::AttentionDnnl(ctx, args);
  }
  return absl::InternalError("unknown backend");
}

}  // namespace attnserve::engine
