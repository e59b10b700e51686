// The engine against PyTorch's own modules: tests/data/golden/<variant>/ holds
// a tiny model built from torch.nn.TransformerEncoderLayer/DecoderLayer with
// seeded random weights and the tokens and log-probs torch decodes
// (scripts/make_golden.py regenerates them).

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/decode/generator.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/engine/dnnl_layouts.h"
#include "tests/engine/golden_models.h"

namespace attnserve::engine {
namespace {

namespace fs = std::filesystem;
using testing::GoldenDir;
using testing::GoldenVariants;

struct Expected {
  std::vector<int32_t> ids;
  std::vector<float> log_probs;
  FinishReason reason;
  float score;
};

std::vector<Expected> ParseResults(const nlohmann::json& results) {
  std::vector<Expected> out;
  for (const auto& r : results) {
    Expected e;
    e.ids = r.at("output_ids").get<std::vector<int32_t>>();
    e.log_probs = r.at("log_probs").get<std::vector<float>>();
    e.reason = r.at("finish_reason") == "eos" ? FinishReason::kEos
                                              : FinishReason::kLength;
    e.score = r.at("score").get<float>();
    out.push_back(std::move(e));
  }
  return out;
}

void ExpectMatches(const std::vector<Expected>& expected,
                   const std::vector<SequenceResult>& actual) {
  ASSERT_EQ(expected.size(), actual.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE("source " + std::to_string(i));
    EXPECT_EQ(actual[i].output_ids, expected[i].ids);
    EXPECT_EQ(actual[i].finish_reason, expected[i].reason);
    ASSERT_EQ(actual[i].log_probs.size(), expected[i].log_probs.size());
    for (size_t t = 0; t < expected[i].log_probs.size(); ++t) {
      EXPECT_NEAR(actual[i].log_probs[t], expected[i].log_probs[t], 1e-3)
          << "token " << t;
    }
    EXPECT_NEAR(actual[i].score, expected[i].score, 1e-3);
  }
}

// Decodes the variant's sources greedily and with beam search and compares.
void ExpectDecodesLikePyTorch(const fs::path& dir, Backend backend) {
  std::ifstream in(dir / "golden.json");
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json golden = nlohmann::json::parse(text.str());
  auto model = Model::Load(dir.string(), {backend, 2});
  ASSERT_TRUE(model.ok()) << model.status();
  const auto sources =
      golden.at("sources").get<std::vector<std::vector<int32_t>>>();

  DecodeOptions greedy;
  greedy.max_new_tokens = golden.at("max_new_tokens").get<int>();
  auto batched = GenerateBatch(**model, sources, greedy);
  ASSERT_TRUE(batched.ok()) << batched.status();
  ExpectMatches(ParseResults(golden.at("greedy")), *batched);

  const auto& beam = golden.at("beam");
  DecodeOptions beam_options = greedy;
  beam_options.beam_size = beam.at("beam_size").get<int>();
  beam_options.length_penalty = beam.at("length_penalty").get<float>();
  // These files were made with attnserve's beam search from before it
  // followed transformers >= 4.50 (scripts/attnserve_export.py).
  beam_options.legacy_beam_search = true;
  auto beamed = GenerateBatch(**model, sources, beam_options);
  ASSERT_TRUE(beamed.ok()) << beamed.status();
  ExpectMatches(ParseResults(beam.at("results")), *beamed);
}

class GoldenTest
    : public ::testing::TestWithParam<std::tuple<std::string, Backend>> {};

// oneDNN runs under both of its weight layouts, whichever the host would pick.
TEST_P(GoldenTest, DecodesLikePyTorch) {
  const auto& [variant, backend] = GetParam();
  if (backend == Backend::kReference) {
    return ExpectDecodesLikePyTorch(GoldenDir(variant), backend);
  }
  testing::ForEachDnnlWeightLayout(
      [&] { ExpectDecodesLikePyTorch(GoldenDir(variant), backend); });
}

TEST(GoldenFilesTest, AllVariantsArePresent) {
  // Guards against the parameterised test silently running on nothing.
  EXPECT_GE(GoldenVariants().size(), 4u);
}

INSTANTIATE_TEST_SUITE_P(
    Golden, GoldenTest,
    ::testing::Combine(::testing::ValuesIn(GoldenVariants()),
                       ::testing::Values(Backend::kReference, Backend::kDnnl)),
    [](const auto& info) {
      return std::get<0>(info.param) + "_" +
             BackendName(std::get<1>(info.param));
    });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenTest);

}  // namespace
}  // namespace attnserve::engine
