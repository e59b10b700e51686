// oneDNN linear layer: one matmul primitive per shape class with M as a runtime
// dimension (gemm:jit keeps that fast, so one primitive serves every batch
// size), bias and epilogue fused as post-ops, weights reordered at most once,
// at pack time.

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/ops/dnnl_state.h"
#include "engine/ops/op_bodies.h"

namespace attnserve::engine::internal {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;

class DnnlPackedLinear final : public PackedLinear {
 public:
  // `packed` holds the reordered weights for kChosen and is empty for kPlain,
  // where the plain weights (owned or borrowed) are used as they are.
  DnnlPackedLinear(PlainLinear plain, DnnlWeightsLayout layout,
                   memory::desc weights_md, Tensor packed)
      : PackedLinear(Backend::kDnnl, plain.n, plain.k, plain.bias != nullptr),
        plain_(std::move(plain)),
        layout_(layout),
        weights_md_(std::move(weights_md)),
        packed_(std::move(packed)) {}

  size_t bytes() const override {
    return plain_.owned_bytes() + packed_.bytes();
  }

  DnnlWeightsLayout layout() const { return layout_; }
  const memory::desc& weights_md() const { return weights_md_; }
  float* weights() const {
    // oneDNN takes non-const handles; it never writes a matmul's weights.
    return const_cast<float*>(
        layout_ == DnnlWeightsLayout::kPlain ? plain_.weight : packed_.data());
  }
  float* bias() const { return const_cast<float*>(plain_.bias); }

