#include "engine/format/generation_config.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/format/config_reader.h"
#include "engine/format/json_util.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

using Json = nlohmann::json;

// Guards, as in model_config.cc: far above any real setting.
constexpr int64_t kMaxLength = int64_t{1} << 20;
constexpr int64_t kMaxBeams = 1024;
constexpr int64_t kMaxReturnSequences = 1024;

// Settings that change the output and are not implemented, each with its
// neutral values (null is neutral for every one; so is an empty list or object
// for the list-valued ones). transformers' GenerationConfig defaults.
struct Refused {
  const char* key;
  std::vector<Json> neutral;
  bool empty_is_neutral;
};

const std::vector<Refused>& RefusedKeys() {
  static const std::vector<Refused>* const kRefused = new std::vector<Refused>{
      {"encoder_repetition_penalty", {1.0}, false},
      {"encoder_no_repeat_ngram_size", {0}, false},
      {"num_beam_groups", {1}, false},
      {"diversity_penalty", {0.0}, false},
      {"sequence_bias", {}, true},
      {"begin_suppress_tokens", {}, true},
      {"forced_decoder_ids", {}, true},
      {"force_words_ids", {}, true},
      {"constraints", {}, true},
      {"renormalize_logits", {false}, false},
      {"exponential_decay_length_penalty", {}, false},
      {"max_time", {}, false},
      {"stop_strings", {}, true},
      {"guidance_scale", {1.0}, false},
      // Warpers beyond temperature, top_k and top_p, and contrastive search.
      {"typical_p", {1.0}, false},
      {"epsilon_cutoff", {0.0}, false},
      {"eta_cutoff", {0.0}, false},
      {"min_p", {}, false},
      {"penalty_alpha", {0.0}, false},
  };
  return *kRefused;
}

// What one file says; nullopt = the file does not set it.
struct Partial {
  std::optional<int32_t> decoder_start_id;
  std::optional<std::vector<int32_t>> eos_ids;
  std::optional<int32_t> pad_id;
  std::optional<int32_t> forced_bos_id;  // -1: explicitly none (null)
  std::optional<std::vector<int32_t>> forced_eos_ids;
  std::optional<std::vector<std::vector<int32_t>>> bad_words_ids;
  std::optional<int> max_length;
  std::optional<int> max_new_tokens;
  std::optional<int> min_length;
  std::optional<int> no_repeat_ngram_size;
  std::optional<int> num_beams;
  std::optional<float> length_penalty;
  std::optional<EarlyStopping> early_stopping;
  std::optional<bool> do_sample;
  std::optional<float> temperature;
  std::optional<int> top_k;
  std::optional<float> top_p;
  std::optional<float> repetition_penalty;
  std::optional<int> min_new_tokens;
  std::optional<std::vector<int32_t>> suppress_tokens;
  std::optional<int> num_return_sequences;
};

class GenerationReader {
 public:
  GenerationReader(const Json& root, std::string file, int vocab_size)
      : reader_(root, std::move(file)), vocab_size_(vocab_size) {}

  // The value, or nullptr when absent or null.
  const Json* Get(const char* key) {
    const Json* value = reader_.Lookup(key);
    return value == nullptr || value->is_null() ? nullptr : value;
  }

  absl::Status Int(const char* key, int64_t min, int64_t max,
                   std::optional<int>* out) {
    const Json* value = Get(key);
    if (value == nullptr) return absl::OkStatus();
    int v = 0;
    RETURN_IF_ERROR(reader_.ToInt(key, *value, min, max, &v));
    *out = v;
    return absl::OkStatus();
  }

  absl::Status Id(const char* key, const Json& value, int32_t* out) {
    int v = 0;
    int64_t parsed = 0;
    if (JsonToInt64(value, &parsed) && (parsed < 0 || parsed >= vocab_size_)) {
      return reader_.KeyError(
          key, absl::StrCat("must hold token ids in [0, vocab_size) = [0, ",
                            vocab_size_, "), got ", parsed));
    }
    RETURN_IF_ERROR(reader_.ToInt(key, value, 0, vocab_size_ - 1, &v));
    *out = v;
    return absl::OkStatus();
  }

