#include "engine/ops/attention.h"

#include <algorithm>
#include <cmath>
#include <optional>
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
  std::optional<float> scale;  // nullopt: the op's default 1 / sqrt(head_dim)
  // A position bias table (see Buffers) and where the queries sit: empty, or
  // one first position per sequence.
  bool position_bias = false;
  std::vector<int32_t> q_positions;
  int64_t bias_center_pad = 0;  // slack before the lowest index used
  int64_t bias_head_pad = 0;    // floats between heads' tables

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

  int64_t QueryPosition(int64_t b, int64_t i) const {
    return (q_positions.empty() ? 0 : q_positions[b]) + i;
  }
  // The bias tables' center: the last query's position (so key 0's index is
  // never negative) plus the slack.
  int64_t bias_center() const {
    int64_t last = 0;
    for (int64_t b = 0; b < batch(); ++b) {
      last = std::max(last, QueryPosition(b, q_len - 1));
    }
    return last + bias_center_pad;
  }
  int64_t bias_head_stride() const {
    return bias_center() + *std::max_element(lengths.begin(), lengths.end()) +
           bias_head_pad;
  }

  std::string DebugString() const {
    std::string s =
        absl::StrCat("heads ", heads, " head_dim ", head_dim, " q_len ", q_len,
                     causal ? " causal" : "", " lengths");
    for (int32_t l : lengths) absl::StrAppend(&s, " ", l);
    if (scale.has_value()) absl::StrAppend(&s, " scale ", *scale);
    if (position_bias) absl::StrAppend(&s, " position_bias");
    if (!q_positions.empty()) {
      absl::StrAppend(&s, " q_positions");
      for (int32_t p : q_positions) absl::StrAppend(&s, " ", p);
    }
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
    // The bias tables hold NaN except at the indices the contract lets the
    // op read (every query and key j < length), so any other read shows.
    if (layout.position_bias) {
      const int64_t stride = layout.bias_head_stride();
      bias.assign(layout.heads * stride, NAN);
      const std::vector<float> values =
          RandomFloats(bias.size(), seed + 2, -3.0f, 3.0f);
      for (int64_t h = 0; h < layout.heads; ++h) {
        for (int64_t b = 0; b < layout.batch(); ++b) {
          for (int64_t i = 0; i < layout.q_len; ++i) {
            for (int64_t j = 0; j < layout.lengths[b]; ++j) {
              const int64_t index = h * stride + layout.bias_center() + j -
                                    layout.QueryPosition(b, i);
              bias[index] = values[index];
            }
          }
        }
      }
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
    a.scale = layout.scale;
    if (layout.position_bias) {
      a.position_bias = bias.data();
      a.position_bias_head_stride = layout.bias_head_stride();
      a.position_bias_center = layout.bias_center();
    }
    a.q_positions = layout.q_positions;
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
  std::vector<float> bias;  // [heads, bias_head_stride()] or empty
};

// attention.h's definition written out plainly, in double: the query at
// position p = q_positions[b] + i sees keys j < length (and j <= p when
// causal); score = scale q.k + bias[h * stride + center + j - p]; softmax;
// weighted sum of the values. Gaps keep kUnwritten, as the op leaves them.
std::vector<float> NaiveAttention(const Buffers& buffers) {
  const Layout& l = buffers.layout;
  const double scale = l.scale.has_value()
                           ? double{*l.scale}
                           : 1.0 / std::sqrt(static_cast<double>(l.head_dim));
  std::vector<float> out(l.batch() * l.out_seq_stride(), kUnwritten);
  for (int64_t b = 0; b < l.batch(); ++b) {
    for (int64_t h = 0; h < l.heads; ++h) {
      for (int64_t i = 0; i < l.q_len; ++i) {
        const int64_t position = l.QueryPosition(b, i);
        std::vector<double> weights;
        for (int64_t j = 0; j < l.lengths[b]; ++j) {
          if (l.causal && j > position) break;
          double score = 0.0;
          for (int64_t d = 0; d < l.head_dim; ++d) {
            score +=
                double{buffers.q[b * l.q_seq_stride() + i * l.q_row_stride() +
                                 h * l.head_dim + d]} *
                buffers.k[b][j * l.kv_row_stride() + h * l.head_dim + d];
          }
          score *= scale;
          if (l.position_bias) {
            score += buffers.bias[h * l.bias_head_stride() + l.bias_center() +
                                  j - position];
          }
          weights.push_back(score);
        }
        const double max = *std::max_element(weights.begin(), weights.end());
        double sum = 0.0;
        for (double& w : weights) sum += (w = std::exp(w - max));
        for (int64_t d = 0; d < l.head_dim; ++d) {
          double acc = 0.0;
          for (size_t j = 0; j < weights.size(); ++j) {
            acc += weights[j] *
                   buffers.v[b][j * l.kv_row_stride() + h * l.head_dim + d];
          }
          out[b * l.out_seq_stride() + i * l.out_row_stride() + h * l.head_dim +
              d] = static_cast<float>(acc / sum);
        }
      }
    }
  }
  return out;
}

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

// The same keys and values with an explicit scale and a position bias: query
// [2 ln 3, 0] scaled by 0.5 scores ln 3 and 0 (weights 3/4, 1/4); a zero
// query with scale 1 scores 0 and 0, and a bias of ln 3 on key 0 gives the
// same weights. The bias is indexed by key minus query position, so moving
// the query (q_positions) moves which entries are read.
TEST(AttentionTest, ReferenceAppliesScaleAndPositionBias) {
  const float ln3 = std::log(3.0f);
  const std::vector<float> kv = {1, 0, 1, 2,   // row 0: k | v
                                 0, 1, 3, 4};  // row 1
  const float* k[] = {kv.data()};
  const float* v[] = {kv.data() + 2};
  const int32_t lengths[] = {2};
  auto ctx = MakeContext(Backend::kReference);
  auto run = [&](std::vector<float> q, std::optional<float> scale,
                 const float* bias, int64_t center,
                 std::vector<int32_t> positions, bool causal) {
    std::vector<float> out(2, kUnwritten);
    AttentionArgs a;
    a.num_heads = 1;
    a.head_dim = 2;
    a.batch = 1;
    a.q_len = 1;
    a.q = q.data();
    a.k = k;
    a.v = v;
    a.kv_row_stride = 4;
    a.kv_lengths = lengths;
    a.causal = causal;
    a.scale = scale;
    a.position_bias = bias;
    a.position_bias_center = center;
    a.q_positions = positions;
    a.out = out.data();
    EXPECT_THAT(Attention(*ctx, a), IsOk());
    return out;
  };
  EXPECT_TRUE(AllClose(run({2 * ln3, 0}, 0.5f, nullptr, 0, {}, false),
                       {1.5f, 2.5f}, 1e-6, 1e-6));
  // Scale 1, no bias: equal weights.
  EXPECT_TRUE(
      AllClose(run({0, 0}, 1.0f, nullptr, 0, {}, false), {2, 3}, 1e-6, 1e-6));
  // Query at position 0, center 1: keys 0 and 1 read bias[1] and bias[2].
  const float bias_at_0[] = {NAN, ln3, 0};
  EXPECT_TRUE(AllClose(run({0, 0}, 1.0f, bias_at_0, 1, {}, false), {1.5f, 2.5f},
                       1e-6, 1e-6));
  // Query at position 1: keys 0 and 1 read bias[0] and bias[1].
  const float bias_at_1[] = {ln3, 0, NAN};
  EXPECT_TRUE(AllClose(run({0, 0}, 1.0f, bias_at_1, 1, {1}, false),
                       {1.5f, 2.5f}, 1e-6, 1e-6));
  // Causal follows the query's position: at 0 it sees key 0 only, at 1 both.
  EXPECT_TRUE(
      AllClose(run({0, 0}, 1.0f, bias_at_1, 1, {0}, true), {1, 2}, 1e-6, 1e-6));
  EXPECT_TRUE(AllClose(run({0, 0}, 1.0f, bias_at_1, 1, {1}, true), {1.5f, 2.5f},
                       1e-6, 1e-6));
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
    // Half the trials carry T5's pieces: no or another scale, a position
    // bias, queries at positions of their own.
    if (trial % 2 == 1) {
      const int64_t scale = pick({0, 1, 2});
      if (scale > 0) layout.scale = scale == 1 ? 1.0f : 0.3f;
      layout.position_bias = pick({0, 1, 1}) == 1;
      if (pick({0, 1}) == 1) {
        for (size_t b = 0; b < layout.lengths.size(); ++b) {
          layout.q_positions.push_back(static_cast<int32_t>(
              std::uniform_int_distribution<int64_t>(0, 2 * max_length)(rng)));
        }
      }
      layout.bias_center_pad = pick({0, 3});
      layout.bias_head_pad = pick({0, 5});
    }
    const Buffers buffers(layout, 100 + trial, /*padding=*/NAN);
    const std::vector<float> expected = buffers.Run(*ref);
    const OpContext& dnnl = trial % 2 == 0 ? *dnnl1 : *dnnl2;
    EXPECT_TRUE(AllClose(buffers.Run(dnnl), expected, 1e-4, 2e-6))
        << layout.DebugString() << " threads " << dnnl.threads();
  }
}