 private:
  PlainLinear plain_;  // owned_weight is released once reordered
  DnnlWeightsLayout layout_;
  memory::desc weights_md_;
  Tensor packed_;
};

// Row-major [rows, cols]; rows may be DNNL_RUNTIME_DIM_VAL.
memory::desc RowsDesc(memory::dim rows, memory::dim cols) {
  return memory::desc({rows, cols}, Type::f32, Tag::ab);
}

// The matmul multiplies by K x N weights; our [N, K] row-major matrix is
// exactly that with tag ba, so W^T needs no copy.
memory::desc PlainWeightsDesc(int64_t n, int64_t k) {
  return memory::desc({k, n}, Type::f32, Tag::ba);
}

dnnl::algorithm EltwiseAlgorithm(LinearActivation activation) {
  switch (activation) {
    case LinearActivation::kRelu:
      return dnnl::algorithm::eltwise_relu;
    case LinearActivation::kGelu:
      return dnnl::algorithm::eltwise_gelu_erf;
    case LinearActivation::kSwish:
      return dnnl::algorithm::eltwise_swish;
    case LinearActivation::kNone:
      break;
  }
  return dnnl::algorithm::undef;
}

dnnl::matmul CreateMatmul(const DnnlState& state, const MatmulKey& key,
                          const memory::desc& weights_md) {
  dnnl::post_ops post_ops;
  // The sum post-op adds the previous y; with an eltwise before it oneDNN 2.6
  // falls back to ref:any, so LinearDnnl never asks for both (see
  // SplitEpilogue).
  if (key.accumulate) post_ops.append_sum(1.0f);
  if (key.activation != LinearActivation::kNone) {
    // alpha = 1 for swish: x * sigmoid(1 * x); unused by relu (slope 0) and
    // gelu.
    const float alpha =
        key.activation == LinearActivation::kSwish ? 1.0f : 0.0f;
    post_ops.append_eltwise(1.0f, EltwiseAlgorithm(key.activation), alpha,
                            0.0f);
  }
  dnnl::primitive_attr attr;
  attr.set_post_ops(post_ops);
  const memory::desc src = RowsDesc(DNNL_RUNTIME_DIM_VAL, key.k);
  const memory::desc dst = RowsDesc(DNNL_RUNTIME_DIM_VAL, key.n);
  const dnnl::matmul::desc desc =
      key.bias ? dnnl::matmul::desc(src, weights_md, RowsDesc(1, key.n), dst)
               : dnnl::matmul::desc(src, weights_md, dst);
  return dnnl::matmul(dnnl::matmul::primitive_desc(desc, attr, state.engine));
}

dnnl::matmul& GetMatmul(DnnlState& state, const MatmulKey& key,
                        const memory::desc& weights_md) {
  auto it = state.matmuls.find(key);
  if (it == state.matmuls.end()) {
    it = state.matmuls.emplace(key, CreateMatmul(state, key, weights_md)).first;
  }
  return it->second;
}

// y = y + act(x W^T + b) cannot be one fast primitive (see CreateMatmul):
// compute act(x W^T + b) into scratch, then add. No layer of ours needs this
// combination on the hot path; it exists so every epilogue works on every
// backend.
bool SplitEpilogue(LinearEpilogue epilogue) {
  return epilogue.accumulate && epilogue.activation != LinearActivation::kNone;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PackedLinear>> PackLinearDnnl(
    const OpContext& ctx, PlainLinear plain) {
  DnnlState& state = *ctx.dnnl();
  try {
    const memory::desc plain_md = PlainWeightsDesc(plain.n, plain.k);
    const dnnl::matmul::primitive_desc pd(
        dnnl::matmul::desc(
            RowsDesc(DNNL_RUNTIME_DIM_VAL, plain.k),
            memory::desc({plain.k, plain.n}, Type::f32, Tag::any),
            RowsDesc(DNNL_RUNTIME_DIM_VAL, plain.n)),
        state.engine);
    const memory::desc chosen = pd.weights_desc();
    if (chosen == plain_md) {
      return std::make_unique<DnnlPackedLinear>(
          std::move(plain), DnnlWeightsLayout::kPlain, plain_md, Tensor());
    }
    Tensor packed({static_cast<int64_t>(
        (chosen.get_size() + sizeof(float) - 1) / sizeof(float))});
    memory from(plain_md, state.engine, const_cast<float*>(plain.weight));
    memory to(chosen, state.engine, packed.data());
    dnnl::reorder(from, to).execute(state.stream, from, to);
    state.stream.wait();
    plain.owned_weight.Release();
    plain.weight = nullptr;
    return std::make_unique<DnnlPackedLinear>(std::move(plain),
                                              DnnlWeightsLayout::kChosen,
                                              chosen, std::move(packed));
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN linear pack [", plain.n,
                                            ", ", plain.k, "]: ", e.what()));
  }
}

absl::Status LinearDnnl(const OpContext& ctx, const PackedLinear& w,
                        const float* x, int64_t m, float* y,
                        LinearEpilogue epilogue) {
  const auto& packed = static_cast<const DnnlPackedLinear&>(w);
  DnnlState& state = *ctx.dnnl();
  const int64_t n = w.out_features();
  const int64_t k = w.in_features();
  const bool split = SplitEpilogue(epilogue);
  const MatmulKey key{n,
                      k,
                      packed.layout(),
                      w.has_bias(),
                      epilogue.activation,
                      epilogue.accumulate && !split};
  try {
    dnnl::matmul& matmul = GetMatmul(state, key, packed.weights_md());
    float* dst = split ? state.Scratch(static_cast<size_t>(m * n)) : y;
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC,
         memory(RowsDesc(m, k), state.engine, const_cast<float*>(x))},
        {DNNL_ARG_WEIGHTS,
         memory(packed.weights_md(), state.engine, packed.weights())},
        {DNNL_ARG_DST, memory(RowsDesc(m, n), state.engine, dst)}};
    if (w.has_bias()) {
      args.emplace(DNNL_ARG_BIAS,
                   memory(RowsDesc(1, n), state.engine, packed.bias()));
    }
    matmul.execute(state.stream, args);
    state.stream.wait();
    if (split) {
      for (int64_t i = 0; i < m * n; ++i) y[i] += dst[i];
    }
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat(
        "oneDNN linear [", m, ", ", k, "] x [", n, ", ", k, "]^T: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace attnserve::engine::internal
