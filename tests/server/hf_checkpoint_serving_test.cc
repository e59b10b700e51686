// Hugging Face checkpoints served through the real server (issue 16): every
// family of tests/data/hf/ served straight from its checkpoint directory
// (model.safetensors and pytorch_model.bin) and from the attnserve directory
// that scripts/attnserve-convert writes from each, answers golden.json's
// sources with golden.json's tokens, with the model's own decoding defaults.
// Also: GetModelInfo's layout, the startup line and the model-info metric
// naming it, streaming against unary, and concurrent requests (batched
// together) against the single-request answers.

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/generator_engine.h"
#include "server/prometheus_metrics.h"
#include "server/server.h"
#include "tests/engine/test_model_writer.h"
#include "tests/server/attnserve_binary.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/loopback_server_options.h"
#include "tests/server/subprocess.h"

namespace attnserve::server {
namespace {

namespace fs = std::filesystem;
namespace model_testing = ::attnserve::engine::testing;

using ::attnserve::server::testing::Connect;
using ::attnserve::server::testing::Generate;
using ::attnserve::server::testing::GenerateStream;
using ::attnserve::server::testing::PendingCall;
using ::attnserve::server::testing::RunProgram;
using ::attnserve::server::testing::StreamResult;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

fs::path FamilyDir(const std::string& family) {
  return fs::path(ATTNSERVE_SOURCE_DIR) / "tests" / "data" / "hf" / family;
}

nlohmann::json ReadGolden(const std::string& family) {
  std::ifstream in(FamilyDir(family) / "golden.json");
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str());
}

// "hf-" and the checkpoint's model_type (both T5 versions are "t5").
std::string HfLayout(const nlohmann::json& golden) {
  return absl::StrCat("hf-", golden.at("model_type").get<std::string>());
}

// What the API answers for a golden result: its tokens without the final EOS
// (docs/api.md: output_ids hold neither the start token nor EOS).
struct Expected {
  std::vector<int32_t> output_ids;
  v1::FinishReason finish_reason;
};
Expected FromGolden(const nlohmann::json& result) {
  Expected expected;
  expected.output_ids = result.at("tokens").get<std::vector<int32_t>>();
  const std::string reason = result.at("finish_reason").get<std::string>();
  if (reason == "eos") {
    EXPECT_FALSE(expected.output_ids.empty());
    if (!expected.output_ids.empty()) expected.output_ids.pop_back();
    expected.finish_reason = v1::FINISH_REASON_EOS;
  } else {
    EXPECT_EQ(reason, "length");
    expected.finish_reason = v1::FINISH_REASON_LENGTH;
  }
  return expected;
}

// Runs scripts/attnserve-convert (Debian's python3 with python3-torch, which
// scripts/setup.sh installs) from `hf_dir` into `out`.
void Convert(const fs::path& hf_dir, const std::string& out) {
  const testing::RunResult run = RunProgram(
      {"/usr/bin/python3",
       (fs::path(ATTNSERVE_SOURCE_DIR) / "scripts" / "attnserve-convert")
           .string(),
       "--model", hf_dir.string(), "--output_dir", out},
      "", absl::Seconds(120));
  ASSERT_EQ(run.exit_code, std::optional<int>(0))
      << "attnserve-convert " << hf_dir << ": " << run.output;
}

// An in-process server over the real engine on one model directory.
class ServedModel {
 public:
  explicit ServedModel(const std::string& model_dir) {
    engine::ModelOptions model_options;
    model_options.backend = engine::Backend::kDnnl;
    model_options.threads = 1;
    absl::StatusOr<std::unique_ptr<GeneratorEngine>> engine =
        GeneratorEngine::Load(model_dir, model_options);
    if (!engine.ok()) {
      ADD_FAILURE() << model_dir << ": " << engine.status();
      return;
    }
    ServerOptions options = testing::LoopbackServerOptions();
    // The model's limits (max_positions), not the fake engine's.
    options.limits.max_input_tokens = 0;
    options.limits.max_new_tokens_limit = 0;
    options.batcher.batching.max_batch_size = 32;
    options.batcher.batching.max_queue_delay = absl::Milliseconds(5);
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Create(options, *std::move(engine));
    if (!server.ok()) {
      ADD_FAILURE() << model_dir << ": " << server.status();
      return;
    }
    server_ = *std::move(server);
    stub_ = v1::Seq2Seq::NewStub(Connect(server_->port()));
  }

  bool ok() const { return stub_ != nullptr; }
  v1::Seq2Seq::Stub& stub() { return *stub_; }

