// The attention op over bfloat16 keys and values (the decoder's KV caches at
// --kv_cache_dtype=bfloat16): both bodies against the float32 reference on
// the same rounded values, and against the unrounded float32 values.

#include <cstdint>
#include <vector>

#include "engine/format/half_float.h"
#include "engine/ops/attention.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/op_test_util.h"
#include "tests/engine/status_matchers.h"

namespace attnserve::engine {
namespace {

using op_test::AllClose;
using op_test::MakeContext;
using op_test::RandomFloats;
using ::testing::HasSubstr;

// One case: `heads` heads of `head_dim`, q_len queries per sequence, keys and
// values [k | v] side by side in rows of kv_stride elements, as in a cache.
struct Bf16Case {
  int heads;
  int head_dim;
  int64_t q_len;
  std::vector<int32_t> lengths;

  int64_t batch() const { return static_cast<int64_t>(lengths.size()); }
  int64_t width() const { return int64_t{heads} * head_dim; }
  int64_t kv_stride() const { return 2 * width(); }
  int64_t rows() const { return 40; }  // >= every length
};

// The inputs of a case at both element types: kv (float32), kv_bf16 (its
// rounding) and kv_widened (that rounding widened back, exactly).
struct Bf16Buffers {
  Bf16Buffers(const Bf16Case& c, uint32_t seed) : c(c) {
    q = RandomFloats(c.batch() * c.q_len * c.width(), seed);
    kv = RandomFloats(c.batch() * c.rows() * c.kv_stride(), seed + 1);
    for (float x : kv) {
      kv_bf16.push_back(FloatToBFloat16(x));
      kv_widened.push_back(BFloat16ToFloat(kv_bf16.back()));
    }
  }

  // Arguments reading float32 K/V from `values`, or kv_bf16 when null.
  AttentionArgs Args(const std::vector<float>* values, float* out) {
    k.clear();
    v.clear();
    k_bf16.clear();
    v_bf16.clear();
    for (int64_t b = 0; b < c.batch(); ++b) {
      const int64_t base = b * c.rows() * c.kv_stride();
      if (values != nullptr) {
        k.push_back(values->data() + base);
        v.push_back(values->data() + base + c.width());
      } else {
        k_bf16.push_back(kv_bf16.data() + base);
        v_bf16.push_back(kv_bf16.data() + base + c.width());
      }
    }
    AttentionArgs a;
    a.num_heads = c.heads;
    a.head_dim = c.head_dim;
    a.batch = c.batch();
    a.q_len = c.q_len;
    a.q = q.data();
    a.q_seq_stride = c.q_len * c.width();
    a.q_row_stride = c.width();
    a.kv_type =
        values != nullptr ? ComputeType::kFloat32 : ComputeType::kBFloat16;
    a.k = k;
    a.v = v;
    a.k_bf16 = k_bf16;
    a.v_bf16 = v_bf16;
    a.kv_row_stride = c.kv_stride();
    a.kv_lengths = c.lengths;
    a.out = out;
    a.out_seq_stride = c.q_len * c.width();
    a.out_row_stride = c.width();
    return a;
  }

  std::vector<float> Run(const OpContext& ctx,
                         const std::vector<float>* values) {
    std::vector<float> out(c.batch() * c.q_len * c.width(), 0.0f);
    EXPECT_THAT(Attention(ctx, Args(values, out.data())), IsOk());
    return out;
  }

