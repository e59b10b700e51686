// Fuzzes request checking and conversion (server/convert.h) as a gRPC thread
// runs it: arbitrary bytes parsed as a GenerateRequest, then ResolveLimits and
// ToWorkItem against a model, with and without a tokenizer.
//
// Input: 5 setup bytes, then the serialized GenerateRequest.
//   byte 0      tokenizer (% 3: none, char, whitespace); / 3 % 2, the
//               model's add_eos_to_source; / 6 % 2, a model with
//               max_positions 1048576 instead of 64 (limits derived from it
//               must be capped by the budgets); / 12 % 4, the budgets of the
//               running batch (none; 256 KiB and 2048 tokens; 4 MiB; 64 MiB
//               and 65536 tokens); / 48 % 2, the tokenizer is instead
//               NLLB's (tests/data/hf_tokenizers/nllb, a multilingual one for
//               source_language and target_language) and the model's
//               vocab_size its 604. Inputs below 6 mean what they always did.
//   bytes 1..4  the server's limits, as int8: max_input_tokens,
//               max_new_tokens_limit, default_max_new_tokens, max_beam_size
//               (the small model has max_positions 64, so they reach past it)
//
// Checks, besides "no crash, no sanitizer report":
// - an accepted request satisfies everything engine::Generator::Validate
//   requires (generator.h), within the resolved limits, so the batcher never
//   has to turn away what the gRPC thread accepted;
// - with every limit derived (zero), an accepted request fits the budgets
//   alone (engine::SequenceMemoryBytes, server::TokenCost), so a huge
//   max_positions can never let one request size memory past them; refusals
//   are INVALID_ARGUMENT or, for a request too big for the budgets,
//   RESOURCE_EXHAUSTED;
// - text round-trips: decoding the source gives the text back (char) or its
//   words joined by single spaces (whitespace), and decoding it in two
//   streamed pieces gives the same text as at once;
// - source_language and target_language: accepted only by the NLLB
//   tokenizer; then the source is the tokenizer's EncodeFrom of the text, and
//   the decoder's prefix starts with the target language's id followed by
//   the request's own prefix;
// - the response built from the source serializes and parses back (its text
//   is valid UTF-8, as proto3 strings must be).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/types/span.h"
#include "attnserve/v1/attnserve.pb.h"
#include "engine/decode/generator.h"
#include "engine/format/model_config.h"
#include "engine/memory/memory_estimate.h"
#include "google/protobuf/stubs/logging.h"
#include "server/batch_engine.h"
#include "server/batching_policy.h"
#include "server/convert.h"
#include "server/tokenizers/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

