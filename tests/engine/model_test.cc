// Model::Load when memory runs out: a clear RESOURCE_EXHAUSTED naming the
// tensor and its size, never an exception (the server turns it into a
// startup error).

#include "engine/model.h"

#include "engine/memory/allocation_policy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/memory_test_models.h"
#include "tests/engine/status_matchers.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::engine {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(ModelLoadTest, OutOfMemoryNamesTheTensorAndItsSize) {
  testing::TempDir dir("model_test");
  ASSERT_TRUE(
      testing::WriteMemoryTestModel(dir.path(), testing::MemoryTestConfig()));
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    SCOPED_TRACE(BackendName(backend));
    SetTensorMemoryLimitForTesting(TensorBytesLive());
    auto model = Model::Load(dir.path(), {backend, 1});
    SetTensorMemoryLimitForTesting(-1);
    // The first tensor read (in file order) is the embedding table, [40, 32].
    EXPECT_THAT(model, StatusIs(absl::StatusCode::kResourceExhausted,
                                AllOf(HasSubstr("model.safetensors"),
                                      HasSubstr("\"shared.embed.weight\""),
                                      HasSubstr("5120 bytes"))));
    EXPECT_TRUE(Model::Load(dir.path(), {backend, 1}).ok());
  }
}

TEST(ModelLoadTest, OutOfMemoryWhilePackingIsAStatus) {
  testing::TempDir dir("model_test");
  ASSERT_TRUE(
      testing::WriteMemoryTestModel(dir.path(), testing::MemoryTestConfig()));
  // Find how much loading takes, then allow a little less than that at every
  // budget on the way: whatever allocation fails, Load reports it.
  const int64_t before = TensorBytesLive();
  ResetTensorBytesPeak();
  {
    auto model = Model::Load(dir.path(), {Backend::kDnnl, 1});
    ASSERT_TRUE(model.ok()) << model.status();
  }
  const int64_t needed = TensorBytesPeak() - before;
  ASSERT_GT(needed, 0);
  for (int64_t budget = 0; budget < needed; budget += needed / 16 + 1) {
    SCOPED_TRACE(budget);
    SetTensorMemoryLimitForTesting(TensorBytesLive() + budget);
    auto model = Model::Load(dir.path(), {Backend::kDnnl, 1});
    SetTensorMemoryLimitForTesting(-1);
    EXPECT_THAT(model, StatusIs(absl::StatusCode::kResourceExhausted,
                                HasSubstr("out of memory")));
  }
}

}  // namespace
}  // namespace attnserve::engine
