#include "server/kserve/convert.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/numeric/int128.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/status_macros.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace attnserve::server::kserve {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::EnumValueDescriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Reflection;
using InputTensor = inference::ModelInferRequest::InferInputTensor;

// The GenerateRequest fields that the tensors and the request's id fill.
constexpr const char* kTensorFields[] = {"input_ids", "text", "request_id"};

absl::Status Invalid(absl::string_view what, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", why));
}

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// One input tensor, checked: its elements, decoded.
struct Input {
  const InputTensor* tensor = nullptr;
  int index = 0;  // in request.inputs
  std::vector<int64_t> shape;
  std::vector<int32_t> ints;         // INT32 tensors
  std::vector<std::string> strings;  // BYTES tensors
};

// The number of elements of `shape`; INVALID_ARGUMENT for a negative
// dimension or a product that no request could fill (it must fit the message,
// which gRPC bounds far below this).
absl::StatusOr<int64_t> ElementCount(const std::string& name,
                                     absl::Span<const int64_t> shape) {
  constexpr int64_t kMax = int64_t{1} << 31;
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0) {
      return Invalid(name, absl::StrCat("shape ", ShapeString(shape),
                                        " has a negative dimension"));
    }
    if (dim > kMax || (dim > 0 && count > kMax / dim)) {
      return Invalid(name, absl::StrCat("shape ", ShapeString(shape),
                                        " has more than 2^31 elements"));
    }
    count *= dim;
  }
  return count;
}

// BYTES in raw form: each element a 4-byte little-endian length and its bytes.
absl::StatusOr<std::vector<std::string>> DecodeRawBytes(const std::string& name,
                                                        const std::string& raw,
                                                        int64_t count) {
  std::vector<std::string> elements;
  size_t at = 0;
  while (at < raw.size()) {
    if (raw.size() - at < 4) {
      return Invalid(name, absl::StrCat("raw_input_contents ends inside the "
                                        "4-byte length of element ",
                                        elements.size()));
    }
    const auto* p = reinterpret_cast<const unsigned char*>(raw.data() + at);
    const uint32_t length = uint32_t{p[0]} | uint32_t{p[1]} << 8 |
                            uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
    at += 4;
    if (raw.size() - at < length) {
      return Invalid(
          name, absl::StrCat("raw_input_contents: element ", elements.size(),
                             " says ", length, " bytes but only ",
                             raw.size() - at, " follow"));
    }
    elements.push_back(raw.substr(at, length));
    at += length;
  }
  if (static_cast<int64_t>(elements.size()) != count) {
    return Invalid(
        name, absl::StrCat("raw_input_contents holds ", elements.size(),
                           " BYTES elements; ", "the shape needs ", count));
  }
  return elements;
}

