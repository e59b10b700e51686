#include "tests/server/kserve_test_client.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace attnserve::server::testing {
namespace {

void AppendLittleEndian(uint32_t value, std::string* out) {
  for (int i = 0; i < 4; ++i)
    out->push_back(static_cast<char>(value >> (8 * i)));
}

uint32_t LittleEndianAt(const std::string& bytes, size_t at) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    value |= uint32_t{static_cast<unsigned char>(bytes[at + i])} << (8 * i);
  }
  return value;
}

// Adds an INT32 input with `values`, raw or typed.
void AddInts(const std::string& name, std::vector<int64_t> shape,
             const std::vector<int32_t>& values, Contents contents,
             inference::ModelInferRequest* request) {
  auto* input = request->add_inputs();
  input->set_name(name);
  input->set_datatype("INT32");
  input->mutable_shape()->Add(shape.begin(), shape.end());
  if (contents == Contents::kTyped) {
    input->mutable_contents()->mutable_int_contents()->Add(values.begin(),
                                                           values.end());
  } else {
    std::string raw;
    for (int32_t v : values) AppendLittleEndian(static_cast<uint32_t>(v), &raw);
    request->add_raw_input_contents(raw);
  }
}

}  // namespace

inference::ModelInferRequest IdsRequest(
    const std::string& model, const std::vector<std::vector<int32_t>>& rows,
    Contents contents, int32_t pad_id, bool with_lengths) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  size_t longest = 0;
  for (const auto& row : rows) longest = std::max(longest, row.size());
  std::vector<int32_t> ids;
  std::vector<int32_t> lengths;
  for (const auto& row : rows) {
    ids.insert(ids.end(), row.begin(), row.end());
    ids.insert(ids.end(), longest - row.size(), pad_id);
    lengths.push_back(static_cast<int32_t>(row.size()));
  }
  const int64_t batch = static_cast<int64_t>(rows.size());
  AddInts("input_ids", {batch, static_cast<int64_t>(longest)}, ids, contents,
          &request);
  if (with_lengths)
    AddInts("input_lengths", {batch}, lengths, contents, &request);
  return request;
}

inference::ModelInferRequest TextRequest(const std::string& model,
                                         const std::vector<std::string>& rows,
                                         Contents contents) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  auto* input = request.add_inputs();
  input->set_name("text_input");
  input->set_datatype("BYTES");
  input->add_shape(static_cast<int64_t>(rows.size()));
  if (contents == Contents::kTyped) {
    for (const std::string& row : rows) {
      input->mutable_contents()->add_bytes_contents(row);
    }
  } else {
    std::string raw;
    for (const std::string& row : rows) {
      AppendLittleEndian(static_cast<uint32_t>(row.size()), &raw);
      raw += row;
    }
    request.add_raw_input_contents(raw);
  }
  return request;
}

void SetIntParameter(const std::string& name, int64_t value,
                     inference::ModelInferRequest* request) {
  (*request->mutable_parameters())[name].set_int64_param(value);
}

absl::StatusOr<std::map<std::string, OutputTensor>> ReadOutputs(
    const inference::ModelInferResponse& response) {
  if (response.raw_output_contents_size() != response.outputs_size()) {
    return absl::InternalError(absl::StrCat(
        response.outputs_size(), " outputs but ",
        response.raw_output_contents_size(), " raw_output_contents"));
  }
  std::map<std::string, OutputTensor> outputs;
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& output = response.outputs(i);
    if (output.has_contents()) {
      return absl::InternalError(
          absl::StrCat(output.name(), " has typed contents"));
    }
    OutputTensor tensor;
    tensor.datatype = output.datatype();
    tensor.shape.assign(output.shape().begin(), output.shape().end());
    int64_t count = 1;
    for (int64_t d : tensor.shape) count *= d;
    const std::string& raw = response.raw_output_contents(i);
    if (tensor.datatype == "INT32") {
      if (static_cast<int64_t>(raw.size()) != 4 * count) {
        return absl::InternalError(absl::StrCat(
            output.name(), ": ", raw.size(), " bytes for ", count, " INT32"));
      }
      for (int64_t k = 0; k < count; ++k) {
        tensor.ints.push_back(static_cast<int32_t>(LittleEndianAt(raw, 4 * k)));
      }
    } else if (tensor.datatype == "BYTES") {
      size_t at = 0;
      while (at < raw.size()) {
        if (raw.size() - at < 4) return absl::InternalError("cut length");
        const uint32_t length = LittleEndianAt(raw, at);
        at += 4;
        if (raw.size() - at < length) return absl::InternalError("cut bytes");
        tensor.strings.push_back(raw.substr(at, length));
        at += length;
      }
      if (static_cast<int64_t>(tensor.strings.size()) != count) {
        return absl::InternalError(absl::StrCat(output.name(), ": ",
                                                tensor.strings.size(),
                                                " elements for ", count));
      }
    } else {
      return absl::InternalError(
          absl::StrCat(output.name(), ": datatype ", tensor.datatype));
    }
    outputs[output.name()] = std::move(tensor);
  }
  return outputs;
}

std::vector<std::string> OutputNames(
    const inference::ModelInferResponse& response) {
  std::vector<std::string> names;
  for (const auto& output : response.outputs()) names.push_back(output.name());
  return names;
}

std::vector<int32_t> RowIds(const std::map<std::string, OutputTensor>& outputs,
                            int row) {
  const OutputTensor& ids = outputs.at("output_ids");
  const int32_t length = outputs.at("output_lengths").ints.at(row);
  const auto begin = ids.ints.begin() + row * ids.shape.at(1);
  return {begin, begin + length};
}

grpc::Status ModelInfer(inference::GRPCInferenceService::Stub& stub,
                        const inference::ModelInferRequest& request,
                        inference::ModelInferResponse* response,
                        absl::Duration timeout) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return stub.ModelInfer(&context, request, response);
}

}  // namespace attnserve::server::testing