namespace attnserve::fuzz {
namespace {

using server::RequestLimits;

constexpr size_t kSetupBytes = 5;
constexpr int kMaxPositions = 64;
constexpr int kHugeMaxPositions = 1 << 20;
constexpr int kNllbVocabSize = 604;  // tests/data/hf_tokenizers/nllb

struct Budgets {
  int64_t memory_bytes;
  int tokens;
};
constexpr Budgets kBudgets[] = {
    {0, 0}, {256 << 10, 2048}, {4 << 20, 0}, {64 << 20, 65536}};

// ids 0-2 are the specials (multi-character, so no text encodes to them);
// the rest covers 1- to 4-byte UTF-8 characters and words.
constexpr absl::string_view kSpecials = "<pad>\n<s>\n</s>";
constexpr absl::string_view kAsciiChars =
    " abcdefghijklmnopqrstuvwxyz0123456789,-.";
constexpr absl::string_view kWideChars[] = {"\xC3\xA9", "\xE2\x82\xAC",
                                            "\xF0\x9F\x98\x80"};
constexpr absl::string_view kWordVocab =
    "<pad>\n<s>\n</s>\nthe\nof\njuly\n4th\n1976\nmonday,\n23\nnovember\n2026\n"
    "\xC3\xA9t\xC3\xA9\n\xF0\x9F\x98\x80";

std::string ConfigJson(absl::string_view tokenizer,
                       int max_positions = kMaxPositions) {
  return absl::StrCat(
      R"({"architecture": "transformer-encoder-decoder", "d_model": 8,
          "num_heads": 2, "encoder_layers": 1, "decoder_layers": 1,
          "ffn_dim": 8, "vocab_size": 48, "max_positions": )",
      max_positions, R"(, "tokenizer": ")", tokenizer, R"("})");
}

struct Setup {
  // [huge max_positions][add_eos_to_source]
  server::ModelInfo models[2][2];
  server::ModelInfo nllb_models[2][2];  // the same with NLLB's vocab_size
  std::unique_ptr<server::Tokenizer> tokenizers[3];  // none, char, whitespace
  std::unique_ptr<server::Tokenizer> nllb;
};

std::unique_ptr<server::Tokenizer> LoadVocab(absl::string_view kind,
                                             absl::string_view vocab) {
  const std::string dir = std::string(kind);
  WriteProcessFile(dir + "/config.json", ConfigJson(kind));
  WriteProcessFile(dir + "/vocab.txt", vocab);
  absl::StatusOr<std::unique_ptr<server::Tokenizer>> tokenizer =
      server::LoadTokenizer(ProcessDir() + "/" + dir);
  FUZZ_CHECK(tokenizer.ok() && *tokenizer != nullptr, "fuzzer setup");
  return *std::move(tokenizer);
}

const Setup& GetSetup() {
  static const Setup* const setup = [] {
    // Protobuf logs every string field that is not UTF-8 while parsing (the
    // parse then fails, which is what matters); the noise would slow fuzzing.
    google::protobuf::SetLogHandler(nullptr);
    auto* s = new Setup;
    for (int huge = 0; huge < 2; ++huge) {
      absl::StatusOr<engine::ModelConfig> config = engine::ParseModelConfig(
          ConfigJson("char", huge ? kHugeMaxPositions : kMaxPositions),
          nullptr);
      FUZZ_CHECK(config.ok(), "fuzzer setup");
      for (int eos = 0; eos < 2; ++eos) {
        server::ModelInfo& model = s->models[huge][eos];
        model.name = "fuzz";
        model.config = *config;
        model.config.add_eos_to_source = eos == 1;
        s->nllb_models[huge][eos] = model;
        s->nllb_models[huge][eos].config.vocab_size = kNllbVocabSize;
      }
    }
    std::string chars(kSpecials);
    for (char c : kAsciiChars)
      absl::StrAppend(&chars, "\n", absl::string_view(&c, 1));
    for (absl::string_view c : kWideChars) absl::StrAppend(&chars, "\n", c);
    s->tokenizers[1] = LoadVocab("char", chars);
    s->tokenizers[2] = LoadVocab("whitespace", kWordVocab);
    absl::StatusOr<std::unique_ptr<server::Tokenizer>> nllb =
        server::LoadTokenizer(ATTNSERVE_HF_TOKENIZERS_DIR "/nllb");
    FUZZ_CHECK(nllb.ok() && *nllb != nullptr, "fuzzer setup");
    s->nllb = *std::move(nllb);
    return s;
  }();
  return *setup;
}

// What engine::Generator::Validate requires of an input, and the limits.
void CheckWorkItem(const server::WorkItem& item, const RequestLimits& limits,
                   const engine::ModelConfig& config) {
  const int n = static_cast<int>(item.source.size());
  FUZZ_CHECK(
      n >= 1 && n <= limits.max_input_tokens && n <= config.max_positions,
      absl::StrCat("source of ", n, " tokens"));
  for (int32_t id : item.source) {
    FUZZ_CHECK(id >= 0 && id < config.vocab_size, absl::StrCat("id ", id));
  }
  const engine::DecodeOptions& o = item.decode;
  FUZZ_CHECK(o.max_new_tokens >= 1 &&
                 o.max_new_tokens <= limits.max_new_tokens_limit &&
                 o.max_new_tokens <= config.max_positions - 1,
             absl::StrCat("max_new_tokens ", o.max_new_tokens));
  FUZZ_CHECK(o.beam_size >= 1 && o.beam_size <= limits.max_beam_size &&
                 o.beam_size <= engine::kMaxBeamSize,
             absl::StrCat("beam_size ", o.beam_size));
  FUZZ_CHECK(std::isfinite(o.length_penalty) && o.length_penalty >= 0,
             absl::StrCat("length_penalty ", o.length_penalty));
}

// With derived limits, what was accepted must fit the budgets on its own.
void CheckFitsBudgets(const server::WorkItem& item, const RequestLimits& given,
                      const RequestLimits& limits,
                      const engine::ModelConfig& config) {
  if (given.max_input_tokens != 0 || given.max_new_tokens_limit != 0) return;
  const int n = static_cast<int>(item.source.size());
  if (limits.memory_budget_bytes > 0) {
    const int64_t bytes = engine::SequenceMemoryBytes(config, n, item.decode);
    FUZZ_CHECK(
        bytes <= limits.memory_budget_bytes,
        absl::StrCat("accepted a request of ", bytes,
                     " bytes over a budget of ", limits.memory_budget_bytes));
  }
  if (limits.max_batch_tokens > 0) {
    const int cost = server::TokenCost(n, item.decode);
    FUZZ_CHECK(
        cost <= limits.max_batch_tokens,
        absl::StrCat("accepted a request of ", cost,
                     " tokens over a budget of ", limits.max_batch_tokens));
  }
}

void CheckText(const v1::GenerateRequest& request, const server::WorkItem& item,
               const server::Tokenizer& tokenizer, bool words) {
  const std::string text = tokenizer.Decode(item.source);
  std::string expected = request.text();
  if (words) {
    // A word spelled like a special token ("</s>") encodes to its id, which
    // decoding skips like every special id.
    const std::vector<absl::string_view> specials =
        absl::StrSplit(kSpecials, '\n');
    std::vector<absl::string_view> kept;
    for (absl::string_view word :
         absl::StrSplit(request.text(), absl::ByAnyChar(" \t\n\v\f\r"),
                        absl::SkipEmpty())) {
      if (std::find(specials.begin(), specials.end(), word) == specials.end()) {
        kept.push_back(word);
      }
    }
    expected = absl::StrJoin(kept, " ");
  }
  FUZZ_CHECK(text == expected, absl::StrCat("decodes to \"", text, "\""));
  // A stream sends the same ids in pieces (as StreamState joins them).
  const absl::Span<const int32_t> ids(item.source);
  const size_t half = ids.size() / 2;
  const std::string first = tokenizer.Decode(ids.first(half));
  FUZZ_CHECK(first + tokenizer.Decode(ids.subspan(half),
                                      /*continues=*/!first.empty()) ==
                 text,
             "streamed pieces join to the whole text");
}

// What an accepted request made of its language fields.
void CheckLanguages(const v1::GenerateRequest& request,
                    const server::WorkItem& item,
                    const server::Tokenizer* tokenizer) {
  const bool multilingual = tokenizer != nullptr && tokenizer->IsMultilingual();
  if (!request.source_language().empty()) {
    FUZZ_CHECK(multilingual && !request.text().empty(),
               "source_language accepted without a multilingual tokenizer "
               "and text");
    absl::StatusOr<std::vector<int32_t>> ids =
        tokenizer->EncodeFrom(request.text(), request.source_language());
    FUZZ_CHECK(ids.ok() && *ids == item.source,
               "the source is not EncodeFrom(text, source_language)");
  }
  std::vector<int32_t> own(request.target_prefix_ids().begin(),
                           request.target_prefix_ids().end());
  if (!request.target_prefix().empty()) {
    own = *tokenizer->EncodeTargetPrefix(request.target_prefix());
  }
  if (request.target_language().empty()) {
    FUZZ_CHECK(item.decode.target_prefix == own, "the prefix changed");
    return;
  }
  FUZZ_CHECK(multilingual,
             "target_language accepted without a multilingual "
             "tokenizer");
  absl::StatusOr<int32_t> language =
      tokenizer->LanguageId(request.target_language());
  FUZZ_CHECK(language.ok(), "target_language accepted but unknown");
  std::vector<int32_t> expected = {*language};
  expected.insert(expected.end(), own.begin(), own.end());
  FUZZ_CHECK(item.decode.target_prefix == expected,
             "the prefix is not [target_language] + the request's prefix");
}

void CheckResponse(const v1::GenerateRequest& request,
                   const server::WorkItem& item,
                   const server::Tokenizer* tokenizer) {
  v1::GenerateResponse response;
  const std::vector<float> log_probs(item.source.size(), -0.5f);
  server::AppendTokens(item.source, log_probs, request.return_log_probs(),
                       tokenizer, /*continues=*/false, &response);
  v1::GenerateResponse parsed;
  FUZZ_CHECK(parsed.ParseFromString(response.SerializeAsString()),
             "the response parses back");
}

}  // namespace
}  // namespace attnserve::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnserve::fuzz;  // NOLINT: the entry point is global
  using attnserve::server::RequestLimits;
  if (size < kSetupBytes) return 0;
  const Setup& setup = GetSetup();
  const int tokenizer_index = data[0] % 3;
  const bool nllb = data[0] / 48 % 2 == 1;
  const attnserve::server::Tokenizer* tokenizer =
      nllb ? setup.nllb.get() : setup.tokenizers[tokenizer_index].get();
  const attnserve::server::ModelInfo& model =
      (nllb ? setup.nllb_models
            : setup.models)[data[0] / 6 % 2][data[0] / 3 % 2];
  RequestLimits limits;
  const Budgets& budgets = kBudgets[data[0] / 12 % 4];
  limits.memory_budget_bytes = budgets.memory_bytes;
  limits.max_batch_tokens = budgets.tokens;
  limits.max_input_tokens = static_cast<int8_t>(data[1]);
  limits.max_new_tokens_limit = static_cast<int8_t>(data[2]);
  limits.default_max_new_tokens = static_cast<int8_t>(data[3]);
  limits.max_beam_size = static_cast<int8_t>(data[4]);

  attnserve::v1::GenerateRequest request;
  if (!request.ParseFromArray(data + kSetupBytes,
                              static_cast<int>(size - kSetupBytes))) {
    return 0;
  }
  absl::StatusOr<RequestLimits> resolved =
      attnserve::server::ResolveLimits(limits, model);
  if (!resolved.ok()) return 0;
  absl::StatusOr<attnserve::server::WorkItem> item =
      attnserve::server::ToWorkItem(request, *resolved, model, tokenizer);
  if (!item.ok()) {
    FUZZ_CHECK(item.status().code() == absl::StatusCode::kInvalidArgument ||
                   item.status().code() == absl::StatusCode::kResourceExhausted,
               item.status().ToString());
    return 0;
  }
  CheckWorkItem(*item, *resolved, model.config);
  CheckFitsBudgets(*item, limits, *resolved, model.config);
  // NLLB's text does not round-trip in general (NFKC, unknown characters):
  // its ids are the golden test's business.
  if (!request.text().empty() && !nllb) {
    CheckText(request, *item, *tokenizer, /*words=*/tokenizer_index == 2);
  }
  CheckLanguages(request, *item, tokenizer);
  CheckResponse(request, *item, tokenizer);
  return 0;
}