  absl::Status OptionalId(const char* key, std::optional<int32_t>* out) {
    const Json* value = Get(key);
    if (value == nullptr) return absl::OkStatus();
    int32_t id = 0;
    RETURN_IF_ERROR(Id(key, *value, &id));
    *out = id;
    return absl::OkStatus();
  }

  // An id or a list of ids. `allow_empty`: [] means "none".
  absl::Status IdList(const char* key, bool allow_empty,
                      std::optional<std::vector<int32_t>>* out) {
    const Json* value = Get(key);
    if (value == nullptr) return absl::OkStatus();
    std::vector<int32_t> ids;
    if (value->is_array()) {
      if (value->empty() && !allow_empty) {
        return reader_.KeyError(key, "must not be an empty list");
      }
      for (const Json& element : *value) {
        int32_t id = 0;
        RETURN_IF_ERROR(Id(key, element, &id));
        ids.push_back(id);
      }
    } else {
      int32_t id = 0;
      RETURN_IF_ERROR(Id(key, *value, &id));
      ids.push_back(id);
    }
    *out = std::move(ids);
    return absl::OkStatus();
  }

  absl::Status BadWords(std::optional<std::vector<std::vector<int32_t>>>* out) {
    const char* key = "bad_words_ids";
    const Json* value = Get(key);
    if (value == nullptr) return absl::OkStatus();
    if (!value->is_array()) {
      return reader_.KeyError(
          key, absl::StrCat("must be a list of lists of token ids, got ",
                            JsonSnippet(*value)));
    }
    std::vector<std::vector<int32_t>> words;
    for (const Json& word : *value) {
      if (!word.is_array() || word.empty()) {
        return reader_.KeyError(
            key, absl::StrCat("must be a list of non-empty lists of token "
                              "ids, got an element ",
                              JsonSnippet(word)));
      }
      std::vector<int32_t> ids;
      for (const Json& element : word) {
        int32_t id = 0;
        RETURN_IF_ERROR(Id(key, element, &id));
        ids.push_back(id);
      }
      words.push_back(std::move(ids));
    }
    *out = std::move(words);
    return absl::OkStatus();
  }

  absl::Status LengthPenalty(std::optional<float>* out) {
    const char* key = "length_penalty";
    const Json* value = Get(key);
    if (value == nullptr) return absl::OkStatus();
    const float f =
        value->is_number() ? static_cast<float>(value->get<double>()) : NAN;
    if (!std::isfinite(f)) {
      return reader_.KeyError(key, absl::StrCat("must be a finite number, got ",
                                                JsonSnippet(*value)));
    }
    *out = f;
    return absl::OkStatus();
  }

  absl::Status Bool(const char* key, std::optional<bool>* out) {
    const Json* value = Get(key);
    if (value == nullptr) return absl::OkStatus();
    if (!value->is_boolean()) {
      return reader_.KeyError(key, absl::StrCat("must be true or false, got ",
                                                JsonSnippet(*value)));
    }
    *out = value->get<bool>();
    return absl::OkStatus();
  }

  // A finite number in (low, high]; `range` says so in the error.
  absl::Status Float(const char* key, double low, double high,
                     const char* range, std::optional<float>* out) {
    const Json* value = Get(key);
    if (value == nullptr) return absl::OkStatus();
    const double f = value->is_number() ? value->get<double>() : NAN;
    if (!std::isfinite(f) || !(f > low) || !(f <= high)) {
      return reader_.KeyError(
          key, absl::StrCat("must be a finite number in ", range, ", got ",
                            JsonSnippet(*value)));
    }
    *out = static_cast<float>(f);
    return absl::OkStatus();
  }

  absl::Status EarlyStop(std::optional<EarlyStopping>* out) {
    const char* key = "early_stopping";
    const Json* value = Get(key);
    if (value == nullptr) return absl::OkStatus();
    if (value->is_boolean()) {
      *out =
          value->get<bool>() ? EarlyStopping::kTrue : EarlyStopping::kHeuristic;
    } else if (value->is_string() && value->get<std::string>() == "never") {
      *out = EarlyStopping::kNever;
    } else {
      return reader_.KeyError(
          key, absl::StrCat("must be true, false or \"never\", got ",
                            JsonSnippet(*value)));
    }
    return absl::OkStatus();
  }