  v1::GetModelInfoResponse Info() {
    grpc::ClientContext context;
    v1::GetModelInfoResponse info;
    const grpc::Status status =
        stub_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return info;
  }

  v1::GenerateResponse Call(const v1::GenerateRequest& request) {
    v1::GenerateResponse response;
    const grpc::Status status = Generate(*stub_, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

 private:
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::Seq2Seq::Stub> stub_;
};

// A source as golden.json lists it, with the model's defaults for everything
// else (no max_new_tokens: generation_config.json's max_length decides) and
// beam_size 1 when `greedy` (unset: the model's num_beams, 4 here).
v1::GenerateRequest Request(const nlohmann::json& source, bool greedy) {
  v1::GenerateRequest request;
  for (int32_t id : source.get<std::vector<int32_t>>())
    request.add_input_ids(id);
  if (greedy) request.set_beam_size(1);
  request.set_return_log_probs(true);
  return request;
}

void ExpectAnswer(const v1::GenerateResponse& response,
                  const Expected& expected, const std::string& what) {
  EXPECT_THAT(response.output_ids(), ElementsAreArray(expected.output_ids))
      << what;
  EXPECT_EQ(response.finish_reason(), expected.finish_reason) << what;
}

class HfCheckpointServingTest : public ::testing::TestWithParam<std::string> {};

// The checkpoint as downloaded (both weight files) and converted from each:
// golden.json's greedy and beam tokens from all four, and the layout each was
// read in.
TEST_P(HfCheckpointServingTest, ServesGoldenTokensAsDownloadedAndConverted) {
  const std::string family = GetParam();
  const nlohmann::json golden = ReadGolden(family);
  ASSERT_EQ(golden.at("generation").at("num_beams").get<int>(), 4)
      << "the beam goldens are beam-4, the model's default";
  const nlohmann::json& sources = golden.at("sources");
  const nlohmann::json& greedy = golden.at("greedy");
  const nlohmann::json& beam = golden.at("beam").at("results");
  ASSERT_EQ(greedy.size(), sources.size());
  ASSERT_EQ(beam.size(), sources.size());

  model_testing::TempDir converted_safetensors("hf_serving_st");
  model_testing::TempDir converted_bin("hf_serving_bin");
  ASSERT_NO_FATAL_FAILURE(
      Convert(FamilyDir(family) / "safetensors", converted_safetensors.path()));
  ASSERT_NO_FATAL_FAILURE(
      Convert(FamilyDir(family) / "bin", converted_bin.path()));
  struct Served {
    std::string name;
    std::string dir;
    std::string layout;
  };
  const std::vector<Served> dirs = {
      {"safetensors", (FamilyDir(family) / "safetensors").string(),
       HfLayout(golden)},
      {"bin", (FamilyDir(family) / "bin").string(), HfLayout(golden)},
      {"converted safetensors", converted_safetensors.path(), "attnserve"},
      {"converted bin", converted_bin.path(), "attnserve"},
  };
  for (const Served& served : dirs) {
    SCOPED_TRACE(absl::StrCat(family, " ", served.name, " (", served.dir, ")"));
    ServedModel model(served.dir);
    ASSERT_TRUE(model.ok());
    const v1::GetModelInfoResponse info = model.Info();
    EXPECT_EQ(info.layout(), served.layout);
    EXPECT_FALSE(info.has_tokenizer());  // the test checkpoints ship none
    for (size_t i = 0; i < sources.size(); ++i) {
      const std::string what = absl::StrCat("source ", i);
      const v1::GenerateResponse g = model.Call(Request(sources[i], true));
      ExpectAnswer(g, FromGolden(greedy[i]), what + " greedy");
      // Log-probs per token, EOS's excluded as the API does: within 1e-3 of
      // the float64 reference (the tolerance).
      const std::vector<double> logprobs =
          greedy[i].at("logprobs").get<std::vector<double>>();
      ASSERT_GE(logprobs.size(), static_cast<size_t>(g.log_probs_size()));
      for (int t = 0; t < g.log_probs_size(); ++t) {
        EXPECT_NEAR(g.log_probs(t), logprobs[t], 1e-3)
            << what << " token " << t;
      }
      ExpectAnswer(model.Call(Request(sources[i], false)), FromGolden(beam[i]),
                   what + " default (beam 4)");
    }
  }
}

// Requests in flight together (greedy and beam, every source twice), which
// the batcher decodes in shared batches, answer as each does alone.
TEST_P(HfCheckpointServingTest, ConcurrentRequestsAnswerAsAlone) {
  const std::string family = GetParam();
  const nlohmann::json golden = ReadGolden(family);
  const nlohmann::json& sources = golden.at("sources");
  ServedModel model((FamilyDir(family) / "safetensors").string());
  ASSERT_TRUE(model.ok());
  std::vector<v1::GenerateRequest> requests;
  for (int round = 0; round < 2; ++round) {
    for (const nlohmann::json& source : sources) {
      requests.push_back(Request(source, true));
      requests.push_back(Request(source, false));
    }
  }
  std::vector<v1::GenerateResponse> alone;
  for (const v1::GenerateRequest& request : requests)
    alone.push_back(model.Call(request));
  std::vector<std::unique_ptr<PendingCall>> calls;
  for (const v1::GenerateRequest& request : requests)
    calls.push_back(std::make_unique<PendingCall>(model.stub(), request));
  for (size_t i = 0; i < calls.size(); ++i) {
    const std::string what = absl::StrCat(family, " request ", i);
    ASSERT_TRUE(calls[i]->Wait().ok())
        << what << ": " << calls[i]->Wait().error_message();
    const v1::GenerateResponse& together = calls[i]->response();
    EXPECT_THAT(together.output_ids(), ElementsAreArray(alone[i].output_ids()))
        << what;
    EXPECT_EQ(together.finish_reason(), alone[i].finish_reason()) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, HfCheckpointServingTest,
                         ::testing::Values("marian", "t5_v1_0", "t5_v1_1",
                                           "bart", "mbart", "m2m100"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           return p.param;
                         });

// GenerateStream's messages concatenated are the unary answer (greedy and
// the default beam), on a checkpoint served as downloaded.
TEST(HfCheckpointStreamingTest, StreamingEqualsUnary) {
  const nlohmann::json golden = ReadGolden("t5_v1_1");
  ServedModel model((FamilyDir("t5_v1_1") / "bin").string());
  ASSERT_TRUE(model.ok());
  for (const nlohmann::json& source : golden.at("sources")) {
    for (bool greedy : {true, false}) {
      const v1::GenerateRequest request = Request(source, greedy);
      const v1::GenerateResponse unary = model.Call(request);
      const StreamResult stream = GenerateStream(model.stub(), request);
      ASSERT_TRUE(stream.status.ok()) << stream.status.error_message();
      const v1::GenerateResponse streamed = stream.Concatenated();
      EXPECT_THAT(streamed.output_ids(), ElementsAreArray(unary.output_ids()));
      EXPECT_EQ(streamed.finish_reason(), unary.finish_reason());
    }
  }
}

// The model-info metric carries the layout label.
TEST(HfCheckpointMetricsTest, ModelInfoNamesTheLayout) {
  engine::ModelOptions model_options;
  model_options.threads = 1;
  absl::StatusOr<std::unique_ptr<GeneratorEngine>> engine =
      GeneratorEngine::Load((FamilyDir("marian") / "safetensors").string(),
                            model_options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  PrometheusMetrics metrics((*engine)->model_info(), 8);
  bool found = false;
  for (const prometheus::MetricFamily& family : metrics.Collect()) {
    if (family.name != "attnserve_model_info") continue;
    ASSERT_EQ(family.metric.size(), 1u);
    for (const prometheus::ClientMetric::Label& label :
         family.metric[0].label) {
      if (label.name == "layout") {
        EXPECT_EQ(label.value, "hf-marian");
        found = true;
      }
    }
  }
  EXPECT_TRUE(found) << "attnserve_model_info has no layout label";
}

// build/attnserve itself on a checkpoint directory: the startup line names
// the layout, and it answers golden.json's first source.
TEST(HfCheckpointBinaryTest, StartupLineNamesTheLayout) {
  const nlohmann::json golden = ReadGolden("m2m100");
  absl::StatusOr<testing::StartedServer> server = testing::StartAttnserve(
      testing::TestServerFlags((FamilyDir("m2m100") / "safetensors").string()));
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_THAT(
      server->startup_line,
      HasSubstr(
          "serving model safetensors "
          "(layout hf-m2m100, compute_type float32, kv_cache_dtype float32;"));
  std::unique_ptr<v1::Seq2Seq::Stub> stub =
      v1::Seq2Seq::NewStub(Connect(server->port));
  v1::GenerateResponse response;
  const grpc::Status status =
      Generate(*stub, Request(golden.at("sources")[0], true), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ExpectAnswer(response, FromGolden(golden.at("greedy")[0]), "m2m100 source 0");
}

}  // namespace
}  // namespace attnserve::server
