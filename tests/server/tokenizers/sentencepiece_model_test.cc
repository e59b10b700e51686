// SentencePieceModel's contract beyond the goldens: malformed model files are
// refused with an error naming the problem, the special ids and piece lookups,
// out-of-range ids in Decode, malformed UTF-8 input, and concurrent use.

#include "server/tokenizers/sentencepiece_model.h"

#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnserve::server {
namespace {

using sentencepiece::ModelProto;
using sentencepiece::TrainerSpec;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Piece = ModelProto::SentencePiece;

std::string ReadModel(const std::string& name) {
  std::ifstream in(
      std::string(ATTNSERVE_SOURCE_DIR) + "/tests/data/spm/" + name,
      std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

ModelProto LoadProto(const std::string& name) {
  ModelProto proto;
  EXPECT_TRUE(proto.ParseFromString(ReadModel(name))) << name;
  return proto;
}

// The error Parse gives for `proto`, or "" if it accepts it.
std::string ParseError(const ModelProto& proto) {
  auto model = SentencePieceModel::Parse(proto.SerializeAsString());
  if (model.ok()) return "";
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(model.status().message());
}

TEST(SentencePieceModelTest, TheTestModelsParse) {
  for (const char* name :
       {"unigram_nfkc.model", "unigram_bytes.model", "bpe_nfkc_cf.model",
        "unigram_identity.model", "bpe_bytes_identity.model"}) {
    EXPECT_EQ(ParseError(LoadProto(name)), "") << name;
  }
}

TEST(SentencePieceModelTest, RefusesBytesThatAreNotAModel) {
  auto model = SentencePieceModel::Parse("\xff\xff\xff\xff not a protobuf");
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.status().message(),
              HasSubstr("not a serialized sentencepiece.ModelProto"));
  EXPECT_THAT(ParseError(ModelProto()), HasSubstr("no pieces"));
}

TEST(SentencePieceModelTest, RefusesAnOversizedFile) {
  auto model = SentencePieceModel::Parse(
      std::string(SentencePieceModel::kMaxModelBytes + 1, '\0'));
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.status().message(), HasSubstr("more than the limit"));
}

TEST(SentencePieceModelTest, RefusesBadPieces) {
  const ModelProto good = LoadProto("unigram_identity.model");
  ModelProto proto = good;
  proto.mutable_pieces(7)->set_piece("");
  EXPECT_THAT(ParseError(proto), HasSubstr("piece 7 is empty"));

  proto = good;
  proto.mutable_pieces(8)->set_piece("a\xff");
  EXPECT_THAT(ParseError(proto),
              HasSubstr("piece 8 (\"a\\xff\") is not valid UTF-8"));

  proto = good;
  proto.mutable_pieces(9)->set_score(std::numeric_limits<float>::quiet_NaN());
  EXPECT_THAT(ParseError(proto), HasSubstr("piece 9"));
  EXPECT_THAT(ParseError(proto), HasSubstr("not finite"));
  proto.mutable_pieces(9)->set_score(-std::numeric_limits<float>::infinity());
  EXPECT_THAT(ParseError(proto), HasSubstr("not finite"));

  proto = good;
  proto.mutable_pieces(10)->set_piece(good.pieces(5).piece());
  EXPECT_THAT(ParseError(proto), HasSubstr("piece 10"));
  EXPECT_THAT(ParseError(proto), HasSubstr("duplicates piece 5"));

  // A normal piece spelled like a control piece is a duplicate too.
  proto = good;
  proto.mutable_pieces(10)->set_piece("</s>");
  EXPECT_THAT(ParseError(proto), HasSubstr("duplicates piece 2"));

  proto = good;
  proto.mutable_pieces(11)->set_piece(std::string(600, 'x'));
  EXPECT_THAT(ParseError(proto), HasSubstr("piece 11 is 600 bytes"));
}

TEST(SentencePieceModelTest, RefusesAnUnknownPieceType) {
  // pieces { piece: "zz" type: 9 }, appended as raw wire bytes: the API cannot
  // set it.
  std::string bytes = ReadModel("unigram_identity.model");
  bytes += std::string("\x0a\x06\x0a\x02zz\x18\x09", 8);
  auto model = SentencePieceModel::Parse(bytes);
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.status().message(),
              HasSubstr("(\"zz\") has unknown fields or an unknown type"));
}

