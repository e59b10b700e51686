// GenerateRequest.target_prefix (a text; shipped as target_prefix_text)
// through the real server and engine, with the Hugging Face tokenizers of
// tests/data/hf_tokenizers/: a random model sized for each tokenizer, with
// that family's special ids (and forced BOS where the family has one), answers
// a request with target_prefix exactly as the same request with the
// target_prefix_ids golden.json gives for the text's target side
// (scripts/make_hf_tokenizer_golden.py), the forced BOS first where the model
// forces one, as a transformers user forces decoder_input_ids.

#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/generator_engine.h"
#include "server/server.h"
#include "server/tokenizers/tokenizer.h"
#include "tests/engine/test_model_writer.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/loopback_server_options.h"

namespace attnserve::server {
namespace {

namespace fs = std::filesystem;
namespace model_testing = ::attnserve::engine::testing;

using ::attnserve::server::testing::Connect;
using ::attnserve::server::testing::Generate;
using ::testing::ElementsAreArray;

fs::path TokenizerDir(const std::string& family) {
  return fs::path(ATTNSERVE_SOURCE_DIR) / "tests" / "data" / "hf_tokenizers" /
         family;
}

nlohmann::json ReadJson(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
}

// A family's model: its special ids as the Hugging Face checkpoints have
// them.
struct Family {
  std::string dir;   // under tests/data/hf_tokenizers/
  std::string kind;  // config.json's "tokenizer"
  // -1: vocab.json's "<pad>" (Marian's pad is its last token, and starts the
  // decoder).
  int pad_id, bos_id, eos_id, decoder_start_id;
  std::string forced_bos;  // a language code, "<s>" (BART) or "" (none)
};

void PrintTo(const Family& family, std::ostream* os) { *os << family.dir; }

// The forced BOS's id, or -1.
int32_t ForcedBosId(const Family& family, const Tokenizer& tokenizer) {
  if (family.forced_bos.empty()) return -1;
  if (family.forced_bos == "<s>") return family.bos_id;
  absl::StatusOr<int32_t> id = tokenizer.LanguageId(family.forced_bos);
  EXPECT_TRUE(id.ok()) << id.status();
  return id.ok() ? *id : -1;
}

// golden.json's target-side ids of `text`.
std::vector<int32_t> GoldenPrefix(const nlohmann::json& golden,
                                  const std::string& text) {
  for (const nlohmann::json& c : golden.at("target_prefix")) {
    if (c.at("text") == text) return c.at("ids").get<std::vector<int32_t>>();
  }
  ADD_FAILURE() << "golden.json has no target_prefix for " << text;
  return {};
}

// A random model directory holding the family's tokenizer files, served
// in-process.
class ServedFamily {
 public:
  explicit ServedFamily(const Family& family) : dir_("target_prefix_text") {
    const nlohmann::json tokenizer_config =
        ReadJson(TokenizerDir(family.dir) / "config.json");
    engine::ModelConfig config = model_testing::TinyConfig();
    config.vocab_size = tokenizer_config.at("vocab_size").get<int>();
    const int vocab_pad =
        family.pad_id < 0 ? ReadJson(TokenizerDir(family.dir) / "vocab.json")
                                .at("<pad>")
                                .get<int>()
                          : -1;
    config.pad_id = family.pad_id < 0 ? vocab_pad : family.pad_id;
    config.bos_id = family.bos_id < 0 ? vocab_pad : family.bos_id;
    config.eos_id = family.eos_id;
    config.decoder_start_id =
        family.decoder_start_id < 0 ? vocab_pad : family.decoder_start_id;
    nlohmann::json config_json =
        nlohmann::json::parse(model_testing::ConfigJson(config));
    config_json["tokenizer"] = family.kind;
    model_testing::RandomModelOptions random;
    random.seed = 16;
    const absl::Status written = model_testing::WriteModelDir(
        dir_.path(), config_json.dump(),
        model_testing::RandomModelTensors(config, random));
    if (!written.ok()) {
      ADD_FAILURE() << written;
      return;
    }
    for (const fs::directory_entry& entry :
         fs::directory_iterator(TokenizerDir(family.dir))) {
      const std::string name = entry.path().filename().string();
      if (name == "config.json" || name == "golden.json") continue;
      fs::copy_file(entry.path(), fs::path(dir_.path()) / name);
    }
    absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
        LoadTokenizer(dir_.path());
    if (!tokenizer.ok() || *tokenizer == nullptr) {
      ADD_FAILURE() << family.dir << ": no tokenizer: " << tokenizer.status();
      return;
    }
    tokenizer_ = tokenizer->get();
    forced_bos_id_ = ForcedBosId(family, *tokenizer_);
    if (forced_bos_id_ >= 0) {
      std::ofstream(fs::path(dir_.path()) / "generation_config.json")
          << nlohmann::json({{"forced_bos_token_id", forced_bos_id_}}).dump();
    }
    engine::ModelOptions model_options;
    model_options.backend = engine::Backend::kDnnl;
    model_options.threads = 1;
    absl::StatusOr<std::unique_ptr<GeneratorEngine>> engine =
        GeneratorEngine::Load(dir_.path(), model_options);
    if (!engine.ok()) {
      ADD_FAILURE() << family.dir << ": " << engine.status();
      return;
    }
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Create(testing::LoopbackServerOptions(), *std::move(engine),
                       *std::move(tokenizer));
    if (!server.ok()) {
      ADD_FAILURE() << family.dir << ": " << server.status();
      return;
    }
    server_ = *std::move(server);
    stub_ = v1::Seq2Seq::NewStub(Connect(server_->port()));
  }