  Bf16Case c;
  std::vector<float> q, kv, kv_widened;
  std::vector<uint16_t> kv_bf16;
  std::vector<const float*> k, v;
  std::vector<const uint16_t*> k_bf16, v_bf16;
};

// Shapes that take every path of the fast body: head_dim a multiple of 8
// (vector loads) and not, few rows (by query), rows enough for whole rows per
// thread, and q_len past the sgemm threshold (bf16 stays on the loops).
std::vector<Bf16Case> Cases() {
  return {
      {4, 64, 1, {1, 5, 37}},
      {3, 12, 1, {2, 9}},
      {4, 64, 1, {1, 2, 3, 4, 5, 6, 7, 8, 17, 33}},
      {2, 12, 1, {3, 1, 4, 1, 5, 9, 2, 6, 5, 3}},
      {2, 16, 6, {7, 30}},
  };
}

TEST(AttentionBf16Test, MatchesTheReferenceOnTheSameRoundedValues) {
  for (const Bf16Case& c : Cases()) {
    SCOPED_TRACE(testing::Message()
                 << "heads " << c.heads << " head_dim " << c.head_dim
                 << " q_len " << c.q_len << " batch " << c.batch());
    Bf16Buffers buffers(c, 7);
    auto ref = MakeContext(Backend::kReference);
    const std::vector<float> expected = buffers.Run(*ref, &buffers.kv_widened);
    // The reference widens exactly, so it is the float32 reference itself.
    EXPECT_TRUE(AllClose(buffers.Run(*ref, nullptr), expected, 1e-6, 1e-7));
    for (int threads : {1, 2}) {
      auto dnnl = MakeContext(Backend::kDnnl, threads);
      // The fast body's float32 error (FastExp, float sums) on the same
      // values: as tight as the float32 attention tests.
      EXPECT_TRUE(AllClose(buffers.Run(*dnnl, nullptr), expected, 1e-5, 1e-5))
          << threads << " threads";
    }
  }
}

// Against the unrounded float32 K/V. Each key and value is rounded once, by
// at most 2^-9 relative. With |q|, |k|, |v| <= 1 a score moves by at most
// scale * head_dim * 2^-9 (1/8 * 64 / 512 = 1/64 at head_dim 64), so each
// softmax weight by a factor within exp(+-2/64), about 3%; the output, a
// weighted mean of values of magnitude <= 1, moves by at most that plus the
// values' own 2^-9: 0.04 bounds it. Actual errors are far smaller (rounding
// errors cancel), which the mean check shows.
TEST(AttentionBf16Test, CloseToUnroundedFloat32) {
  for (const Bf16Case& c : Cases()) {
    Bf16Buffers buffers(c, 11);
    auto dnnl = MakeContext(Backend::kDnnl, 2);
    const std::vector<float> exact = buffers.Run(*dnnl, &buffers.kv);
    const std::vector<float> rounded = buffers.Run(*dnnl, nullptr);
    EXPECT_TRUE(AllClose(rounded, exact, 0.0, 0.04));
    double mean_error = 0.0;
    for (size_t i = 0; i < exact.size(); ++i)
      mean_error += std::fabs(rounded[i] - exact[i]);
    mean_error /= static_cast<double>(exact.size());
    EXPECT_LT(mean_error, 4e-3);
    EXPECT_GT(mean_error, 0.0) << "bf16 K/V should round something";
  }
}

TEST(AttentionBf16Test, RefusesOtherTypesAndMixedSpans) {
  Bf16Buffers buffers({2, 8, 1, {3}}, 3);
  std::vector<float> out(16);
  auto ref = MakeContext(Backend::kReference);
  AttentionArgs int8 = buffers.Args(nullptr, out.data());
  int8.kv_type = ComputeType::kInt8;
  EXPECT_THAT(Attention(*ref, int8),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("must be float32 or bfloat16, got int8")));
  // bf16 type with the float32 spans also set.
  AttentionArgs mixed = buffers.Args(nullptr, out.data());
  std::vector<const float*> k = {buffers.kv.data()};
  mixed.k = k;
  EXPECT_THAT(Attention(*ref, mixed),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("float32 k and v spans are set")));
  // float32 type given only bf16 pointers.
  AttentionArgs missing = buffers.Args(nullptr, out.data());
  missing.kv_type = ComputeType::kFloat32;
  EXPECT_THAT(Attention(*ref, missing),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("bfloat16 k_bf16 and v_bf16 spans are set")));
}

}  // namespace
}  // namespace attnserve::engine
