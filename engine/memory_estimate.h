#pragma once
// How much memory one request can hold in the engine, so that the server can
// refuse or delay a request before any work instead of failing an allocation
// halfway through it.

#include <cstdint>

#include "engine/generator.h"
#include "engine/model_config.h"

namespace attnserve::engine {

// The most bytes a sequence of `source_tokens` tokens decoded with `options`
// holds while it is active in a Generator: its encoder output (cross-attention
// keys and values), every hypothesis' self-attention cache at full length, and
// its share of the encoder's and the decode step's scratch. An upper bound, not
// a measurement: caches grow with the sequence, so most requests use less.
int64_t SequenceMemoryBytes(const ModelConfig& config, int source_tokens,
                            const DecodeOptions& options);

}  // namespace attnserve::engine
