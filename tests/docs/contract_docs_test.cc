// The project's contract documents against the code they describe:
// docs/model-format.md against the config parser and the weight loader,
// docs/api.md against the compiled attnserve.v1 descriptors, the status mapping
// and the metrics, docs/kserve.md against the compiled descriptors of the
// KServe v2 protocol (package inference), docs/metrics.md against the metric
// families the server
// registers, and every link of README.md and docs/*.md against the tree.
//
// A failure says which document lacks (or wrongly has) which name, so whoever
// adds a key, tensor, field or metric knows the row to write.

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "attnserve/v1/attnserve.pb.h"
#include "engine/format/model_config.h"
#include "engine/format/model_dir.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"
#include "inference/grpc_service.pb.h"
#include "nlohmann/json.hpp"
#include "server/batch_engine.h"
#include "server/prometheus_metrics.h"
#include "server/status_mapping.h"
#include "server/tokenizers/tokenizer.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve {
namespace {

namespace fs = std::filesystem;
using ::google::protobuf::Descriptor;
using ::google::protobuf::EnumDescriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::FileDescriptor;
using ::google::protobuf::MethodDescriptor;
using ::google::protobuf::ServiceDescriptor;
using Json = nlohmann::json;

constexpr char kModelFormatDoc[] = "docs/model-format.md";
constexpr char kApiDoc[] = "docs/api.md";
constexpr char kMetricsDoc[] = "docs/metrics.md";
constexpr char kKserveDoc[] = "docs/kserve.md";

std::string ReadSource(const std::string& relative) {
  const std::string path = absl::StrCat(ATTNSERVE_SOURCE_DIR, "/", relative);
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// --- Markdown, as far as these documents need it ---------------------------

// 1 for "# x", 2 for "## x", ...; 0 for a line that is not a heading.
int HeadingLevel(absl::string_view line) {
  int level = 0;
  while (level < static_cast<int>(line.size()) && line[level] == '#') ++level;
  return level > 0 && level < static_cast<int>(line.size()) &&
                 line[level] == ' '
             ? level
             : 0;
}

// The lines under the heading `heading` (the whole line, exactly), up to the
// next heading of the same or a higher level. Empty when there is no such
// heading; *found says which.
std::vector<std::string> Section(const std::string& text,
                                 const std::string& heading, bool* found) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  std::vector<std::string> section;
  *found = false;
  int level = 0;
  for (const std::string& line : lines) {
    const int line_level = HeadingLevel(line);
    if (*found) {
      if (line_level > 0 && line_level <= level) break;
      section.push_back(line);
    } else if (line == heading) {
      *found = true;
      level = line_level;
    }
  }
  return section;
}

// `x` -> x; anything else as is.
std::string Unquote(absl::string_view cell) {
  cell = absl::StripAsciiWhitespace(cell);
  if (cell.size() >= 2 && cell.front() == '`' && cell.back() == '`') {
    cell = cell.substr(1, cell.size() - 2);
  }
  return std::string(cell);
}

// The cells of a table row "| a | b |", trimmed; empty for other lines and for
// the header's "|---|" line.
std::vector<std::string> Cells(absl::string_view line) {
  line = absl::StripAsciiWhitespace(line);
  if (!absl::ConsumePrefix(&line, "|") || !absl::ConsumeSuffix(&line, "|") ||
      absl::StartsWith(line, "---")) {
    return {};
  }
  std::vector<std::string> cells;
  for (absl::string_view cell : absl::StrSplit(line, '|')) {
    cells.push_back(std::string(absl::StripAsciiWhitespace(cell)));
  }
  return cells;
}

// The rows of the tables in `lines` whose first cell is one `name`, by that
// name (the header rows, whose first cell is plain text, are not among them).
std::map<std::string, std::vector<std::string>> RowsByName(
    const std::vector<std::string>& lines) {
  std::map<std::string, std::vector<std::string>> rows;
  for (const std::string& line : lines) {
    std::vector<std::string> cells = Cells(line);
    if (cells.empty() || cells[0].size() < 3 || cells[0].front() != '`' ||
        cells[0].back() != '`' ||
        cells[0].find('`', 1) != cells[0].size() - 1) {
      continue;
    }
    rows[Unquote(cells[0])] = cells;
  }
  return rows;
}

// Every `span` of `text`.
std::set<std::string> Backticked(const std::string& text) {
  std::set<std::string> spans;
  const std::regex span("`([^`\n]+)`");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), span);
       it != std::sregex_iterator(); ++it) {
    spans.insert((*it)[1].str());
  }
  return spans;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  return absl::StrJoin(lines, "\n");
}

