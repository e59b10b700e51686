#pragma once
// The oneDNN half of an OpContext: engine, stream, primitive caches and scratch
// memory.
//
// This is the only header that includes dnnl.hpp. Include it only from
// *_dnnl.cc files, so that the rest of the engine (and everything that includes
// engine headers) never sees oneDNN.
//
// Not thread-safe, like the OpContext that owns it: every member is used by the
// one thread that runs that context's ops.

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/ops/linear.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace attnserve::engine {

// How a PackedLinear stores its weights for oneDNN.
enum class DnnlWeightsLayout {
  kPlain,   // as given, [N, K] row-major (the matmul's K x N weights with tag
            // ba)
  kChosen,  // reordered into the layout the primitive picked for
            // format_tag::any
};

// One cached matmul primitive. M is a runtime dimension (DNNL_RUNTIME_DIM_VAL),
// which keeps gemm:jit, so one primitive serves every batch size; the shape
// class is the weight shape, its layout and the fused epilogue.
struct MatmulKey {
  int64_t n = 0;
  int64_t k = 0;
  DnnlWeightsLayout layout = DnnlWeightsLayout::kPlain;
  bool bias = false;
  LinearActivation activation = LinearActivation::kNone;
  bool accumulate = false;

  friend bool operator==(const MatmulKey& a, const MatmulKey& b) {
    return a.n == b.n && a.k == b.k && a.layout == b.layout &&
           a.bias == b.bias && a.activation == b.activation &&
           a.accumulate == b.accumulate;
  }
  template <typename H>
  friend H AbslHashValue(H h, const MatmulKey& key) {
    return H::combine(std::move(h), key.n, key.k, key.layout, key.bias,
                      key.activation, key.accumulate);
  }
};

struct DnnlState {
  dnnl::engine engine;
  dnnl::stream stream;
  // Created on first use of a shape class and kept for the context's lifetime;
  // a token step only looks them up.
  absl::flat_hash_map<MatmulKey, dnnl::matmul> matmuls;
  // Per-call temporary memory (attention scores, split epilogues). Grows, never
  // shrinks, so steady-state decoding does not allocate.
  std::vector<float> scratch;

  float* Scratch(size_t floats) {
    if (scratch.size() < floats) scratch.resize(floats);
    return scratch.data();
  }
};

}  // namespace attnserve::engine