  absl::Status CheckRefused() {
    for (const Refused& refused : RefusedKeys()) {
      const Json* value = Get(refused.key);
      if (value == nullptr) continue;
      bool neutral = refused.empty_is_neutral &&
                     (value->is_array() || value->is_object()) &&
                     value->empty();
      for (const Json& n : refused.neutral) neutral = neutral || *value == n;
      if (!neutral) {
        return reader_.KeyError(
            refused.key,
            absl::StrCat("= ", JsonSnippet(*value),
                         " would change the output, and attnserve does not "
                         "implement it (only its neutral value or null is "
                         "accepted; docs/hf-reference.md \"Decoding\")"));
      }
    }
    return absl::OkStatus();
  }

 private:
  ConfigReader reader_;
  const int vocab_size_;
};

absl::StatusOr<Partial> ParseFile(absl::string_view text, const char* file,
                                  int vocab_size) {
  Partial p;
  if (text.empty()) return p;
  ASSIGN_OR_RETURN(const Json root, ParseJson(text, file));
  if (!root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": top level must be a JSON object, got ", JsonSnippet(root)));
  }
  GenerationReader r(root, file, vocab_size);
  RETURN_IF_ERROR(r.CheckRefused());
  RETURN_IF_ERROR(r.OptionalId("decoder_start_token_id", &p.decoder_start_id));
  RETURN_IF_ERROR(r.IdList("eos_token_id", /*allow_empty=*/false, &p.eos_ids));
  RETURN_IF_ERROR(r.OptionalId("pad_token_id", &p.pad_id));
  RETURN_IF_ERROR(r.OptionalId("forced_bos_token_id", &p.forced_bos_id));
  RETURN_IF_ERROR(
      r.IdList("forced_eos_token_id", /*allow_empty=*/true, &p.forced_eos_ids));
  RETURN_IF_ERROR(r.BadWords(&p.bad_words_ids));
  RETURN_IF_ERROR(r.Int("max_length", 1, kMaxLength, &p.max_length));
  RETURN_IF_ERROR(
      r.Int("max_new_tokens", 1, kMaxLength - 1, &p.max_new_tokens));
  RETURN_IF_ERROR(r.Int("min_length", 0, kMaxLength, &p.min_length));
  RETURN_IF_ERROR(
      r.Int("no_repeat_ngram_size", 0, kMaxLength, &p.no_repeat_ngram_size));
  RETURN_IF_ERROR(r.Int("num_beams", 1, kMaxBeams, &p.num_beams));
  RETURN_IF_ERROR(r.LengthPenalty(&p.length_penalty));
  RETURN_IF_ERROR(r.EarlyStop(&p.early_stopping));
  constexpr double kHuge = std::numeric_limits<double>::max();
  RETURN_IF_ERROR(r.Bool("do_sample", &p.do_sample));
  RETURN_IF_ERROR(
      r.Float("temperature", 0.0, kHuge, "(0, inf)", &p.temperature));
  RETURN_IF_ERROR(r.Int("top_k", 0, kMaxLength, &p.top_k));
  RETURN_IF_ERROR(r.Float("top_p", 0.0, 1.0, "(0, 1]", &p.top_p));
  RETURN_IF_ERROR(r.Float("repetition_penalty", 0.0, kHuge, "(0, inf)",
                          &p.repetition_penalty));
  RETURN_IF_ERROR(r.Int("min_new_tokens", 0, kMaxLength, &p.min_new_tokens));
  RETURN_IF_ERROR(
      r.IdList("suppress_tokens", /*allow_empty=*/true, &p.suppress_tokens));
  RETURN_IF_ERROR(r.Int("num_return_sequences", 1, kMaxReturnSequences,
                        &p.num_return_sequences));
  return p;
}

// The first file's value, else the second's, else `fallback`.
template <typename T>
T Pick(const std::optional<T>& first, const std::optional<T>& second,
       const T& fallback) {
  if (first.has_value()) return *first;
  if (second.has_value()) return *second;
  return fallback;
}

}  // namespace