// Checks `tensor` (datatype `datatype`, `rank` dimensions) and decodes its
// elements from its contents or from `raw` (null: typed contents).
absl::StatusOr<Input> ReadInput(const InputTensor& tensor, int index,
                                const std::string* raw,
                                const std::string& datatype, int rank) {
  const std::string& name = tensor.name();
  if (tensor.datatype() != datatype) {
    return Invalid(name, absl::StrCat("datatype is \"", tensor.datatype(),
                                      "\"; this input is ", datatype));
  }
  Input input;
  input.tensor = &tensor;
  input.index = index;
  input.shape.assign(tensor.shape().begin(), tensor.shape().end());
  // text_input takes [batch, 1] too, as Triton's text models declare it.
  const bool column =
      datatype == "BYTES" && input.shape.size() == 2 && input.shape[1] == 1;
  if (static_cast<int>(input.shape.size()) != rank && !column) {
    return Invalid(
        name,
        absl::StrCat("shape ", ShapeString(input.shape), " has ",
                     input.shape.size(), " dimensions; this input has ", rank,
                     rank == 2 ? " ([batch, length])" : " ([batch])"));
  }
  if (column) input.shape.pop_back();
  if (!tensor.parameters().empty()) {
    return Invalid(name,
                   absl::StrCat("input parameters are not implemented "
                                "(the tensor sets \"",
                                tensor.parameters().begin()->first, "\")"));
  }
  ASSIGN_OR_RETURN(const int64_t count, ElementCount(name, input.shape));
  const inference::InferTensorContents& contents = tensor.contents();
  if (datatype == "INT32") {
    if (raw != nullptr) {
      if (static_cast<int64_t>(raw->size()) != count * 4) {
        return Invalid(name,
                       absl::StrCat("raw_input_contents has ", raw->size(),
                                    " bytes; shape ", ShapeString(input.shape),
                                    " of INT32 needs ", count * 4));
      }
      input.ints.resize(count);
      for (int64_t i = 0; i < count; ++i) {
        const auto* p =
            reinterpret_cast<const unsigned char*>(raw->data() + 4 * i);
        input.ints[i] =
            static_cast<int32_t>(uint32_t{p[0]} | uint32_t{p[1]} << 8 |
                                 uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24);
      }
    } else {
      if (contents.int_contents_size() != count) {
        return Invalid(
            name, absl::StrCat("contents.int_contents has ",
                               contents.int_contents_size(), " values; shape ",
                               ShapeString(input.shape), " needs ", count));
      }
      input.ints.assign(contents.int_contents().begin(),
                        contents.int_contents().end());
    }
  } else {
    if (raw != nullptr) {
      ASSIGN_OR_RETURN(input.strings, DecodeRawBytes(name, *raw, count));
    } else {
      if (contents.bytes_contents_size() != count) {
        return Invalid(
            name,
            absl::StrCat("contents.bytes_contents has ",
                         contents.bytes_contents_size(), " values; shape ",
                         ShapeString(input.shape), " needs ", count));
      }
      input.strings.assign(contents.bytes_contents().begin(),
                           contents.bytes_contents().end());
    }
  }
  return input;
}

// The source rows of input_ids (and input_lengths, which may be null).
absl::StatusOr<std::vector<std::vector<int32_t>>> IdRows(const Input& ids,
                                                         const Input* lengths,
                                                         int32_t pad_id) {
  const int64_t batch = ids.shape[0];
  const int64_t length = ids.shape[1];
  if (length == 0) {
    return Invalid(kInputIds, absl::StrCat("shape ", ShapeString(ids.shape),
                                           " has rows of no tokens"));
  }
  if (lengths != nullptr && lengths->shape[0] != batch) {
    return Invalid(kInputLengths,
                   absl::StrCat("shape ", ShapeString(lengths->shape),
                                " does not match input_ids' batch of ", batch));
  }
  std::vector<std::vector<int32_t>> rows(batch);
  for (int64_t b = 0; b < batch; ++b) {
    const int32_t* row = ids.ints.data() + b * length;
    int64_t n = length;
    if (lengths != nullptr) {
      n = lengths->ints[b];
      if (n < 1 || n > length) {
        return Invalid(
            kInputLengths,
            absl::StrCat("input_lengths[", b, "] = ", n, " is outside [1, ",
                         length, "] (input_ids' row length)"));
      }
    } else {
      while (n > 0 && row[n - 1] == pad_id) --n;
      if (n == 0) {
        return Invalid(
            kInputIds,
            absl::StrCat("row ", b, " is all padding (pad id ", pad_id,
                         "); without input_lengths, a "
                         "row's trailing pad ids are its "
                         "padding"));
      }
    }
    rows[b].assign(row, row + n);
  }
  return rows;
}

absl::StatusOr<std::vector<Output>> RequestedOutputs(
    const inference::ModelInferRequest& request, bool has_tokenizer) {
  std::vector<Output> outputs;
  if (request.outputs().empty()) {
    outputs = {Output::kOutputIds, Output::kOutputLengths};
    if (has_tokenizer) outputs.push_back(Output::kTextOutput);
    return outputs;
  }
  absl::flat_hash_set<std::string> seen;
  for (int i = 0; i < request.outputs_size(); ++i) {
    const auto& output = request.outputs(i);
    const std::string what =
        absl::StrCat("outputs[", i, "] \"", output.name(), "\"");
    if (!seen.insert(output.name()).second) {
      return Invalid(what, "named twice");
    }
    if (!output.parameters().empty()) {
      return Invalid(what,
                     absl::StrCat("output parameters are not "
                                  "implemented (it sets \"",
                                  output.parameters().begin()->first, "\")"));
    }
    if (output.name() == kOutputIds) {
      outputs.push_back(Output::kOutputIds);
    } else if (output.name() == kOutputLengths) {
      outputs.push_back(Output::kOutputLengths);
    } else if (output.name() == kTextOutput) {
      if (!has_tokenizer) {
        return Invalid(what, "the model has no tokenizer, so no text_output");
      }
      outputs.push_back(Output::kTextOutput);
    } else {
      return Invalid(what, absl::StrCat("no such output; the outputs are ",
                                        kOutputIds, ", ", kOutputLengths,
                                        has_tokenizer ? ", text_output" : ""));
    }
  }
  return outputs;
}

