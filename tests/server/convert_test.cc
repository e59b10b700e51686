#include "server/convert.h"

#include <functional>
#include <limits>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "engine/memory/memory_estimate.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/convert_test_util.h"

namespace attnserve::server {
namespace {

using ::testing::HasSubstr;

ModelInfo Model() { return testing::TinyModelInfo(); }

RequestLimits Limits() { return testing::SmallRequestLimits(); }

v1::GenerateRequest Ids(std::vector<int32_t> ids) {
  return testing::IdsGenerateRequest(std::move(ids));
}

// A tokenizer that maps each character to (char % 40) + 3.
class CharTokenizer final : public Tokenizer {
 public:
  absl::StatusOr<std::vector<int32_t>> Encode(
      absl::string_view text) const override {
    std::vector<int32_t> ids;
    for (char c : text) ids.push_back(static_cast<unsigned char>(c) % 40 + 3);
    return ids;
  }
  std::string Decode(absl::Span<const int32_t> ids,
                     bool continues) const override {
    return std::string(ids.size(), 'x');
  }
};

TEST(ConvertTest, TakesIdsAndAppliesDefaults) {
  absl::StatusOr<WorkItem> item =
      ToWorkItem(Ids({3, 4, 5}), Limits(), Model(), nullptr);
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->source, (std::vector<int32_t>{3, 4, 5}));
  EXPECT_EQ(item->decode.max_new_tokens, 5);
  EXPECT_EQ(item->decode.beam_size, 1);
  EXPECT_EQ(item->decode.length_penalty, 1.0f);
}

TEST(ConvertTest, TakesExplicitDecodeOptions) {
  v1::GenerateRequest request = Ids({3});
  request.set_max_new_tokens(20);
  request.set_beam_size(4);
  request.set_length_penalty(0.6f);
  absl::StatusOr<WorkItem> item =
      ToWorkItem(request, Limits(), Model(), nullptr);
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->decode.max_new_tokens, 20);
  EXPECT_EQ(item->decode.beam_size, 4);
  EXPECT_FLOAT_EQ(item->decode.length_penalty, 0.6f);
}

struct BadCase {
  std::string name;
  v1::GenerateRequest request;
  std::string message;  // a part of the expected message

  // gtest prints the case by its name (in test listings and ctest).
  friend void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }
};

std::vector<BadCase> BadCases() {
  std::vector<BadCase> cases;
  cases.push_back({"Empty", v1::GenerateRequest(), "sets neither"});
  v1::GenerateRequest both = Ids({3});
  both.set_text("hi");
  cases.push_back({"Both", both, "sets both"});
  cases.push_back(
      {"IdAboveVocab", Ids({3, 50}), "input_ids[1] = 50 is outside [0, 50)"});
  cases.push_back(
      {"NegativeId", Ids({-1}), "input_ids[0] = -1 is outside [0, 50)"});
  cases.push_back(
      {"TooManyTokens", Ids({3, 3, 3, 3, 3, 3, 3, 3, 3}),
       "input_ids has 9 tokens; the limit is 8 (max_input_tokens)"});
  v1::GenerateRequest text;
  text.set_text("hello");
  cases.push_back({"TextWithoutTokenizer", text,
                   "text requires a tokenizer; model tiny has none"});
  v1::GenerateRequest new_tokens = Ids({3});
  new_tokens.set_max_new_tokens(21);
  cases.push_back(
      {"MaxNewTokensAboveLimit", new_tokens,
       "max_new_tokens = 21 is above the limit of 20 (max_new_tokens_limit)"});
  v1::GenerateRequest beam = Ids({3});
  beam.set_beam_size(5);
  cases.push_back({"BeamAboveLimit", beam,
                   "beam_size = 5 is above the limit of 4 (max_beam_size)"});
  v1::GenerateRequest penalty = Ids({3});
  penalty.set_length_penalty(-1.0f);
  cases.push_back({"NegativeLengthPenalty", penalty, "length_penalty = -1"});
  v1::GenerateRequest nan_penalty = Ids({3});
  nan_penalty.set_length_penalty(std::numeric_limits<float>::quiet_NaN());
  cases.push_back({"NanLengthPenalty", nan_penalty, "must be a finite number"});
  v1::GenerateRequest long_id = Ids({3});
  long_id.set_request_id(std::string(300, 'r'));
  cases.push_back(
      {"LongRequestId", long_id, "request_id has 300 bytes; the limit is 256"});
  // Request ids are logged and echoed: printable ASCII only, named by byte.
  struct BadId {
    const char* name;
    std::string id;
    const char* message;
  };
  for (const BadId& bad :
       {BadId{"RequestIdWithNewline", "abc\n2026-01-01 attnserve: forged",
              "request_id byte 3 is 0x0A"},
        BadId{"RequestIdWithEscape", "a\x1b[2J", "byte 1 is 0x1B"},
        BadId{"RequestIdNotAscii", "\xC3\xA9", "byte 0 is 0xC3"},
        BadId{"RequestIdWithNul", std::string("a\0b", 3), "byte 1 is 0x00"}}) {
    v1::GenerateRequest request = Ids({3});
    request.set_request_id(bad.id);
    cases.push_back({bad.name, request, bad.message});
  }
  return cases;
}

class BadRequestTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadRequestTest, IsInvalidArgumentNamingFieldAndLimit) {
  absl::StatusOr<WorkItem> item =
      ToWorkItem(GetParam().request, Limits(), Model(), nullptr);
  ASSERT_FALSE(item.ok());
  EXPECT_EQ(item.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(item.status().message()),
              HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(Convert, BadRequestTest,
                         ::testing::ValuesIn(BadCases()),
                         [](const auto& info) { return info.param.name; });

TEST(ConvertTest, PrintableAsciiRequestIdsAreAccepted) {
  for (const std::string& id :
       {std::string(""), std::string("trace-01HZ/step 3:retry=2"),
        std::string(256, '~')}) {
    v1::GenerateRequest request = Ids({3});
    request.set_request_id(id);
    EXPECT_TRUE(ToWorkItem(request, Limits(), Model(), nullptr).ok()) << id;
  }
}

TEST(ConvertTest, TextGoesThroughTheTokenizerWithEosWhenAsked) {
  ModelInfo model = Model();
  model.config.add_eos_to_source = true;
  CharTokenizer tokenizer;
  v1::GenerateRequest request;
  request.set_text("ab");
  absl::StatusOr<WorkItem> item =
      ToWorkItem(request, Limits(), model, &tokenizer);
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->source,
            (std::vector<int32_t>{'a' % 40 + 3, 'b' % 40 + 3, 2}));
}

TEST(ConvertTest, TextLongerThanTheLimitNamesText) {
  CharTokenizer tokenizer;
  v1::GenerateRequest request;
  request.set_text("abcdefghij");
  absl::StatusOr<WorkItem> item =
      ToWorkItem(request, Limits(), Model(), &tokenizer);
  EXPECT_THAT(std::string(item.status().message()),
              HasSubstr("text has 10 tokens"));
}

TEST(ConvertTest, ResolvesZeroLimitsToTheModel) {
  RequestLimits limits;
  limits.default_max_new_tokens = 100;
  absl::StatusOr<RequestLimits> resolved = ResolveLimits(limits, Model());
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->max_input_tokens, 32);
  EXPECT_EQ(resolved->max_new_tokens_limit, 31);
  EXPECT_EQ(resolved->default_max_new_tokens, 31) << "capped at the limit";
}

TEST(ConvertTest, RejectsLimitsBeyondTheModel) {
  RequestLimits limits;
  limits.max_input_tokens = 33;
  EXPECT_THAT(std::string(ResolveLimits(limits, Model()).status().message()),
              HasSubstr("max_input_tokens = 33 must be in [1, 32]"));
  limits = RequestLimits();
  limits.max_beam_size = 9;
  EXPECT_THAT(std::string(ResolveLimits(limits, Model()).status().message()),
              HasSubstr("max_beam_size = 9"));
}

