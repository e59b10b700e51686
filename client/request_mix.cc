#include "client/request_mix.h"

#include <algorithm>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/id_list.h"
#include "engine/format/small_file.h"
#include "nlohmann/json.hpp"

namespace attnserve::client {
namespace {

absl::StatusOr<int> ParseCount(absl::string_view text, absl::string_view spec) {
  int value = 0;
  text = absl::StripAsciiWhitespace(text);
  if (text.empty() || !absl::ascii_isdigit(text[0]) ||
      !absl::SimpleAtoi(text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad count \"", text, "\" in \"", spec,
                     "\" (want N, MIN:MAX or MIN:MAX@WEIGHT,...)"));
  }
  return value;
}

}  // namespace

LengthDistribution::LengthDistribution(int value)
    : ranges_{{value, value, 1.0}} {}

LengthDistribution::LengthDistribution(std::vector<Range> ranges)
    : ranges_(std::move(ranges)) {}

absl::StatusOr<LengthDistribution> LengthDistribution::Parse(
    absl::string_view spec) {
  std::vector<Range> ranges;
  for (absl::string_view part : absl::StrSplit(spec, ',')) {
    std::pair<absl::string_view, absl::string_view> range_weight =
        absl::StrSplit(part, absl::MaxSplits('@', 1));
    double weight = 1.0;
    if (part.find('@') != absl::string_view::npos &&
        (!absl::SimpleAtod(range_weight.second, &weight) || !(weight > 0))) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad weight \"", range_weight.second, "\" in \"", spec,
                       "\" (want a positive number)"));
    }
    std::pair<absl::string_view, absl::string_view> min_max =
        absl::StrSplit(range_weight.first, absl::MaxSplits(':', 1));
    const bool is_range =
        range_weight.first.find(':') != absl::string_view::npos;
    absl::StatusOr<int> min = ParseCount(min_max.first, spec);
    if (!min.ok()) return min.status();
    absl::StatusOr<int> max = is_range ? ParseCount(min_max.second, spec) : min;
    if (!max.ok()) return max.status();
    if (*max < *min) {
      return absl::InvalidArgumentError(absl::StrCat(
          "empty range \"", range_weight.first, "\" in \"", spec, "\""));
    }
    ranges.push_back({*min, *max, weight});
  }
  return LengthDistribution(std::move(ranges));
}

int LengthDistribution::Sample(std::mt19937_64& rng) const {
  size_t component = 0;
  if (ranges_.size() > 1) {
    std::vector<double> weights;
    for (const Range& range : ranges_) weights.push_back(range.weight);
    component =
        std::discrete_distribution<size_t>(weights.begin(), weights.end())(rng);
  }
  const Range& range = ranges_[component];
  return std::uniform_int_distribution<int>(range.min, range.max)(rng);
}

int LengthDistribution::min() const {
  int result = ranges_.front().min;
  for (const Range& range : ranges_) result = std::min(result, range.min);
  return result;
}

int LengthDistribution::max() const {
  int result = ranges_.front().max;
  for (const Range& range : ranges_) result = std::max(result, range.max);
  return result;
}

std::string LengthDistribution::ToString() const {
  return absl::StrJoin(ranges_, ",",
                       [this](std::string* out, const Range& range) {
                         absl::StrAppend(out, range.min);
                         if (range.max != range.min)
                           absl::StrAppend(out, ":", range.max);
                         if (ranges_.size() > 1)
                           absl::StrAppend(out, "@", range.weight);
                       });
}

absl::StatusOr<std::vector<Source>> ParseSources(absl::string_view contents,
                                                 bool text) {
  std::vector<Source> sources;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_number;
    line = absl::StripSuffix(line, "\r");
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    Source source;
    if (text) {
      source.text = std::string(line);
    } else {
      absl::StatusOr<std::vector<int32_t>> ids = ParseIdList(line);
      if (!ids.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", line_number, ": ", ids.status().message(),
                         " (sources are text only with --text)"));
      }
      source.ids = *std::move(ids);
    }
    sources.push_back(std::move(source));
  }
  if (sources.empty()) return absl::InvalidArgumentError("no sources");
  return sources;
}

