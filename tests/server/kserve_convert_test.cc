// server/kserve/convert.h's parameter mapping, over every field
// attnserve.v1.GenerateRequest has (read from its descriptor, so the fields
// added after this test was written are covered too).

#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "server/kserve/convert.h"

namespace attnserve::server::kserve {
namespace {

using ::google::protobuf::FieldDescriptor;
using ::testing::HasSubstr;

inference::InferParameter Int(int64_t v) {
  inference::InferParameter p;
  p.set_int64_param(v);
  return p;
}
inference::InferParameter Double(double v) {
  inference::InferParameter p;
  p.set_double_param(v);
  return p;
}
inference::InferParameter Bool(bool v) {
  inference::InferParameter p;
  p.set_bool_param(v);
  return p;
}
inference::InferParameter String(std::string v) {
  inference::InferParameter p;
  p.set_string_param(std::move(v));
  return p;
}

bool IsTensorField(const std::string& name) {
  return name == "input_ids" || name == "text" || name == "request_id";
}

TEST(KserveParameterTest, EveryGenerateRequestFieldTakesItsType) {
  const google::protobuf::Descriptor& d = *v1::GenerateRequest::descriptor();
  int checked = 0;
  for (int i = 0; i < d.field_count(); ++i) {
    const FieldDescriptor& field = *d.field(i);
    const std::string& name = field.name();
    SCOPED_TRACE(name);
    v1::GenerateRequest request;
    if (IsTensorField(name)) {
      const absl::Status s = SetParameter(name, String("x"), &request);
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(s.message(), HasSubstr(name));
      continue;
    }
    const auto* r = request.GetReflection();
    const FieldDescriptor::CppType type = field.cpp_type();
    if (field.is_repeated()) {
      if (type == FieldDescriptor::CPPTYPE_STRING ||
          type == FieldDescriptor::CPPTYPE_MESSAGE ||
          type == FieldDescriptor::CPPTYPE_ENUM ||
          type == FieldDescriptor::CPPTYPE_BOOL) {
        EXPECT_EQ(SetParameter(name, String("a"), &request).code(),
                  absl::StatusCode::kInvalidArgument);
        continue;
      }
      ASSERT_TRUE(SetParameter(name, String("5, 17,42"), &request).ok());
      ASSERT_EQ(r->FieldSize(request, &field), 3);
      ASSERT_TRUE(SetParameter(name, Int(7), &request).ok() ||
                  type == FieldDescriptor::CPPTYPE_FLOAT ||
                  type == FieldDescriptor::CPPTYPE_DOUBLE);
      const absl::Status bad = SetParameter(name, String("5, x"), &request);
      EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(bad.message(), HasSubstr(name));
      ++checked;
      continue;
    }
    switch (type) {
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_INT64:
      case FieldDescriptor::CPPTYPE_UINT64: {
        ASSERT_TRUE(SetParameter(name, Int(3), &request).ok());
        EXPECT_TRUE(r->HasField(request, &field) || !field.has_presence());
        EXPECT_EQ(request.ShortDebugString().find(name + ": 3"), 0u)
            << request.ShortDebugString();
        const absl::Status bad = SetParameter(name, String("3"), &request);
        EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
        EXPECT_THAT(bad.message(), HasSubstr("parameter " + name));
        break;
      }
      case FieldDescriptor::CPPTYPE_FLOAT:
      case FieldDescriptor::CPPTYPE_DOUBLE: {
        ASSERT_TRUE(SetParameter(name, Double(0.25), &request).ok());
        EXPECT_EQ(request.ShortDebugString(), name + ": 0.25");
        ASSERT_TRUE(SetParameter(name, Int(2), &request).ok());
        EXPECT_EQ(request.ShortDebugString(), name + ": 2");
        EXPECT_EQ(SetParameter(name, Bool(true), &request).code(),
                  absl::StatusCode::kInvalidArgument);
        break;
      }
      case FieldDescriptor::CPPTYPE_BOOL:
        ASSERT_TRUE(SetParameter(name, Bool(true), &request).ok());
        EXPECT_EQ(request.ShortDebugString(), name + ": true");
        EXPECT_EQ(SetParameter(name, Int(1), &request).code(),
                  absl::StatusCode::kInvalidArgument);
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        ASSERT_TRUE(SetParameter(name, String("fr"), &request).ok());
        EXPECT_EQ(request.ShortDebugString(), name + ": \"fr\"");
        EXPECT_EQ(SetParameter(name, Int(1), &request).code(),
                  absl::StatusCode::kInvalidArgument);
        break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const std::string value = field.enum_type()->value(0)->name();
        ASSERT_TRUE(SetParameter(name, String(value), &request).ok());
        EXPECT_EQ(SetParameter(name, String("NO_SUCH_VALUE"), &request).code(),
                  absl::StatusCode::kInvalidArgument);
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        EXPECT_EQ(SetParameter(name, String("x"), &request).code(),
                  absl::StatusCode::kInvalidArgument);
        break;
    }
    ++checked;
  }
  EXPECT_GE(checked, 6);  // max_new_tokens, beam_size, length_penalty, ...
}

TEST(KserveParameterTest, IntegersAreRangeCheckedAndUnknownNamesListed) {
  v1::GenerateRequest request;
  absl::Status s = SetParameter("beam_size", Int(-1), &request);
  EXPECT_THAT(s.message(), HasSubstr("out of its range"));
  inference::InferParameter big;
  big.set_uint64_param(uint64_t{1} << 33);
  s = SetParameter("max_new_tokens", big, &request);
  EXPECT_THAT(s.message(), HasSubstr("8589934592 is out of its range"));
  big.set_uint64_param(9);
  ASSERT_TRUE(SetParameter("max_new_tokens", big, &request).ok());
  EXPECT_EQ(request.max_new_tokens(), 9u);
  s = SetParameter("temprature", Double(0.5), &request);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              HasSubstr("parameter temprature: no such parameter"));
  EXPECT_THAT(s.message(), HasSubstr("max_new_tokens"));
  EXPECT_THAT(s.message(), HasSubstr("priority"));
}

TEST(KserveOutputsTest, RawOutputsArePaddedLittleEndianAndLengthPrefixed) {
  inference::ModelInferResponse response;
  const RowAnswer rows[] = {{{3, 258}, "ab"}, {{}, ""}, {{7}, "c"}};
  AppendOutputs(
      rows, {Output::kTextOutput, Output::kOutputIds, Output::kOutputLengths},
      /*pad_id=*/1, &response);
  ASSERT_EQ(response.outputs_size(), 3);
  ASSERT_EQ(response.raw_output_contents_size(), 3);
  EXPECT_EQ(response.outputs(0).name(), "text_output");
  EXPECT_EQ(response.outputs(0).datatype(), "BYTES");
  EXPECT_EQ(response.raw_output_contents(0),
            std::string("\x02\0\0\0ab\0\0\0\0\x01\0\0\0c", 15));
  EXPECT_EQ(response.outputs(1).name(), "output_ids");
  EXPECT_THAT(response.outputs(1).shape(), ::testing::ElementsAre(3, 2));
  EXPECT_EQ(response.raw_output_contents(1),
            std::string("\x03\0\0\0\x02\x01\0\0"  // 3, 258
                        "\x01\0\0\0\x01\0\0\0"    // pad, pad
                        "\x07\0\0\0\x01\0\0\0",   // 7, pad
                        24));
  EXPECT_EQ(response.raw_output_contents(2),
            std::string("\x02\0\0\0\0\0\0\0\x01\0\0\0", 12));
}

}  // namespace
}  // namespace attnserve::server::kserve
