// The KServe v2 protocol on build/attnserve serving models/dates (a model with
// a tokenizer): text_input in, text_output out, unary and streamed, each row
// equal to what Generate answers for its text alone on the same server.

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/attnserve_binary.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/kserve_test_client.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::Contents;
using ::attnserve::server::testing::OutputTensor;
using ::attnserve::server::testing::ReadOutputs;
using ::attnserve::server::testing::RowIds;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

const std::vector<std::string>& Dates() {
  static const auto* const kDates = new std::vector<std::string>{
      "Monday, 23 November 2026", "the 4th of july, 1976", "3 Mar 2001",
      "December 31st, 1999 at midnight"};
  return *kDates;
}

class KserveTextTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<testing::StartedServer> started =
        testing::StartAttnserve(testing::TestServerFlags(
            testing::DatesModelDir(), {"--max_batch_size=8"}));
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = new testing::StartedServer(*std::move(started));
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    auto channel = testing::Connect(server_->port);
    stub_ = inference::GRPCInferenceService::NewStub(channel);
    seq2seq_ = v1::Seq2Seq::NewStub(channel);
    grpc::ClientContext context;
    v1::GetModelInfoResponse info;
    ASSERT_TRUE(
        seq2seq_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info)
            .ok());
    ASSERT_TRUE(info.has_tokenizer());
    model_ = info.model_name();
  }

  v1::GenerateResponse Generated(const std::string& text) {
    v1::GenerateRequest request;
    request.set_text(text);
    v1::GenerateResponse response;
    const grpc::Status status =
        testing::Generate(*seq2seq_, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  static testing::StartedServer* server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  std::unique_ptr<v1::Seq2Seq::Stub> seq2seq_;
  std::string model_;
};

testing::StartedServer* KserveTextTest::server_ = nullptr;

TEST_F(KserveTextTest, MetadataListsTheTextTensors) {
  grpc::ClientContext context;
  inference::ModelMetadataRequest request;
  request.set_name(model_);
  inference::ModelMetadataResponse metadata;
  ASSERT_TRUE(stub_->ModelMetadata(&context, request, &metadata).ok());
  std::vector<std::string> inputs, outputs;
  for (const auto& t : metadata.inputs()) inputs.push_back(t.name());
  for (const auto& t : metadata.outputs()) outputs.push_back(t.name());
  EXPECT_THAT(inputs, ElementsAre("input_ids", "input_lengths", "text_input"));
  EXPECT_THAT(outputs,
              ElementsAre("output_ids", "output_lengths", "text_output"));
}

TEST_F(KserveTextTest, TextBatchEqualsGenerateRowByRow) {
  for (Contents contents : {Contents::kRaw, Contents::kTyped}) {
    SCOPED_TRACE(contents == Contents::kRaw ? "raw" : "typed");
    inference::ModelInferRequest request =
        testing::TextRequest(model_, Dates(), contents);
    request.set_id("dates-batch");
    inference::ModelInferResponse response;
    const grpc::Status status = testing::ModelInfer(*stub_, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.id(), "dates-batch");
    absl::StatusOr<std::map<std::string, OutputTensor>> outputs =
        ReadOutputs(response);
    ASSERT_TRUE(outputs.ok()) << outputs.status();
    const OutputTensor& text = outputs->at("text_output");
    EXPECT_EQ(text.datatype, "BYTES");
    ASSERT_EQ(text.strings.size(), Dates().size());
    for (size_t b = 0; b < Dates().size(); ++b) {
      const v1::GenerateResponse alone = Generated(Dates()[b]);
      EXPECT_EQ(text.strings[b], alone.text()) << Dates()[b];
      EXPECT_THAT(RowIds(*outputs, b), ElementsAreArray(alone.output_ids()));
    }
    // The model does its job: the first is Monday, 23 November 2026.
    EXPECT_EQ(text.strings[0], "2026-11-23");
  }
}

TEST_F(KserveTextTest, OnlyTextOutputWhenAskedFor) {
  inference::ModelInferRequest request =
      testing::TextRequest(model_, {Dates()[1]}, Contents::kRaw);
  request.add_outputs()->set_name("text_output");
  inference::ModelInferResponse response;
  ASSERT_TRUE(testing::ModelInfer(*stub_, request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 1);
  absl::StatusOr<std::map<std::string, OutputTensor>> outputs =
      ReadOutputs(response);
  ASSERT_TRUE(outputs.ok());
  EXPECT_THAT(outputs->at("text_output").strings,
              ElementsAre(Generated(Dates()[1]).text()));
}

TEST_F(KserveTextTest, TextNotInTheVocabularyIsInvalidArgument) {
  inference::ModelInferRequest request = testing::TextRequest(
      model_, {"5 May 2020", "\xe2\x82\xac 2020"}, Contents::kTyped);
  inference::ModelInferResponse response;
  const grpc::Status status = testing::ModelInfer(*stub_, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("row 1: text"));
}

TEST_F(KserveTextTest, StreamedTextPiecesJoinToGeneratesText) {
  grpc::ClientContext context;
  auto stream = stub_->ModelStreamInfer(&context);
  inference::ModelInferRequest request =
      testing::TextRequest(model_, {Dates()[0]}, Contents::kRaw);
  request.set_id("stream-1");
  ASSERT_TRUE(stream->Write(request));
  std::string text;
  std::vector<int32_t> ids;
  int pieces = 0;
  inference::ModelStreamInferResponse message;
  bool ended = false;
  while (!ended && stream->Read(&message)) {
    ASSERT_TRUE(message.error_message().empty()) << message.error_message();
    EXPECT_EQ(message.infer_response().id(), "stream-1");
    ended = message.infer_response()
                .parameters()
                .at("triton_final_response")
                .bool_param();
    if (ended) break;
    ++pieces;
    absl::StatusOr<std::map<std::string, OutputTensor>> outputs =
        ReadOutputs(message.infer_response());
    ASSERT_TRUE(outputs.ok()) << outputs.status();
    text += outputs->at("text_output").strings.at(0);
    const std::vector<int32_t> piece = outputs->at("output_ids").ints;
    ids.insert(ids.end(), piece.begin(), piece.end());
  }
  ASSERT_TRUE(ended);
  const v1::GenerateResponse alone = Generated(Dates()[0]);
  EXPECT_EQ(text, alone.text());
  EXPECT_THAT(ids, ElementsAreArray(alone.output_ids()));
  EXPECT_GT(pieces, 1) << "tokens are streamed as they are decoded";
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace attnserve::server
