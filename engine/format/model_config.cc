#include "engine/format/model_config.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/format/json_util.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

using Json = nlohmann::json;

// Upper bounds. The format sets none, but every size below ends up in an
// allocation (weights, KV caches, position tables), so a hostile or mistyped
// config must fail here with a message naming the key rather than as an
// out-of-memory later. They sit far above anything this CPU server can usefully
// run:
//   d_model, ffn_dim, num_heads <= 65536
//   vocab_size                  <= 4M (1 << 22)
//   encoder_layers, decoder_layers in [1, 256]
//   max_positions               in [2, 1 << 20]
constexpr int64_t kMaxWidth = 65536;
constexpr int64_t kMaxVocab = int64_t{1} << 22;
constexpr int64_t kMaxLayers = 256;
constexpr int64_t kMaxPositions = int64_t{1} << 20;

constexpr char kFile[] = "config.json";
constexpr char kArchitecture[] = "transformer-encoder-decoder";

// KnownConfigKeys(), in the order the parser reads them.
constexpr const char* kKnownKeys[] = {
    "architecture", "d_model", "num_heads", "encoder_layers", "decoder_layers",
    "ffn_dim", "vocab_size", "max_positions", "activation", "norm_placement",
    "layer_norm_eps", "scale_embedding", "positional_encoding",
    "tie_output_embedding", "pad_id", "bos_id", "eos_id", "decoder_start_id",
    "add_eos_to_source",
    // Read by the server's tokenizer (server/tokenizers/tokenizer.h), not by
    // the engine.
    "tokenizer", "vocab_file"};

bool IsKnownKey(absl::string_view key) {
  for (const char* known : kKnownKeys) {
    if (key == known) return true;
  }
  return false;
}

template <typename E>
struct EnumName {
  E value;
  const char* name;
};

constexpr EnumName<Activation> kActivations[] = {
    {Activation::kRelu, "relu"},
    {Activation::kGelu, "gelu"},
    {Activation::kSwish, "swish"},
};
constexpr EnumName<NormPlacement> kNormPlacements[] = {
    {NormPlacement::kPost, "post"},
    {NormPlacement::kPre, "pre"},
};
constexpr EnumName<PositionalEncoding> kPositionalEncodings[] = {
    {PositionalEncoding::kSinusoidal, "sinusoidal"},
    {PositionalEncoding::kSinusoidalConcat, "sinusoidal_concat"},
};

template <typename E, size_t N>
const char* NameOf(const EnumName<E> (&table)[N], E value) {
  for (const EnumName<E>& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return "unknown";
}

absl::Status KeyError(absl::string_view key, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat(kFile, ": \"", key, "\" ", problem));
}

// Reads typed values out of the top-level object. Every lookup records its key
// as known, so whatever is left afterwards can be reported as unknown. Types
// are checked here, never by nlohmann's get<>() (which would throw on a
// mismatch).
class ConfigReader {
 public:
  explicit ConfigReader(const Json& root) : root_(root) {}

  absl::Status RequiredInt(const char* key, int64_t min, int64_t max,
                           int* out) {
    const Json* value = Lookup(key);
    if (value == nullptr) return MissingKey(key);
    return ToInt(key, *value, min, max, out);
  }

  // Leaves *out (the default) untouched when the key is absent.
  absl::Status OptionalInt(const char* key, int64_t min, int64_t max,
                           int* out) {
    const Json* value = Lookup(key);
    if (value == nullptr) return absl::OkStatus();
    return ToInt(key, *value, min, max, out);
  }

  absl::Status OptionalBool(const char* key, bool* out) {
    const Json* value = Lookup(key);
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
    const Json* value = Lookup(key);
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
    const Json* value = Lookup(key);
    if (value == nullptr) return MissingKey(key);
    if (!value->is_string()) {
      return KeyError(
          key, absl::StrCat("must be a string, got ", JsonSnippet(*value)));
    }
    *out = value->get<std::string>();
    return absl::OkStatus();
  }

