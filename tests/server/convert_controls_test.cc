// GenerateRequest's generation controls (server/convert.h): how each maps onto
// engine::DecodeOptions over the model's defaults, every bound they are
// checked against, the limits that bound them, and the responses that carry
// their results (alternatives, top log-probs, the seed).

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/batching_policy.h"
#include "server/convert.h"
#include "tests/server/convert_test_util.h"

namespace attnserve::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ModelInfo Model() { return testing::TinyModelInfo(); }

RequestLimits Limits() {
  RequestLimits limits = testing::SmallRequestLimits();
  limits.max_num_return_sequences = 3;
  limits.max_top_log_probs = 5;
  return limits;
}

v1::GenerateRequest Ids(std::vector<int32_t> ids) {
  return testing::IdsGenerateRequest(std::move(ids));
}

engine::DecodeOptions Convert(const v1::GenerateRequest& request,
                              const ModelInfo& model = Model()) {
  absl::StatusOr<WorkItem> item = ToWorkItem(request, Limits(), model, nullptr);
  EXPECT_TRUE(item.ok()) << item.status();
  return item.ok() ? item->decode : engine::DecodeOptions();
}

TEST(ConvertControlsTest, UnsetControlsChangeNothing) {
  const engine::DecodeOptions d = Convert(Ids({3}));
  const engine::DecodeOptions neutral;
  EXPECT_FALSE(d.do_sample);
  EXPECT_EQ(d.seed, 0u);
  EXPECT_EQ(d.temperature, neutral.temperature);
  // transformers' default top_k, which only a sampled request would use.
  EXPECT_EQ(d.top_k, 50);
  EXPECT_EQ(d.top_p, neutral.top_p);
  EXPECT_EQ(d.repetition_penalty, neutral.repetition_penalty);
  EXPECT_EQ(d.no_repeat_ngram_size, 0);
  EXPECT_EQ(d.min_new_tokens, 0);
  EXPECT_TRUE(d.suppress_token_ids.empty());
  EXPECT_TRUE(d.bad_words.empty());
  EXPECT_EQ(d.num_return_sequences, 1);
  EXPECT_EQ(d.top_log_probs, 0);
  EXPECT_EQ(ReportedSeed(d), 0u);
  EXPECT_EQ(engine::DecoderRows(d), 1);
}

TEST(ConvertControlsTest, EachSamplingParameterTurnsSamplingOn) {
  for (const std::function<void(v1::GenerateRequest&)>& set :
       std::vector<std::function<void(v1::GenerateRequest&)>>{
           [](v1::GenerateRequest& r) { r.set_temperature(0.7f); },
           [](v1::GenerateRequest& r) { r.set_top_k(10); },
           [](v1::GenerateRequest& r) { r.set_top_p(0.9f); },
           [](v1::GenerateRequest& r) { r.set_do_sample(true); }}) {
    v1::GenerateRequest request = Ids({3});
    set(request);
    const engine::DecodeOptions d = Convert(request);
    EXPECT_TRUE(d.do_sample) << request.ShortDebugString();
    EXPECT_NE(d.seed, 0u) << "the server picks a seed";
    EXPECT_EQ(ReportedSeed(d), d.seed);
  }
}

TEST(ConvertControlsTest, SamplingParametersAreTakenAsGiven) {
  v1::GenerateRequest request = Ids({3});
  request.set_temperature(0.5f);
  request.set_top_k(7);
  request.set_top_p(0.25f);
  request.set_seed(1234);
  const engine::DecodeOptions d = Convert(request);
  EXPECT_TRUE(d.do_sample);
  EXPECT_FLOAT_EQ(d.temperature, 0.5f);
  EXPECT_EQ(d.top_k, 7);
  EXPECT_FLOAT_EQ(d.top_p, 0.25f);
  EXPECT_EQ(d.seed, 1234u);
  EXPECT_EQ(ReportedSeed(d), 1234u);
  // top_k above the vocabulary keeps all of it (transformers clamps it).
  request.set_top_k(1000);
  EXPECT_EQ(Convert(request).top_k, 50);
}

