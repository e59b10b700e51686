#pragma once
// What the conversion tests (server/convert.h) convert against: a tiny model
// and small request limits, and requests made of token ids.

#include <cstdint>
#include <vector>

#include "server/convert.h"

namespace attnserve::server::testing {

// A 50-token vocabulary, 32 positions, EOS id 2.
inline ModelInfo TinyModelInfo() {
  ModelInfo model;
  model.name = "tiny";
  model.config.vocab_size = 50;
  model.config.max_positions = 32;
  model.config.eos_id = 2;
  return model;
}

// Sources of up to 8 tokens, up to 20 new tokens (5 by default), beams up to 4.
inline RequestLimits SmallRequestLimits() {
  RequestLimits limits;
  limits.max_input_tokens = 8;
  limits.max_new_tokens_limit = 20;
  limits.default_max_new_tokens = 5;
  limits.max_beam_size = 4;
  return limits;
}

inline v1::GenerateRequest IdsGenerateRequest(std::vector<int32_t> ids) {
  v1::GenerateRequest request;
  request.mutable_input_ids()->Add(ids.begin(), ids.end());
  return request;
}

}  // namespace attnserve::server::testing
