#pragma once
// Table-driven checks for the tests of the tools' option structs: each bad
// setting is refused with a message naming the flag at fault.

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnserve::client::testing {

// One bad setting: `spoil` changes a valid options struct, and the error must
// contain `message`.
template <typename Options>
struct FaultCase {
  std::function<void(Options&)> spoil;
  std::string message;
};

// For each case, `check` (Options -> absl::Status) of `valid` spoiled by the
// case fails with a message containing the case's.
template <typename Options, typename Check>
void ExpectFaultsNamed(const Options& valid, const Check& check,
                       const std::vector<FaultCase<Options>>& cases) {
  for (size_t i = 0; i < cases.size(); ++i) {
    Options options = valid;
    cases[i].spoil(options);
    const absl::Status status = check(options);
    EXPECT_FALSE(status.ok()) << "case " << i;
    EXPECT_THAT(std::string(status.message()),
                ::testing::HasSubstr(cases[i].message))
        << "case " << i;
  }
}

// The value of `result`; a failure of the test (and T()) when it is an error.
template <typename T>
T ValueOrFail(absl::StatusOr<T> result) {
  if (!result.ok()) {
    ADD_FAILURE() << result.status();
    return T();
  }
  return *std::move(result);
}

}  // namespace attnserve::client::testing