// The value of an integer parameter (int64_param or uint64_param), if it is
// one.
std::optional<absl::int128> IntegerValue(const inference::InferParameter& v) {
  switch (v.parameter_choice_case()) {
    case inference::InferParameter::kInt64Param:
      return absl::int128(v.int64_param());
    case inference::InferParameter::kUint64Param:
      return absl::int128(v.uint64_param());
    default:
      return std::nullopt;
  }
}

const char* ValueKind(const inference::InferParameter& v) {
  switch (v.parameter_choice_case()) {
    case inference::InferParameter::kBoolParam:
      return "a bool_param";
    case inference::InferParameter::kInt64Param:
      return "an int64_param";
    case inference::InferParameter::kStringParam:
      return "a string_param";
    case inference::InferParameter::kDoubleParam:
      return "a double_param";
    case inference::InferParameter::kUint64Param:
      return "a uint64_param";
    default:
      return "no value";
  }
}

// Whether `value` fits the integer field type `type`.
bool FitsInteger(absl::int128 value, FieldDescriptor::CppType type) {
  switch (type) {
    case FieldDescriptor::CPPTYPE_INT32:
      return value >= std::numeric_limits<int32_t>::min() &&
             value <= std::numeric_limits<int32_t>::max();
    case FieldDescriptor::CPPTYPE_UINT32:
      return value >= 0 && value <= std::numeric_limits<uint32_t>::max();
    case FieldDescriptor::CPPTYPE_INT64:
      return value >= std::numeric_limits<int64_t>::min() &&
             value <= std::numeric_limits<int64_t>::max();
    case FieldDescriptor::CPPTYPE_UINT64:
      return value >= 0 && value <= std::numeric_limits<uint64_t>::max();
    default:
      return false;
  }
}

bool IsInteger(FieldDescriptor::CppType type) {
  return type == FieldDescriptor::CPPTYPE_INT32 ||
         type == FieldDescriptor::CPPTYPE_UINT32 ||
         type == FieldDescriptor::CPPTYPE_INT64 ||
         type == FieldDescriptor::CPPTYPE_UINT64;
}

// Sets (or, for a repeated field, adds) an integer to `field`, checked.
void SetInteger(const FieldDescriptor& field, absl::int128 value,
                v1::GenerateRequest* request) {
  const Reflection& r = *request->GetReflection();
  const bool add = field.is_repeated();
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      add ? r.AddInt32(request, &field, static_cast<int32_t>(value))
          : r.SetInt32(request, &field, static_cast<int32_t>(value));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      add ? r.AddUInt32(request, &field, static_cast<uint32_t>(value))
          : r.SetUInt32(request, &field, static_cast<uint32_t>(value));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      add ? r.AddInt64(request, &field, static_cast<int64_t>(value))
          : r.SetInt64(request, &field, static_cast<int64_t>(value));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      add ? r.AddUInt64(request, &field, static_cast<uint64_t>(value))
          : r.SetUInt64(request, &field, static_cast<uint64_t>(value));
      break;
    default:
      break;
  }
}

void SetFloating(const FieldDescriptor& field, double value,
                 v1::GenerateRequest* request) {
  const Reflection& r = *request->GetReflection();
  const bool add = field.is_repeated();
  if (field.cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) {
    add ? r.AddFloat(request, &field, static_cast<float>(value))
        : r.SetFloat(request, &field, static_cast<float>(value));
  } else {
    add ? r.AddDouble(request, &field, value)
        : r.SetDouble(request, &field, value);
  }
}

