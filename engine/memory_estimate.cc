#include "engine/memory_estimate.h"

#include <algorithm>

namespace attnserve::engine {

int64_t SequenceMemoryBytes(const ModelConfig& config, int source_tokens,
                            const DecodeOptions& options) {
  const int64_t d = config.d_model;
  const int64_t layers = config.decoder_layers;
  const int64_t src = std::max(source_tokens, 0);
  const int64_t beam = std::max(options.beam_size, 1);
  const int64_t steps = std::max(options.max_new_tokens, 0) + 1;
  // Cross-attention keys and values: [src, layers * 2 * d_model].
  const int64_t cross_kv = src * layers * 2 * d;
  // Self-attention caches of every hypothesis; beam search may briefly hold a
  // second set while children take over their parents' caches.
  const int64_t self_kv = 2 * beam * steps * layers * 2 * d;
  // Encoder activations of this source (a few [src, d_model] and one
  // [src, ffn_dim] buffer) and one head's attention scores.
  const int64_t encoder = src * (4 * d + config.ffn_dim) + src * src;
  return static_cast<int64_t>(sizeof(float)) * (cross_kv + self_kv + encoder);
}

}  // namespace attnserve::engine