// --- docs/model-format.md ---------------------------------------------------

// TinyConfig() with the tokenizer's keys added, every key written.
Json FullConfigJson() {
  Json j =
      Json::parse(engine::testing::ConfigJson(engine::testing::TinyConfig()));
  j["tokenizer"] = "char";
  j["vocab_file"] = "vocab.txt";
  return j;
}

TEST(ModelFormatDocTest, ConfigKeyTableListsExactlyTheKeysThatAreRead) {
  bool found = false;
  const std::vector<std::string> section =
      Section(ReadSource(kModelFormatDoc), "## config.json", &found);
  ASSERT_TRUE(found) << kModelFormatDoc << " has no \"## config.json\" section";
  const std::map<std::string, std::vector<std::string>> rows =
      RowsByName(section);
  std::set<std::string> known;
  for (const char* key : engine::KnownConfigKeys()) {
    known.insert(key);
    EXPECT_TRUE(rows.count(key))
        << kModelFormatDoc << ": the key table of \"## config.json\" has no "
        << "row for `" << key << "`, a config.json key that attnserve reads "
        << "(engine::KnownConfigKeys()); add `| `" << key
        << "` | type | default | allowed | meaning |`";
  }
  for (const auto& [key, cells] : rows) {
    EXPECT_TRUE(known.count(key))
        << kModelFormatDoc << ": the key table of \"## config.json\" has a row "
        << "for `" << key << "`, which no reader of config.json reads "
        << "(not in engine::KnownConfigKeys())";
    EXPECT_EQ(cells.size(), 5u)
        << kModelFormatDoc << ": the row of `" << key
        << "` must have 5 cells (key, type, default, allowed, meaning)";
  }
}

// KnownConfigKeys() holds no key that nothing reads: a value of the wrong JSON
// type for each one is refused, naming it, by the engine's parser or else by
// the server's tokenizer. (The parser itself refuses to read a key the list
// lacks, engine/format/model_config.cc.)
TEST(ModelFormatDocTest, EveryKnownConfigKeyIsReadByTheEngineOrTheTokenizer) {
  std::vector<std::string> warnings;
  const absl::StatusOr<engine::ModelConfig> full =
      engine::ParseModelConfig(FullConfigJson().dump(), &warnings);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_THAT(warnings, ::testing::IsEmpty())
      << "a config with every known key must give no unknown-key warning";

  for (const char* key : engine::KnownConfigKeys()) {
    SCOPED_TRACE(key);
    Json j = FullConfigJson();
    j[key] = Json::array();  // no key takes an array
    const std::string quoted = absl::StrCat("\"", key, "\"");
    warnings.clear();
    absl::StatusOr<engine::ModelConfig> parsed =
        engine::ParseModelConfig(j.dump(), &warnings);
    if (!parsed.ok()) {
      EXPECT_THAT(std::string(parsed.status().message()),
                  ::testing::HasSubstr(quoted));
      continue;
    }
    for (const std::string& warning : warnings) {
      EXPECT_THAT(warning, ::testing::Not(::testing::HasSubstr(quoted)));
    }
    engine::testing::TempDir dir("contract_docs");
    engine::testing::WriteFile(dir.File("config.json"), j.dump());
    absl::StatusOr<std::unique_ptr<server::Tokenizer>> tokenizer =
        server::LoadTokenizer(dir.path());
    ASSERT_FALSE(tokenizer.ok())
        << "config key \"" << key << "\" is in KnownConfigKeys(), but neither "
        << "engine::ParseModelConfig nor server::LoadTokenizer refuses a bad "
        << "value of it: nothing reads it";
    EXPECT_THAT(std::string(tokenizer.status().message()),
                ::testing::HasSubstr(quoted));
  }
}