// A repeated numeric field from "1, 2, 3".
absl::Status SetNumberList(const std::string& name,
                           const FieldDescriptor& field,
                           const std::string& text,
                           v1::GenerateRequest* request) {
  request->GetReflection()->ClearField(request, &field);
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    item = absl::StripAsciiWhitespace(item);
    if (item.empty()) continue;
    if (IsInteger(field.cpp_type())) {
      int64_t value = 0;
      if (!absl::SimpleAtoi(item, &value) ||
          !FitsInteger(value, field.cpp_type())) {
        return Invalid(
            absl::StrCat("parameter ", name),
            absl::StrCat("\"", item, "\" is not a ", field.type_name(),
                         " (the parameter takes a "
                         "comma-separated list of them)"));
      }
      SetInteger(field, value, request);
    } else {
      double value = 0;
      if (!absl::SimpleAtod(item, &value)) {
        return Invalid(absl::StrCat("parameter ", name),
                       absl::StrCat("\"", item,
                                    "\" is not a number (the "
                                    "parameter takes a comma-separated list "
                                    "of them)"));
      }
      SetFloating(field, value, request);
    }
  }
  return absl::OkStatus();
}

absl::Status SetParameters(
    const google::protobuf::Map<std::string, inference::InferParameter>& params,
    v1::GenerateRequest* request, InferPlan* plan) {
  // In name order, so that of several bad parameters the same one is named.
  std::vector<std::string> names;
  for (const auto& [name, value] : params) names.push_back(name);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const inference::InferParameter& value = params.at(name);
    if (name == kPriorityParameter) {
      // Triton: 0 is the model's default level; attnserve has one level.
      const std::optional<absl::int128> level = IntegerValue(value);
      if (!level.has_value() || *level < 0 || *level > 1) {
        return Invalid(
            "parameter priority",
            absl::StrCat("this server schedules every request at one priority "
                         "level: only 0 (the default) and 1 are accepted, not ",
                         level.has_value()
                             ? absl::StrCat(static_cast<int64_t>(*level))
                             : ValueKind(value)));
      }
    } else if (name == kTimeoutParameter) {
      const std::optional<absl::int128> micros = IntegerValue(value);
      if (!micros.has_value() || *micros < 0 ||
          *micros > std::numeric_limits<int64_t>::max()) {
        return Invalid("parameter timeout",
                       absl::StrCat("takes microseconds as an integer >= 0 "
                                    "(0: none), not ",
                                    ValueKind(value)));
      }
      if (*micros > 0) {
        plan->queue_timeout = absl::Microseconds(static_cast<int64_t>(*micros));
      }
    } else if (name == kEmptyFinalResponseParameter) {
      // Every stream ends with a final response of its own anyway.
      if (value.parameter_choice_case() !=
          inference::InferParameter::kBoolParam) {
        return Invalid(
            absl::StrCat("parameter ", name),
            absl::StrCat("takes a bool_param, not ", ValueKind(value)));
      }
    } else {
      RETURN_IF_ERROR(SetParameter(name, value, request));
    }
  }
  return absl::OkStatus();
}

void AppendTensor(const std::string& name, const std::string& datatype,
                  std::vector<int64_t> shape, std::string raw,
                  inference::ModelInferResponse* response) {
  inference::ModelInferResponse::InferOutputTensor* tensor =
      response->add_outputs();
  tensor->set_name(name);
  tensor->set_datatype(datatype);
  tensor->mutable_shape()->Add(shape.begin(), shape.end());
  response->add_raw_output_contents(std::move(raw));
}

void AppendLittleEndian(uint32_t value, std::string* out) {
  const char bytes[4] = {static_cast<char>(value & 0xFF),
                         static_cast<char>((value >> 8) & 0xFF),
                         static_cast<char>((value >> 16) & 0xFF),
                         static_cast<char>((value >> 24) & 0xFF)};
  out->append(bytes, 4);
}

}  // namespace

