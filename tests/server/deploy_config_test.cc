// deploy/grafana and deploy/prometheus against what the server exports: every
// metric name in a dashboard query or a rule must be one that PrometheusMetrics
// serves (or a rule records), so a renamed metric cannot leave an empty panel
// or a silent alert behind. promtool checks the files' syntax
// (prometheus_integration_test.cc); this checks their vocabulary.

#include <cctype>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/prometheus_metrics.h"
#include "tests/server/fake_engine.h"
#include "tests/server/subprocess.h"

namespace attnserve::server {
namespace {

using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string DeployPath(const std::string& relative) {
  return absl::StrCat(ATTNSERVE_SOURCE_DIR, "/deploy/", relative);
}

// The metric names a PromQL expression selects. PromQL has no nesting inside
// selectors, so stripping strings, label matchers, ranges, grouping clauses
// and Grafana variables leaves names, functions (followed by '('), keywords
// and numbers.
std::set<std::string> MetricNamesIn(std::string expr) {
  static const auto* const kStrip = new std::vector<std::regex>{
      std::regex(R"("[^"]*")"),
      std::regex(R"(\{[^}]*\})"),
      std::regex(R"(\[[^\]]*\])"),
      std::regex(
          R"(\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\))"),
      std::regex(R"(\$\w+)"),
  };
  static const auto* const kKeywords = new std::set<std::string>{
      "by",          "without", "on",  "ignoring", "group_left",
      "group_right", "bool",    "and", "or",       "unless",
      "offset",      "inf",     "nan", "Inf",      "NaN"};
  for (const std::regex& pattern : *kStrip) {
    expr = std::regex_replace(expr, pattern, " ");
  }
  std::set<std::string> names;
  const std::regex identifier(R"([a-zA-Z_:][a-zA-Z0-9_:]*)");
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), identifier);
       it != std::sregex_iterator(); ++it) {
    const std::string name = it->str();
    const size_t after = it->position() + name.size();
    const size_t next = expr.find_first_not_of(' ', after);
    const bool is_call = next != std::string::npos && expr[next] == '(';
    // A digit before it: the exponent of a number such as 1e3.
    const bool in_number =
        it->position() > 0 && std::isdigit(expr[it->position() - 1]);
    if (!is_call && !in_number && kKeywords->count(name) == 0) {
      names.insert(name);
    }
  }
  return names;
}

// Every series name a scrape of the server returns: histograms as their
// _bucket, _sum and _count series.
std::set<std::string> ExportedNames() {
  testing::FakeEngine engine;
  PrometheusMetrics metrics(engine.model_info(), 8);
  std::set<std::string> names;
  for (const prometheus::MetricFamily& family : metrics.Collect()) {
    if (family.type == prometheus::MetricType::Histogram) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        names.insert(family.name + suffix);
      }
    } else {
      names.insert(family.name);
    }
  }
  return names;
}

TEST(MetricNamesInTest, FindsOnlyTheSelectedMetrics) {
  EXPECT_THAT(
      MetricNamesIn(
          "histogram_quantile(0.99, sum by (le, method) "
          "(rate(attnserve_request_duration_seconds_bucket{code=\"OK\""
          ", job=~\"$job\"}[$__rate_interval])))"),
      UnorderedElementsAre("attnserve_request_duration_seconds_bucket"));
  EXPECT_THAT(MetricNamesIn("sum(rate(a_total[5m])) / on (job) group_left "
                            "b_info > 1e3 and bool c"),
              UnorderedElementsAre("a_total", "b_info", "c"));
  EXPECT_THAT(MetricNamesIn("up{job=\"attnserve\"} == 0"),
              UnorderedElementsAre("up"));
}

// Every PromQL query of a Grafana dashboard: panel targets (in rows too) and
// template variables (label_values(METRIC, label) → METRIC).
void CollectQueries(const nlohmann::json& panels,
                    std::vector<std::string>* queries) {
  for (const nlohmann::json& panel : panels) {
    if (panel.contains("panels")) CollectQueries(panel["panels"], queries);
    if (!panel.contains("targets")) continue;
    for (const nlohmann::json& target : panel["targets"]) {
      ASSERT_TRUE(target.contains("expr"))
          << "a target of panel \"" << panel.value("title", "") << "\"";
      queries->push_back(target["expr"].get<std::string>());
    }
  }
}

TEST(DeployConfigTest, DashboardQueriesOnlyExportedMetrics) {
  const nlohmann::json dashboard = nlohmann::json::parse(
      ReadFile(DeployPath("grafana/dashboards/attnserve.json")));
  std::vector<std::string> queries;
  CollectQueries(dashboard["panels"], &queries);
  const std::regex label_values(R"(^label_values\((.*),\s*\w+\)$)");
  for (const nlohmann::json& variable : dashboard["templating"]["list"]) {
    if (variable["type"] != "query") continue;
    const nlohmann::json& query = variable["query"];
    const std::string text = query.is_string()
                                 ? query.get<std::string>()
                                 : query["query"].get<std::string>();
    std::smatch match;
    ASSERT_TRUE(std::regex_match(text, match, label_values)) << text;
    queries.push_back(match[1]);
  }
  ASSERT_GE(queries.size(), 10u);

  const std::set<std::string> exported = ExportedNames();
  std::set<std::string> used;
  for (const std::string& query : queries) {
    const std::set<std::string> names = MetricNamesIn(query);
    EXPECT_THAT(names, Not(IsEmpty())) << query;
    for (const std::string& name : names) {
      EXPECT_EQ(exported.count(name), 1u)
          << name << " is not exported; in: " << query;
      used.insert(name);
    }
  }
  // The panels the issue asks for.
  for (const char* name :
       {"attnserve_request_duration_seconds_bucket",
        "attnserve_time_to_first_token_seconds_bucket",
        "attnserve_inter_token_latency_seconds_bucket",
        "attnserve_generated_tokens_total", "attnserve_batch_size_bucket",
        "attnserve_queue_depth", "attnserve_rejected_requests_total"}) {
    EXPECT_EQ(used.count(name), 1u) << "no panel shows " << name;
  }
}

