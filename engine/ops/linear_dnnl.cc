// Linear layer for the oneDNN backend. Up to kMaxSmallBatchRows rows (decode
// steps) run our own kernel on the plain weights (linear_small_batch.cc):
// gemm:jit, which repacks the weights on every call, measured 1.5-3x slower
// there.
// More rows (encoder, prefill) run one oneDNN matmul primitive per shape class
// with M as a runtime dimension (gemm:jit keeps that fast, so one primitive
// serves every batch size), bias and epilogue fused as post-ops.
//
// The plain [N, K] weights are kept as given (owned or borrowed), never
// copied, unless oneDNN asks for a blocked layout (not on AVX2, where gemm:jit
// takes plain ones as they are); then a reordered copy is made once, at pack
// time.
//
// Per-call overhead matters in decoding (M = batch * beam, a few dozen rows):
// weights and bias memory objects are made once at pack time, activation ones
// are cached per shape and re-pointed, and the primitive runs through the C
// API with the arguments on the stack.

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/ops/dnnl_state.h"
#include "engine/ops/op_bodies.h"

namespace attnserve::engine::internal {
namespace {

// Crossover between LinearSmallBatch and oneDNN on this 2-core AVX2 host
// (transformer shapes, K 512 or 2048): the kernel wins clearly up to 12-16
// rows, the two are even at 24-32 (see linear_benchmark.cc).
constexpr int64_t kMaxSmallBatchRows = 16;
static_assert(kMaxSmallBatchRows <= kSmallBatchMaxRows);

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;

class DnnlPackedLinear final : public PackedLinear {
 public:
  // `packed` holds the reordered weights for kChosen and is empty for kPlain,
  // where oneDNN uses the plain weights (owned or borrowed) as they are.
  DnnlPackedLinear(PlainLinear plain, DnnlWeightsLayout layout,
                   const memory::desc& weights_md, Tensor packed)
      : PackedLinear(Backend::kDnnl, plain.n, plain.k, plain.bias != nullptr),
        plain_(std::move(plain)),
        layout_(layout),
        packed_(std::move(packed)) {
    // oneDNN takes non-const handles; it never writes a matmul's weights/bias.
    weights_ = memory(weights_md, CpuEngine(),
                      const_cast<float*>(layout_ == DnnlWeightsLayout::kPlain
                                             ? plain_.weight
                                             : packed_.data()));
    if (plain_.bias != nullptr) {
      bias_ = memory(memory::desc({1, plain_.n}, Type::f32, Tag::ab),
                     CpuEngine(), const_cast<float*>(plain_.bias));
    }
  }

  size_t bytes() const override {
    return plain_.owned_bytes() + packed_.bytes();
  }

  const PlainLinear& plain() const { return plain_; }
  DnnlWeightsLayout layout() const { return layout_; }
  // Read-only once constructed, so calls from several contexts may share them.
  const memory& weights() const { return weights_; }
  const memory& bias() const { return bias_; }

 private:
  PlainLinear plain_;
  DnnlWeightsLayout layout_;
  Tensor packed_;
  memory weights_;
  memory bias_;  // empty without bias
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
  // The sum post-op adds the previous y. After an eltwise, oneDNN 2.6 falls
  // back to ref:any, so LinearDnnl never asks for both (see SplitEpilogue).
  if (key.accumulate) post_ops.append_sum(1.0f);
  if (key.activation != LinearActivation::kNone) {
    // alpha = 1 for swish: x * sigmoid(1 * x); relu's slope 0; unused by gelu.
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

const dnnl::matmul& GetMatmul(DnnlState& state, const MatmulKey& key,
                              const memory::desc& weights_md) {
  auto it = state.matmuls.find(key);
  if (it == state.matmuls.end()) {
    it = state.matmuls.emplace(key, CreateMatmul(state, key, weights_md)).first;
  }
  return it->second;
}

// y = y + act(x W^T + b) cannot be one fast primitive (see CreateMatmul):
// compute act(x W^T + b) into scratch, then add. No layer of ours needs this
// combination on the hot path; it exists so every epilogue works everywhere.
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
    // A plain layout means a gemm-based implementation, which packs the
    // weights itself on every call, whichever way round they are stored.
    if (chosen == plain_md ||
        chosen == memory::desc({plain.k, plain.n}, Type::f32, Tag::ab)) {
      return std::make_unique<DnnlPackedLinear>(
          std::move(plain), DnnlWeightsLayout::kPlain, plain_md, Tensor());
    }
    Tensor packed({static_cast<int64_t>(
        (chosen.get_size() + sizeof(float) - 1) / sizeof(float))});
    memory from(plain_md, state.engine, const_cast<float*>(plain.weight));
    memory to(chosen, state.engine, packed.data());
    dnnl::reorder(from, to).execute(state.stream, from, to);
    state.stream.wait();
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
  const int64_t n = w.out_features();
  const int64_t k = w.in_features();
  if (m <= kMaxSmallBatchRows) {
    LinearSmallBatch(ctx.threads(), x, m, packed.plain().weight,
                     packed.plain().bias, n, k, epilogue, y);
    return absl::OkStatus();
  }
  DnnlState& state = *ctx.dnnl();
  const bool split = SplitEpilogue(epilogue);
  const MatmulKey key{n,
                      k,
                      packed.layout(),
                      w.has_bias(),
                      epilogue.activation,
                      epilogue.accumulate && !split};
  dnnl_status_t status;
  try {
    const dnnl::matmul& matmul =
        GetMatmul(state, key, packed.weights().get_desc());
    float* dst = split ? state.Scratch(static_cast<size_t>(m * n)) : y;
    state.TrimActivations();
    dnnl_exec_arg_t args[] = {
        {DNNL_ARG_SRC, state.Activation(ArgRole::kSrc, m, k, x)},
        {DNNL_ARG_WEIGHTS, packed.weights().get()},
        {DNNL_ARG_DST, state.Activation(ArgRole::kDst, m, n, dst)},
        {DNNL_ARG_BIAS, w.has_bias() ? packed.bias().get() : nullptr},
    };
    status = dnnl_primitive_execute(matmul.get(), state.stream.get(),
                                    w.has_bias() ? 4 : 3, args);
    if (status == dnnl_success) status = dnnl_stream_wait(state.stream.get());
  } catch (const dnnl::error& e) {
    status = e.status;
  }
  if (status != dnnl_success) {
    return absl::InternalError(
        absl::StrCat("oneDNN linear [", m, ", ", k, "] x [", n, ", ", k,
                     "]^T failed with status ", static_cast<int>(status)));
  }
  if (split) {
    const float* activated = state.Scratch(0);
    for (int64_t i = 0; i < m * n; ++i) y[i] += activated[i];
  }
  return absl::OkStatus();
}

}  // namespace attnserve::engine::internal
