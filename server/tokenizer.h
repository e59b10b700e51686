#pragma once
// Text <-> token ids for requests that send `text`. This is the seam a later
// issue fills (vocab.txt / tokenizer.model readers); until then no model has a
// tokenizer and text requests are answered INVALID_ARGUMENT
// (shared/docs/api.md).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace attnserve::server {

// Implementations must be thread-safe for concurrent const calls (gRPC threads
// encode, the inference thread decodes stream pieces).
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Source token ids for `text`, without the EOS that config.add_eos_to_source
  // asks for.
  virtual absl::StatusOr<std::vector<int32_t>> Encode(
      absl::string_view text) const = 0;
  virtual std::string Decode(absl::Span<const int32_t> ids) const = 0;
};

// The tokenizer of a model directory, or nullptr when the server has none for
// it.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& model_dir);

}  // namespace attnserve::server