  template <typename E, size_t N>
  absl::Status OptionalEnum(const char* key, const EnumName<E> (&table)[N],
                            E* out) {
    const Json* value = Lookup(key);
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

  // One line per key that KnownConfigKeys() does not list.
  void AppendUnknownKeyWarnings(std::vector<std::string>* warnings) const {
    for (auto it = root_.begin(); it != root_.end(); ++it) {
      if (!IsKnownKey(it.key())) {
        warnings->push_back(
            absl::StrCat(kFile, ": unknown key \"", it.key(), "\" ignored"));
      }
    }
  }

  // A key that some lookup read but KnownConfigKeys() lacks is a bug of ours:
  // such a key would be used and reported as ignored at once, and would be
  // missing from the documentation. Every successful parse checks it, so any
  // test that loads a config catches it.
  absl::Status CheckReadKeysAreListed() const {
    for (const char* key : read_) {
      if (!IsKnownKey(key)) {
        return absl::InternalError(
            absl::StrCat(kFile, ": the parser reads \"", key,
                         "\", which KnownConfigKeys() does not list "
                         "(engine/format/model_config.cc)"));
      }
    }
    return absl::OkStatus();
  }

 private:
  const Json* Lookup(const char* key) {
    read_.push_back(key);
    auto it = root_.find(key);
    return it == root_.end() ? nullptr : &*it;
  }

  static absl::Status MissingKey(const char* key) {
    return absl::InvalidArgumentError(
        absl::StrCat(kFile, ": missing required key \"", key, "\""));
  }

  static absl::Status ToInt(const char* key, const Json& value, int64_t min,
                            int64_t max, int* out) {
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

  const Json& root_;
  std::vector<const char*> read_;  // every key looked up
};

absl::Status CheckSpecialId(const char* key, int id, int vocab_size) {
  if (id >= vocab_size) {
    return KeyError(key, absl::StrCat("must be in [0, vocab_size) = [0, ",
                                      vocab_size, "), got ", id));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(
    absl::string_view json_text, std::vector<std::string>* warnings) {
  ASSIGN_OR_RETURN(const Json root, ParseJson(json_text, kFile));
  if (!root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        kFile, ": top level must be a JSON object, got ", JsonSnippet(root)));
  }
  ConfigReader reader(root);
  ModelConfig c;

  std::string architecture;
  RETURN_IF_ERROR(reader.RequiredString("architecture", &architecture));
  if (architecture != kArchitecture) {
    return KeyError("architecture",
                    absl::StrCat("must be \"", kArchitecture, "\", got \"",
                                 architecture, "\""));
  }

  RETURN_IF_ERROR(reader.RequiredInt("d_model", 1, kMaxWidth, &c.d_model));
  RETURN_IF_ERROR(reader.RequiredInt("num_heads", 1, kMaxWidth, &c.num_heads));
  RETURN_IF_ERROR(
      reader.RequiredInt("encoder_layers", 1, kMaxLayers, &c.encoder_layers));
  RETURN_IF_ERROR(
      reader.RequiredInt("decoder_layers", 1, kMaxLayers, &c.decoder_layers));
  RETURN_IF_ERROR(reader.RequiredInt("ffn_dim", 1, kMaxWidth, &c.ffn_dim));
  RETURN_IF_ERROR(
      reader.RequiredInt("vocab_size", 1, kMaxVocab, &c.vocab_size));
  RETURN_IF_ERROR(
      reader.OptionalInt("max_positions", 2, kMaxPositions, &c.max_positions));
  RETURN_IF_ERROR(
      reader.OptionalEnum("activation", kActivations, &c.activation));
  RETURN_IF_ERROR(reader.OptionalEnum("norm_placement", kNormPlacements,
                                      &c.norm_placement));
  RETURN_IF_ERROR(
      reader.OptionalPositiveFloat("layer_norm_eps", &c.layer_norm_eps));
  RETURN_IF_ERROR(reader.OptionalBool("scale_embedding", &c.scale_embedding));
  RETURN_IF_ERROR(reader.OptionalEnum(
      "positional_encoding", kPositionalEncodings, &c.positional_encoding));
  RETURN_IF_ERROR(
      reader.OptionalBool("tie_output_embedding", &c.tie_output_embedding));
  // Ids are range-checked against vocab_size below, where the message can say
  // so.
  RETURN_IF_ERROR(reader.OptionalInt("pad_id", 0, kMaxVocab, &c.pad_id));
  RETURN_IF_ERROR(reader.OptionalInt("bos_id", 0, kMaxVocab, &c.bos_id));
  RETURN_IF_ERROR(reader.OptionalInt("eos_id", 0, kMaxVocab, &c.eos_id));
  c.decoder_start_id = c.bos_id;
  RETURN_IF_ERROR(reader.OptionalInt("decoder_start_id", 0, kMaxVocab,
                                     &c.decoder_start_id));
  RETURN_IF_ERROR(
      reader.OptionalBool("add_eos_to_source", &c.add_eos_to_source));

  if (c.d_model % c.num_heads != 0) {
    return KeyError("num_heads",
                    absl::StrCat("must divide \"d_model\" (", c.d_model, " % ",
                                 c.num_heads, " != 0)"));
  }
  // Both sinusoidal layouts pair each sin dimension with a cos dimension.
  if (c.d_model % 2 != 0) {
    return KeyError("d_model",
                    absl::StrCat("must be even for \"positional_encoding\" \"",
                                 PositionalEncodingName(c.positional_encoding),
                                 "\", got ", c.d_model));
  }
  RETURN_IF_ERROR(CheckSpecialId("pad_id", c.pad_id, c.vocab_size));
  RETURN_IF_ERROR(CheckSpecialId("bos_id", c.bos_id, c.vocab_size));
  RETURN_IF_ERROR(CheckSpecialId("eos_id", c.eos_id, c.vocab_size));
  RETURN_IF_ERROR(
      CheckSpecialId("decoder_start_id", c.decoder_start_id, c.vocab_size));

  RETURN_IF_ERROR(reader.CheckReadKeysAreListed());
  if (warnings != nullptr) reader.AppendUnknownKeyWarnings(warnings);
  return c;
}

absl::Span<const char* const> KnownConfigKeys() { return kKnownKeys; }

const char* ActivationName(Activation a) { return NameOf(kActivations, a); }

const char* NormPlacementName(NormPlacement n) {
  return NameOf(kNormPlacements, n);
}

const char* PositionalEncodingName(PositionalEncoding p) {
  return NameOf(kPositionalEncodings, p);
}

}  // namespace attnserve::engine
