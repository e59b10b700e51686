#pragma once
// Small random models for the memory tests (generator_memory_test,
// memory_estimate_test, model_test): wide enough that caches and encoder
// output outweigh the fixed buffers, long max_positions.

#include <string>
#include <vector>

#include "engine/format/model_config.h"
#include "engine/model.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::engine::testing {

inline ModelConfig MemoryTestConfig(int max_positions = 4096) {
  ModelConfig c = TinyConfig();
  c.d_model = 32;
  c.num_heads = 2;
  c.ffn_dim = 64;
  c.vocab_size = 40;
  c.max_positions = max_positions;
  return c;
}

// Writes a random model of `config` into `dir`; with `eos_bias` the output
// projection gets a bias that makes EOS likely by that many nats.
inline bool WriteMemoryTestModel(const std::string& dir,
                                 const ModelConfig& config,
                                 float eos_bias = 0) {
  RandomModelOptions o;
  o.lm_head_bias = eos_bias != 0;
  std::vector<NamedTensor> tensors = RandomModelTensors(config, o);
  if (eos_bias != 0) {
    for (NamedTensor& t : tensors) {
      if (t.name == "lm_head.bias") t.values[config.eos_id] += eos_bias;
    }
  }
  return WriteModelDir(dir, ConfigJson(config), tensors).ok();
}

inline std::vector<int32_t> CountingSource(int length, int vocab, int salt) {
  std::vector<int32_t> s(length);
  for (int i = 0; i < length; ++i) s[i] = 3 + (i * 7 + salt) % (vocab - 3);
  return s;
}

}  // namespace attnserve::engine::testing
