#include "engine/network/positions.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace attnserve::engine {
namespace {

ModelConfig Config(PositionalEncoding kind) {
  ModelConfig c;
  c.d_model = 8;
  c.max_positions = 600;  // past one block of the lazily filled table
  c.positional_encoding = kind;
  c.pad_id = 1;
  c.position_offset = kind == PositionalEncoding::kSinusoidalFairseq ? 2 : 0;
  return c;
}

// x += PE for rows of zeros: the encodings themselves.
std::vector<float> Encodings(const Positions& p,
                             const std::vector<int32_t>& tokens,
                             const std::vector<int32_t>& indices, int d) {
  std::vector<float> x(tokens.size() * d, 0.0f);
  EXPECT_TRUE(p.AddTo(tokens, indices, x.data()).ok());
  return x;
}

TEST(PositionsTest, SinusoidalLayoutsFollowTheirFormulas) {
  for (PositionalEncoding kind : {PositionalEncoding::kSinusoidal,
                                  PositionalEncoding::kSinusoidalConcat}) {
    auto p = Positions::Create(Config(kind), Tensor());
    ASSERT_TRUE(p.ok());
    const std::vector<int32_t> indices = {0, 1, 7, 300, 599};
    const std::vector<float> x =
        Encodings(**p, std::vector<int32_t>(indices.size(), 5), indices, 8);
    for (size_t r = 0; r < indices.size(); ++r) {
      for (int i = 0; i < 4; ++i) {
        const double angle = indices[r] / std::pow(10000.0, 2.0 * i / 8);
        const int s = kind == PositionalEncoding::kSinusoidal ? 2 * i : i;
        const int c =
            kind == PositionalEncoding::kSinusoidal ? 2 * i + 1 : 4 + i;
        EXPECT_NEAR(x[r * 8 + s], std::sin(angle), 1e-6);
        EXPECT_NEAR(x[r * 8 + c], std::cos(angle), 1e-6);
      }
    }
  }
}

TEST(PositionsTest, FairseqSkipsPadsAndStartsAtTheOffset) {
  auto p = Positions::Create(Config(PositionalEncoding::kSinusoidalFairseq),
                             Tensor());
  ASSERT_TRUE(p.ok());
  // A pad (id 1) inside the sequence does not advance the count.
  const std::vector<int32_t> tokens = {5, 1, 6, 7};
  std::vector<int32_t> indices(4);
  (*p)->SequenceIndices(tokens, absl::MakeSpan(indices));
  EXPECT_EQ(indices, (std::vector<int32_t>{0, 1, 1, 2}));
  const std::vector<float> x = Encodings(**p, tokens, indices, 8);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(x[8 + i], 0.0f) << "pad row";
  // Row of index k holds the encoding at position offset + k = 2 + k, with
  // fairseq's frequencies exp(-i ln(10000) / (d/2 - 1)), [sin | cos].
  for (int r : {0, 2, 3}) {
    for (int i = 0; i < 4; ++i) {
      const double angle =
          (2 + indices[r]) * std::exp(-i * std::log(10000.0) / 3);
      EXPECT_NEAR(x[r * 8 + i], std::sin(angle), 1e-5);
      EXPECT_NEAR(x[r * 8 + 4 + i], std::cos(angle), 1e-5);
    }
  }
}

TEST(PositionsTest, LearnedReadsTheTableAndNoneAddsNothing) {
  ModelConfig c = Config(PositionalEncoding::kLearned);
  Tensor table({c.max_positions, c.d_model});
  for (int64_t i = 0; i < table.size(); ++i) table.data()[i] = 0.5f * i;
  auto learned = Positions::Create(c, std::move(table));
  ASSERT_TRUE(learned.ok());
  const std::vector<float> x = Encodings(**learned, {3, 3}, {0, 599}, 8);
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_EQ(x[8 + 3], 0.5f * (599 * 8 + 3));

  auto none = Positions::Create(Config(PositionalEncoding::kNone), Tensor());
  ASSERT_TRUE(none.ok());
  for (float v : Encodings(**none, {3, 4}, {0, 9}, 8)) EXPECT_EQ(v, 0.0f);
}

TEST(PositionsTest, LearnedTableOfTheWrongShapeIsRefused) {
  ModelConfig c = Config(PositionalEncoding::kLearned);
  EXPECT_FALSE(Positions::Create(c, Tensor({3, 8})).ok());
}

}  // namespace
}  // namespace attnserve::engine
