#pragma once
// How a network's weights are stored and its products run: what
// ModelOptions' compute type and its companions ask for.

#include "engine/ops/compute_type.h"

namespace attnserve::engine {

struct Precision {
  // Every linear's (compute_type.h); norms, softmax, attention and residuals
  // stay float32 whatever it is.
  ComputeType compute_type = ComputeType::kFloat32;
  // Keeps the token tables (embedding lookups) and the output projection in
  // float32 when compute_type is another: the layers nearest the tokens, which
  // some models are most sensitive in, for 2 x vocab x d_model more bytes.
  bool float32_embeddings = false;
  // The element type of the decoder's self-attention KV caches and of the
  // cross-attention keys/values: float32, or bfloat16 for half their memory
  // (each key and value rounded once to nearest even as it is written;
  // attention still computes in float32). No other type is allowed.
  ComputeType kv_cache = ComputeType::kFloat32;

  // The type of the token tables and the output projection.
  ComputeType embeddings() const {
    return float32_embeddings ? ComputeType::kFloat32 : compute_type;
  }
};

}  // namespace attnserve::engine
