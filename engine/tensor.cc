#include "engine/tensor.h"

#include "absl/strings/str_join.h"

namespace attnserve::engine {

std::string ShapeString(const std::vector<int64_t>& shape) {
  return "[" + absl::StrJoin(shape, ", ") + "]";
}

}  // namespace attnserve::engine