absl::StatusOr<GenerationConfig> ParseGenerationConfig(
    absl::string_view generation_json, absl::string_view config_json,
    const GenerationConfig& defaults, int vocab_size) {
  ASSIGN_OR_RETURN(
      const Partial gen,
      ParseFile(generation_json, "generation_config.json", vocab_size));
  ASSIGN_OR_RETURN(const Partial cfg,
                   ParseFile(config_json, "config.json", vocab_size));
  GenerationConfig g;
  g.decoder_start_id = Pick(gen.decoder_start_id, cfg.decoder_start_id,
                            defaults.decoder_start_id);
  g.eos_ids = Pick(gen.eos_ids, cfg.eos_ids, defaults.eos_ids);
  g.pad_id = Pick(gen.pad_id, cfg.pad_id, defaults.pad_id);
  g.forced_bos_id =
      Pick(gen.forced_bos_id, cfg.forced_bos_id, defaults.forced_bos_id);
  g.forced_eos_ids =
      Pick(gen.forced_eos_ids, cfg.forced_eos_ids, defaults.forced_eos_ids);
  g.bad_words_ids =
      Pick(gen.bad_words_ids, cfg.bad_words_ids, defaults.bad_words_ids);
  g.max_length = Pick(gen.max_length, cfg.max_length, defaults.max_length);
  const std::optional<int> max_new_tokens =
      gen.max_new_tokens.has_value() ? gen.max_new_tokens : cfg.max_new_tokens;
  if (max_new_tokens.has_value()) g.max_length = 1 + *max_new_tokens;
  g.min_length = Pick(gen.min_length, cfg.min_length, defaults.min_length);
  g.no_repeat_ngram_size =
      Pick(gen.no_repeat_ngram_size, cfg.no_repeat_ngram_size,
           defaults.no_repeat_ngram_size);
  g.num_beams = Pick(gen.num_beams, cfg.num_beams, defaults.num_beams);
  g.length_penalty =
      Pick(gen.length_penalty, cfg.length_penalty, defaults.length_penalty);
  g.early_stopping =
      Pick(gen.early_stopping, cfg.early_stopping, defaults.early_stopping);
  g.do_sample = Pick(gen.do_sample, cfg.do_sample, defaults.do_sample);
  g.temperature = Pick(gen.temperature, cfg.temperature, defaults.temperature);
  g.top_k = Pick(gen.top_k, cfg.top_k, defaults.top_k);
  g.top_p = Pick(gen.top_p, cfg.top_p, defaults.top_p);
  g.repetition_penalty = Pick(gen.repetition_penalty, cfg.repetition_penalty,
                              defaults.repetition_penalty);
  g.min_new_tokens =
      Pick(gen.min_new_tokens, cfg.min_new_tokens, defaults.min_new_tokens);
  g.suppress_tokens =
      Pick(gen.suppress_tokens, cfg.suppress_tokens, defaults.suppress_tokens);
  g.num_return_sequences =
      Pick(gen.num_return_sequences, cfg.num_return_sequences,
           defaults.num_return_sequences);
  if (g.do_sample && g.num_beams > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "generation_config.json: \"do_sample\" = true with \"num_beams\" = ",
        g.num_beams,
        " is beam sampling, which attnserve does not implement "
        "(docs/hf-reference.md \"Generation controls\")"));
  }
  if (g.eos_ids.empty()) {
    return absl::InvalidArgumentError(
        "generation_config.json: no \"eos_token_id\" in "
        "generation_config.json, "
        "config.json or the model family's defaults");
  }
  // HF's NoBadWordsLogitsProcessor never bans an EOS token.
  std::vector<std::vector<int32_t>> words;
  for (std::vector<int32_t>& word : g.bad_words_ids) {
    bool is_eos = false;
    for (int32_t eos : g.eos_ids) is_eos = is_eos || word == std::vector{eos};
    if (!is_eos) words.push_back(std::move(word));
  }
  g.bad_words_ids = std::move(words);
  return g;
}

}  // namespace attnserve::engine