TEST(SentencePieceModelTest, NeedsExactlyOneUnknownPiece) {
  ModelProto proto = LoadProto("unigram_identity.model");
  ASSERT_EQ(proto.pieces(0).type(), Piece::UNKNOWN);
  proto.mutable_pieces(0)->set_type(Piece::CONTROL);
  EXPECT_THAT(ParseError(proto), HasSubstr("no UNKNOWN piece"));
  proto.mutable_pieces(0)->set_type(Piece::UNKNOWN);
  proto.mutable_pieces(20)->set_type(Piece::UNKNOWN);
  EXPECT_THAT(ParseError(proto), HasSubstr("piece 20"));
  EXPECT_THAT(ParseError(proto),
              HasSubstr("second UNKNOWN piece (piece 0 is the first)"));
}

TEST(SentencePieceModelTest, ChecksBytePieces) {
  const ModelProto good = LoadProto("unigram_bytes.model");
  const int a = 3 + 1 + 0x41;  // <unk> <s> </s> <pad>, then <0x00>..<0xFF>
  ASSERT_EQ(good.pieces(a).piece(), "<0x41>");
  ModelProto proto = good;
  proto.mutable_trainer_spec()->set_byte_fallback(false);
  EXPECT_THAT(
      ParseError(proto),
      HasSubstr("is a BYTE piece but trainer_spec.byte_fallback is false"));

  proto = good;
  proto.mutable_pieces(a)->set_piece("<0xZZ>");
  EXPECT_THAT(ParseError(proto), HasSubstr("not of the form <0xNN>"));

  proto = good;
  proto.mutable_pieces(a)->set_type(Piece::NORMAL);
  EXPECT_THAT(ParseError(proto), HasSubstr("the BYTE piece <0x41> is missing"));
}

TEST(SentencePieceModelTest, RefusesUnsupportedOptionsByName) {
  const ModelProto good = LoadProto("unigram_identity.model");
  ModelProto proto = good;
  proto.mutable_trainer_spec()->set_model_type(TrainerSpec::WORD);
  EXPECT_THAT(ParseError(proto), HasSubstr("model_type WORD is not supported"));
  proto = good;
  proto.mutable_trainer_spec()->set_treat_whitespace_as_suffix(true);
  EXPECT_THAT(ParseError(proto), HasSubstr("treat_whitespace_as_suffix"));
  proto = good;
  proto.mutable_denormalizer_spec()->set_precompiled_charsmap("x");
  EXPECT_THAT(ParseError(proto), HasSubstr("denormalizer_spec"));
  proto = good;
  proto.mutable_trainer_spec()->set_bos_id(400);
  EXPECT_THAT(ParseError(proto),
              HasSubstr("trainer_spec.bos_id 400 is outside [-1, 400)"));
  proto = good;
  proto.mutable_trainer_spec()->set_pad_id(-2);
  EXPECT_THAT(ParseError(proto), HasSubstr("trainer_spec.pad_id -2"));
}

TEST(SentencePieceModelTest, RefusesABrokenCharsMap) {
  const ModelProto good = LoadProto("unigram_nfkc.model");
  const std::string map = good.normalizer_spec().precompiled_charsmap();
  ASSERT_GT(map.size(), 1000u);
  const uint32_t trie_size =
      static_cast<uint8_t>(map[0]) | static_cast<uint8_t>(map[1]) << 8 |
      static_cast<uint8_t>(map[2]) << 16 |
      static_cast<uint32_t>(static_cast<uint8_t>(map[3])) << 24;
  const auto with_map = [&](const std::string& m) {
    ModelProto proto = good;
    proto.mutable_normalizer_spec()->set_precompiled_charsmap(m);
    return ParseError(proto);
  };
  EXPECT_THAT(with_map("abc"), HasSubstr("too short"));
  EXPECT_THAT(with_map(map.substr(0, 4 + trie_size)),
              HasSubstr("leaves no room"));
  std::string odd = map;
  odd[0] = static_cast<char>(odd[0] + 1);
  EXPECT_THAT(with_map(odd), HasSubstr("not a positive multiple of 4"));
  EXPECT_THAT(with_map(map.substr(0, map.size() - 1)),
              HasSubstr("do not end with NUL"));
  // Replacement strings cut short: leaves now point past them.
  EXPECT_THAT(
      with_map(map.substr(0, 4 + trie_size + 10) + std::string(1, '\0')),
      HasSubstr("has a leaf outside"));
  EXPECT_THAT(with_map(std::string(8 << 20, 'x')),
              HasSubstr("more than the limit"));
}

