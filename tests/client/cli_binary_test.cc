// The built tools themselves: flag handling, exit codes and output, against
// the fake service on loopback.

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/exit_codes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/client/cli_runner.h"
#include "tests/client/fake_seq2seq.h"

namespace attnserve::client {
namespace {

using testing::Bench;
using testing::Cli;
using ::testing::ContainsRegex;
using testing::FakeServer;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using testing::ToolOutcome;

TEST(CliBinaryTest, BadUsageExits64) {
  for (const char* arguments :
       {"", "frobnicate", "info health", "--bogus info", "generate",
        "generate --ids=1,x", "generate --ids=1 --text=a",
        "generate --ids=1 --max_new_tokens=many",
        "generate --ids=1 --timeout=0s", "generate --ids",
        "info --tls_cert=/etc/hostname"}) {
    const ToolOutcome outcome = Cli(arguments);
    EXPECT_EQ(outcome.exit_code, kExitUsage) << arguments;
    EXPECT_THAT(outcome.err, StartsWith("attnserve-cli: ")) << arguments;
    EXPECT_THAT(outcome.err, HasSubstr("--help")) << arguments;
    EXPECT_TRUE(outcome.out.empty()) << arguments;
  }
  EXPECT_THAT(Cli("--bogus info").err, HasSubstr("unknown flag --bogus"));
  // Given but empty: say so, rather than "give exactly one of --ids and
  // --text" to a user who gave --text.
  const ToolOutcome empty_text = Cli("generate --text=");
  EXPECT_EQ(empty_text.exit_code, kExitUsage);
  EXPECT_THAT(empty_text.err, HasSubstr("--text is empty"));
  EXPECT_THAT(empty_text.err, Not(HasSubstr("exactly one")));
  EXPECT_THAT(Cli("generate --text ''").err, HasSubstr("--text is empty"));
  EXPECT_THAT(Cli("generate --ids=").err, HasSubstr("--ids is empty"));
}

TEST(CliBinaryTest, TooShortTimeoutIsReportedAsTheTimeout) {
  FakeServer server;
  const ToolOutcome outcome =
      Cli("--addr=" + server.address() + " --timeout=1us generate --ids=5");
  EXPECT_EQ(outcome.exit_code, kExitUnreachable);
  EXPECT_THAT(outcome.err, HasSubstr("within --timeout=1us: the call's "
                                     "deadline ran out while connecting"));
  EXPECT_THAT(outcome.err, Not(HasSubstr("cannot reach")));
}

TEST(CliBinaryTest, HelpListsCommandsAndFlags) {
  const ToolOutcome outcome = Cli("--help");
  EXPECT_EQ(outcome.exit_code, kExitOk);
  EXPECT_THAT(outcome.out, HasSubstr("usage: attnserve-cli"));
  EXPECT_THAT(outcome.out, HasSubstr("--ids (default: \"\")"));
  EXPECT_THAT(outcome.out, HasSubstr("--tls_ca"));
  EXPECT_THAT(outcome.out, HasSubstr("exit codes"));
  for (const char* heading :
       {"\nConnection:\n", "\ngenerate:\n",
        "\ngenerate: generation controls:\n", "\nhealth:\n", "\nOutput:\n"}) {
    EXPECT_THAT(outcome.out, HasSubstr(heading));
  }
  EXPECT_THAT(outcome.out, Not(HasSubstr("Other flags")));  // all grouped
  EXPECT_THAT(outcome.out, Not(HasSubstr("main.cc")));
  EXPECT_THAT(outcome.out, Not(ContainsRegex(" /[^ ]")));  // no absolute path
}

TEST(BenchBinaryTest, HelpGroupsTheFlags) {
  const ToolOutcome outcome = Bench("--help");
  EXPECT_EQ(outcome.exit_code, kExitOk);
  EXPECT_THAT(outcome.out, StartsWith("usage: attnserve-bench"));
  for (const char* heading :
       {"\nConnection:\n", "\nThe load:\n", "\nThe requests:\n",
        "\nGeneration controls:\n", "\nOutput:\n"}) {
    EXPECT_THAT(outcome.out, HasSubstr(heading));
  }
  EXPECT_THAT(outcome.out, HasSubstr("--concurrency (default: \"1\")"));
  EXPECT_THAT(outcome.out, Not(HasSubstr("Other flags")));
  EXPECT_THAT(outcome.out, Not(HasSubstr("main.cc")));
  EXPECT_THAT(outcome.out, Not(ContainsRegex(" /[^ ]")));
}

TEST(CliBinaryTest, TalksToAServer) {
  FakeServer server;
  const std::string addr = "--addr=" + server.address();
  ToolOutcome generate = Cli(addr + " generate --ids=5,17,42");
  EXPECT_EQ(generate.exit_code, kExitOk) << generate.err;
  EXPECT_EQ(generate.out, "6,18,43,6\n");
  EXPECT_THAT(generate.err, HasSubstr("finish_reason=LENGTH tokens=4"));

  // Flags may come before or after the command, in either spelling.
  ToolOutcome text = Cli("generate --text 'hi there' --stream " + addr);
  EXPECT_EQ(text.exit_code, kExitOk) << text.err;
  EXPECT_EQ(text.out, "HI THERE\n");

  ToolOutcome rejected = Cli(addr + " generate --ids=5 --max_new_tokens=3");
  EXPECT_EQ(rejected.exit_code, kExitFailed);
  EXPECT_EQ(rejected.err, "error: RESOURCE_EXHAUSTED: queue full (fake)\n");

  ToolOutcome info = Cli(addr + " info --json");
  EXPECT_EQ(info.exit_code, kExitOk) << info.err;
  EXPECT_EQ(nlohmann::json::parse(info.out)["model_name"], "fake");

  ToolOutcome health = Cli(addr + " health --service=attnserve.v1.Seq2Seq");
  EXPECT_EQ(health.exit_code, kExitOk) << health.err;
  EXPECT_EQ(health.out, "SERVING\n");
  server.SetServing(false);
  health = Cli(addr + " health");
  EXPECT_EQ(health.exit_code, kExitFailed);
  EXPECT_EQ(health.out, "NOT_SERVING\n");
}

TEST(CliBinaryTest, GenerationControlFlagsReachTheServer) {
  FakeServer server;
  const std::string addr = "--addr=" + server.address();
  // A bare --do_sample is a switch, not a flag eating the next argument.
  ToolOutcome sampled =
      Cli(addr +
          " generate --do_sample --ids=5 --max_new_tokens=2 --seed=9"
          " --num_return_sequences=2 --top_log_probs=1 --top_k=3"
          " --temperature=0.5 --top_p=0.9 --repetition_penalty=1.1"
          " --no_repeat_ngram_size=2 --min_new_tokens=1"
          " --suppress_token_ids=4 --bad_words='7,8;9'"
          " --target_prefix_ids=6");
  EXPECT_EQ(sampled.exit_code, kExitOk) << sampled.err;
  EXPECT_EQ(sampled.out, "6,6\n7,7\n");
  EXPECT_THAT(sampled.err, HasSubstr(" seed=9\n"));
  EXPECT_THAT(sampled.err,
              HasSubstr("\ntop_log_probs=[6:-0.5000],[6:-0.5000]"));
  EXPECT_THAT(sampled.err, HasSubstr("\nalternative 1: "));

  ToolOutcome json = Cli(addr + " generate --ids=5 --temperature=1 --json");
  EXPECT_EQ(json.exit_code, kExitOk) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out)["seed"], "4242");