// T5's position bias on every path against attention.h's definition written
// out (NaiveAttention): one query (the decode step: by (row, head) pair, and
// by whole rows from 4 rows per thread), a few (per query), many (sgemm, in
// chunks of 128 past q_len 128), causal or not, kv lengths below q_len, per
// sequence q_positions (T5's decode step puts its one query at length - 1),
// scale 1 as T5's. The reference is double throughout (tolerance: float
// inputs and output only); the dnnl body as against the reference (float
// scores, FastExp; 1e-4 relative as DnnlMatchesReferenceOnRandomLayouts).
TEST(AttentionTest, PositionBiasMatchesNaiveAttention) {
  auto ref = MakeContext(Backend::kReference);
  struct Case {
    int64_t q_len;
    bool causal;
    std::vector<int32_t> lengths;
    std::vector<int32_t> q_positions;
  };
  std::vector<Case> cases = {
      {1, false, {5, 1, 9}, {4, 0, 8}},  // decode steps, pair by pair
      {1, false, {3, 7, 2, 9, 4, 6, 1, 8, 5, 2}, {}},  // whole rows, position 0
      {1, true, {3, 7, 2, 9, 4, 6, 1, 8, 5, 2}, {2, 6, 1, 8, 3, 5, 0, 7, 4, 1}},
      {3, true, {2, 6}, {}},      // kv length below q_len
      {3, true, {4, 6}, {1, 3}},  // prefix on top of a cache
      {3, false, {4, 2}, {5, 0}},
      {9, true, {9, 4, 12}, {}},  // sgemm
      {9, false, {9, 4, 12}, {0, 2, 3}},
      {9, true, {9, 4, 12}, {0, 2, 3}},
      {140, true, {140, 60}, {}},  // two query chunks
      {140, false, {100, 140}, {7, 0}},
  };
  for (int threads : {1, 2}) {
    auto dnnl = MakeContext(Backend::kDnnl, threads);
    for (const Case& c : cases) {
      for (int head_dim : {8, 5}) {
        Layout layout;
        layout.heads = 3;
        layout.head_dim = head_dim;
        layout.q_len = c.q_len;
        layout.causal = c.causal;
        layout.lengths = c.lengths;
        layout.q_positions = c.q_positions;
        layout.scale = 1.0f;
        layout.position_bias = true;
        layout.bias_center_pad = 2;
        layout.bias_head_pad = 1;
        layout.kv_row_pad = 3;
        layout.out_row_pad = 1;
        const Buffers buffers(layout, 17, NAN);
        const std::vector<float> expected = NaiveAttention(buffers);
        EXPECT_TRUE(AllClose(buffers.Run(*ref), expected, 1e-6, 1e-7))
            << layout.DebugString();
        EXPECT_TRUE(AllClose(buffers.Run(*dnnl), expected, 1e-4, 2e-6))
            << layout.DebugString() << " threads " << threads;
      }
    }
  }
}

