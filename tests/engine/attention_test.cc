#include "engine/ops/attention.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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

constexpr float kUnwritten =
    12345.0f;  // fills output gaps the op must not touch

// Shape and memory layout of one test case. Padding (the *_pad fields) makes
// every stride wider than the data, as in fused QKV buffers and KV caches.
struct Layout {
  int heads = 1;
  int head_dim = 4;
  int64_t q_len = 1;
  bool causal = false;
  std::vector<int32_t> lengths = {1};  // one per sequence
  int64_t q_row_pad = 0;
  int64_t q_seq_pad = 0;
  int64_t kv_row_pad = 0;
  int64_t kv_extra_rows = 2;  // rows past the longest sequence, all padding
  int64_t out_row_pad = 0;
  int64_t out_seq_pad = 0;

  int64_t batch() const { return static_cast<int64_t>(lengths.size()); }
  int64_t width() const { return int64_t{heads} * head_dim; }
  int64_t q_row_stride() const { return width() + q_row_pad; }
  int64_t q_seq_stride() const { return q_len * q_row_stride() + q_seq_pad; }
  // K and V of a row sit side by side ([k | v | pad]), as in a fused KV
  // projection.
  int64_t kv_row_stride() const { return 2 * width() + kv_row_pad; }
  int64_t kv_rows() const {
    return *std::max_element(lengths.begin(), lengths.end()) + kv_extra_rows;
  }
  int64_t out_row_stride() const { return width() + out_row_pad; }
  int64_t out_seq_stride() const {
    return q_len * out_row_stride() + out_seq_pad;
  }

  std::string DebugString() const {
    std::string s =
        absl::StrCat("heads ", heads, " head_dim ", head_dim, " q_len ", q_len,
                     causal ? " causal" : "", " lengths");
    for (int32_t l : lengths) absl::StrAppend(&s, " ", l);
    return s;
  }
};

// Owns the buffers of one case; keys at or past a sequence's length hold
// `padding`.
struct Buffers {
  Buffers(const Layout& layout, uint32_t seed, float padding) : layout(layout) {
    q = RandomFloats(layout.batch() * layout.q_seq_stride(), seed);
    kv = RandomFloats(
        layout.batch() * layout.kv_rows() * layout.kv_row_stride(), seed + 1);
    for (int64_t b = 0; b < layout.batch(); ++b) {
      float* base = kv.data() + b * layout.kv_rows() * layout.kv_row_stride();
      for (int64_t j = layout.lengths[b]; j < layout.kv_rows(); ++j) {
        std::fill_n(base + j * layout.kv_row_stride(), layout.kv_row_stride(),
                    padding);
      }
      k.push_back(base);
      v.push_back(base + layout.width());
    }
  }

  AttentionArgs Args(float* out) const {
    AttentionArgs a;
    a.num_heads = layout.heads;
    a.head_dim = layout.head_dim;
    a.batch = layout.batch();
    a.q_len = layout.q_len;
    a.q = q.data();
    a.q_seq_stride = layout.q_seq_stride();
    a.q_row_stride = layout.q_row_stride();
    a.k = k;
    a.v = v;
    a.kv_row_stride = layout.kv_row_stride();
    a.kv_lengths = layout.lengths;
    a.causal = layout.causal;
    a.out = out;
    a.out_seq_stride = layout.out_seq_stride();
    a.out_row_stride = layout.out_row_stride();
    return a;
  }

  // The whole output buffer, gaps included (they must keep kUnwritten).
  std::vector<float> Run(const OpContext& ctx) const {
    std::vector<float> out(layout.batch() * layout.out_seq_stride(),
                           kUnwritten);
    EXPECT_THAT(Attention(ctx, Args(out.data())), IsOk())
        << layout.DebugString();
    return out;
  }

  Layout layout;
  std::vector<float> q;
  std::vector<float> kv;
  std::vector<const float*> k;
  std::vector<const float*> v;
};