  for (const char* bad :
       {" generate --ids=5 --top_k=-1", " generate --ids=5 --bad_words=';'",
        " generate --ids=5 --suppress_token_ids=x",
        " generate --ids=5 --target_prefix_ids=1 --target_prefix=a",
        " generate --ids=5 --do_sample=maybe"}) {
    const ToolOutcome outcome = Cli(addr + bad);
    EXPECT_EQ(outcome.exit_code, kExitUsage) << bad;
  }
  EXPECT_EQ(server.service().status_counts().size(), 1u)
      << "usage errors never reach the server";
}

TEST(CliBinaryTest, UnreachableServerExits2) {
  const std::string address = testing::UnusedAddress();
  for (const char* command : {"health", "info", "generate --ids=1"}) {
    const ToolOutcome outcome =
        Cli(absl::StrCat("--addr=", address, " ", command));
    EXPECT_EQ(outcome.exit_code, kExitUnreachable) << command;
    EXPECT_THAT(outcome.err, StartsWith("cannot reach " + address + ": "))
        << command;
  }
}

TEST(BenchBinaryTest, BadUsageExits64) {
  for (const char* arguments :
       {"--bogus", "extra", "--requests=5 --duration=1s", "--concurrency=0",
        "--src_len=9:3", "--max_new_tokens=x", "--arrivals=bursty", "--text",
        "--sources_file=/nonexistent/sources.txt", "--rps=-1"}) {
    const ToolOutcome outcome = Bench(arguments);
    EXPECT_EQ(outcome.exit_code, kExitUsage) << arguments;
    EXPECT_THAT(outcome.err, StartsWith("attnserve-bench: ")) << arguments;
  }
}