absl::Status CheckModel(const std::string& name, const std::string& version,
                        const ModelInfo& model) {
  if (name != model.name) {
    return absl::NotFoundError(
        absl::StrCat("model \"", name, "\" is not served here; the model is \"",
                     model.name, "\""));
  }
  if (!version.empty() && version != kModelVersion) {
    return absl::NotFoundError(absl::StrCat(
        "version \"", version, "\" of model \"", name,
        "\" is not served here; its only version is \"", kModelVersion, "\""));
  }
  return absl::OkStatus();
}

absl::Status SetParameter(const std::string& name,
                          const inference::InferParameter& value,
                          v1::GenerateRequest* request) {
  const std::string what = absl::StrCat("parameter ", name);
  for (const char* field : kTensorFields) {
    if (name == field) {
      return Invalid(
          what, absl::StrCat(
                    "GenerateRequest.", name, " comes from the request's ",
                    name == std::string("request_id") ? "id" : "input tensors",
                    ", not from a parameter"));
    }
  }
  const Descriptor& descriptor = *request->GetDescriptor();
  const FieldDescriptor* field = descriptor.FindFieldByName(name);
  if (field == nullptr) {
    std::vector<std::string> known;
    for (int i = 0; i < descriptor.field_count(); ++i) {
      const std::string& n = descriptor.field(i)->name();
      if (std::find(std::begin(kTensorFields), std::end(kTensorFields), n) ==
          std::end(kTensorFields)) {
        known.push_back(n);
      }
    }
    known.insert(known.end(), {kPriorityParameter, kTimeoutParameter});
    return Invalid(what,
                   absl::StrCat("no such parameter; the parameters are the "
                                "fields of attnserve.v1.GenerateRequest (",
                                absl::StrJoin(known, ", "), ")"));
  }
  const Reflection& r = *request->GetReflection();
  const FieldDescriptor::CppType type = field->cpp_type();
  const auto mismatch = [&](absl::string_view takes) {
    return Invalid(what, absl::StrCat("GenerateRequest.", name, " is ",
                                      field->is_repeated() ? "repeated " : "",
                                      field->type_name(), "; it takes ", takes,
                                      ", not ", ValueKind(value)));
  };
  const auto kind = value.parameter_choice_case();
  if (field->is_repeated()) {
    if (type == FieldDescriptor::CPPTYPE_STRING ||
        type == FieldDescriptor::CPPTYPE_MESSAGE ||
        type == FieldDescriptor::CPPTYPE_ENUM ||
        type == FieldDescriptor::CPPTYPE_BOOL) {
      return Invalid(what, absl::StrCat("GenerateRequest.", name,
                                        " is a list that parameters cannot "
                                        "carry; use attnserve.v1.Seq2Seq"));
    }
    if (kind == inference::InferParameter::kStringParam) {
      return SetNumberList(name, *field, value.string_param(), request);
    }
    if (const std::optional<absl::int128> v = IntegerValue(value);
        v.has_value() && IsInteger(type)) {
      if (!FitsInteger(*v, type)) {
        return Invalid(
            what, absl::StrCat(static_cast<int64_t>(*v), " does not fit a ",
                               field->type_name()));
      }
      r.ClearField(request, field);
      SetInteger(*field, *v, request);
      return absl::OkStatus();
    }
    return mismatch("a string_param of comma-separated numbers");
  }
  switch (type) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT64: {
      const std::optional<absl::int128> v = IntegerValue(value);
      if (!v.has_value()) return mismatch("an int64_param or uint64_param");
      if (!FitsInteger(*v, type)) {
        return Invalid(
            what, absl::StrCat("GenerateRequest.", name, " is ",
                               field->type_name(), "; ",
                               kind == inference::InferParameter::kUint64Param
                                   ? absl::StrCat(value.uint64_param())
                                   : absl::StrCat(value.int64_param()),
                               " is out of its range"));
      }
      SetInteger(*field, *v, request);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double v = 0;
      if (kind == inference::InferParameter::kDoubleParam) {
        v = value.double_param();
      } else if (const std::optional<absl::int128> i = IntegerValue(value)) {
        v = static_cast<double>(*i);
      } else {
        return mismatch("a double_param (or an integer)");
      }
      if (type == FieldDescriptor::CPPTYPE_FLOAT && std::isfinite(v) &&
          std::fabs(v) > std::numeric_limits<float>::max()) {
        return Invalid(what, absl::StrCat(v, " does not fit a float"));
      }
      SetFloating(*field, v, request);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      if (kind != inference::InferParameter::kBoolParam) {
        return mismatch("a bool_param");
      }
      r.SetBool(request, field, value.bool_param());
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_STRING:
      if (kind != inference::InferParameter::kStringParam) {
        return mismatch("a string_param");
      }
      r.SetString(request, field, value.string_param());
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_ENUM: {
      if (kind != inference::InferParameter::kStringParam) {
        return mismatch("a string_param naming one of its values");
      }
      const EnumValueDescriptor* e =
          field->enum_type()->FindValueByName(value.string_param());
      if (e == nullptr) {
        return Invalid(what, absl::StrCat("\"", value.string_param(),
                                          "\" is not a value of ",
                                          field->enum_type()->full_name()));
      }
      r.SetEnum(request, field, e);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return Invalid(what, absl::StrCat("GenerateRequest.", name,
                                        " is a message that parameters cannot "
                                        "carry; use attnserve.v1.Seq2Seq"));
  }
  return Invalid(what, "unsupported field type");
}

absl::StatusOr<InferPlan> ToInferPlan(
    const inference::ModelInferRequest& request, const ModelInfo& model,
    bool has_tokenizer, int max_batch_size) {
  RETURN_IF_ERROR(
      CheckModel(request.model_name(), request.model_version(), model));
  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != request.inputs_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raw_input_contents has ", request.raw_input_contents_size(),
        " entries for ", request.inputs_size(),
        " inputs; it needs one per input, in their order"));
  }
  std::optional<Input> ids, lengths, text;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const InputTensor& tensor = request.inputs(i);
    if (raw && tensor.has_contents()) {
      return Invalid(tensor.name(),
                     "sets contents while the request uses "
                     "raw_input_contents; use one or the other");
    }
    const std::string* raw_bytes =
        raw ? &request.raw_input_contents(i) : nullptr;
    std::optional<Input>* slot = nullptr;
    absl::StatusOr<Input> input;
    if (tensor.name() == kInputIds) {
      slot = &ids;
      input = ReadInput(tensor, i, raw_bytes, "INT32", 2);
    } else if (tensor.name() == kInputLengths) {
      slot = &lengths;
      input = ReadInput(tensor, i, raw_bytes, "INT32", 1);
    } else if (tensor.name() == kTextInput) {
      if (!has_tokenizer) {
        return Invalid(kTextInput, absl::StrCat("model ", model.name,
                                                " has no tokenizer; send "
                                                "input_ids"));
      }
      slot = &text;
      input = ReadInput(tensor, i, raw_bytes, "BYTES", 1);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "input \"", tensor.name(), "\": no such input; the inputs are ",
          kInputIds, " (with ", kInputLengths, ")",
          has_tokenizer ? " or text_input" : ""));
    }
    if (slot->has_value()) return Invalid(tensor.name(), "given twice");
    if (!input.ok()) return input.status();
    *slot = *std::move(input);
  }
  if (ids.has_value() == text.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "exactly one of the inputs input_ids",
        has_tokenizer ? " and text_input" : "", " must be given; the request ",
        ids.has_value() ? "gives both" : "gives neither"));
  }
  if (lengths.has_value() && !ids.has_value()) {
    return Invalid(kInputLengths, "goes only with input_ids");
  }
  InferPlan plan;
  v1::GenerateRequest common;
  common.set_request_id(request.id());
  RETURN_IF_ERROR(SetParameters(request.parameters(), &common, &plan));
  ASSIGN_OR_RETURN(plan.outputs, RequestedOutputs(request, has_tokenizer));

  const int64_t batch = ids.has_value() ? ids->shape[0] : text->shape[0];
  const char* batch_tensor = ids.has_value() ? kInputIds : kTextInput;
  if (batch < 1 || batch > max_batch_size) {
    return Invalid(
        batch_tensor,
        absl::StrCat("a batch of ", batch,
                     " rows; the server takes 1 "
                     "to ",
                     max_batch_size, " rows per request (max_batch_size)"));
  }
  plan.rows.assign(batch, common);
  if (ids.has_value()) {
    ASSIGN_OR_RETURN(std::vector<std::vector<int32_t>> rows,
                     IdRows(*ids, lengths.has_value() ? &*lengths : nullptr,
                            model.config.pad_id));
    for (int64_t b = 0; b < batch; ++b) {
      plan.rows[b].mutable_input_ids()->Add(rows[b].begin(), rows[b].end());
    }
  } else {
    for (int64_t b = 0; b < batch; ++b) {
      if (text->strings[b].empty()) {
        return Invalid(kTextInput, absl::StrCat("row ", b, " is empty"));
      }
      plan.rows[b].set_text(text->strings[b]);
    }
  }
  return plan;
}