TEST(ConvertControlsTest, ServerSeedsDifferAndStayJsonExact) {
  std::set<uint64_t> seeds;
  for (int i = 0; i < 50; ++i) {
    v1::GenerateRequest request = Ids({3});
    request.set_temperature(1.0f);
    const uint64_t seed = Convert(request).seed;
    EXPECT_GE(seed, 1u);
    EXPECT_LT(seed, uint64_t{1} << 53);
    seeds.insert(seed);
  }
  EXPECT_GT(seeds.size(), 45u);
}

TEST(ConvertControlsTest, ASeedWithoutSamplingIsNotReported) {
  v1::GenerateRequest request = Ids({3});
  request.set_seed(99);
  const engine::DecodeOptions d = Convert(request);
  EXPECT_FALSE(d.do_sample);
  EXPECT_EQ(ReportedSeed(d), 0u);
}

TEST(ConvertControlsTest, SamplingDoesNotInheritTheModelsBeams) {
  ModelInfo model = Model();
  model.generation.num_beams = 3;
  v1::GenerateRequest request = Ids({3});
  EXPECT_EQ(Convert(request, model).beam_size, 3);
  request.set_temperature(0.8f);
  const engine::DecodeOptions d = Convert(request, model);
  EXPECT_TRUE(d.do_sample);
  EXPECT_EQ(d.beam_size, 1);
}

TEST(ConvertControlsTest, OtherControlsMapOntoTheirOptions) {
  v1::GenerateRequest request = Ids({3});
  request.set_max_new_tokens(12);
  request.set_repetition_penalty(1.3f);
  request.set_no_repeat_ngram_size(2);
  request.set_min_new_tokens(12);
  request.add_suppress_token_ids(4);
  request.add_suppress_token_ids(49);
  request.add_bad_words()->add_ids(6);
  v1::TokenIds* two = request.add_bad_words();
  two->add_ids(7);
  two->add_ids(8);
  request.set_top_log_probs(5);
  const engine::DecodeOptions d = Convert(request);
  EXPECT_FLOAT_EQ(d.repetition_penalty, 1.3f);
  EXPECT_EQ(d.no_repeat_ngram_size, 2);
  EXPECT_EQ(d.min_new_tokens, 12);
  EXPECT_THAT(d.suppress_token_ids, ElementsAre(4, 49));
  EXPECT_EQ(d.bad_words, (std::vector<std::vector<int32_t>>{{6}, {7, 8}}));
  EXPECT_EQ(d.top_log_probs, 5);
  EXPECT_FALSE(d.do_sample);
}

TEST(ConvertControlsTest, TopLogProbsAreCappedAtTheVocabulary) {
  RequestLimits limits = Limits();
  limits.max_top_log_probs = 20;
  ModelInfo model = Model();
  model.config.vocab_size = 12;
  v1::GenerateRequest request = Ids({3});
  request.set_top_log_probs(20);
  absl::StatusOr<WorkItem> item = ToWorkItem(request, limits, model, nullptr);
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->decode.top_log_probs, 12);
}

// The model's generation config holds the defaults; a request overrides them,
// and its bans add to the model's.
ModelInfo ModelWithRules() {
  ModelInfo model = Model();
  model.generation.eos_ids = {2};
  model.generation.no_repeat_ngram_size = 3;
  model.generation.bad_words_ids = {{0}};
  model.generation.num_beams = 4;
  return model;
}

TEST(ConvertControlsTest, DefaultsComeFromTheGenerationConfig) {
  const engine::DecodeOptions d = Convert(Ids({3}), ModelWithRules());
  EXPECT_EQ(d.no_repeat_ngram_size, 3);
  EXPECT_EQ(d.bad_words, (std::vector<std::vector<int32_t>>{{0}}));
  EXPECT_EQ(d.beam_size, 4);
  EXPECT_EQ(d.num_return_sequences, 1);
}

TEST(ConvertControlsTest, TheRequestOverridesTheConfigAndAddsToItsBans) {
  v1::GenerateRequest request = Ids({3});
  request.set_no_repeat_ngram_size(2);
  request.add_bad_words()->add_ids(9);
  request.set_num_return_sequences(3);
  const engine::DecodeOptions d = Convert(request, ModelWithRules());
  EXPECT_EQ(d.no_repeat_ngram_size, 2);
  EXPECT_EQ(d.bad_words, (std::vector<std::vector<int32_t>>{{0}, {9}}));
  EXPECT_EQ(d.beam_size, 4);
  EXPECT_EQ(d.num_return_sequences, 3);  // the 3 best of the model's beams
  EXPECT_EQ(engine::DecoderRows(d), 4);
}

