// The network of every Hugging Face family against the PyTorch reference
// (scripts/hf_reference/, written from HF's modeling code): for each
// checkpoint in tests/data/hf/<family>/{safetensors,bin}/, the logits of the
// last position of golden.json's "probe" (a source and a decoder prefix,
// computed in float64) on both backends. Decoding rules (forced and banned
// tokens) are not involved: this pins the blocks (positions, norms, gated
// FFN, relative bias, unscaled attention, output scale, logits bias).

#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/network/transformer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace attnserve::engine {
namespace {

namespace fs = std::filesystem;

struct Case {
  std::string family;
  std::string container;  // "safetensors" or "bin"
  Backend backend;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.family << "/" << c.container << "/"
      << (c.backend == Backend::kReference ? "ref" : "dnnl");
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  return info.param.family + "_" + info.param.container + "_" +
         (info.param.backend == Backend::kReference ? "ref" : "dnnl");
}

std::vector<Case> AllCases() {
  std::vector<Case> out;
  for (const char* family :
       {"bart", "mbart", "marian", "m2m100", "t5_v1_0", "t5_v1_1"}) {
    for (const char* container : {"safetensors", "bin"}) {
      for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
        out.push_back({family, container, backend});
      }
    }
  }
  return out;
}

nlohmann::json ReadGolden(const std::string& family) {
  std::ifstream in(fs::path(ATTNSERVE_TEST_DATA_DIR) / "hf" / family /
                   "golden.json");
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str());
}

// The probe's last-position logits, through Encode, CrossKeyValues and one
// DecodeStep per decoder input token (incremental, as decoding runs it).
std::vector<float> ProbeLogits(const Model& model,
                               const std::vector<int32_t>& source,
                               const std::vector<int32_t>& decoder_input) {
  const Transformer& net = model.network();
  const OpContext& ctx = model.context();
  const int32_t src_len = static_cast<int32_t>(source.size());
  TransformerScratch s;
  const std::vector<int32_t> lengths = {src_len};
  EXPECT_TRUE(net.Encode(ctx, source, 1, src_len, lengths, &s).ok());
  Tensor cross({src_len, net.cross_kv_width()});
  EXPECT_TRUE(
      net.CrossKeyValues(ctx, s.memory.data(), src_len, cross.data()).ok());
  const int64_t capacity = static_cast<int64_t>(decoder_input.size());
  Tensor cache({net.self_cache_size(capacity)});
  for (size_t t = 0; t < decoder_input.size(); ++t) {
    DecoderRow row;
    row.token = decoder_input[t];
    row.position = static_cast<int32_t>(t);
    row.self_cache = cache.data();
    row.cache_capacity = capacity;
    row.cross_kv = cross.data();
    row.src_len = src_len;
    const absl::Status status = net.DecodeStep(ctx, {&row, 1}, &s);
    EXPECT_TRUE(status.ok()) << status;
  }
  std::vector<float> logits(model.config().vocab_size);
  for (int slice = 0; slice < net.vocab_slices(); ++slice) {
    EXPECT_TRUE(
        net.ProjectVocabSlice(ctx, s, 1, slice,
                              logits.data() + net.vocab_slice_begin(slice))
            .ok());
  }
  return logits;
}

class HfNetworkTest : public ::testing::TestWithParam<Case> {};

TEST_P(HfNetworkTest, ProbeLogitsMatchTheReference) {
  const Case& c = GetParam();
  const nlohmann::json golden = ReadGolden(c.family);
  const std::string dir =
      (fs::path(ATTNSERVE_TEST_DATA_DIR) / "hf" / c.family / c.container)
          .string();
  absl::StatusOr<std::unique_ptr<Model>> model =
      Model::Load(dir, {c.backend, 2});
  ASSERT_TRUE(model.ok()) << model.status();
  const nlohmann::json& probe = golden.at("probe");
  const std::vector<int32_t> source =
      golden.at("sources")
          .at(probe.at("source_index").get<int>())
          .get<std::vector<int32_t>>();
  const std::vector<float> expected =
      probe.at("last_position_logits").get<std::vector<float>>();
  const std::vector<float> actual =
      ProbeLogits(**model, source,
                  probe.at("decoder_input_ids").get<std::vector<int32_t>>());
  ASSERT_EQ(actual.size(), expected.size());
  // float32 against a float64 reference through a few layers: logits of
  // magnitude up to ~25 agree to ~1e-5 relative; 1e-3 absolute leaves room
  // for the oneDNN kernels' summation order and still catches any wrong
  // block (a missing bias, norm or scale moves logits by > 0.1).
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], 1e-3) << "token " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, HfNetworkTest,
                         ::testing::ValuesIn(AllCases()), CaseName);

}  // namespace
}  // namespace attnserve::engine
