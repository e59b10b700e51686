// The flags that bound what a request may cost, through build/attnserve and a
// real gRPC channel: every request field that drives allocation or time is
// refused above its flag's limit and served at it. (server_test.cc checks the
// same rules in-process; this checks that the flags reach them.) Also: the
// metrics endpoint on an address of its own.

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/attnserve_binary.h"
#include "tests/server/dates_server_suite.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/http_get.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::FreeLoopbackPort;
using ::attnserve::server::testing::HttpGet;
using ::attnserve::server::testing::StartAttnserve;
using ::attnserve::server::testing::StartedServer;
using ::attnserve::server::testing::TestServerFlags;
using ::testing::HasSubstr;

class LimitsTest : public testing::DatesServerSuite<LimitsTest> {
 public:
  // models/dates: text and ids (char tokenizer, EOS added to the source).
  static std::vector<std::string> ExtraFlags() {
    return {"--max_input_tokens=11", "--max_new_tokens_limit=6",
            "--default_max_new_tokens=3", "--max_beam_size=2",
            "--max_message_bytes=200"};
  }

 protected:
  grpc::Status Call(const v1::GenerateRequest& request,
                    v1::GenerateResponse* response = nullptr) {
    v1::GenerateResponse ignored;
    return testing::Generate(*stub_, request,
                             response != nullptr ? response : &ignored);
  }

  static v1::GenerateRequest Text(const std::string& text,
                                  uint32_t max_new_tokens = 0,
                                  uint32_t beam_size = 0) {
    v1::GenerateRequest request;
    request.set_text(text);
    request.set_max_new_tokens(max_new_tokens);
    request.set_beam_size(beam_size);
    return request;
  }
};

void ExpectInvalid(const grpc::Status& status, const std::string& message) {
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(message));
}

TEST_F(LimitsTest, GetModelInfoReportsTheFlags) {
  grpc::ClientContext context;
  v1::GetModelInfoResponse info;
  ASSERT_TRUE(
      stub_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.max_input_tokens(), 11u);
  EXPECT_EQ(info.max_new_tokens_limit(), 6u);
}

TEST_F(LimitsTest, InputTokens) {
  // 10 characters + EOS = 11 tokens.
  EXPECT_TRUE(Call(Text("2026-11-23")).ok());
  ExpectInvalid(Call(Text("2026-11-233")),
                "text has 12 tokens; the limit is 11 (max_input_tokens)");
  v1::GenerateRequest ids;
  for (int i = 0; i < 12; ++i) ids.add_input_ids(10);
  ExpectInvalid(Call(ids), "input_ids has 12 tokens; the limit is 11");
  ids.mutable_input_ids()->RemoveLast();
  EXPECT_TRUE(Call(ids).ok());
}

TEST_F(LimitsTest, MaxNewTokens) {
  v1::GenerateResponse response;
  ASSERT_TRUE(Call(Text("23.11.2026", 6), &response).ok());
  EXPECT_LE(response.output_ids_size(), 6);
  ExpectInvalid(Call(Text("23.11.2026", 7)),
                "max_new_tokens = 7 is above the limit of 6");
  // 0 asks for the server's default.
  ASSERT_TRUE(Call(Text("23.11.2026"), &response).ok());
  EXPECT_EQ(response.output_ids_size(), 3);
  EXPECT_EQ(response.finish_reason(), v1::FINISH_REASON_LENGTH);
}

TEST_F(LimitsTest, BeamSize) {
  EXPECT_TRUE(Call(Text("23.11.2026", 6, 2)).ok());
  ExpectInvalid(Call(Text("23.11.2026", 6, 3)),
                "beam_size = 3 is above the limit of 2");
}

TEST_F(LimitsTest, MessageBytes) {
  // Both request ids are within the API's own 256-byte limit; only the
  // message size tells them apart.
  v1::GenerateRequest request = Text("2026-11-23");
  request.set_request_id(std::string(150, 'r'));
  ASSERT_LE(request.ByteSizeLong(), 200u);
  EXPECT_TRUE(Call(request).ok());
  request.set_request_id(std::string(250, 'r'));
  const grpc::Status status = Call(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_message();
  EXPECT_TRUE(Call(Text("2026-11-23")).ok()) << "still serving";
}

TEST(MetricsAddressTest, MetricsListenOnlyOnTheirOwnAddress) {
  const int metrics_port = FreeLoopbackPort();
  ASSERT_NE(metrics_port, 0);
  // gRPC on 127.0.0.1, metrics on 127.0.0.2 (also loopback on Linux): e.g. a
  // public API address and a private monitoring one.
  absl::StatusOr<StartedServer> server = StartAttnserve(
      TestServerFlags(testing::TinyModelDir(),
                      {"--metrics_address=127.0.0.2",
                       absl::StrCat("--metrics_port=", metrics_port)}));
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<testing::HttpResponse> metrics =
      HttpGet("127.0.0.2", metrics_port, "/metrics", absl::Seconds(10));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->status, 200);
  EXPECT_THAT(metrics->body, HasSubstr("attnserve_requests_total"));
  EXPECT_EQ(HttpGet("127.0.0.1", metrics_port, "/metrics", absl::Seconds(10))
                .status()
                .code(),
            absl::StatusCode::kUnavailable)
      << "nothing listens there";
}

}  // namespace
}  // namespace attnserve::server
