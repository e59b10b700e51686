// request_id is logged and echoed: convert.cc accepts printable ASCII only.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/convert.h"

namespace attnserve::server {
namespace {

using ::testing::HasSubstr;

ModelInfo TinyModel() {
  ModelInfo model;
  model.name = "tiny";
  model.config.vocab_size = 16;
  model.config.max_positions = 32;
  return model;
}

absl::Status Convert(const std::string& request_id) {
  v1::GenerateRequest request;
  request.add_input_ids(3);
  request.set_request_id(request_id);
  RequestLimits limits;
  const ModelInfo model = TinyModel();
  absl::StatusOr<RequestLimits> resolved = ResolveLimits(limits, model);
  EXPECT_TRUE(resolved.ok()) << resolved.status();
  return ToWorkItem(request, *resolved, model, nullptr).status();
}

TEST(RequestIdTest, PrintableAsciiIsAccepted) {
  EXPECT_TRUE(Convert("").ok());
  EXPECT_TRUE(Convert("trace-01HZ/step 3:retry=2").ok());
  EXPECT_TRUE(Convert(std::string(256, '~')).ok());
}

TEST(RequestIdTest, ControlAndNonAsciiBytesAreRefusedByPosition) {
  const absl::Status newline = Convert("abc\n2026-01-01 attnserve: forged");
  EXPECT_EQ(newline.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(newline.message()),
              HasSubstr("request_id byte 3 is 0x0A"));
  EXPECT_THAT(std::string(Convert("a\x1b[2J").message()),
              HasSubstr("byte 1 is 0x1B"));
  EXPECT_THAT(std::string(Convert("\xC3\xA9").message()),
              HasSubstr("byte 0 is 0xC3"));
  EXPECT_THAT(std::string(Convert(std::string("a\0b", 3)).message()),
              HasSubstr("byte 1 is 0x00"));
}

}  // namespace
}  // namespace attnserve::server
