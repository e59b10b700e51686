// Hugging Face checkpoints decoded as transformers decodes them:
// tests/data/hf/<family>/golden.json (scripts/make_hf_checkpoints.py, from a
// float64 PyTorch reference; docs/hf-reference.md says what each field
// holds) against the engine's greedy and beam search with the generation
// settings the file records, on both backends, each source alone, all six in
// one batch, and admitted one per step into a running batch of greedy and beam
// sequences. The decoding rules they exercise are tested on their own in
// logits_rules_test.cc, decoding_test.cc and generator_test.cc.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/decode/decode_defaults.h"
#include "engine/decode/generator.h"
#include "engine/model.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/engine/hf_golden_util.h"

namespace attnserve::engine {
namespace {

namespace fs = std::filesystem;

const char* const kFamilies[] = {"marian", "t5_v1_0", "t5_v1_1",
                                 "bart",   "mbart",   "m2m100"};

using testing::LogProbsWithEos;
using testing::ParseGeneration;
using testing::TokensWithEos;

nlohmann::json ReadGolden(const std::string& family) {
  return testing::ReadHfJson(family, "golden.json");
}

void ExpectLike(const nlohmann::json& expected, const SequenceResult& actual,
                const char* log_probs_key) {
  EXPECT_EQ(TokensWithEos(actual),
            expected.at("tokens").get<std::vector<int32_t>>());
  EXPECT_EQ(actual.finish_reason, expected.at("finish_reason") == "eos"
                                      ? FinishReason::kEos
                                      : FinishReason::kLength);
  const auto lps = expected.at(log_probs_key).get<std::vector<double>>();
  const std::vector<float> got = LogProbsWithEos(actual);
  ASSERT_EQ(got.size(), lps.size());
  for (size_t t = 0; t < lps.size(); ++t)
    EXPECT_NEAR(got[t], lps[t], 1e-4) << "token " << t;
}

class HfGoldenTest
    : public ::testing::TestWithParam<std::tuple<const char*, Backend>> {};

TEST_P(HfGoldenTest, DecodesLikeTransformers) {
  const auto& [family, backend] = GetParam();
  const nlohmann::json golden = ReadGolden(family);
  for (const char* format : {"safetensors", "bin"}) {
    SCOPED_TRACE(format);
    const fs::path dir =
        fs::path(ATTNSERVE_TEST_DATA_DIR) / "hf" / family / format;
    auto model = Model::Load(dir.string(), {backend, 2});
    ASSERT_TRUE(model.ok()) << model.status();
    const auto sources =
        golden.at("sources").get<std::vector<std::vector<int32_t>>>();
    const DecodeOptions defaults =
        DecodeOptionsFromGeneration(ParseGeneration(golden.at("generation")));

    DecodeOptions greedy = defaults;
    greedy.beam_size = 1;
    DecodeOptions beam = defaults;
    beam.beam_size = golden.at("beam").at("num_beams").get<int>();
    for (const DecodeOptions& options : {greedy, beam}) {
      SCOPED_TRACE(options.beam_size);
      const bool is_beam = options.beam_size > 1;
      const nlohmann::json& expected =
          is_beam ? golden.at("beam").at("results") : golden.at("greedy");
      // Alone, as the golden file was made, and all in one batch.
      std::vector<SequenceResult> alone;
      for (const auto& s : sources) {
        auto r = GenerateBatch(**model, {s}, options);
        ASSERT_TRUE(r.ok()) << r.status();
        alone.push_back((*r)[0]);
      }
      auto batched = GenerateBatch(**model, sources, options);
      ASSERT_TRUE(batched.ok()) << batched.status();
      for (size_t i = 0; i < sources.size(); ++i) {
        SCOPED_TRACE("source " + std::to_string(i));
        for (const SequenceResult* r : {&alone[i], &(*batched)[i]}) {
          ExpectLike(expected[i], *r, is_beam ? "token_logprobs" : "logprobs");
          if (is_beam) {
            EXPECT_NEAR(r->score, expected[i].at("score").get<double>(), 1e-4);
          }
        }
      }
    }
  }
}

// Batch invariance under continuous batching: sources join a running batch
// one per step, greedy and beam alternating, and each still decodes as
// golden.json says (as it does alone, above).
TEST_P(HfGoldenTest, AdmittedMidFlightAmongMixedOptions) {
  const auto& [family, backend] = GetParam();
  const nlohmann::json golden = ReadGolden(family);
  const fs::path dir =
      fs::path(ATTNSERVE_TEST_DATA_DIR) / "hf" / family / "safetensors";
  auto model = Model::Load(dir.string(), {backend, 2});
  ASSERT_TRUE(model.ok()) << model.status();
  auto generator = Generator::Create(model->get());
  ASSERT_TRUE(generator.ok());
  const auto sources =
      golden.at("sources").get<std::vector<std::vector<int32_t>>>();
  const DecodeOptions defaults =
      DecodeOptionsFromGeneration(ParseGeneration(golden.at("generation")));
  const int beam_size = golden.at("beam").at("num_beams").get<int>();
  auto is_beam = [](size_t i) { return i % 2 == 1; };
  std::vector<SequenceResult> results(sources.size());
  size_t next = 0;
  while (next < sources.size() || !(*generator)->empty()) {
    if (next < sources.size()) {
      SequenceInput in;
      in.id = next;
      in.source = sources[next];
      in.options = defaults;
      in.options.beam_size = is_beam(next) ? beam_size : 1;
      ASSERT_TRUE((*generator)->Add({in}).ok());
      ++next;
    }
    auto events = (*generator)->Step();
    ASSERT_TRUE(events.ok()) << events.status();
    for (StepEvent& e : *events) {
      ASSERT_TRUE(e.status.ok()) << e.status;
      if (e.finished) results[e.id] = std::move(e.result);
    }
  }
  for (size_t i = 0; i < sources.size(); ++i) {
    SCOPED_TRACE("source " + std::to_string(i));
    const nlohmann::json& expected = is_beam(i)
                                         ? golden.at("beam").at("results")[i]
                                         : golden.at("greedy")[i];
    ExpectLike(expected, results[i],
               is_beam(i) ? "token_logprobs" : "logprobs");
  }
}

INSTANTIATE_TEST_SUITE_P(
    Hf, HfGoldenTest,
    ::testing::Combine(::testing::ValuesIn(kFamilies),
                       ::testing::Values(Backend::kReference, Backend::kDnnl)),
    [](const auto& info) {
      return std::string(std::get<0>(info.param)) + "_" +
             BackendName(std::get<1>(info.param));
    });

// The files the test above reads are present and say what it assumes.
TEST(HfGoldenFilesTest, EveryFamilyHasGoldenDecodes) {
  for (const char* family : kFamilies) {
    SCOPED_TRACE(family);
    const nlohmann::json golden = ReadGolden(family);
    const GenerationConfig g = ParseGeneration(golden.at("generation"));
    EXPECT_FALSE(g.eos_ids.empty());
    EXPECT_GT(g.max_length, 1);
    const size_t sources = golden.at("sources").size();
    EXPECT_EQ(sources, 6u);
    EXPECT_EQ(golden.at("greedy").size(), sources);
    EXPECT_EQ(golden.at("beam").at("results").size(), sources);
    for (const char* format : {"safetensors", "bin"}) {
      EXPECT_TRUE(fs::exists(fs::path(ATTNSERVE_TEST_DATA_DIR) / "hf" / family /
                             format / "config.json"))
          << format;
    }
  }
}

}  // namespace
}  // namespace attnserve::engine
