#include "engine/memory/memory_estimate.h"

#include <algorithm>

namespace attnserve::engine {
namespace {

// Mirrors of the constants that size what the estimate counts; the test
// measures the generator against it, so a change there that outgrows this
// shows.
constexpr int64_t kVocabSliceTokens = 4096;  // transformer.cc
constexpr int64_t kQueryChunk = 128;         // attention_dnnl.cc
constexpr int64_t kPositionBlockRows = 256;  // positions.h
// oneDNN's matmul scratchpad (DnnlState::matmul_scratchpad), shared by the
// context's matmuls, per thread: measured at 132 KB for 2 threads on the base
// model's encoder shapes (512-row products), none for small models.
constexpr int64_t kMatmulScratchpadBytesPerThread = int64_t{256} << 10;

}  // namespace

int64_t SequenceMemoryBytes(const ModelConfig& config, int source_tokens,
                            const DecodeOptions& options, int threads,
                            ComputeType kv_cache) {
  const int64_t d = config.d_model;
  const int64_t a = config.attention_dim();  // q, k, v and cache widths
  // The FFN's hidden rows; a gated FFN holds the fused product and its
  // gated half.
  const int64_t f =
      config.gated_ffn ? 3 * int64_t{config.ffn_dim} : int64_t{config.ffn_dim};
  const int64_t layers = config.decoder_layers;
  const int64_t src = std::max(source_tokens, 1);
  // Decoder rows: beam_size hypotheses, or num_return_sequences samples.
  const int64_t beam = std::max(DecoderRows(options), 1);
  const int64_t steps = std::max(options.max_new_tokens, 1);
  const int64_t t = std::max(threads, 1);
  const int64_t longest = std::max(src, steps);

  // Floats. Cross-attention keys and values: [src, layers * 2 * a].
  const int64_t cross_kv = src * layers * 2 * a;
  // Self-attention caches, [layers, 2, steps, a] each at full length: one per
  // hypothesis (beam search keeps `beam` and reuses them from step to step),
  // and while they grow one hypothesis holds its old cache beside the new.
  const int64_t self_kv = (beam + 1) * layers * 2 * steps * a;
  // Encoder scratch over the source's rows (x, h, memory, q|k|v, attention
  // output, the feed-forward hidden layer), its attention scores (each thread
  // holds a chunk of queries against every key), and the decode step's: per
  // row x, h, q|k|v, q, attention output, feed-forward, one vocabulary slice
  // of logits, and every thread's scores of all heads over the longest keys.
  const int64_t encoder =
      src * (3 * d + 5 * a + f) + t * std::min(src, kQueryChunk) * src;
  const int64_t step =
      beam * (2 * d + 5 * a + f +
              std::min<int64_t>(config.vocab_size, kVocabSliceTokens)) +
      t * config.num_heads * longest;
  // The positional table's rows up to the longest position, whole blocks;
  // a relative position bias's per-head rows over every distance.
  const int64_t positions = (longest + kPositionBlockRows - 1) /
                            kPositionBlockRows * kPositionBlockRows * d;
  const int64_t relative_bias = config.relative_attention_num_buckets > 0
                                    ? config.num_heads * 2 * longest
                                    : 0;
  // Sampled rows keep their whole row of logits for the draw, and the draw
  // one processed copy of it.
  const int64_t sampling =
      options.do_sample ? (beam + 1) * int64_t{config.vocab_size} : 0;
  const int64_t floats = encoder + step + positions + relative_bias + sampling;
  const int64_t kv_bytes = ComputeTypeBytes(kv_cache) * (cross_kv + self_kv);
  // Token lists (ids and log-probs, 8 bytes a token) of the live and the
  // finished hypotheses, and their top_log_probs lists (8 bytes an entry
  // plus a list's own 24).
  const int64_t per_token =
      8 + (options.top_log_probs > 0 ? 24 + 8 * options.top_log_probs : 0);
  const int64_t tokens = 2 * beam * steps * per_token;
  return static_cast<int64_t>(sizeof(float)) * floats + kv_bytes + tokens +
         t * kMatmulScratchpadBytesPerThread;
}

}  // namespace attnserve::engine