// The bias changes the output (a test that would pass without it proves
// nothing), and a zero bias gives exactly the unbiased result on both
// backends.
TEST(AttentionTest, PositionBiasIsNotIgnored) {
  Layout layout;
  layout.heads = 2;
  layout.head_dim = 8;
  layout.lengths = {6, 9};
  for (int64_t q_len : {1, 9}) {
    layout.q_len = q_len;
    layout.position_bias = false;
    const Buffers plain(layout, 3, NAN);
    layout.position_bias = true;
    Buffers biased(layout, 3, NAN);
    Buffers zero(layout, 3, NAN);
    for (float& b : zero.bias) b = std::isnan(b) ? b : 0.0f;
    for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
      auto ctx = MakeContext(backend);
      const std::vector<float> base = plain.Run(*ctx);
      EXPECT_TRUE(AllClose(zero.Run(*ctx), base, 0, 0)) << BackendName(backend);
      EXPECT_FALSE(AllClose(biased.Run(*ctx), base, 1e-3, 1e-3))
          << BackendName(backend) << " q_len " << q_len;
    }
  }
}

// Big enough for the threaded paths: a decode step of a large batch and an
// encoder pass.
TEST(AttentionTest, DnnlMatchesReferenceOnLargeBatches) {
  auto ref = MakeContext(Backend::kReference);
  auto dnnl = MakeContext(Backend::kDnnl, 2);
  std::mt19937 rng(11);
  for (bool t5 : {false, true}) {
    for (int64_t q_len : {1, 24}) {
      Layout layout;
      layout.heads = 8;
      layout.head_dim = 64;
      layout.q_len = q_len;
      layout.causal = q_len > 1;
      layout.lengths.resize(q_len == 1 ? 64 : 6);
      for (int32_t& l : layout.lengths) {
        l = std::uniform_int_distribution<int32_t>(1,
                                                   q_len == 1 ? 200 : 24)(rng);
      }
      layout.kv_row_pad = 64;
      if (t5) {  // T5's decoder: unscaled scores, a bias, the step's position
        layout.scale = 1.0f;
        layout.position_bias = true;
        if (q_len == 1) {
          for (int32_t l : layout.lengths) layout.q_positions.push_back(l - 1);
        }
      }
      const Buffers buffers(layout, 3, NAN);
      EXPECT_TRUE(AllClose(buffers.Run(*dnnl), buffers.Run(*ref), 1e-4, 2e-6))
          << layout.DebugString();
    }
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
  for (float scale : {NAN, INFINITY, -INFINITY}) {
    expect_error([&](AttentionArgs& a) { a.scale = scale; },
                 "scale must be finite");
  }
  const std::vector<int32_t> one_position = {0};
  const std::vector<int32_t> negative_position = {0, -1};
  const std::vector<int32_t> positions = {3, 1};
  const std::vector<float> bias(64);
  expect_error([&](AttentionArgs& a) { a.q_positions = one_position; },
               "q_positions needs one entry per sequence");
  expect_error([&](AttentionArgs& a) { a.q_positions = negative_position; },
               "q_positions[1] = -1");
  expect_error(
      [&](AttentionArgs& a) {
        a.position_bias = bias.data();
        a.position_bias_head_stride = -1;
      },
      "negative position_bias_head_stride");
  // The last query (q_len 2) of sequence 0 sits at position 1 without
  // q_positions, at 4 with them: a center below that would put key 0's bias
  // before the buffer.
  expect_error(
      [&](AttentionArgs& a) {
        a.position_bias = bias.data();
        a.position_bias_center = 0;
      },
      "position_bias_center 0 is less than the position 1 of sequence 0");
  expect_error(
      [&](AttentionArgs& a) {
        a.position_bias = bias.data();
        a.position_bias_center = 3;
        a.q_positions = positions;
      },
      "position_bias_center 3 is less than the position 4 of sequence 0");
  // Those values are fine without a bias, and a large enough center is fine.
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = MakeContext(backend);
    AttentionArgs a = buffers.Args(out.data());
    a.position_bias_center = -5;
    a.position_bias_head_stride = -1;
    EXPECT_THAT(Attention(*ctx, a), IsOk());
    a.position_bias = bias.data();
    a.position_bias_head_stride = 20;
    a.position_bias_center = 4;
    a.q_positions = positions;
    EXPECT_THAT(Attention(*ctx, a), IsOk());
  }
}

}  // namespace
}  // namespace attnserve::engine
