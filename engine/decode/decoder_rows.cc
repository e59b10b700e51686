// DecoderRows (generator.h) on its own: the memory estimate and the server's
// admission use it without the generator (and the fuzz targets link it
// without oneDNN).

#include <algorithm>

#include "engine/decode/generator.h"

namespace attnserve::engine {

int DecoderRows(const DecodeOptions& options) {
  if (options.beam_size > 1) return options.beam_size;
  return options.do_sample ? std::max(options.num_return_sequences, 1) : 1;
}

}  // namespace attnserve::engine