// "encoder.layers.3.ffn.fc1.weight" -> "encoder.layers.{i}.ffn.fc1.weight".
std::string TensorPattern(const std::string& name) {
  return std::regex_replace(name, std::regex(R"(\.[0-9]+\.)"), ".{i}.");
}

// "[vocab_size, d_model]" with the config's sizes, or "?" for a symbol it does
// not know.
std::string ShapeOf(const std::string& symbolic, const engine::ModelConfig& c) {
  const std::string unquoted = Unquote(symbolic);
  absl::string_view inside = unquoted;
  if (!absl::ConsumePrefix(&inside, "[") || !absl::ConsumeSuffix(&inside, "]"))
    return "?";
  std::vector<std::string> dims;
  for (absl::string_view dim : absl::StrSplit(inside, ',')) {
    dim = absl::StripAsciiWhitespace(dim);
    if (dim == "d_model") {
      dims.push_back(absl::StrCat(c.d_model));
    } else if (dim == "ffn_dim") {
      dims.push_back(absl::StrCat(c.ffn_dim));
    } else if (dim == "vocab_size") {
      dims.push_back(absl::StrCat(c.vocab_size));
    } else if (dim == "attention_dim") {
      dims.push_back(absl::StrCat(c.attention_dim()));
    } else if (dim == "max_positions") {
      dims.push_back(absl::StrCat(c.max_positions));
    } else if (dim == "num_heads") {
      dims.push_back(absl::StrCat(c.num_heads));
    } else if (dim == "relative_attention_num_buckets") {
      dims.push_back(absl::StrCat(c.relative_attention_num_buckets));
    } else {
      dims.push_back(absl::StrCat("?", dim));
    }
  }
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Every tensor of every kind of model the loader takes (shared or separate
// embeddings, tied or not, with or without final norms and lm_head.bias, post-
// and pre-norm) has a row in the tensor table with its shape, and every row
// names a tensor of one of them. The models are loaded first, so the names and
// shapes are the loader's.
TEST(ModelFormatDocTest, TensorTableListsEveryTensorWithItsShape) {
  bool found = false;
  const std::vector<std::string> section =
      Section(ReadSource(kModelFormatDoc), "### Tensors", &found);
  ASSERT_TRUE(found) << kModelFormatDoc << " has no \"### Tensors\" section";
  const std::map<std::string, std::vector<std::string>> rows =
      RowsByName(section);

  struct Variant {
    const char* what;
    engine::NormPlacement norm;
    bool tied;
    engine::testing::RandomModelOptions options;
    // The issue-16 keys: 0 none, 1 T5's (attention wider than d_model, no
    // biases, rms norms, gated FFN, relative tables), 2 BART's (learned
    // positions, embedding norm, and a gated FFN with biases).
    int additions = 0;
  };
  engine::testing::RandomModelOptions plain;
  engine::testing::RandomModelOptions everything;
  everything.shared_embedding = false;
  everything.final_norms = true;
  everything.lm_head_bias = true;
  const Variant variants[] = {
      {"post-norm, shared embedding, tied", engine::NormPlacement::kPost, true,
       plain},
      {"post-norm, separate embeddings, untied, final norms, lm_head.bias",
       engine::NormPlacement::kPost, false, everything},
      {"pre-norm, shared embedding, tied", engine::NormPlacement::kPre, true,
       plain},
      {"T5-like: rms_norm, no linear_bias, gated_ffn, relative buckets, "
       "attention_head_dim",
       engine::NormPlacement::kPre, true, plain, 1},
      {"BART-like: learned positions, embedding_norm (and gated_ffn with "
       "biases)",
       engine::NormPlacement::kPost, true, plain, 2},
  };
  std::set<std::string> seen;
  for (const Variant& variant : variants) {
    SCOPED_TRACE(variant.what);
    engine::ModelConfig config = engine::testing::TinyConfig();
    config.norm_placement = variant.norm;
    config.tie_output_embedding = variant.tied;
    if (variant.additions == 1) {
      config.attention_head_dim = 12;  // attention_dim 24 != d_model 16
      config.norm_kind = engine::NormKind::kRmsNorm;
      config.linear_bias = false;
      config.gated_ffn = true;
      config.positional_encoding = engine::PositionalEncoding::kNone;
      config.relative_attention_num_buckets = 8;
    } else if (variant.additions == 2) {
      config.positional_encoding = engine::PositionalEncoding::kLearned;
      config.max_positions = 40;
      config.embedding_norm = true;
      config.gated_ffn = true;  // with biases: fc1_linear.bias
    }
    const std::vector<engine::testing::NamedTensor> tensors =
        engine::testing::RandomModelTensors(config, variant.options);
    engine::testing::TempDir dir("contract_docs");
    ASSERT_TRUE(engine::testing::WriteModelDir(
                    dir.path(), engine::testing::ConfigJson(config), tensors)
                    .ok());
    absl::StatusOr<engine::LoadedModelDir> loaded =
        engine::LoadModelDir(dir.path());
    ASSERT_TRUE(loaded.ok()) << loaded.status();

    for (const engine::testing::NamedTensor& tensor : tensors) {
      const std::string pattern = TensorPattern(tensor.name);
      seen.insert(pattern);
      auto row = rows.find(pattern);
      if (row == rows.end()) {
        ADD_FAILURE() << kModelFormatDoc << ": the table of \"### Tensors\" "
                      << "has no row for `" << pattern << "` (shape "
                      << ShapeString(tensor.shape) << " in a model with "
                      << variant.what << ")";
        continue;
      }
      ASSERT_GE(row->second.size(), 2u);
      EXPECT_EQ(ShapeOf(row->second[1], config), ShapeString(tensor.shape))
          << kModelFormatDoc << ": the row of `" << pattern
          << "` gives the shape " << row->second[1] << " (d_model "
          << config.d_model << ", ffn_dim " << config.ffn_dim << ", vocab_size "
          << config.vocab_size << ", attention_dim " << config.attention_dim()
          << ", max_positions " << config.max_positions << ")";
    }
  }
  for (const auto& [pattern, cells] : rows) {
    EXPECT_TRUE(seen.count(pattern))
        << kModelFormatDoc << ": the table of \"### Tensors\" has a row for `"
        << pattern << "`, a tensor no model the loader takes has";
  }
}

// --- docs/api.md and docs/kserve.md -----------------------------------------

// A proto file and the document that must describe every member of it.
struct ProtoDoc {
  const char* path;  // of the document
  const FileDescriptor& file;
};

ProtoDoc ApiDoc() {
  return {kApiDoc, *v1::GenerateRequest::descriptor()->file()};
}
ProtoDoc KserveDoc() {
  return {kKserveDoc, *inference::ModelInferRequest::descriptor()->file()};
}

// A type's name as the document writes it: relative to the package.
std::string DocName(const ProtoDoc& doc, const std::string& full_name) {
  const std::string prefix = doc.file.package() + ".";
  return absl::StartsWith(full_name, prefix) ? full_name.substr(prefix.size())
                                             : full_name;
}

std::string FieldType(const ProtoDoc& doc, const FieldDescriptor& field) {
  if (field.is_map()) {
    return absl::StrCat("map<", FieldType(doc, *field.message_type()->field(0)),
                        ", ", FieldType(doc, *field.message_type()->field(1)),
                        ">");
  }
  std::string type = field.message_type() != nullptr
                         ? DocName(doc, field.message_type()->full_name())
                     : field.enum_type() != nullptr
                         ? DocName(doc, field.enum_type()->full_name())
                         : field.type_name();
  if (field.is_repeated()) return absl::StrCat("repeated ", type);
  if (field.has_optional_keyword()) return absl::StrCat("optional ", type);
  return type;
}

// Checks one "### KIND `Name`" section of the document: a row per member with
// the expected cells after the name, and no row for a member that does not
// exist. `members` maps each member's name to its expected cells 2, 3, ...
void CheckSection(
    const ProtoDoc& proto_doc, const std::string& doc, const std::string& kind,
    const std::string& name,
    const std::map<std::string, std::vector<std::string>>& members,
    const std::vector<std::string>& cell_names,
    std::set<std::string>* sections_checked) {
  const std::string heading = absl::StrCat("### ", kind, " `", name, "`");
  sections_checked->insert(heading);
  bool found = false;
  const std::vector<std::string> section = Section(doc, heading, &found);
  if (!found) {
    ADD_FAILURE() << proto_doc.path << " has no section \"" << heading
                  << "\" for " << kind << " " << proto_doc.file.package() << "."
                  << name;
    return;
  }
  const std::map<std::string, std::vector<std::string>> rows =
      RowsByName(section);
  for (const auto& [member, expected] : members) {
    auto row = rows.find(member);
    if (row == rows.end()) {
      std::string what;
      for (size_t i = 0; i < expected.size(); ++i) {
        absl::StrAppend(&what, i == 0 ? "" : ", ", cell_names[i], " ",
                        expected[i]);
      }
      ADD_FAILURE() << proto_doc.path << ", section \"" << heading
                    << "\": no row for `" << member << "` (" << what << ")";
      continue;
    }
    for (size_t i = 0; i < expected.size(); ++i) {
      const std::string actual =
          i + 1 < row->second.size() ? Unquote(row->second[i + 1]) : "";
      EXPECT_EQ(actual, expected[i])
          << proto_doc.path << ", section \"" << heading << "\", row `"
          << member << "`: the " << cell_names[i] << " is " << expected[i];
    }
  }
  for (const auto& [member, cells] : rows) {
    EXPECT_TRUE(members.count(member))
        << proto_doc.path << ", section \"" << heading << "\": a row for `"
        << member << "`, which " << kind << " " << name << " does not have";
  }
}

void CheckEnum(const ProtoDoc& proto_doc, const std::string& doc,
               const EnumDescriptor& e, std::set<std::string>* sections) {
  std::map<std::string, std::vector<std::string>> values;
  for (int i = 0; i < e.value_count(); ++i) {
    values[e.value(i)->name()] = {absl::StrCat(e.value(i)->number())};
  }
  CheckSection(proto_doc, doc, "enum", DocName(proto_doc, e.full_name()),
               values, {"number"}, sections);
}

void CheckMessage(const ProtoDoc& proto_doc, const std::string& doc,
                  const Descriptor& message, std::set<std::string>* sections) {
  if (message.options().map_entry()) return;
  std::map<std::string, std::vector<std::string>> fields;
  for (int i = 0; i < message.field_count(); ++i) {
    const FieldDescriptor& field = *message.field(i);
    fields[field.name()] = {absl::StrCat(field.number()),
                            FieldType(proto_doc, field)};
  }
  CheckSection(proto_doc, doc, "message",
               DocName(proto_doc, message.full_name()), fields,
               {"number", "type"}, sections);
  for (int i = 0; i < message.nested_type_count(); ++i) {
    CheckMessage(proto_doc, doc, *message.nested_type(i), sections);
  }
  for (int i = 0; i < message.enum_type_count(); ++i) {
    CheckEnum(proto_doc, doc, *message.enum_type(i), sections);
  }
}

// Every service, method, message, field and enum value of the proto file has
// its row in the document, and the document has no section for anything else.
void CheckProtoDoc(const ProtoDoc& proto_doc) {
  const std::string doc = ReadSource(proto_doc.path);
  const FileDescriptor& file = proto_doc.file;
  std::set<std::string> sections;
  for (int s = 0; s < file.service_count(); ++s) {
    const ServiceDescriptor& service = *file.service(s);
    std::map<std::string, std::vector<std::string>> methods;
    for (int m = 0; m < service.method_count(); ++m) {
      const MethodDescriptor& method = *service.method(m);
      methods[method.name()] = {
          absl::StrCat(method.client_streaming() ? "stream " : "",
                       DocName(proto_doc, method.input_type()->full_name())),
          absl::StrCat(method.server_streaming() ? "stream " : "",
                       DocName(proto_doc, method.output_type()->full_name()))};
    }
    CheckSection(proto_doc, doc, "service", service.name(), methods,
                 {"request", "response"}, &sections);
  }
  for (int i = 0; i < file.message_type_count(); ++i) {
    CheckMessage(proto_doc, doc, *file.message_type(i), &sections);
  }
  for (int i = 0; i < file.enum_type_count(); ++i) {
    CheckEnum(proto_doc, doc, *file.enum_type(i), &sections);
  }
  // And no section for something the proto does not have.
  const std::regex heading("### (service|message|enum) `[A-Za-z0-9_.]+`");
  for (absl::string_view line_view : absl::StrSplit(doc, '\n')) {
    const std::string line(line_view);
    if (std::regex_match(line, heading)) {
      EXPECT_TRUE(sections.count(line))
          << proto_doc.path << ": section \"" << line
          << "\" describes something " << file.name() << " does not define";
    }
  }
}

TEST(ApiDocTest, EveryMethodMessageFieldAndEnumValueHasItsRow) {
  ASSERT_EQ(ApiDoc().file.package(), "attnserve.v1");
  CheckProtoDoc(ApiDoc());
}

// The KServe v2 / Triton protocol (package inference) in docs/kserve.md, as
// attnserve.v1 in docs/api.md.
TEST(KserveDocTest, EveryMethodMessageAndFieldHasItsRow) {
  ASSERT_EQ(KserveDoc().file.package(), "inference");
  ASSERT_EQ(KserveDoc().file.name(), "inference/grpc_service.proto");
  CheckProtoDoc(KserveDoc());
}

// Every code the server's one mapping function can return has a row in the
// status table.
TEST(ApiDocTest, StatusTableHasEveryCodeTheServerReturns) {
  bool found = false;
  const std::vector<std::string> section =
      Section(ReadSource(kApiDoc), "## Status codes", &found);
  ASSERT_TRUE(found) << kApiDoc << " has no \"## Status codes\" section";
  const std::map<std::string, std::vector<std::string>> rows =
      RowsByName(section);
  // Each gRPC code the mapping returns, with the internal codes that become it.
  std::map<std::string, std::vector<std::string>> returned;
  for (int code = 0; code <= 16; ++code) {
    const absl::StatusCode from = static_cast<absl::StatusCode>(code);
    const grpc::Status to =
        server::ToGrpcStatus(absl::Status(from, "a message"));
    returned[absl::StatusCodeToString(
                 static_cast<absl::StatusCode>(to.error_code()))]
        .push_back(absl::StatusCodeToString(from));
  }
  for (const auto& [name, sources] : returned) {
    EXPECT_TRUE(rows.count(name))
        << kApiDoc << ": the table of \"## Status codes\" has no row for `"
        << name << "`, which the server returns for internal "
        << absl::StrJoin(sources, ", ") << " (server/status_mapping.cc)";
  }
}

// --- metrics: docs/metrics.md and docs/api.md --------------------------------

std::vector<prometheus::MetricFamily> ServerFamilies() {
  server::ModelInfo model;
  model.name = "m";
  model.config = engine::testing::TinyConfig();
  server::PrometheusMetrics metrics(model, 8);
  return metrics.Collect();
}

// The leading metric-like name of each `span` ("attnserve_x_total{a="b"}" ->
// "attnserve_x_total").
std::set<std::string> MetricNamesIn(const std::set<std::string>& spans) {
  std::set<std::string> names;
  // A name alone or with labels; not a file name such as
  // process_metrics_test.cc.
  const std::regex name(R"(^((attnserve|process)_[a-z0-9_]+)($|\{))");
  for (const std::string& span : spans) {
    std::smatch match;
    if (std::regex_search(span, match, name)) names.insert(match[1].str());
  }
  return names;
}

TEST(MetricsDocTest, MetricsDocListsEveryFamilyAndLabel) {
  const std::set<std::string> spans = Backticked(ReadSource(kMetricsDoc));
  std::set<std::string> allowed;  // families and their histogram series
  for (const prometheus::MetricFamily& family : ServerFamilies()) {
    EXPECT_TRUE(spans.count(family.name))
        << kMetricsDoc << " does not list the metric `" << family.name
        << "`, which the server registers (server/prometheus_metrics.cc)";
    allowed.insert(family.name);
    if (family.type == prometheus::MetricType::Histogram) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        allowed.insert(family.name + suffix);
      }
    }
    for (const prometheus::ClientMetric& metric : family.metric) {
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        EXPECT_TRUE(spans.count(label.name))
            << kMetricsDoc << " does not name the label `" << label.name
            << "` of `" << family.name << "`";
        if (label.name == "reason" || label.name == "method" ||
            label.name == "protocol") {
          EXPECT_TRUE(spans.count(label.value))
              << kMetricsDoc << " does not name the value `" << label.value
              << "` of label `" << label.name << "` of `" << family.name << "`";
        }
      }
    }
  }
  for (const std::string& name : MetricNamesIn(spans)) {
    EXPECT_TRUE(allowed.count(name))
        << kMetricsDoc << " names the metric `" << name
        << "`, which the server does not export";
  }
}

