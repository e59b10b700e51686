#pragma once
// Typed, exception-free reads of a JSON config object's top-level keys, for
// the config parsers of every layout (model_config.cc, the Hugging Face
// layouts, generation_config.cc). Each error is INVALID_ARGUMENT
// "<file>: \"<key>\" <problem>". Engine-internal: includes nlohmann.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "engine/format/json_util.h"
#include "nlohmann/json.hpp"

namespace attnserve::engine {

// Upper bounds on a model config's sizes, the same for every layout
// (model_config.cc and the Hugging Face layouts). The formats set none, but
// every size ends up in an allocation (weights, KV caches, position tables), so
// a hostile or mistyped config must fail here with a message naming the key
// rather than as an out-of-memory later. They sit far above anything this CPU
// server can usefully run:
//   d_model, ffn_dim, num_heads    <= 65536
//   vocab_size, token ids          <= 4M (1 << 22)
//   encoder_layers, decoder_layers in [1, 256]
//   max_positions                  in [2, 1 << 20]
//   relative_attention_num_buckets <= 4096 (T5 uses 32)
inline constexpr int64_t kMaxWidth = 65536;
inline constexpr int64_t kMaxVocab = int64_t{1} << 22;
inline constexpr int64_t kMaxLayers = 256;
inline constexpr int64_t kMaxPositions = int64_t{1} << 20;
inline constexpr int64_t kMaxBuckets = 4096;

template <typename E>
struct EnumName {
  E value;
  const char* name;
};

template <typename E, size_t N>
const char* NameOf(const EnumName<E> (&table)[N], E value) {
  for (const EnumName<E>& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return "unknown";
}

// Every lookup records its key, so whatever is left afterwards can be reported
// as unknown. Types are checked here, never by nlohmann's get<>() (which would
// throw on a mismatch). A JSON null counts as absent only where a method says
// so (Hugging Face writes null for "not set").
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& root, std::string file)
      : root_(root), file_(std::move(file)) {}

  const std::string& file() const { return file_; }

  absl::Status KeyError(absl::string_view key,
                        absl::string_view problem) const {
    return absl::InvalidArgumentError(
        absl::StrCat(file_, ": \"", key, "\" ", problem));
  }

  bool Has(const char* key) { return Lookup(key) != nullptr; }

  absl::Status RequiredInt(const char* key, int64_t min, int64_t max,
                           int* out) {
    const nlohmann::json* value = Lookup(key);
    if (value == nullptr) return MissingKey(key);
    return ToInt(key, *value, min, max, out);
  }

  // Leaves *out (the default) untouched when the key is absent.
  absl::Status OptionalInt(const char* key, int64_t min, int64_t max,
                           int* out) {
    const nlohmann::json* value = Lookup(key);
    if (value == nullptr) return absl::OkStatus();
    return ToInt(key, *value, min, max, out);
  }

  // An integer, or a non-empty list of them of which the first is taken
  // (Hugging Face's eos_token_id); null counts as absent.
  absl::Status OptionalIntOrFirst(const char* key, int64_t min, int64_t max,
                                  int* out) {
    const nlohmann::json* value = Lookup(key);
    if (value == nullptr || value->is_null()) return absl::OkStatus();
    if (value->is_array()) {
      if (value->empty()) return KeyError(key, "must not be an empty list");
      for (const nlohmann::json& element : *value) {
        int ignored = 0;
        if (absl::Status s = ToInt(key, element, min, max, &ignored); !s.ok()) {
          return s;
        }
      }
      return ToInt(key, value->front(), min, max, out);
    }
    return ToInt(key, *value, min, max, out);
  }

  absl::Status OptionalBool(const char* key, bool* out) {
    const nlohmann::json* value = Lookup(key);
    if (value == nullptr) return absl::OkStatus();
    if (!value->is_boolean()) {
      return KeyError(key, absl::StrCat("must be true or false, got ",
                                        JsonSnippet(*value)));
    }
    *out = value->get<bool>();
    return absl::OkStatus();
  }

  // A finite number > 0 once narrowed to float (1e-60 would silently become 0).
  absl::Status OptionalPositiveFloat(const char* key, float* out) {
    const nlohmann::json* value = Lookup(key);
    if (value == nullptr) return absl::OkStatus();
    if (!value->is_number()) {
      return KeyError(
          key, absl::StrCat("must be a number, got ", JsonSnippet(*value)));
    }
    const float f = static_cast<float>(value->get<double>());
    if (!std::isfinite(f) || f <= 0.0f) {
      return KeyError(
          key, absl::StrCat("must be a finite number > 0 (as float), got ",
                            JsonSnippet(*value)));
    }
    *out = f;
    return absl::OkStatus();
  }

  absl::Status RequiredString(const char* key, std::string* out) {
    const nlohmann::json* value = Lookup(key);
    if (value == nullptr) return MissingKey(key);
    return ToString(key, *value, out);
  }

  absl::Status OptionalString(const char* key, std::string* out) {
    const nlohmann::json* value = Lookup(key);
    if (value == nullptr) return absl::OkStatus();
    return ToString(key, *value, out);
  }

  template <typename E, size_t N>
  absl::Status OptionalEnum(const char* key, const EnumName<E> (&table)[N],
                            E* out) {
    const nlohmann::json* value = Lookup(key);
    if (value == nullptr) return absl::OkStatus();
    if (value->is_string()) {
      const std::string& name = value->get_ref<const std::string&>();
      for (const EnumName<E>& entry : table) {
        if (name == entry.name) {
          *out = entry.value;
          return absl::OkStatus();
        }
      }
    }
    std::vector<std::string> names;
    for (const EnumName<E>& entry : table) {
      names.push_back(absl::StrCat("\"", entry.name, "\""));
    }
    return KeyError(key,
                    absl::StrCat("must be one of ", absl::StrJoin(names, ", "),
                                 "; got ", JsonSnippet(*value)));
  }

  // The value under `key`, or nullptr; recorded as read.
  const nlohmann::json* Lookup(const char* key) {
    read_.push_back(key);
    auto it = root_.find(key);
    return it == root_.end() ? nullptr : &*it;
  }

  const nlohmann::json& root() const { return root_; }
  const std::vector<const char*>& read() const { return read_; }

  absl::Status MissingKey(const char* key) const {
    return absl::InvalidArgumentError(
        absl::StrCat(file_, ": missing required key \"", key, "\""));
  }

  absl::Status ToInt(const char* key, const nlohmann::json& value, int64_t min,
                     int64_t max, int* out) const {
    int64_t v = 0;
    if (!JsonToInt64(value, &v)) {
      // JsonToInt64 also refuses integers beyond int64; they are out of range
      // either way.
      return KeyError(key, absl::StrCat("must be an integer in [", min, ", ",
                                        max, "], got ", JsonSnippet(value)));
    }
    if (v < min || v > max) {
      return KeyError(
          key, absl::StrCat("must be in [", min, ", ", max, "], got ", v));
    }
    *out = static_cast<int>(v);
    return absl::OkStatus();
  }

 private:
  absl::Status ToString(const char* key, const nlohmann::json& value,
                        std::string* out) const {
    if (!value.is_string()) {
      return KeyError(
          key, absl::StrCat("must be a string, got ", JsonSnippet(value)));
    }
    *out = value.get<std::string>();
    return absl::OkStatus();
  }

  const nlohmann::json& root_;
  const std::string file_;
  std::vector<const char*> read_;  // every key looked up
};

}  // namespace attnserve::engine