// Defaults as the engine resolves a generation config that samples
// (do_sample, temperature, top_k 50, num_return_sequences): what a request
// leaves unset keeps them, what it sets replaces them.
engine::DecodeOptions SamplingDefaults() {
  engine::DecodeOptions defaults;
  defaults.max_new_tokens = 10;
  defaults.do_sample = true;
  defaults.temperature = 0.6f;
  defaults.top_k = 50;
  defaults.top_p = 0.95f;
  defaults.repetition_penalty = 1.2f;
  defaults.num_return_sequences = 2;
  defaults.suppress_token_ids = {5};
  return defaults;
}

absl::StatusOr<engine::DecodeOptions> Apply(const v1::GenerateRequest& request,
                                            engine::DecodeOptions defaults) {
  RETURN_IF_ERROR(
      ApplyGenerationControls(request, Limits(), Model(), &defaults));
  return defaults;
}

TEST(ConvertControlsTest, AModelThatSamplesKeepsItsSamplingDefaults) {
  absl::StatusOr<engine::DecodeOptions> d = Apply(Ids({3}), SamplingDefaults());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->do_sample);
  EXPECT_FLOAT_EQ(d->temperature, 0.6f);
  EXPECT_EQ(d->top_k, 50);
  EXPECT_FLOAT_EQ(d->top_p, 0.95f);
  EXPECT_FLOAT_EQ(d->repetition_penalty, 1.2f);
  EXPECT_EQ(d->num_return_sequences, 2);
  EXPECT_EQ(engine::DecoderRows(*d), 2);
  EXPECT_NE(d->seed, 0u);

  v1::GenerateRequest request = Ids({3});
  request.set_temperature(1.5f);
  request.set_repetition_penalty(1.0f);
  request.set_num_return_sequences(1);
  request.add_suppress_token_ids(6);
  d = Apply(request, SamplingDefaults());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FLOAT_EQ(d->temperature, 1.5f);
  EXPECT_EQ(d->top_k, 50);
  EXPECT_FLOAT_EQ(d->repetition_penalty, 1.0f);
  EXPECT_EQ(d->num_return_sequences, 1);
  EXPECT_THAT(d->suppress_token_ids, ElementsAre(5, 6));
}

TEST(ConvertControlsTest, DoSampleFalseTurnsTheModelsSamplingOff) {
  v1::GenerateRequest request = Ids({3});
  request.set_do_sample(false);
  absl::StatusOr<engine::DecodeOptions> d = Apply(request, SamplingDefaults());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->do_sample);
  EXPECT_EQ(ReportedSeed(*d), 0u);
  // The default of 2 hypotheses does not apply to greedy decoding.
  EXPECT_EQ(d->num_return_sequences, 1);
}

TEST(ConvertControlsTest, BeamsOnAModelThatSamplesNeedDoSampleFalse) {
  engine::DecodeOptions defaults = SamplingDefaults();
  defaults.beam_size = 3;  // as ToWorkItem resolves the request's beam_size
  v1::GenerateRequest request = Ids({3});
  request.set_beam_size(3);
  absl::StatusOr<engine::DecodeOptions> d = Apply(request, defaults);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(d.status().message()),
              HasSubstr("beam_size = 3 with sampling: model tiny's generation "
                        "config samples (do_sample); send do_sample = false"));
  request.set_do_sample(false);
  d = Apply(request, defaults);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->do_sample);
  EXPECT_EQ(d->beam_size, 3);
  EXPECT_EQ(d->num_return_sequences, 2);  // the model's, within the beam
}

TEST(ConvertControlsTest, DefaultHypothesesStayWithinWhatTheRequestCanReturn) {
  engine::DecodeOptions defaults = SamplingDefaults();
  defaults.num_return_sequences = 8;
  absl::StatusOr<engine::DecodeOptions> d = Apply(Ids({3}), defaults);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->num_return_sequences, 3);  // max_num_return_sequences
}

