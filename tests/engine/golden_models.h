#pragma once
// The PyTorch-built models under tests/data/golden/ (scripts/make_golden.py):
// small, trained briefly so that their outputs depend on the source, and
// covering every architecture option (post/pre norm, relu/gelu/swish,
// tied/untied, shared/separate embeddings, both positional layouts, lm_head
// bias, unscaled embeddings).

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

namespace attnserve::engine::testing {

inline std::string GoldenDir(const std::string& variant) {
  return (std::filesystem::path(ATTNSERVE_TEST_DATA_DIR) / "golden" / variant)
      .string();
}

// Variant names (directory names) that have a golden.json, sorted.
inline std::vector<std::string> GoldenVariants() {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  const fs::path root = fs::path(ATTNSERVE_TEST_DATA_DIR) / "golden";
  if (fs::exists(root)) {
    for (const auto& entry : fs::directory_iterator(root)) {
      if (fs::exists(entry.path() / "golden.json"))
        out.push_back(entry.path().filename());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace attnserve::engine::testing
