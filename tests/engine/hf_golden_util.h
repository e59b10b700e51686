#pragma once
// Reading the golden files of tests/data/hf/<family>/ (golden.json from
// scripts/make_hf_checkpoints.py, controls.json from
// scripts/make_controls_golden.py) into engine types.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/decode/generator.h"
#include "engine/format/generation_config.h"
#include "nlohmann/json.hpp"

namespace attnserve::engine::testing {

inline std::filesystem::path HfDir(const std::string& family) {
  return std::filesystem::path(ATTNSERVE_TEST_DATA_DIR) / "hf" / family;
}

// tests/data/hf/<family>/<file>, parsed.
inline nlohmann::json ReadHfJson(const std::string& family,
                                 const std::string& file) {
  std::ifstream in(HfDir(family) / file);
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str());
}

// A golden file's "generation" (resolved: EOS and forced EOS as lists, bad
// words after the EOS filter; controls.json adds the generation controls) as
// a GenerationConfig.
inline GenerationConfig ParseGeneration(const nlohmann::json& g) {
  GenerationConfig c;
  c.decoder_start_id = g.at("decoder_start_token_id").get<int32_t>();
  c.eos_ids = g.at("eos_token_id").get<std::vector<int32_t>>();
  c.pad_id = g.at("pad_token_id").get<int32_t>();
  if (g.contains("forced_bos_token_id") && !g["forced_bos_token_id"].is_null())
    c.forced_bos_id = g["forced_bos_token_id"].get<int32_t>();
  if (g.contains("forced_eos_token_id") && !g["forced_eos_token_id"].is_null())
    c.forced_eos_ids = g["forced_eos_token_id"].get<std::vector<int32_t>>();
  if (g.contains("bad_words_ids") && !g["bad_words_ids"].is_null()) {
    c.bad_words_ids =
        g["bad_words_ids"].get<std::vector<std::vector<int32_t>>>();
  }
  c.max_length = g.at("max_length").get<int>();
  c.min_length = g.value("min_length", 0);
  c.no_repeat_ngram_size = g.value("no_repeat_ngram_size", 0);
  c.num_beams = g.value("num_beams", 1);
  c.length_penalty = g.value("length_penalty", 1.0f);
  const nlohmann::json& es = g.at("early_stopping");
  if (es.is_string()) {
    c.early_stopping = EarlyStopping::kNever;  // "never"
  } else {
    c.early_stopping =
        es.get<bool>() ? EarlyStopping::kTrue : EarlyStopping::kHeuristic;
  }
  c.do_sample = g.value("do_sample", false);
  c.temperature = g.value("temperature", 1.0f);
  c.top_k = g.value("top_k", 50);
  c.top_p = g.value("top_p", 1.0f);
  c.repetition_penalty = g.value("repetition_penalty", 1.0f);
  // The reference folds min_new_tokens into min_length (as HF does); the
  // engine's DecodeOptions does the same itself.
  c.min_new_tokens = g.value("min_new_tokens", 0);
  c.suppress_tokens = g.value("suppress_tokens", std::vector<int32_t>{});
  c.num_return_sequences = g.value("num_return_sequences", 1);
  return c;
}

// Our output with its EOS, as the golden files list "tokens".
inline std::vector<int32_t> TokensWithEos(const SequenceResult& r) {
  std::vector<int32_t> t = r.output_ids;
  if (r.finish_reason == FinishReason::kEos) t.push_back(r.eos_id);
  return t;
}
inline std::vector<float> LogProbsWithEos(const SequenceResult& r) {
  std::vector<float> lp = r.log_probs;
  if (r.finish_reason == FinishReason::kEos) lp.push_back(r.eos_log_prob);
  return lp;
}

}  // namespace attnserve::engine::testing
