#pragma once
// Exception-free helpers around nlohmann::json for the engine's file formats
// (config.json, safetensors headers). Only engine .cc files include this:
// nlohmann_json is a private dependency of attnserve_engine.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace attnserve::engine {

// Parses `text` without throwing. Malformed JSON is InvalidArgument
// "<what>: invalid JSON: <parser message with line and column>".
absl::StatusOr<nlohmann::json> ParseJson(absl::string_view text,
                                         absl::string_view what);

// A short rendering of `value` for error messages ("16.5", "\"relu\"",
// "[1,2]"), cut to about 40 characters. Never throws.
std::string JsonSnippet(const nlohmann::json& value);

// Integer JSON numbers only (16 yes, 16.0 no); false when `value` is not an
// integer or does not fit the target type.
bool JsonToInt64(const nlohmann::json& value, int64_t* out);
bool JsonToUint64(const nlohmann::json& value, uint64_t* out);

}  // namespace attnserve::engine