// One head of dim 2, keys [1, 0] and [0, 1], values [1, 2] and [3, 4]. The
// query [sqrt(2) ln 3, 0] scores (scaled by 1/sqrt(2)) ln 3 and 0: weights 3/4
// and 1/4.
TEST(AttentionTest, ReferenceMatchesHandComputedValues) {
  const float q0 = std::sqrt(2.0f) * std::log(3.0f);
  const std::vector<float> q = {q0, 0, q0, 0};         // two identical queries
  const std::vector<float> kv = {1,   0,   1,   2,     // row 0: k | v
                                 0,   1,   3,   4,     // row 1
                                 NAN, NAN, NAN, NAN};  // padding, never read
  const float* k[] = {kv.data()};
  const float* v[] = {kv.data() + 2};
  auto ctx = MakeContext(Backend::kReference);
  auto run = [&](int32_t length, int64_t q_len, bool causal) {
    const int32_t lengths[] = {length};
    std::vector<float> out(2 * q_len, kUnwritten);
    AttentionArgs a;
    a.num_heads = 1;
    a.head_dim = 2;
    a.batch = 1;
    a.q_len = q_len;
    a.q = q.data();
    a.q_row_stride = 2;
    a.k = k;
    a.v = v;
    a.kv_row_stride = 4;
    a.kv_lengths = lengths;
    a.causal = causal;
    a.out = out.data();
    a.out_row_stride = 2;
    EXPECT_THAT(Attention(*ctx, a), IsOk());
    return out;
  };
  EXPECT_TRUE(AllClose(run(2, 1, false), {1.5f, 2.5f}, 1e-6, 1e-6));
  // Length 1 masks key 1: all weight on value 0.
  EXPECT_TRUE(AllClose(run(1, 1, false), {1, 2}, 1e-6, 1e-6));
  // Causal: query 0 sees key 0 only, query 1 sees both.
  EXPECT_TRUE(AllClose(run(2, 2, true), {1, 2, 1.5f, 2.5f}, 1e-6, 1e-6));
  EXPECT_TRUE(AllClose(run(2, 2, false), {1.5f, 2.5f, 1.5f, 2.5f}, 1e-6, 1e-6));
}

// Heads are independent column blocks: a zero query in head 1 averages its
// values.
TEST(AttentionTest, ReferenceKeepsHeadsApart) {
  const float q0 = std::sqrt(2.0f) * std::log(3.0f);
  const std::vector<float> q = {q0, 0, 0, 0};
  const std::vector<float> kv = {
      1, 0, 5, 5, 1, 2, 10, 20,   // row 0: k (2 heads) | v
      0, 1, 7, 9, 3, 4, 30, 40};  // row 1
  const float* k[] = {kv.data()};
  const float* v[] = {kv.data() + 4};
  const int32_t lengths[] = {2};
  std::vector<float> out(4);
  AttentionArgs a;
  a.num_heads = 2;
  a.head_dim = 2;
  a.batch = 1;
  a.q_len = 1;
  a.q = q.data();
  a.k = k;
  a.v = v;
  a.kv_row_stride = 8;
  a.kv_lengths = lengths;
  a.out = out.data();
  auto ctx = MakeContext(Backend::kReference);
  ASSERT_THAT(Attention(*ctx, a), IsOk());
  EXPECT_TRUE(AllClose(out, {1.5f, 2.5f, 20, 30}, 1e-6, 1e-6));
}