TEST(SentencePieceModelTest, SpecialIdsAndLookups) {
  auto t5_like = SentencePieceModel::Parse(ReadModel("unigram_bytes.model"));
  ASSERT_TRUE(t5_like.ok()) << t5_like.status();
  const SentencePieceModel& m = **t5_like;
  EXPECT_EQ(m.unk_id(), 0);
  EXPECT_EQ(m.bos_id(), 1);
  EXPECT_EQ(m.eos_id(), 2);
  EXPECT_EQ(m.pad_id(), 3);
  EXPECT_TRUE(m.byte_fallback());
  EXPECT_FALSE(m.is_bpe());
  EXPECT_EQ(m.piece_size(), 592);
  EXPECT_EQ(m.IdToPiece(1), "<s>");
  EXPECT_EQ(m.PieceToId("</s>"), 2);
  EXPECT_EQ(m.PieceToId("<0x41>"), 4 + 0x41);
  EXPECT_EQ(m.PieceToId("no such piece"), 0);
  const int the = m.PieceToId("\xe2\x96\x81the");
  ASSERT_GT(the, 0);
  EXPECT_EQ(m.IdToPiece(the), "\xe2\x96\x81the");
  EXPECT_TRUE(m.IsControl(1));
  EXPECT_TRUE(m.IsByte(4));
  EXPECT_TRUE(m.IsUnknown(0));

  // A model without pad: -1, like SentencePieceProcessor::pad_id().
  auto other = SentencePieceModel::Parse(ReadModel("unigram_nfkc.model"));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->pad_id(), -1);
  EXPECT_TRUE(SentencePieceModel::Parse(ReadModel("bpe_nfkc_cf.model"))
                  .value()
                  ->is_bpe());
}

TEST(SentencePieceModelTest, DecodeRefusesIdsOutsideTheVocabulary) {
  auto model = SentencePieceModel::Parse(ReadModel("unigram_nfkc.model"));
  ASSERT_TRUE(model.ok());
  const int size = (*model)->piece_size();
  for (int32_t bad : {-1, size, 1 << 30}) {
    auto text = (*model)->Decode({5, bad});
    ASSERT_FALSE(text.ok()) << bad;
    EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(text.status().message(),
                HasSubstr(absl::StrCat("token 1: id ", bad)));
  }
  EXPECT_EQ((*model)->Decode({}).value(), "");
}

TEST(SentencePieceModelTest, MalformedUtf8BecomesReplacementCharacters) {
  auto model = SentencePieceModel::Parse(ReadModel("unigram_bytes.model"));
  ASSERT_TRUE(model.ok());
  // One U+FFFD per bad byte, as SentencePiece's normaliser does; byte fallback
  // then spells each as EF BF BD.
  EXPECT_EQ((*model)->Normalize("a\xff\xc3"),
            "\xe2\x96\x81"
            "a\xef\xbf\xbd\xef\xbf\xbd");
  const std::vector<int32_t> ids = (*model)->Encode("\xff");
  const int ef = (*model)->PieceToId("<0xEF>"),
            bf = (*model)->PieceToId("<0xBF>"),
            bd = (*model)->PieceToId("<0xBD>");
  EXPECT_THAT(ids,
              ElementsAre((*model)->PieceToId("\xe2\x96\x81"), ef, bf, bd));
  EXPECT_EQ((*model)->Decode(ids).value(), "\xef\xbf\xbd");
  // A lone byte piece decodes to U+FFFD; a complete sequence to its character.
  EXPECT_EQ((*model)->Decode({ef}).value(), "\xef\xbf\xbd");
  EXPECT_EQ((*model)->Decode({ef, bf, bd, ef}).value(),
            "\xef\xbf\xbd\xef\xbf\xbd");
}

TEST(SentencePieceModelTest, ConcurrentEncodesAgree) {
  auto model = SentencePieceModel::Parse(ReadModel("bpe_nfkc_cf.model"));
  ASSERT_TRUE(model.ok());
  const std::string text =
      "Der schnelle braune Fuchs 😀 springt über den faulen Hund 123";
  const std::vector<int32_t> expected = (*model)->Encode(text);
  ASSERT_FALSE(expected.empty());
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        if ((*model)->Encode(text) != expected) ++mismatches[t];
        if ((*model)->Decode(expected).value() !=
            (*model)->Decode(expected).value()) {
          ++mismatches[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_THAT(mismatches, ElementsAre(0, 0, 0, 0));
}

}  // namespace
}  // namespace attnserve::server
