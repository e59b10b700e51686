// attnserve-cli's commands against the fake service, in process: output,
// diagnostics and exit codes.

#include "client/cli_commands.h"

#include <sstream>
#include <string>

#include "absl/strings/str_split.h"
#include "client/exit_codes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/client/fake_seq2seq.h"
#include "tests/client/fault_cases.h"

namespace attnserve::client {
namespace {

using ::testing::ElementsAre;
using testing::ExpectFaultsNamed;
using testing::FakeServer;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using testing::ValueOrFail;

TEST(BuildGenerateRequestTest, IdsOrText) {
  GenerateOptions options;
  options.ids = "5,17,42";
  options.max_new_tokens = 8;
  options.beam_size = 4;
  options.length_penalty = 0.6f;
  options.log_probs = true;
  options.target_language = "fra_Latn";
  v1::GenerateRequest request = ValueOrFail(BuildGenerateRequest(options));
  EXPECT_THAT(request.input_ids(), ElementsAre(5, 17, 42));
  EXPECT_TRUE(request.text().empty());
  EXPECT_EQ(request.max_new_tokens(), 8u);
  EXPECT_EQ(request.beam_size(), 4u);
  ASSERT_TRUE(request.has_length_penalty());
  EXPECT_FLOAT_EQ(request.length_penalty(), 0.6f);
  EXPECT_TRUE(request.return_log_probs());
  EXPECT_EQ(request.target_language(), "fra_Latn");
  EXPECT_TRUE(request.source_language().empty());

  GenerateOptions text;
  text.text = "hello";
  text.source_language = "deu_Latn";
  request = ValueOrFail(BuildGenerateRequest(text));
  EXPECT_EQ(request.text(), "hello");
  EXPECT_EQ(request.source_language(), "deu_Latn");
  EXPECT_TRUE(request.target_language().empty());
  EXPECT_TRUE(request.input_ids().empty());
  // Unset stays unset: the server's default 1.0 applies.
  EXPECT_FALSE(request.has_length_penalty());
}

// BuildGenerateRequest as a status, for ExpectFaultsNamed.
absl::Status BuildStatus(const GenerateOptions& options) {
  return BuildGenerateRequest(options).status();
}

TEST(BuildGenerateRequestTest, NamesTheFlagAtFault) {
  GenerateOptions valid;
  valid.ids = "1";
  ExpectFaultsNamed<GenerateOptions>(
      valid, BuildStatus,
      {{[](GenerateOptions& o) { o.ids.reset(); }, "exactly one of --ids"},
       {[](GenerateOptions& o) { o.text = "a"; }, "exactly one of --ids"},
       // Given but empty (--text=""): not "give exactly one", which the user
       // did.
       {[](GenerateOptions& o) {
          o.ids.reset();
          o.text = "";
        },
        "--text is empty"},
       {[](GenerateOptions& o) { o.ids = ""; }, "--ids is empty"},
       {[](GenerateOptions& o) { o.ids = "1,two"; },
        "--ids: bad token id \"two\""},
       {[](GenerateOptions& o) { o.max_new_tokens = -1; }, "--max_new_tokens"},
       {[](GenerateOptions& o) { o.beam_size = -2; }, "--beam_size"},
       {[](GenerateOptions& o) { o.timeout = absl::ZeroDuration(); },
        "--timeout"},
       {[](GenerateOptions& o) {
          o.target_prefix_ids = "8";
          o.target_prefix = "Bonjour";
        },
        "at most one of --target_prefix_ids and --target_prefix"},
       {[](GenerateOptions& o) { o.target_prefix_ids = "8,"; },
        "--target_prefix_ids: "},
       {[](GenerateOptions& o) { o.controls.top_k = -3; },
        "--top_k must be >= 0"}});
}

TEST(BuildGenerateRequestTest, TargetPrefixAndControls) {
  GenerateOptions options;
  options.ids = "5";
  options.target_prefix_ids = "8,9";
  options.controls.temperature = 0.5f;
  options.controls.num_return_sequences = 2;
  v1::GenerateRequest request = ValueOrFail(BuildGenerateRequest(options));
  EXPECT_THAT(request.target_prefix_ids(), ElementsAre(8, 9));
  EXPECT_TRUE(request.target_prefix().empty());
  EXPECT_FLOAT_EQ(request.temperature(), 0.5f);
  EXPECT_EQ(request.num_return_sequences(), 2u);

  GenerateOptions text;
  text.ids = "5";
  text.target_prefix = "Bonjour";
  request = ValueOrFail(BuildGenerateRequest(text));
  EXPECT_EQ(request.target_prefix(), "Bonjour");
  EXPECT_EQ(request.target_prefix_ids_size(), 0);
}

class CliCommandsTest : public ::testing::Test {
 protected:
  CliCommandsTest() : connection_(ConnectTo(server_.address())) {}