// Random layouts: batch 1..12, heads 1..8, head_dim 4/8/64, one query
// (decode: by (row, head) pair, or whole rows from 4 rows per thread on) and
// several (both the per-query and the sgemm paths), ragged lengths, causal or
// not, padded strides.
TEST(AttentionTest, DnnlMatchesReferenceOnRandomLayouts) {
  std::mt19937 rng(7);
  auto pick = [&rng](std::initializer_list<int64_t> values) {
    return *(values.begin() +
             std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng));
  };
  auto ref = MakeContext(Backend::kReference);
  auto dnnl1 = MakeContext(Backend::kDnnl, 1);
  auto dnnl2 = MakeContext(Backend::kDnnl, 2);
  for (int trial = 0; trial < 300; ++trial) {
    Layout layout;
    layout.heads = static_cast<int>(pick({1, 2, 3, 8}));
    layout.head_dim = static_cast<int>(pick({4, 8, 64}));
    layout.q_len = pick({1, 1, 1, 2, 3, 4, 5, 17});
    layout.causal = pick({0, 1}) == 1;
    const int64_t max_length = pick({1, 3, 9, 40, 130});
    layout.lengths.resize(pick({1, 2, 3, 4, 5, 8, 12}));
    for (int32_t& l : layout.lengths) {
      l = static_cast<int32_t>(
          std::uniform_int_distribution<int64_t>(1, max_length)(rng));
    }
    layout.q_row_pad = pick({0, 3});
    layout.q_seq_pad = pick({0, 5});
    layout.kv_row_pad = pick({0, 1, 16});
    layout.out_row_pad = pick({0, 2});
    layout.out_seq_pad = pick({0, 7});
    const Buffers buffers(layout, 100 + trial, /*padding=*/NAN);
    const std::vector<float> expected = buffers.Run(*ref);
    const OpContext& dnnl = trial % 2 == 0 ? *dnnl1 : *dnnl2;
    EXPECT_TRUE(AllClose(buffers.Run(dnnl), expected, 1e-4, 2e-6))
        << layout.DebugString() << " threads " << dnnl.threads();
  }
}

// Big enough for the threaded paths: a decode step of a large batch and an
// encoder pass.
TEST(AttentionTest, DnnlMatchesReferenceOnLargeBatches) {
  auto ref = MakeContext(Backend::kReference);
  auto dnnl = MakeContext(Backend::kDnnl, 2);
  std::mt19937 rng(11);
  for (int64_t q_len : {1, 24}) {
    Layout layout;
    layout.heads = 8;
    layout.head_dim = 64;
    layout.q_len = q_len;
    layout.causal = q_len > 1;
    layout.lengths.resize(q_len == 1 ? 64 : 6);
    for (int32_t& l : layout.lengths) {
      l = std::uniform_int_distribution<int32_t>(1, q_len == 1 ? 200 : 24)(rng);
    }
    layout.kv_row_pad = 64;
    const Buffers buffers(layout, 3, NAN);
    EXPECT_TRUE(AllClose(buffers.Run(*dnnl), buffers.Run(*ref), 1e-4, 2e-6))
        << layout.DebugString();
  }
}

// Many queries go through sgemm in chunks of 128 (attention_dnnl.cc), so that
// the scores never need [q_len, length] per thread: several chunks and a
// partial one, causal or not, match the reference.
TEST(AttentionTest, DnnlMatchesReferenceAcrossQueryChunks) {
  auto ref = MakeContext(Backend::kReference);
  auto dnnl = MakeContext(Backend::kDnnl, 2);
  for (bool causal : {false, true}) {
    Layout layout;
    layout.heads = 2;
    layout.head_dim = 16;
    layout.q_len = 300;
    layout.causal = causal;
    layout.lengths = {300, 170};
    layout.q_row_pad = 5;
    layout.kv_row_pad = 3;
    layout.out_row_pad = 2;
    const Buffers buffers(layout, 5, NAN);
    EXPECT_TRUE(AllClose(buffers.Run(*dnnl), buffers.Run(*ref), 1e-4, 2e-6))
        << layout.DebugString();
  }
}

