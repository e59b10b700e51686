// Our SentencePiece against the reference: tests/data/spm/<model>.golden.json
// holds what Debian's python3-sentencepiece (0.1.97) gives for a few hundred
// strings and random id sequences (scripts/make_spm_golden.py). Every id and
// every decoded byte must match.

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/tokenizers/sentencepiece_model.h"

namespace attnserve::server {
namespace {

std::string DataDir() {
  return std::string(ATTNSERVE_SOURCE_DIR) + "/tests/data/spm/";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, EncodeAndDecodeMatchTheReference) {
  const std::string name = GetParam();
  const std::string model_bytes = ReadFile(DataDir() + name + ".model");
  ASSERT_FALSE(model_bytes.empty()) << name;
  auto model = SentencePieceModel::Parse(model_bytes);
  ASSERT_TRUE(model.ok()) << model.status();
  const nlohmann::json golden =
      nlohmann::json::parse(ReadFile(DataDir() + name + ".golden.json"));

  int encode_cases = 0, decode_cases = 0;
  int encode_ok = 0, decoded_ok = 0, decode_ok = 0;
  for (const auto& c : golden.at("encode")) {
    const std::string text = c.at("text");
    const std::vector<int32_t> expected = c.at("ids");
    const std::string expected_decoded = c.at("decoded");
    ++encode_cases;
    const std::vector<int32_t> ids = (*model)->Encode(text);
    if (ids == expected) ++encode_ok;
    EXPECT_EQ(ids, expected)
        << name << ": " << nlohmann::json(text).dump() << " normalised to "
        << nlohmann::json((*model)->Normalize(text)).dump();
    auto decoded = (*model)->Decode(expected);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    if (*decoded == expected_decoded) ++decoded_ok;
    EXPECT_EQ(*decoded, expected_decoded)
        << name << ": " << nlohmann::json(text).dump();
  }
  for (const auto& c : golden.at("decode")) {
    const std::vector<int32_t> ids = c.at("ids");
    const std::string expected = c.at("text");
    ++decode_cases;
    auto decoded = (*model)->Decode(ids);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    if (*decoded == expected) ++decode_ok;
    EXPECT_EQ(*decoded, expected)
        << name << ": ids " << nlohmann::json(ids).dump();
  }
  int bytes_cases = 0, bytes_ok = 0;
  for (const auto& c : golden.at("encode_bytes")) {
    const std::string hex = c.at("hex");
    std::string text;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      text.push_back(
          static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    const std::vector<int32_t> expected = c.at("ids");
    const std::string expected_decoded = c.at("decoded");
    ++bytes_cases;
    const std::vector<int32_t> ids = (*model)->Encode(text);
    auto decoded = (*model)->Decode(ids);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    if (ids == expected && *decoded == expected_decoded) ++bytes_ok;
    EXPECT_EQ(ids, expected) << name << ": bytes " << hex;
    EXPECT_EQ(*decoded, expected_decoded) << name << ": bytes " << hex;
  }
  EXPECT_GT(encode_cases, 250);
  EXPECT_GT(bytes_cases, 30);
  EXPECT_GE(decode_cases, 50);
  // The exactness figures docs/tokenizers.md quotes.
  std::cout << name << ": encode " << encode_ok << "/" << encode_cases
            << ", decode(encode) " << decoded_ok << "/" << encode_cases
            << ", decode(random ids) " << decode_ok << "/" << decode_cases
            << ", malformed UTF-8 " << bytes_ok << "/" << bytes_cases << "\n";
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenTest,
                         ::testing::Values("unigram_nfkc", "unigram_bytes",
                                           "bpe_nfkc_cf", "unigram_identity",
                                           "unigram_rules",
                                           "bpe_bytes_identity"));

}  // namespace
}  // namespace attnserve::server
