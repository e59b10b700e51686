#include "engine/format/json_util.h"

#include <cstddef>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace attnserve::engine {
namespace {

using Json = nlohmann::json;

// The DOM parser with exceptions disabled only says "discarded"; re-parsing
// through this SAX handler (on the error path only) recovers the parser's
// message, which carries the line and column.
struct ErrorCapture {
  std::string message;

  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(Json::number_integer_t) { return true; }
  bool number_unsigned(Json::number_unsigned_t) { return true; }
  bool number_float(Json::number_float_t, const Json::string_t&) {
    return true;
  }
  bool string(Json::string_t&) { return true; }
  bool binary(Json::binary_t&) { return true; }
  bool start_object(std::size_t) { return true; }
  bool key(Json::string_t&) { return true; }
  bool end_object() { return true; }
  bool start_array(std::size_t) { return true; }
  bool end_array() { return true; }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& e) {
    message = e.what();
    return false;
  }
};

constexpr size_t kMaxSnippet = 40;

// json::dump() recurses once per nesting level, so dumping a hostile, deeply
// nested value could overflow the stack; this renders at most `depth` levels
// and stops early once the text is long enough to be cut.
void AppendSnippet(const Json& value, int depth, std::string* out) {
  if (value.is_array() || value.is_object()) {
    const bool is_array = value.is_array();
    if (depth == 0) {
      *out += is_array ? "[...]" : "{...}";
      return;
    }
    *out += is_array ? '[' : '{';
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (out->size() > kMaxSnippet) return;
      if (it != value.begin()) *out += ',';
      if (!is_array) {
        AppendSnippet(Json(it.key()), 0, out);
        *out += ':';
      }
      AppendSnippet(it.value(), depth - 1, out);
    }
    *out += is_array ? ']' : '}';
    return;
  }
  // Scalars dump without recursion; a long string is cut first so it is not
  // copied whole. error_handler_t::replace: dump() would otherwise throw on
  // invalid UTF-8 (e.g. a string cut inside a multi-byte character).
  auto dump = [out](const Json& scalar) {
    *out += scalar.dump(/*indent=*/-1, ' ', /*ensure_ascii=*/false,
                        Json::error_handler_t::replace);
  };
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    if (text.size() > kMaxSnippet) {
      dump(Json(text.substr(0, kMaxSnippet)));
      return;
    }
  }
  dump(value);
}

}  // namespace

absl::StatusOr<Json> ParseJson(absl::string_view text, absl::string_view what) {
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  Json parsed =
      Json::parse(begin, end, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_discarded()) return parsed;
  ErrorCapture capture;
  Json::sax_parse(begin, end, &capture);
  if (capture.message.empty()) capture.message = "parse error";
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": invalid JSON: ", capture.message));
}

std::string JsonSnippet(const Json& value) {
  std::string out;
  AppendSnippet(value, /*depth=*/3, &out);
  if (out.size() > kMaxSnippet) out = out.substr(0, kMaxSnippet) + "...";
  return out;
}

bool JsonToInt64(const Json& value, int64_t* out) {
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return false;
    }
    *out = static_cast<int64_t>(u);
    return true;
  }
  if (value.is_number_integer()) {
    *out = value.get<int64_t>();
    return true;
  }
  return false;
}

bool JsonToUint64(const Json& value, uint64_t* out) {
  if (value.is_number_unsigned()) {
    *out = value.get<uint64_t>();
    return true;
  }
  // Non-negative integers normally parse as unsigned, but "-0" parses as
  // signed.
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(value.get<int64_t>());
    return true;
  }
  return false;
}

}  // namespace attnserve::engine