absl::StatusOr<std::vector<Source>> ReadSourcesFile(const std::string& path,
                                                    bool text) {
  // Regular files only, and bounded (see engine/format/small_file.h): a path
  // naming a device or a FIFO fails at once instead of reading forever.
  constexpr int64_t kMaxSourcesFileBytes = int64_t{256} << 20;
  absl::StatusOr<std::string> contents =
      engine::ReadSmallFile(path, kMaxSourcesFileBytes);
  if (!contents.ok()) {
    return absl::InvalidArgumentError(contents.status().message());
  }
  absl::StatusOr<std::vector<Source>> sources = ParseSources(*contents, text);
  if (!sources.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", sources.status().message()));
  }
  return sources;
}

absl::StatusOr<ModelVocab> ParseModelVocab(absl::string_view config_json) {
  const nlohmann::json config =
      nlohmann::json::parse(config_json.begin(), config_json.end(), nullptr,
                            /*allow_exceptions=*/false);
  if (!config.is_object() || !config.contains("vocab_size") ||
      !config["vocab_size"].is_number_integer()) {
    return absl::InvalidArgumentError(
        "the model's config_json has no integer vocab_size");
  }
  ModelVocab vocab;
  vocab.vocab_size = config["vocab_size"].get<int>();
  // Defaults as in the model format: pad 0, bos 1, eos 2, start = bos.
  const auto id = [&config](const char* key, int fallback) {
    return config.contains(key) && config[key].is_number_integer()
               ? config[key].get<int32_t>()
               : fallback;
  };
  const int32_t bos = id("bos_id", 1);
  vocab.special_ids = {id("pad_id", 0), bos, id("eos_id", 2),
                       id("decoder_start_id", bos)};
  std::sort(vocab.special_ids.begin(), vocab.special_ids.end());
  vocab.special_ids.erase(
      std::unique(vocab.special_ids.begin(), vocab.special_ids.end()),
      vocab.special_ids.end());
  return vocab;
}

absl::StatusOr<RequestMix> RequestMix::Create(RequestMixOptions options) {
  if (options.max_new_tokens.min() < 0 || options.beam_size < 0) {
    return absl::InvalidArgumentError(
        "max_new_tokens and beam_size must be >= 0");
  }
  v1::GenerateRequest controls;
  if (absl::Status status =
          ApplyGenerationControls(options.controls, &controls);
      !status.ok()) {
    return status;
  }
  if (options.sources.empty()) {
    if (options.src_len.min() < 1) {
      return absl::InvalidArgumentError("--src_len must be >= 1");
    }
    std::sort(options.excluded_ids.begin(), options.excluded_ids.end());
    options.excluded_ids.erase(
        std::unique(options.excluded_ids.begin(), options.excluded_ids.end()),
        options.excluded_ids.end());
    const auto excluded_in_vocab = std::count_if(
        options.excluded_ids.begin(), options.excluded_ids.end(),
        [&options](int32_t id) { return id >= 0 && id < options.vocab_size; });
    if (options.vocab_size - excluded_in_vocab < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "no ids to draw random sources from (vocab_size ", options.vocab_size,
          ", ", excluded_in_vocab, " special ids)"));
    }
  }
  return RequestMix(std::move(options), std::move(controls));
}

RequestMix::RequestMix(RequestMixOptions options, v1::GenerateRequest controls)
    : options_(std::move(options)),
      controls_(std::move(controls)),
      rng_(options_.seed) {}

int32_t RequestMix::RandomId() {
  std::uniform_int_distribution<int32_t> uniform(0, options_.vocab_size - 1);
  // Rejection: special ids are a handful out of thousands (Create checked that
  // some id is left).
  while (true) {
    const int32_t id = uniform(rng_);
    if (!std::binary_search(options_.excluded_ids.begin(),
                            options_.excluded_ids.end(), id)) {
      return id;
    }
  }
}

v1::GenerateRequest RequestMix::Next() {
  v1::GenerateRequest request = controls_;
  if (options_.sources.empty()) {
    const int length = options_.src_len.Sample(rng_);
    for (int i = 0; i < length; ++i) request.add_input_ids(RandomId());
  } else {
    const Source& source = options_.sources[next_source_];
    next_source_ = (next_source_ + 1) % options_.sources.size();
    if (source.text.empty()) {
      request.mutable_input_ids()->Add(source.ids.begin(), source.ids.end());
    } else {
      request.set_text(source.text);
    }
  }
  request.set_max_new_tokens(options_.max_new_tokens.Sample(rng_));
  request.set_beam_size(options_.beam_size);
  return request;
}

}  // namespace attnserve::client