TEST(ConvertTest, SummaryCarriesFinishReasonScoreAndTiming) {
  Outcome outcome;
  outcome.result.finish_reason = engine::FinishReason::kLength;
  outcome.result.score = -1.5f;
  outcome.queue_time = absl::Microseconds(10);
  outcome.compute_time = absl::Microseconds(20);
  outcome.total_time = absl::Microseconds(40);
  outcome.max_batch_size = 3;
  v1::GenerateResponse response;
  SetSummary(outcome, &response);
  EXPECT_EQ(response.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(response.score(), -1.5f);
  EXPECT_EQ(response.timing().queue_us(), 10u);
  EXPECT_EQ(response.timing().compute_us(), 20u);
  EXPECT_EQ(response.timing().total_us(), 40u);
  EXPECT_EQ(response.timing().batch_size(), 3u);
}

TEST(ConvertTest, NewRequestIdsDiffer) {
  EXPECT_NE(NewRequestId(), NewRequestId());
  EXPECT_EQ(NewRequestId().rfind("req-", 0), 0u);
}

}  // namespace
}  // namespace attnserve::server

namespace attnserve::server {
namespace {

// models/dates' shape with a huge max_positions (issue 15, finding 1).
ModelInfo HugeModel() {
  ModelInfo model = Model();
  model.name = "huge";
  model.config.d_model = 128;
  model.config.encoder_layers = 2;
  model.config.decoder_layers = 2;
  model.config.ffn_dim = 512;
  model.config.max_positions = 1 << 20;
  return model;
}

int64_t Bytes(const ModelInfo& model, int source, int new_tokens, int beam) {
  engine::DecodeOptions options;
  options.max_new_tokens = new_tokens;
  options.beam_size = beam;
  return engine::SequenceMemoryBytes(model.config, source, options);
}

TEST(ResolveLimitsTest,
     DerivedLimitsAreCappedSoThatARequestAtThemFitsTheBudget) {
  const ModelInfo model = HugeModel();
  RequestLimits limits;  // every limit derived
  limits.memory_budget_bytes = int64_t{100} << 20;
  absl::StatusOr<RequestLimits> resolved = ResolveLimits(limits, model);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  const int cap = resolved->max_new_tokens_limit;
  EXPECT_EQ(resolved->max_input_tokens, cap);
  EXPECT_GT(cap, 100);
  EXPECT_LT(cap, model.config.max_positions / 10);
  EXPECT_LE(Bytes(model, cap, cap, 4), limits.memory_budget_bytes);
  EXPECT_GT(Bytes(model, cap + 1, cap + 1, 4), limits.memory_budget_bytes)
      << "the largest cap that fits";
  EXPECT_THAT(resolved->new_tokens_cap_reason, HasSubstr("--memory_budget"));
  EXPECT_EQ(resolved->default_max_new_tokens, 64);

  // Over the capped limit: too big for this server, not a malformed request.
  v1::GenerateRequest request = Ids({5, 6, 7});
  request.set_max_new_tokens(1'000'000);
  absl::StatusOr<WorkItem> item =
      ToWorkItem(request, *resolved, model, nullptr);
  EXPECT_EQ(item.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(item.status().message()),
              HasSubstr("max_new_tokens = 1000000 may need up to"));
  EXPECT_THAT(std::string(item.status().message()),
              HasSubstr("GiB of engine memory"));
  EXPECT_THAT(std::string(item.status().message()),
              HasSubstr("100 MiB (--memory_budget)"));
  request.set_max_new_tokens(cap);
  EXPECT_TRUE(ToWorkItem(request, *resolved, model, nullptr).ok());

  std::vector<int32_t> long_source(cap + 1, 5);
  item = ToWorkItem(Ids(long_source), *resolved, model, nullptr);
  EXPECT_EQ(item.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(item.status().message()),
              HasSubstr("max_input_tokens, lowered"));
}

TEST(ResolveLimitsTest, ExplicitLimitsAreNotCapped) {
  const ModelInfo model = HugeModel();
  RequestLimits limits;
  limits.max_input_tokens = 500'000;
  limits.max_new_tokens_limit = 500'000;
  limits.memory_budget_bytes = int64_t{100} << 20;
  absl::StatusOr<RequestLimits> resolved = ResolveLimits(limits, model);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->max_new_tokens_limit, 500'000);
  EXPECT_TRUE(resolved->new_tokens_cap_reason.empty());
  v1::GenerateRequest request = Ids({5});
  request.set_max_new_tokens(500'001);
  EXPECT_EQ(ToWorkItem(request, *resolved, model, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ResolveLimitsTest, DerivedLimitsAreCappedByTheTokenBudget) {
  RequestLimits limits;
  limits.max_batch_tokens = 100;  // 4 beams x (12 + 12) = 96 fits, 13 does not
  absl::StatusOr<RequestLimits> resolved = ResolveLimits(limits, Model());
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->max_input_tokens, 12);
  EXPECT_EQ(resolved->max_new_tokens_limit, 12);
  EXPECT_EQ(resolved->default_max_new_tokens, 12);
  EXPECT_THAT(resolved->input_cap_reason, HasSubstr("--max_batch_tokens"));
}

TEST(ResolveLimitsTest, NoBudgetsKeepTheModelsLimits) {
  absl::StatusOr<RequestLimits> resolved =
      ResolveLimits(RequestLimits(), HugeModel());
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->max_input_tokens, 1 << 20);
  EXPECT_EQ(resolved->max_new_tokens_limit, (1 << 20) - 1);
}

TEST(ResolveLimitsTest, ABudgetTooSmallForAnyRequestIsAnError) {
  RequestLimits limits;
  limits.memory_budget_bytes = 1000;
  absl::StatusOr<RequestLimits> resolved = ResolveLimits(limits, HugeModel());
  EXPECT_EQ(resolved.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(resolved.status().message()),
              HasSubstr("even a request of 1 source token"));
}

}  // namespace
}  // namespace attnserve::server

namespace attnserve::server {
namespace {

ModelInfo ModelWithGeneration() {
  ModelInfo model = Model();
  engine::GenerationConfig& g = model.generation;
  g.decoder_start_id = 1;
  g.eos_ids = {2, 9};
  g.pad_id = 0;
  g.forced_bos_id = 7;
  g.forced_eos_ids = {2};
  g.bad_words_ids = {{0}, {4, 5}};
  g.max_length = 11;
  g.min_length = 3;
  g.no_repeat_ngram_size = 3;
  g.num_beams = 3;
  g.length_penalty = 2.0f;
  g.early_stopping = engine::EarlyStopping::kNever;
  return model;
}

TEST(ConvertGenerationTest, UnsetFieldsComeFromTheGenerationConfig) {
  absl::StatusOr<WorkItem> item =
      ToWorkItem(Ids({3}), Limits(), ModelWithGeneration(), nullptr);
  ASSERT_TRUE(item.ok()) << item.status();
  const engine::DecodeOptions& d = item->decode;
  EXPECT_EQ(d.max_new_tokens, 10);  // max_length - 1
  EXPECT_EQ(d.beam_size, 3);
  EXPECT_FLOAT_EQ(d.length_penalty, 2.0f);
  EXPECT_EQ(d.decoder_start_id, 1);
  EXPECT_EQ(d.eos_ids, (std::vector<int32_t>{2, 9}));
  EXPECT_EQ(d.forced_bos_id, 7);
  EXPECT_EQ(d.forced_eos_ids, (std::vector<int32_t>{2}));
  EXPECT_EQ(d.bad_words, (std::vector<std::vector<int32_t>>{{0}, {4, 5}}));
  EXPECT_EQ(d.min_length, 3);
  EXPECT_EQ(d.no_repeat_ngram_size, 3);
  EXPECT_EQ(d.early_stopping, engine::EarlyStopping::kNever);
  EXPECT_TRUE(d.target_prefix.empty());
}

TEST(ConvertGenerationTest, TheRequestOverridesLimitBeamsAndPenalty) {
  v1::GenerateRequest request = Ids({3});
  request.set_max_new_tokens(4);
  request.set_beam_size(1);
  request.set_length_penalty(0.5f);
  absl::StatusOr<WorkItem> item =
      ToWorkItem(request, Limits(), ModelWithGeneration(), nullptr);
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->decode.max_new_tokens, 4);
  EXPECT_EQ(item->decode.beam_size, 1);
  EXPECT_FLOAT_EQ(item->decode.length_penalty, 0.5f);
  EXPECT_EQ(item->decode.forced_bos_id, 7);  // rules stay the model's
}

TEST(ConvertGenerationTest, DefaultsStayWithinTheServersLimits) {
  ModelInfo model = ModelWithGeneration();
  model.generation.max_length = 200;
  model.generation.num_beams = 6;
  absl::StatusOr<WorkItem> item =
      ToWorkItem(Ids({3}), Limits(), model, nullptr);
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->decode.max_new_tokens, 20);  // max_new_tokens_limit
  EXPECT_EQ(item->decode.beam_size, 4);        // max_beam_size
}

TEST(ConvertGenerationTest, AModelWithoutOneKeepsTheServersDefaults) {
  absl::StatusOr<WorkItem> item =
      ToWorkItem(Ids({3}), Limits(), Model(), nullptr);
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->decode.max_new_tokens, 5);     // default_max_new_tokens
  EXPECT_EQ(item->decode.decoder_start_id, -1);  // the model's
  EXPECT_TRUE(item->decode.eos_ids.empty());
  EXPECT_EQ(item->decode.forced_bos_id, -1);
}