TEST(BenchBinaryTest, UnreachableServerExits2) {
  const std::string address = testing::UnusedAddress();
  const ToolOutcome outcome = Bench("--addr=" + address + " --requests=3");
  EXPECT_EQ(outcome.exit_code, kExitUnreachable);
  EXPECT_THAT(outcome.err, StartsWith("cannot reach " + address + ": "));
}

TEST(BenchBinaryTest, JsonReportCountsWhatTheServerAnswered) {
  FakeServer server;
  const ToolOutcome outcome =
      Bench("--addr=" + server.address() +
            " --requests=40 --concurrency=4 --src_len=2:6 --max_new_tokens=1:4"
            " --seed=3 --json");
  ASSERT_EQ(outcome.exit_code, kExitOk) << outcome.err;
  const nlohmann::json report = nlohmann::json::parse(outcome.out);
  EXPECT_EQ(report["count"], 40);
  EXPECT_EQ(report["model"], "fake");
  EXPECT_EQ(report["config"]["mode"], "closed");
  EXPECT_EQ(report["config"]["max_new_tokens"], "1:4");
  int64_t ok = 0;
  int64_t total = 0;
  for (const auto& [code, count] : server.service().status_counts()) {
    total += count;
    if (code == grpc::StatusCode::OK) ok = count;
  }
  EXPECT_EQ(total, 40);
  EXPECT_EQ(report["ok"], ok);
  EXPECT_EQ(report["status_codes"]["OK"], ok);
  EXPECT_EQ(report["status_codes"].value("RESOURCE_EXHAUSTED", 0), 40 - ok);
  EXPECT_EQ(report["generated_tokens"], server.service().generated_tokens());
  EXPECT_EQ(report["latency_ms"]["count"], ok);
  EXPECT_TRUE(report["time_to_first_token_ms"].is_null());
  EXPECT_EQ(report["config"]["controls"], "");
}

TEST(BenchBinaryTest, SendsTheGenerationControls) {
  FakeServer server;
  const ToolOutcome outcome =
      Bench("--addr=" + server.address() +
            " --requests=10 --src_len=2:6 --vocab_size=50 --max_new_tokens=2"
            " --temperature=0.7"
            " --num_return_sequences=3 --sampling_seed=5 --json");
  ASSERT_EQ(outcome.exit_code, kExitOk) << outcome.err;
  const nlohmann::json report = nlohmann::json::parse(outcome.out);
  EXPECT_EQ(report["ok"], 10);
  // Every call's three hypotheses of two tokens.
  EXPECT_EQ(report["generated_tokens"], 10 * 3 * 2);
  EXPECT_EQ(report["generated_tokens"], server.service().generated_tokens());
  EXPECT_EQ(report["config"]["controls"],
            "temperature=0.7 seed=5 num_return_sequences=3");
  EXPECT_EQ(Bench("--addr=" + server.address() + " --top_k=-1").exit_code,
            kExitUsage);
}

TEST(BenchBinaryTest, HumanStreamingReportFromASourcesFile) {
  FakeServer server;
  const std::string sources = ::testing::TempDir() + "/bench_sources.txt";
  std::ofstream(sources) << "5,17,42\n\n7,8\n";
  const ToolOutcome outcome =
      Bench("--addr=" + server.address() + " --sources_file=" + sources +
            " --requests=6 --max_new_tokens=5 --stream");
  ASSERT_EQ(outcome.exit_code, kExitOk) << outcome.err;
  EXPECT_THAT(outcome.err, HasSubstr("fake at " + server.address()));
  EXPECT_THAT(outcome.out, HasSubstr("Count:             6 (OK 6)"));
  EXPECT_THAT(outcome.out, HasSubstr("Generated tokens:  30 "));
  EXPECT_THAT(outcome.out, HasSubstr("first token"));
  EXPECT_THAT(outcome.out, HasSubstr("inter-token"));
  EXPECT_THAT(outcome.out, HasSubstr("OK                   6"));
}

TEST(BenchBinaryTest, NoSuccessfulCallExits1) {
  FakeServer server;
  const ToolOutcome outcome =
      Bench("--addr=" + server.address() + " --requests=4 --max_new_tokens=3");
  EXPECT_EQ(outcome.exit_code, kExitFailed);
  EXPECT_THAT(outcome.out, HasSubstr("RESOURCE_EXHAUSTED   4"));
}

}  // namespace
}  // namespace attnserve::client