  bool ok() const { return stub_ != nullptr; }
  int32_t forced_bos_id() const { return forced_bos_id_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }

  v1::GenerateResponse Call(const v1::GenerateRequest& request) {
    v1::GenerateResponse response;
    const grpc::Status status = Generate(*stub_, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

 private:
  model_testing::TempDir dir_;
  const Tokenizer* tokenizer_ = nullptr;  // owned by server_
  int32_t forced_bos_id_ = -1;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::Seq2Seq::Stub> stub_;
};

class TargetPrefixTextServingTest : public ::testing::TestWithParam<Family> {};

// The text and its golden ids (after the forced BOS, when the model has one)
// give the same answer, greedy and beam, with the prefix at the start of the
// output; with target_language, its token goes first in both.
TEST_P(TargetPrefixTextServingTest, AnswersAsTheEquivalentIds) {
  const Family& family = GetParam();
  const nlohmann::json golden =
      ReadJson(TokenizerDir(family.dir) / "golden.json");
  ASSERT_TRUE(golden.is_object()) << family.dir << ": no golden.json";
  ServedFamily served(family);
  ASSERT_TRUE(served.ok());
  for (const std::string prefix_text : {"hello world", "Größe für Mädchen"}) {
    for (const char* target_language : {"", "zul_Latn"}) {
      if (*target_language != '\0' && family.kind != "nllb") continue;
      for (int beam : {1, 3}) {
        SCOPED_TRACE(absl::StrCat(family.dir, " \"", prefix_text, "\" beam ",
                                  beam, " target_language \"", target_language,
                                  "\""));
        v1::GenerateRequest text_request;
        text_request.set_text("the quick brown fox");
        text_request.set_max_new_tokens(10);
        text_request.set_beam_size(beam);
        text_request.set_target_language(target_language);
        v1::GenerateRequest ids_request = text_request;
        text_request.set_target_prefix(prefix_text);

        std::vector<int32_t> forced;
        if (*target_language != '\0') {
          absl::StatusOr<int32_t> id =
              served.tokenizer().LanguageId(target_language);
          ASSERT_TRUE(id.ok()) << id.status();
          forced.push_back(*id);
        } else if (served.forced_bos_id() >= 0) {
          // target_prefix_ids replace the forced BOS: the ids name it.
          ids_request.add_target_prefix_ids(served.forced_bos_id());
          forced.push_back(served.forced_bos_id());
        }
        const std::vector<int32_t> golden_ids =
            GoldenPrefix(golden, prefix_text);
        ASSERT_FALSE(golden_ids.empty());
        for (int32_t id : golden_ids) ids_request.add_target_prefix_ids(id);
        forced.insert(forced.end(), golden_ids.begin(), golden_ids.end());

        const v1::GenerateResponse by_text = served.Call(text_request);
        const v1::GenerateResponse by_ids = served.Call(ids_request);
        EXPECT_THAT(by_text.output_ids(),
                    ElementsAreArray(by_ids.output_ids()));
        EXPECT_EQ(by_text.text(), by_ids.text());
        EXPECT_EQ(by_text.finish_reason(), by_ids.finish_reason());
        ASSERT_GE(by_text.output_ids_size(), static_cast<int>(forced.size()));
        EXPECT_THAT(
            std::vector<int32_t>(by_text.output_ids().begin(),
                                 by_text.output_ids().begin() + forced.size()),
            ElementsAreArray(forced));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Families, TargetPrefixTextServingTest,
    ::testing::Values(
        // OPUS-MT: </s> 0, <pad> last (the decoder start); target.spm.
        Family{"marian", "marian", -1, -1, 0, -1, ""},
        Family{"marian_separate", "marian", -1, -1, 0, -1, ""},
        // T5: <pad> 0 starts the decoder, </s> 1.
        Family{"t5", "sentencepiece", 0, 0, 1, 0, ""},
        // NLLB: </s> starts, the target language forced.
        Family{"nllb", "nllb", 1, 0, 2, 2, "fra_Latn"},
        // mBART (en-ro): the target language starts the decoder.
        Family{"mbart", "mbart", 1, 0, 2, 420, ""},
        // BART: </s> starts, <s> forced.
        Family{"bart", "bart", 1, 0, 2, 2, "<s>"}),
    [](const ::testing::TestParamInfo<Family>& p) { return p.param.dir; });

}  // namespace
}  // namespace attnserve::server