TEST(ConvertGenerationTest, TargetPrefixIds) {
  v1::GenerateRequest request = Ids({3});
  request.add_target_prefix_ids(8);
  request.add_target_prefix_ids(6);
  absl::StatusOr<WorkItem> item =
      ToWorkItem(request, Limits(), ModelWithGeneration(), nullptr);
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->decode.target_prefix, (std::vector<int32_t>{8, 6}));
}

TEST(ConvertGenerationTest, TargetPrefixTextGoesThroughTheTokenizer) {
  CharTokenizer tokenizer;
  v1::GenerateRequest request = Ids({3});
  request.set_target_prefix("ab");
  // No EOS appended, even when the model appends one to sources; the model's
  // forced BOS (7) stays first, which a text cannot name.
  ModelInfo model = ModelWithGeneration();
  model.config.add_eos_to_source = true;
  absl::StatusOr<WorkItem> item =
      ToWorkItem(request, Limits(), model, &tokenizer);
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->decode.target_prefix,
            (std::vector<int32_t>{7, 'a' % 40 + 3, 'b' % 40 + 3}));
  // Without a forced BOS, the text's tokens alone.
  model.generation.forced_bos_id = -1;
  item = ToWorkItem(request, Limits(), model, &tokenizer);
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->decode.target_prefix,
            (std::vector<int32_t>{'a' % 40 + 3, 'b' % 40 + 3}));
}

