#include "server/tokenizer.h"

namespace attnserve::server {

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& model_dir) {
  // No tokenizer formats are supported yet, so a model's vocab.txt /
  // tokenizer.model is not read and every model is served with token ids only.
  return std::unique_ptr<Tokenizer>();
}

}  // namespace attnserve::server