void AppendOutputs(absl::Span<const RowAnswer> rows,
                   absl::Span<const Output> outputs, int32_t pad_id,
                   inference::ModelInferResponse* response) {
  const int64_t batch = static_cast<int64_t>(rows.size());
  size_t longest = 0;
  for (const RowAnswer& row : rows) {
    longest = std::max(longest, row.output_ids.size());
  }
  for (Output output : outputs) {
    std::string raw;
    switch (output) {
      case Output::kOutputIds:
        raw.reserve(4 * batch * longest);
        for (const RowAnswer& row : rows) {
          for (size_t i = 0; i < longest; ++i) {
            AppendLittleEndian(static_cast<uint32_t>(i < row.output_ids.size()
                                                         ? row.output_ids[i]
                                                         : pad_id),
                               &raw);
          }
        }
        AppendTensor(kOutputIds, "INT32",
                     {batch, static_cast<int64_t>(longest)}, std::move(raw),
                     response);
        break;
      case Output::kOutputLengths:
        for (const RowAnswer& row : rows) {
          AppendLittleEndian(static_cast<uint32_t>(row.output_ids.size()),
                             &raw);
        }
        AppendTensor(kOutputLengths, "INT32", {batch}, std::move(raw),
                     response);
        break;
      case Output::kTextOutput:
        for (const RowAnswer& row : rows) {
          AppendLittleEndian(static_cast<uint32_t>(row.text.size()), &raw);
          raw.append(row.text);
        }
        AppendTensor(kTextOutput, "BYTES", {batch}, std::move(raw), response);
        break;
    }
  }
}