TEST(ConvertGenerationTest, BadTargetPrefixesNameTheField) {
  CharTokenizer tokenizer;
  struct Case {
    std::function<void(v1::GenerateRequest&)> set;
    bool with_tokenizer;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](v1::GenerateRequest& r) {
         r.add_target_prefix_ids(5);
         r.set_target_prefix("a");
       },
       true, "at most one of target_prefix_ids and target_prefix"},
      {[](v1::GenerateRequest& r) { r.set_target_prefix("a"); }, false,
       "target_prefix requires a tokenizer; model tiny has none"},
      {[](v1::GenerateRequest& r) {
         r.add_target_prefix_ids(5);
         r.add_target_prefix_ids(50);
       },
       false, "target_prefix_ids[1] = 50 is outside [0, 50)"},
      {[](v1::GenerateRequest& r) { r.add_target_prefix_ids(-4); }, false,
       "target_prefix_ids[0] = -4 is outside"},
      {[](v1::GenerateRequest& r) { r.add_target_prefix_ids(9); }, false,
       "target_prefix_ids[0] = 9 is an EOS id"},
      {[](v1::GenerateRequest& r) {
         r.set_max_new_tokens(2);
         for (int i = 0; i < 3; ++i) r.add_target_prefix_ids(5);
       },
       false, "target_prefix_ids has 3 tokens; max_new_tokens is 2"},
      {[](v1::GenerateRequest& r) {
         r.set_target_prefix(std::string(11, 'a'));
       },
       true,
       "the forced BOS (forced_bos_token_id) and target_prefix make 12 "
       "tokens; max_new_tokens is 10"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    v1::GenerateRequest request = Ids({3});
    c.set(request);
    absl::StatusOr<WorkItem> item =
        ToWorkItem(request, Limits(), ModelWithGeneration(),
                   c.with_tokenizer ? &tokenizer : nullptr);
    ASSERT_FALSE(item.ok());
    EXPECT_EQ(item.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(item.status().message()), HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace attnserve::server
