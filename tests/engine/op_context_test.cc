#include "engine/ops/op_context.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/status_matchers.h"

namespace attnserve::engine {
namespace {

using ::testing::_;
using ::testing::HasSubstr;

TEST(OpContextTest, ParsesBackendNames) {
  EXPECT_EQ(*ParseBackend("ref"), Backend::kReference);
  EXPECT_EQ(*ParseBackend("dnnl"), Backend::kDnnl);
  EXPECT_THAT(ParseBackend("cuda"), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("\"cuda\"")));
  EXPECT_THAT(ParseBackend(""),
              StatusIs(absl::StatusCode::kInvalidArgument, _));
}

TEST(OpContextTest, BackendNameRoundTrips) {
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    EXPECT_EQ(*ParseBackend(BackendName(backend)), backend);
  }
}

TEST(OpContextTest, RejectsThreadCountsOutOfRange) {
  for (int threads : {-1, 0, 257}) {
    EXPECT_THAT(
        OpContext::Create(Backend::kDnnl, threads),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("threads")))
        << threads;
  }
}

TEST(OpContextTest, KeepsBackendAndThreads) {
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    for (int threads : {1, 2, 256}) {
      absl::StatusOr<std::unique_ptr<OpContext>> ctx =
          OpContext::Create(backend, threads);
      ASSERT_THAT(ctx, IsOk());
      EXPECT_EQ((*ctx)->backend(), backend);
      EXPECT_EQ((*ctx)->threads(), threads);
      // Only the oneDNN backend carries oneDNN state.
      EXPECT_EQ((*ctx)->dnnl() != nullptr, backend == Backend::kDnnl);
      (*ctx)->Enter();
    }
  }
}

}  // namespace
}  // namespace attnserve::engine