// Whatever the padding keys hold (NaN, huge, random), outputs are identical,
// and gaps in the output keep their contents.
TEST(AttentionTest, PaddingKeysDoNotChangeOutputs) {
  Layout layout;
  layout.heads = 2;
  layout.head_dim = 8;
  layout.lengths = {3, 1, 6};
  layout.out_row_pad = 3;
  layout.out_seq_pad = 2;
  for (int64_t q_len : {1, 6}) {
    layout.q_len = q_len;
    for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
      auto ctx = MakeContext(backend, 2);
      const std::vector<float> baseline = Buffers(layout, 1, 0.5f).Run(*ctx);
      for (float padding : {NAN, 1e30f, -1e30f, INFINITY}) {
        EXPECT_TRUE(
            AllClose(Buffers(layout, 1, padding).Run(*ctx), baseline, 0, 0))
            << BackendName(backend) << " q_len " << q_len << " padding "
            << padding;
      }
      int64_t unwritten = 0;
      for (float v : baseline) unwritten += v == kUnwritten;
      const int64_t gaps = layout.batch() * (layout.out_seq_stride() -
                                             layout.q_len * layout.width());
      EXPECT_EQ(unwritten, gaps) << BackendName(backend) << " q_len " << q_len;
    }
  }
}

TEST(AttentionTest, EmptyBatchOrNoQueriesIsANoOp) {
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = MakeContext(backend);
    AttentionArgs a;
    a.num_heads = 2;
    a.head_dim = 4;
    a.kv_row_stride = 8;
    EXPECT_THAT(Attention(*ctx, a), IsOk());
    Layout layout;
    layout.q_len = 0;
    layout.lengths = {2, 3};
    const Buffers buffers(layout, 1, 0.0f);
    EXPECT_THAT(Attention(*ctx, buffers.Args(nullptr)), IsOk());
  }
}

TEST(AttentionTest, RejectsBadArguments) {
  Layout layout;
  layout.heads = 2;
  layout.head_dim = 4;
  layout.q_len = 2;
  layout.lengths = {2, 3};
  const Buffers buffers(layout, 1, 0.0f);
  std::vector<float> out(layout.batch() * layout.out_seq_stride());
  const std::vector<int32_t> short_lengths = {2};
  const std::vector<int32_t> zero_length = {2, 0};
  const std::vector<const float*> null_k = {buffers.k[0], nullptr};
  auto expect_error = [&](auto mutate, const std::string& message) {
    for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
      auto ctx = MakeContext(backend);
      AttentionArgs a = buffers.Args(out.data());
      mutate(a);
      EXPECT_THAT(
          Attention(*ctx, a),
          StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message)))
          << BackendName(backend) << " expecting " << message;
    }
  };
  expect_error([](AttentionArgs& a) { a.num_heads = 0; }, "num_heads");
  expect_error([](AttentionArgs& a) { a.head_dim = -1; }, "head_dim");
  expect_error([](AttentionArgs& a) { a.q_len = -1; }, "q_len");
  expect_error([&](AttentionArgs& a) { a.kv_lengths = short_lengths; },
               "kv_lengths");
  expect_error(
      [&](AttentionArgs& a) { a.k = absl::MakeConstSpan(buffers.k).first(1); },
      "one entry per sequence");
  expect_error([&](AttentionArgs& a) { a.kv_lengths = zero_length; },
               "kv_lengths[1] = 0");
  expect_error([&](AttentionArgs& a) { a.k = null_k; }, "null k or v");
  expect_error([](AttentionArgs& a) { a.q = nullptr; }, "null q or out");
  expect_error([](AttentionArgs& a) { a.out = nullptr; }, "null q or out");
  expect_error([](AttentionArgs& a) { a.kv_row_stride = 7; }, "kv_row_stride");
  expect_error([](AttentionArgs& a) { a.q_row_stride = 7; }, "q_row_stride");
  expect_error([](AttentionArgs& a) { a.out_row_stride = 0; },
               "out_row_stride");
}

}  // namespace
}  // namespace attnserve::engine
