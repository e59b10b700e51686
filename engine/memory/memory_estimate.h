#pragma once
// How much memory one request can hold in the engine, so that the server can
// refuse or delay a request before any work instead of failing an allocation
// halfway through it.

#include <cstdint>

#include "engine/decode/generator.h"
#include "engine/format/model_config.h"
#include "engine/ops/compute_type.h"

namespace attnserve::engine {

// The most bytes a sequence of `source_tokens` tokens decoded with `options`
// holds while it is active in a Generator whose model runs `threads` intra-op
// threads (ModelOptions::threads): its encoder output (cross-attention keys
// and values), the self-attention cache of each of its DecoderRows(options)
// rows (beam hypotheses or samples) at full length (plus the one being
// copied while caches grow), its rows of the encoder's and the decode step's
// scratch (sampled rows: a whole row of logits each), its token lists, the
// attention scratch of every thread, and the rows of the positional table it
// reaches. An upper bound, not a measurement: caches grow with the sequence, so
// most requests use less (tests/engine/memory_estimate_test.cc checks it is
// within 4x of what a sequence decoded alone takes at its longest).
//
// Not included: the model's weights, and the padding of an encoder batch of
// several sources (Add pads a batch to its longest source but bounds its
// padded rows, kEncoderChunkRows in generator.cc: a fixed cost per
// generator, not per sequence).
//
// `kv_cache` is the element type of the self-attention caches and the
// cross-attention keys and values (Precision::kv_cache): bfloat16 halves them.
int64_t SequenceMemoryBytes(const ModelConfig& config, int source_tokens,
                            const DecodeOptions& options, int threads = 1,
                            ComputeType kv_cache = ComputeType::kFloat32);

}  // namespace attnserve::engine