  static Connection ConnectTo(const std::string& address) {
    ChannelOptions options;
    options.address = address;
    return *Connect(options);
  }

  int Generate(const GenerateOptions& options) {
    return RunGenerate(connection_, options, out_, err_);
  }

  FakeServer server_;
  Connection connection_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(CliCommandsTest, GenerateIdsPrintsIdsAndDetails) {
  GenerateOptions options;
  options.ids = "5,17,42";
  EXPECT_EQ(Generate(options), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "6,18,43,6\n");
  EXPECT_THAT(err_.str(), StartsWith("finish_reason=LENGTH tokens=4 "
                                     "score=-2.0000 total_ms=1.50"));
  EXPECT_THAT(err_.str(), HasSubstr("request_id=fake-1"));
  EXPECT_EQ(err_.str().find("log_probs"), std::string::npos);
}

TEST_F(CliCommandsTest, GenerateTextPrintsText) {
  GenerateOptions options;
  options.text = "hello";
  EXPECT_EQ(Generate(options), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "HELLO\n");
}

TEST_F(CliCommandsTest, GenerateLogProbs) {
  GenerateOptions options;
  options.ids = "5";
  options.max_new_tokens = 2;
  options.log_probs = true;
  EXPECT_EQ(Generate(options), kExitOk) << err_.str();
  EXPECT_THAT(err_.str(), HasSubstr("\nlog_probs=-0.5000,-0.5000\n"));
}

TEST_F(CliCommandsTest, GenerateJsonIsTheResponse) {
  GenerateOptions options;
  options.ids = "5,17,42";
  options.json = true;
  EXPECT_EQ(Generate(options), kExitOk) << err_.str();
  const nlohmann::json json = nlohmann::json::parse(out_.str());
  EXPECT_EQ(json["output_ids"], nlohmann::json({6, 18, 43, 6}));
  EXPECT_EQ(json["finish_reason"], "FINISH_REASON_LENGTH");
  EXPECT_EQ(json["request_id"], "fake-1");
  // Defaults are printed too, so that scripts always find the keys.
  EXPECT_EQ(json["text"], "");
  EXPECT_EQ(json["timing"]["batch_size"], 1);
  EXPECT_TRUE(err_.str().empty());
}

TEST_F(CliCommandsTest, GenerateStreamPrintsTheSameOutput) {
  GenerateOptions options;
  options.ids = "5,17,42";
  options.stream = true;
  EXPECT_EQ(Generate(options), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "6,18,43,6\n");
  EXPECT_THAT(err_.str(), StartsWith("finish_reason=LENGTH tokens=4 "));

  std::ostringstream text_out;
  GenerateOptions text;
  text.text = "abc";
  text.stream = true;
  EXPECT_EQ(RunGenerate(connection_, text, text_out, err_), kExitOk);
  EXPECT_EQ(text_out.str(), "ABC\n");
}

TEST_F(CliCommandsTest, GenerateHypothesesAndTopLogProbs) {
  GenerateOptions options;
  options.ids = "5";
  options.max_new_tokens = 2;
  options.controls.temperature = 0.8f;
  options.controls.seed = 77;
  options.controls.num_return_sequences = 3;
  options.controls.top_log_probs = 2;
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "unary");
    options.stream = stream;
    out_.str("");
    err_.str("");
    EXPECT_EQ(Generate(options), kExitOk) << err_.str();
    // Each hypothesis on its own line, the answer first.
    EXPECT_EQ(out_.str(), "6,6\n7,7\n8,8\n");
    EXPECT_THAT(err_.str(), HasSubstr(" seed=77\n"));
    EXPECT_THAT(err_.str(), HasSubstr("\ntop_log_probs=[6:-0.5000 7:-1.5000],"
                                      "[6:-0.5000 7:-1.5000]\n"));
    EXPECT_THAT(err_.str(),
                HasSubstr("\nalternative 1: finish_reason=LENGTH tokens=2 "
                          "score=-1.0000\n"));
    EXPECT_THAT(err_.str(), HasSubstr("\nalternative 2: "));
  }
}

TEST_F(CliCommandsTest, GenerateTextHypothesesPrintTheirText) {
  GenerateOptions options;
  options.text = "ab";
  options.controls.do_sample = true;
  options.controls.num_return_sequences = 2;
  EXPECT_EQ(Generate(options), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "AB\nAB-1\n");
  EXPECT_THAT(err_.str(), HasSubstr(" seed=4242\n"));
}

TEST_F(CliCommandsTest, GenerateStreamJsonIsOneObjectPerMessage) {
  GenerateOptions options;
  options.ids = "5,17";
  options.max_new_tokens = 2;
  options.stream = true;
  options.json = true;
  EXPECT_EQ(Generate(options), kExitOk) << err_.str();
  std::vector<std::string> lines =
      absl::StrSplit(out_.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  EXPECT_EQ(nlohmann::json::parse(lines[0])["output_ids"], nlohmann::json({6}));
  EXPECT_EQ(nlohmann::json::parse(lines[1])["output_ids"],
            nlohmann::json({18}));
  EXPECT_EQ(nlohmann::json::parse(lines[2])["finish_reason"],
            "FINISH_REASON_LENGTH");
}

TEST_F(CliCommandsTest, ServerErrorsExitOneWithCodeAndMessage) {
  GenerateOptions rejected;
  rejected.ids = "5";
  rejected.max_new_tokens = testing::kRejectMaxNewTokens;
  EXPECT_EQ(Generate(rejected), kExitFailed);
  EXPECT_EQ(err_.str(), "error: RESOURCE_EXHAUSTED: queue full (fake)\n");
  EXPECT_TRUE(out_.str().empty());

  std::ostringstream err;
  GenerateOptions bad_id;
  bad_id.ids = "5,150";
  bad_id.stream = true;
  EXPECT_EQ(RunGenerate(connection_, bad_id, out_, err), kExitFailed);
  EXPECT_THAT(err.str(), StartsWith("error: INVALID_ARGUMENT: input_ids: 150"));
}

TEST_F(CliCommandsTest, DeadlineIsAServerSideFailure) {
  GenerateOptions held;
  held.ids = std::to_string(testing::kHoldId);
  held.timeout = absl::Milliseconds(200);
  EXPECT_EQ(Generate(held), kExitFailed);
  EXPECT_THAT(err_.str(), StartsWith("error: DEADLINE_EXCEEDED"));
}

TEST_F(CliCommandsTest, UsageErrorsAreCaughtBeforeConnecting) {
  GenerateOptions both;
  both.ids = "1";
  both.text = "a";
  EXPECT_EQ(RunGenerate(ConnectTo(testing::UnusedAddress()), both, out_, err_),
            kExitUsage);
}

TEST_F(CliCommandsTest, InfoHumanAndJson) {
  EXPECT_EQ(RunInfo(connection_, InfoOptions(), out_, err_), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("model_name:           fake\n"));
  EXPECT_THAT(out_.str(), HasSubstr("has_tokenizer:        yes\n"));
  EXPECT_THAT(out_.str(), HasSubstr("max_new_tokens_limit: 32\n"));
  EXPECT_THAT(out_.str(), HasSubstr("\"vocab_size\": 100"));

  std::ostringstream json_out;
  InfoOptions json;
  json.json = true;
  EXPECT_EQ(RunInfo(connection_, json, json_out, err_), kExitOk);
  const nlohmann::json info = nlohmann::json::parse(json_out.str());
  EXPECT_EQ(info["model_name"], "fake");
  EXPECT_EQ(info["max_input_tokens"], 64);
  EXPECT_EQ(info["has_tokenizer"], true);
}

TEST_F(CliCommandsTest, HealthExitsZeroOnlyWhenServing) {
  HealthOptions whole;
  EXPECT_EQ(RunHealth(connection_, whole, out_, err_), kExitOk);
  EXPECT_EQ(out_.str(), "SERVING\n");

  HealthOptions model;
  model.service = "attnserve.v1.Seq2Seq";
  std::ostringstream model_out;
  EXPECT_EQ(RunHealth(connection_, model, model_out, err_), kExitOk);
  EXPECT_EQ(model_out.str(), "SERVING\n");

  server_.SetServing(false);
  std::ostringstream draining_out;
  EXPECT_EQ(RunHealth(connection_, model, draining_out, err_), kExitFailed);
  EXPECT_EQ(draining_out.str(), "NOT_SERVING\n");

  HealthOptions unknown;
  unknown.service = "no.such.Service";
  std::ostringstream unknown_err;
  EXPECT_EQ(RunHealth(connection_, unknown, out_, unknown_err), kExitFailed);
  EXPECT_THAT(unknown_err.str(), HasSubstr("unknown service \"no.such"));
}

TEST_F(CliCommandsTest, UnreachableServerExitsTwo) {
  const std::string address = testing::UnusedAddress();
  const Connection nowhere = ConnectTo(address);
  GenerateOptions options;
  options.ids = "5";
  EXPECT_EQ(RunGenerate(nowhere, options, out_, err_), kExitUnreachable);
  EXPECT_THAT(err_.str(), StartsWith("cannot reach " + address + ": "));
  EXPECT_TRUE(out_.str().empty());

  std::ostringstream info_err;
  EXPECT_EQ(RunInfo(nowhere, InfoOptions(), out_, info_err), kExitUnreachable);
  EXPECT_THAT(info_err.str(), StartsWith("cannot reach "));
  std::ostringstream health_err;
  EXPECT_EQ(RunHealth(nowhere, HealthOptions(), out_, health_err),
            kExitUnreachable);
  EXPECT_THAT(health_err.str(), StartsWith("cannot reach "));
}

TEST_F(CliCommandsTest, TimeoutTooShortToConnectIsNamedAsTheTimeout) {
  GenerateOptions options;
  options.ids = "5";
  options.timeout = absl::Microseconds(1);
  EXPECT_EQ(RunGenerate(connection_, options, out_, err_), kExitUnreachable);
  EXPECT_THAT(err_.str(),
              StartsWith("no connection to " + server_.address() +
                         " within --timeout=1us: the call's deadline ran out "
                         "while connecting"));
  EXPECT_THAT(err_.str(), Not(HasSubstr("cannot reach")));
  // The same server with time to connect answers.
  options.timeout = absl::Seconds(30);
  std::ostringstream err;
  EXPECT_EQ(RunGenerate(connection_, options, out_, err), kExitOk) << err.str();
}

TEST(ConnectTest, RejectsHalfOfMutualTlsAndUnreadableFiles) {
  struct Case {
    std::string ca, cert, key, error;
  };
  const Case cases[] = {
      {"", "/etc/hostname", "", "--tls_cert and --tls_key go together"},
      {"/nonexistent/ca.pem", "", "",
       "--tls_ca: /nonexistent/ca.pem: cannot open"},
      // Not regular files: they fail at once instead of reading forever.
      {"/dev/zero", "", "", "--tls_ca: /dev/zero: not a regular file"},
      {"", "/etc/hostname", "/dev/null",
       "--tls_key: /dev/null: not a regular file"},
  };
  for (const Case& c : cases) {
    ChannelOptions options;
    options.tls_ca_file = c.ca;
    options.tls_cert_file = c.cert;
    options.tls_key_file = c.key;
    EXPECT_THAT(Connect(options).status().message(), HasSubstr(c.error));
  }
  ChannelOptions no_address;
  no_address.address = "";
  EXPECT_FALSE(Connect(no_address).ok());
  ChannelOptions system_roots;
  system_roots.tls = true;
  EXPECT_TRUE(Connect(system_roots).ok());
}

}  // namespace
}  // namespace attnserve::client