TEST(ConvertControlsTest, SampledHypothesesAreDecoderRows) {
  v1::GenerateRequest request = Ids({3, 4});
  request.set_max_new_tokens(6);
  request.set_temperature(1.0f);
  request.set_num_return_sequences(3);
  const engine::DecodeOptions d = Convert(request);
  EXPECT_EQ(d.num_return_sequences, 3);
  EXPECT_EQ(engine::DecoderRows(d), 3);
  EXPECT_EQ(TokenCost(2, d), 3 * (2 + 6));
  // The memory estimate counts them as it counts a beam of 3, and their
  // whole rows of logits besides.
  engine::DecodeOptions beam = d;
  beam.do_sample = false;
  beam.beam_size = 3;
  ModelInfo model = Model();
  model.config.d_model = 8;
  model.config.ffn_dim = 16;
  model.config.num_heads = 2;
  model.config.decoder_layers = 1;
  EXPECT_GT(EstimateRequestBytes(model, 2, d),
            EstimateRequestBytes(model, 2, beam));
  engine::DecodeOptions one = d;
  one.num_return_sequences = 1;
  EXPECT_GT(EstimateRequestBytes(model, 2, d),
            EstimateRequestBytes(model, 2, one));
}

struct BadCase {
  std::string name;
  std::function<void(v1::GenerateRequest&)> set;
  std::string message;  // a part of the expected message

  friend void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }
};

std::vector<BadCase> BadCases() {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  using R = v1::GenerateRequest;
  return {
      {"NegativeTemperature", [](R& r) { r.set_temperature(-0.5f); },
       "temperature = -0.5 must be a finite number >= 0"},
      {"NanTemperature", [nan](R& r) { r.set_temperature(nan); },
       "temperature = nan must be a finite number >= 0"},
      {"InfiniteTemperature", [inf](R& r) { r.set_temperature(inf); },
       "temperature = inf must be a finite number >= 0"},
      {"TopPAboveOne", [](R& r) { r.set_top_p(1.5f); },
       "top_p = 1.5 must be in [0, 1]"},
      {"NegativeTopP", [](R& r) { r.set_top_p(-0.1f); },
       "top_p = -0.1 must be in [0, 1]"},
      {"NanTopP", [nan](R& r) { r.set_top_p(nan); },
       "top_p = nan must be in [0, 1]"},
      {"SamplingParametersWithDoSampleFalse",
       [](R& r) {
         r.set_do_sample(false);
         r.set_top_k(5);
       },
       "temperature, top_k and top_p apply only to sampling; the request "
       "sets do_sample = false"},
      {"SamplingWithBeams",
       [](R& r) {
         r.set_temperature(0.7f);
         r.set_beam_size(2);
       },
       "sampling (temperature, top_k, top_p or do_sample) needs beam_size 1, "
       "not 2 (beam sampling is not supported)"},
      {"NegativeRepetitionPenalty",
       [](R& r) { r.set_repetition_penalty(-1.0f); },
       "repetition_penalty = -1 must be a finite number > 0"},
      {"NanRepetitionPenalty", [nan](R& r) { r.set_repetition_penalty(nan); },
       "repetition_penalty = nan must be a finite number > 0"},
      {"InfiniteRepetitionPenalty",
       [inf](R& r) { r.set_repetition_penalty(inf); },
       "repetition_penalty = inf must be a finite number > 0"},
      {"NgramAboveMaxPositions", [](R& r) { r.set_no_repeat_ngram_size(33); },
       "no_repeat_ngram_size = 33 is above the model's max_positions (32)"},
      {"MinNewTokensAboveMaxNewTokens",
       [](R& r) {
         r.set_max_new_tokens(4);
         r.set_min_new_tokens(5);
       },
       "min_new_tokens = 5 is above max_new_tokens (4)"},
      {"MinNewTokensAboveTheDefault", [](R& r) { r.set_min_new_tokens(6); },
       "min_new_tokens = 6 is above max_new_tokens (5)"},
      {"SuppressedIdAboveVocab",
       [](R& r) {
         r.add_suppress_token_ids(3);
         r.add_suppress_token_ids(50);
       },
       "suppress_token_ids[1] = 50 is outside [0, 50) (the model's "
       "vocab_size)"},
      {"NegativeSuppressedId", [](R& r) { r.add_suppress_token_ids(-1); },
       "suppress_token_ids[0] = -1 is outside [0, 50)"},
      {"EverythingSuppressed",
       [](R& r) {
         for (int id = 0; id < 50; ++id) r.add_suppress_token_ids(id);
       },
       "suppress_token_ids leave no token of the vocabulary (50) to "
       "generate"},
      {"EmptyBadWord",
       [](R& r) {
         r.add_bad_words()->add_ids(3);
         r.add_bad_words();
       },
       "bad_words[1] is empty"},
      {"BadWordIdAboveVocab",
       [](R& r) {
         v1::TokenIds* word = r.add_bad_words();
         word->add_ids(3);
         word->add_ids(77);
       },
       "bad_words[0].ids[1] = 77 is outside [0, 50)"},
      {"HypothesesAboveTheLimit",
       [](R& r) {
         r.set_temperature(1.0f);
         r.set_num_return_sequences(4);
       },
       "num_return_sequences = 4 is above the limit of 3 "
       "(max_num_return_sequences)"},
      {"HypothesesAboveTheBeam",
       [](R& r) {
         r.set_beam_size(2);
         r.set_num_return_sequences(3);
       },
       "num_return_sequences = 3 is above beam_size (2): beam search returns "
       "at most beam_size hypotheses"},
      {"HypothesesOfGreedyDecoding",
       [](R& r) { r.set_num_return_sequences(2); },
       "num_return_sequences = 2 needs beam search (beam_size >= 2) or "
       "sampling; greedy decoding has one answer"},
      {"TopLogProbsAboveTheLimit", [](R& r) { r.set_top_log_probs(6); },
       "top_log_probs = 6 is above the limit of 5 (max_top_log_probs)"},
  };
}

class BadControlTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadControlTest, IsInvalidArgumentNamingTheFieldAndTheBound) {
  v1::GenerateRequest request = Ids({3});
  GetParam().set(request);
  absl::StatusOr<WorkItem> item =
      ToWorkItem(request, Limits(), Model(), nullptr);
  ASSERT_FALSE(item.ok());
  EXPECT_EQ(item.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(item.status().message()),
              HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(Convert, BadControlTest,
                         ::testing::ValuesIn(BadCases()),
                         [](const auto& info) { return info.param.name; });

TEST(ConvertControlsTest, TopLogProbsAreOffWhenTheLimitIsZero) {
  RequestLimits limits = Limits();
  limits.max_top_log_probs = 0;
  v1::GenerateRequest request = Ids({3});
  request.set_top_log_probs(1);
  absl::StatusOr<WorkItem> item = ToWorkItem(request, limits, Model(), nullptr);
  ASSERT_FALSE(item.ok());
  EXPECT_THAT(std::string(item.status().message()),
              HasSubstr("top_log_probs = 1 is above the limit of 0"));
}

TEST(ResolveLimitsTest, BoundsTheNewLimits) {
  ModelInfo model = Model();
  for (int bad : {0, kMaxNumReturnSequences + 1}) {
    RequestLimits limits = Limits();
    limits.max_num_return_sequences = bad;
    absl::StatusOr<RequestLimits> resolved = ResolveLimits(limits, model);
    ASSERT_FALSE(resolved.ok()) << bad;
    EXPECT_THAT(std::string(resolved.status().message()),
                HasSubstr(absl::StrCat("max_num_return_sequences = ", bad,
                                       " must be in [1, 16]")));
  }
  for (int bad : {-1, kMaxTopLogProbs + 1}) {
    RequestLimits limits = Limits();
    limits.max_top_log_probs = bad;
    absl::StatusOr<RequestLimits> resolved = ResolveLimits(limits, model);
    ASSERT_FALSE(resolved.ok()) << bad;
    EXPECT_THAT(std::string(resolved.status().message()),
                HasSubstr(absl::StrCat("max_top_log_probs = ", bad,
                                       " must be in [0, 20]")));
  }
}

TEST(ResolveLimitsTest, DerivedLimitsLeaveRoomForTheMostSampledRows) {
  // A token budget: rows x (source + new tokens). With max_beam_size 1 and
  // up to 4 sampled rows, the derived limits are sized for 4 rows.
  RequestLimits limits;
  limits.max_beam_size = 1;
  limits.max_num_return_sequences = 4;
  limits.max_batch_tokens = 64;
  absl::StatusOr<RequestLimits> resolved = ResolveLimits(limits, Model());
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->max_input_tokens, 8);
  EXPECT_EQ(resolved->max_new_tokens_limit, 8);
  limits.max_num_return_sequences = 1;
  resolved = ResolveLimits(limits, Model());
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->max_input_tokens, 32);
  EXPECT_EQ(resolved->max_new_tokens_limit, 31);
}