TEST(MetricsDocTest, ApiDocListsEveryFamilyName) {
  bool found = false;
  const std::vector<std::string> section =
      Section(ReadSource(kApiDoc), "## Metrics", &found);
  ASSERT_TRUE(found) << kApiDoc << " has no \"## Metrics\" section";
  const std::set<std::string> names =
      MetricNamesIn(Backticked(JoinLines(section)));
  std::set<std::string> families;
  for (const prometheus::MetricFamily& family : ServerFamilies()) {
    families.insert(family.name);
    EXPECT_TRUE(names.count(family.name))
        << kApiDoc << ": \"## Metrics\" does not list `" << family.name
        << "`, which the server registers (server/prometheus_metrics.cc)";
  }
  for (const std::string& name : names) {
    EXPECT_TRUE(families.count(name))
        << kApiDoc << ": \"## Metrics\" lists `" << name
        << "`, which the server does not register";
  }
}

// --- links
// --------------------------------------------------------------------

// README.md and every docs/*.md link only files a clone has: no link leaves
// the repository for ../shared/docs, and every relative link resolves.
TEST(DocLinksTest, EveryRelativeLinkResolvesInsideTheRepository) {
  std::vector<std::string> files = {"README.md"};
  for (const fs::directory_entry& entry :
       fs::directory_iterator(absl::StrCat(ATTNSERVE_SOURCE_DIR, "/docs"))) {
    if (entry.path().extension() == ".md") {
      files.push_back(absl::StrCat("docs/", entry.path().filename().string()));
    }
  }
  ASSERT_GT(files.size(), 3u);
  const std::regex link(R"(\]\(([^)\s]+)\))");
  for (const std::string& file : files) {
    const std::string text = ReadSource(file);
    int line_number = 0;
    for (absl::string_view line_view : absl::StrSplit(text, '\n')) {
      const std::string line(line_view);
      ++line_number;
      EXPECT_FALSE(absl::StrContains(line, "shared/docs"))
          << file << ":" << line_number << " refers to shared/docs, which a "
          << "clone does not have; link docs/model-format.md or docs/api.md: "
          << line;
      for (auto it = std::sregex_iterator(line.begin(), line.end(), link);
           it != std::sregex_iterator(); ++it) {
        std::string target = (*it)[1].str();
        if (std::regex_search(target, std::regex("^[a-z]+:")) ||
            target.front() == '#') {
          continue;  // a URL, or an anchor in the same file
        }
        target = target.substr(0, target.find('#'));
        const fs::path resolved = fs::path(ATTNSERVE_SOURCE_DIR) /
                                  fs::path(file).parent_path() / target;
        EXPECT_TRUE(fs::exists(resolved))
            << file << ":" << line_number << " links " << target
            << ", which does not exist";
      }
    }
  }
}

}  // namespace
}  // namespace attnserve