// The `expr:` values of a rules file (one line, or a YAML block scalar).
std::vector<std::string> RuleExpressions(const std::string& yaml,
                                         std::set<std::string>* recorded) {
  std::vector<std::string> expressions;
  const std::vector<std::string> lines = absl::StrSplit(yaml, '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    absl::string_view line = lines[i];
    const size_t indent = line.find_first_not_of(' ');
    if (indent == absl::string_view::npos) continue;
    line.remove_prefix(indent);
    if (absl::ConsumePrefix(&line, "- "))
      line = absl::StripLeadingAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "record:")) {
      recorded->insert(std::string(absl::StripAsciiWhitespace(line)));
    }
    if (!absl::ConsumePrefix(&line, "expr:")) continue;
    std::string expr(absl::StripAsciiWhitespace(line));
    if (expr == "|" || expr == ">" || expr == "|-" || expr == ">-") {
      expr.clear();
      while (i + 1 < lines.size() &&
             (lines[i + 1].find_first_not_of(' ') > indent ||
              absl::StripAsciiWhitespace(lines[i + 1]).empty())) {
        absl::StrAppend(&expr, " ", lines[++i]);
      }
    }
    expressions.push_back(expr);
  }
  return expressions;
}

TEST(DeployConfigTest, RulesUseOnlyExportedOrRecordedMetrics) {
  std::set<std::string> known = ExportedNames();
  known.insert("up");  // Prometheus's own, per target
  std::set<std::string> recorded;
  std::vector<std::string> expressions;
  // Recording rules first: the alerts use what they record.
  for (const char* file : {"prometheus/rules/attnserve_recording.yml",
                           "prometheus/rules/attnserve_alerts.yml"}) {
    for (std::string& expr :
         RuleExpressions(ReadFile(DeployPath(file)), &recorded)) {
      expressions.push_back(std::move(expr));
    }
  }
  known.insert(recorded.begin(), recorded.end());
  EXPECT_GE(recorded.size(), 5u);
  ASSERT_GE(expressions.size(), 10u);
  for (const std::string& expr : expressions) {
    const std::set<std::string> names = MetricNamesIn(expr);
    EXPECT_THAT(names, Not(IsEmpty())) << expr;
    for (const std::string& name : names) {
      EXPECT_EQ(known.count(name), 1u)
          << name << " is neither exported nor recorded; in: " << expr;
    }
  }
}

// The instructions of a Dockerfile with their continuation lines joined as
// the builders join them ("\\\n" removed), comments and blank lines dropped.
std::vector<std::string> DockerfileInstructions(const std::string& text) {
  std::vector<std::string> instructions;
  std::string current;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (current.empty() &&
        (absl::StripAsciiWhitespace(line).empty() || line[0] == '#')) {
      continue;
    }
    if (absl::ConsumeSuffix(&line, "\\")) {
      absl::StrAppend(&current, line);
      continue;
    }
    absl::StrAppend(&current, line);
    instructions.push_back(std::move(current));
    current.clear();
  }
  return instructions;
}

// podman build and buildah bud default to the OCI format, which ignores SHELL:
// each RUN then runs under /bin/sh (dash on Debian), so it must be POSIX sh.
TEST(DeployConfigTest, DockerfileRunsUnderPlainShInEitherImageFormat) {
  const std::string dockerfile =
      ReadFile(absl::StrCat(ATTNSERVE_SOURCE_DIR, "/Dockerfile"));
  int runs = 0;
  for (const std::string& instruction : DockerfileInstructions(dockerfile)) {
    EXPECT_FALSE(absl::StartsWith(instruction, "SHELL"))
        << "the OCI format ignores SHELL: " << instruction;
    absl::string_view body = instruction;
    if (!absl::ConsumePrefix(&body, "RUN ")) continue;
    ++runs;
    EXPECT_FALSE(absl::StartsWith(body, "[")) << "exec form: " << instruction;
    // A failure anywhere must fail the step: sh has no `-e` by default.
    EXPECT_TRUE(absl::StartsWith(body, "set -eu;")) << instruction;
    const testing::RunResult parsed =
        testing::RunProgram({"dash", "-n", "-c", std::string(body)});
    EXPECT_EQ(parsed.exit_code, std::optional<int>(0))
        << "not POSIX sh: " << instruction << "\n"
        << parsed.output;
  }
  EXPECT_GE(runs, 4);
}

}  // namespace
}  // namespace attnserve::server