// A tokenizer that spells each id as a letter.
class LetterTokenizer final : public Tokenizer {
 public:
  absl::StatusOr<std::vector<int32_t>> Encode(
      absl::string_view) const override {
    return std::vector<int32_t>{3};
  }
  std::string Decode(absl::Span<const int32_t> ids, bool) const override {
    std::string text;
    for (int32_t id : ids) text += static_cast<char>('a' + id % 26);
    return text;
  }
};

Outcome OutcomeWithAlternatives() {
  Outcome outcome;
  engine::SequenceResult& best = outcome.result;
  best.output_ids = {3, 4};
  best.log_probs = {-0.5f, -0.25f};
  best.score = -0.75f;
  best.finish_reason = engine::FinishReason::kEos;
  best.top_log_probs = {{{3, -0.5f}, {7, -1.5f}}, {{4, -0.25f}, {8, -2.0f}}};
  engine::SequenceResult other;
  other.output_ids = {5, 6, 7};
  other.log_probs = {-1.0f, -1.0f, -1.0f};
  other.score = -3.0f;
  other.finish_reason = engine::FinishReason::kLength;
  other.top_log_probs = {{{5, -1.0f}}, {{6, -1.0f}}, {{7, -1.0f}}};
  best.alternatives.push_back(other);
  return outcome;
}

TEST(ConvertResponseTest, FillsAlternativesTopLogProbsAndTheSeed) {
  LetterTokenizer tokenizer;
  ResponseOptions options;
  options.with_log_probs = true;
  options.seed = 42;
  options.tokenizer = &tokenizer;
  v1::GenerateResponse response;
  FillResponse(OutcomeWithAlternatives(), options, &response);
  EXPECT_THAT(response.output_ids(), ElementsAre(3, 4));
  EXPECT_EQ(response.text(), "de");
  EXPECT_THAT(response.log_probs(), ElementsAre(-0.5f, -0.25f));
  EXPECT_EQ(response.finish_reason(), v1::FINISH_REASON_EOS);
  EXPECT_FLOAT_EQ(response.score(), -0.75f);
  EXPECT_EQ(response.seed(), 42u);
  ASSERT_EQ(response.top_log_probs_size(), 2);
  ASSERT_EQ(response.top_log_probs(1).tokens_size(), 2);
  EXPECT_EQ(response.top_log_probs(1).tokens(1).token_id(), 8);
  EXPECT_FLOAT_EQ(response.top_log_probs(1).tokens(1).log_prob(), -2.0f);
  ASSERT_EQ(response.alternatives_size(), 1);
  const v1::Hypothesis& other = response.alternatives(0);
  EXPECT_THAT(other.output_ids(), ElementsAre(5, 6, 7));
  EXPECT_EQ(other.text(), "fgh");
  EXPECT_FLOAT_EQ(other.score(), -3.0f);
  EXPECT_THAT(other.log_probs(), ElementsAre(-1.0f, -1.0f, -1.0f));
  EXPECT_EQ(other.finish_reason(), v1::FINISH_REASON_LENGTH);
  ASSERT_EQ(other.top_log_probs_size(), 3);
  EXPECT_EQ(other.top_log_probs(2).tokens(0).token_id(), 7);
}

TEST(ConvertResponseTest, WithoutTokenizerOrLogProbsTheyStayEmpty) {
  v1::GenerateResponse response;
  FillResponse(OutcomeWithAlternatives(), ResponseOptions(), &response);
  EXPECT_EQ(response.text(), "");
  EXPECT_EQ(response.log_probs_size(), 0);
  EXPECT_EQ(response.seed(), 0u);
  ASSERT_EQ(response.alternatives_size(), 1);
  EXPECT_EQ(response.alternatives(0).text(), "");
  EXPECT_EQ(response.alternatives(0).log_probs_size(), 0);
  EXPECT_FLOAT_EQ(response.alternatives(0).score(), -3.0f);
}

}  // namespace
}  // namespace attnserve::server