void SetResponseHeader(const std::string& id, const ModelInfo& model,
                       inference::ModelInferResponse* response) {
  response->set_model_name(model.name);
  response->set_model_version(kModelVersion);
  response->set_id(id);
}

inference::ServerMetadataResponse MakeServerMetadata() {
  inference::ServerMetadataResponse response;
  response.set_name("attnserve");
  // attnserve has no release numbers; its public API is attnserve.v1.
  response.set_version("1");
  response.add_extensions("parameters");
  return response;
}

inference::ModelMetadataResponse MakeModelMetadata(const ModelInfo& model,
                                                   bool has_tokenizer) {
  inference::ModelMetadataResponse response;
  response.set_name(model.name);
  response.add_versions(kModelVersion);
  response.set_platform("attnserve");
  const auto add = [](auto* tensors, const char* name, const char* datatype,
                      std::vector<int64_t> shape) {
    auto* tensor = tensors->Add();
    tensor->set_name(name);
    tensor->set_datatype(datatype);
    tensor->mutable_shape()->Add(shape.begin(), shape.end());
  };
  add(response.mutable_inputs(), kInputIds, "INT32", {-1, -1});
  add(response.mutable_inputs(), kInputLengths, "INT32", {-1});
  if (has_tokenizer) add(response.mutable_inputs(), kTextInput, "BYTES", {-1});
  add(response.mutable_outputs(), kOutputIds, "INT32", {-1, -1});
  add(response.mutable_outputs(), kOutputLengths, "INT32", {-1});
  if (has_tokenizer) {
    add(response.mutable_outputs(), kTextOutput, "BYTES", {-1});
  }
  return response;
}

}  // namespace attnserve::server::kserve
