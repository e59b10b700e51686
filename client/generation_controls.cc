#include "client/generation_controls.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/id_list.h"

namespace attnserve::client {
namespace {

absl::Status CheckCount(const char* flag, int value) {
  if (value >= 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "--", flag, " must be >= 0 (0: the model's default), not ", value));
}

}  // namespace

absl::Status ApplyGenerationControls(const GenerationControls& controls,
                                     v1::GenerateRequest* request) {
  for (const auto& [flag, value] : std::vector<std::pair<const char*, int>>{
           {"top_k", controls.top_k},
           {"no_repeat_ngram_size", controls.no_repeat_ngram_size},
           {"min_new_tokens", controls.min_new_tokens},
           {"num_return_sequences", controls.num_return_sequences},
           {"top_log_probs", controls.top_log_probs}}) {
    if (absl::Status status = CheckCount(flag, value); !status.ok()) {
      return status;
    }
  }
  request->set_temperature(controls.temperature);
  request->set_top_k(static_cast<uint32_t>(controls.top_k));
  request->set_top_p(controls.top_p);
  request->set_seed(controls.seed);
  request->set_repetition_penalty(controls.repetition_penalty);
  request->set_no_repeat_ngram_size(
      static_cast<uint32_t>(controls.no_repeat_ngram_size));
  request->set_min_new_tokens(static_cast<uint32_t>(controls.min_new_tokens));
  request->set_num_return_sequences(
      static_cast<uint32_t>(controls.num_return_sequences));
  request->set_top_log_probs(static_cast<uint32_t>(controls.top_log_probs));
  if (controls.do_sample.has_value()) {
    request->set_do_sample(*controls.do_sample);
  }
  request->clear_suppress_token_ids();
  if (!controls.suppress_token_ids.empty()) {
    absl::StatusOr<std::vector<int32_t>> ids =
        ParseIdList(controls.suppress_token_ids);
    if (!ids.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--suppress_token_ids: ", ids.status().message()));
    }
    request->mutable_suppress_token_ids()->Add(ids->begin(), ids->end());
  }
  request->clear_bad_words();
  if (!controls.bad_words.empty()) {
    int index = 0;
    for (absl::string_view word : absl::StrSplit(controls.bad_words, ';')) {
      absl::StatusOr<std::vector<int32_t>> ids = ParseIdList(word);
      if (!ids.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--bad_words: word ", index + 1, ": ", ids.status().message(),
            " (words are separated by ';', their ids by ',')"));
      }
      request->add_bad_words()->mutable_ids()->Add(ids->begin(), ids->end());
      ++index;
    }
  }
  return absl::OkStatus();
}

std::string DescribeGenerationControls(const GenerationControls& controls) {
  std::vector<std::string> parts;
  const auto add = [&parts](const char* name, auto value) {
    if (value != 0) parts.push_back(absl::StrCat(name, "=", value));
  };
  if (controls.do_sample.has_value()) {
    parts.push_back(
        absl::StrCat("do_sample=", *controls.do_sample ? "true" : "false"));
  }
  add("temperature", controls.temperature);
  add("top_k", controls.top_k);
  add("top_p", controls.top_p);
  add("seed", controls.seed);
  add("repetition_penalty", controls.repetition_penalty);
  add("no_repeat_ngram_size", controls.no_repeat_ngram_size);
  add("min_new_tokens", controls.min_new_tokens);
  if (!controls.suppress_token_ids.empty()) {
    parts.push_back(
        absl::StrCat("suppress_token_ids=", controls.suppress_token_ids));
  }
  if (!controls.bad_words.empty()) {
    parts.push_back(absl::StrCat("bad_words=", controls.bad_words));
  }
  add("num_return_sequences", controls.num_return_sequences);
  add("top_log_probs", controls.top_log_probs);
  return absl::StrJoin(parts, " ");
}

}  // namespace attnserve::client
