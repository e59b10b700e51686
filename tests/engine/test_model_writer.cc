#include "tests/engine/test_model_writer.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace attnserve::engine::testing {
namespace {

int64_t Elements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::Status WriteFileOrStatus(const std::string& path,
                               const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// Appends named random tensors, drawing every value from one generator in a
// fixed order.
class RandomTensors {
 public:
  RandomTensors(uint32_t seed, std::vector<NamedTensor>* out)
      : rng_(seed), out_(out) {}

  void Uniform(std::string name, std::vector<int64_t> shape, float lo,
               float hi) {
    std::uniform_real_distribution<float> dist(lo, hi);
    Add(std::move(name), std::move(shape), dist);
  }

  void Normal(std::string name, std::vector<int64_t> shape, float stddev) {
    std::normal_distribution<float> dist(0.0f, stddev);
    Add(std::move(name), std::move(shape), dist);
  }

  // torch.nn.Linear's default initialisation.
  void LinearWeight(std::string name, int64_t out, int64_t in) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(in));
    Uniform(std::move(name), {out, in}, -bound, bound);
  }

  void Bias(std::string name, int64_t size) {
    Uniform(std::move(name), {size}, -0.1f, 0.1f);
  }

  // With the defaults of the issue-16 keys (biases, layer norms, A ==
  // d_model, no gate) the draws are those of earlier versions, so seeded
  // models stay the same.
  void Linear(const std::string& prefix, int64_t out, int64_t in) {
    LinearWeight(prefix + ".weight", out, in);
    if (linear_bias_) Bias(prefix + ".bias", out);
  }

  void Norm(const std::string& prefix, int64_t d) {
    Uniform(prefix + ".weight", {d}, 0.8f, 1.2f);
    if (!rms_norm_) Bias(prefix + ".bias", d);
  }

  void Attention(const std::string& prefix, int64_t d, int64_t a) {
    for (const char* proj : {"q_proj", "k_proj", "v_proj"}) {
      Linear(absl::StrCat(prefix, ".", proj), a, d);
    }
    Linear(prefix + ".o_proj", d, a);
  }

  void Ffn(const std::string& prefix, int64_t d, int64_t ffn, bool gated) {
    Linear(prefix + ".fc1", ffn, d);
    if (gated) Linear(prefix + ".fc1_linear", ffn, d);
    Linear(prefix + ".fc2", d, ffn);
  }

  void set_linear_bias(bool b) { linear_bias_ = b; }
  void set_rms_norm(bool b) { rms_norm_ = b; }

 private:
  template <typename Distribution>
  void Add(std::string name, std::vector<int64_t> shape, Distribution& dist) {
    NamedTensor t{std::move(name), std::move(shape), {}};
    t.values.resize(Elements(t.shape));
    for (float& v : t.values) v = dist(rng_);
    out_->push_back(std::move(t));
  }

  std::mt19937 rng_;
  std::vector<NamedTensor>* out_;
  bool linear_bias_ = true;
  bool rms_norm_ = false;
};

}  // namespace

std::string SafetensorsRawBytes(absl::string_view header_json,
                                absl::string_view data) {
  std::string bytes(8, '\0');
  uint64_t n = header_json.size();
  for (int i = 0; i < 8; ++i, n >>= 8) bytes[i] = static_cast<char>(n & 0xff);
  absl::StrAppend(&bytes, header_json, data);
  return bytes;
}

std::string SafetensorsBytes(const std::vector<NamedTensor>& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::string data;
  for (const NamedTensor& t : tensors) {
    const bool int8 = !t.int8_values.empty();
    const size_t count = int8 ? t.int8_values.size() : t.values.size();
    if (static_cast<int64_t>(count) != Elements(t.shape)) {
      ADD_FAILURE() << "tensor " << t.name << " has " << count << " values for "
                    << Elements(t.shape) << " elements";
    }
    const size_t begin = data.size();
    if (int8) {
      data.append(reinterpret_cast<const char*>(t.int8_values.data()), count);
    } else {
      data.append(reinterpret_cast<const char*>(t.values.data()),
                  count * sizeof(float));
    }
    header[t.name] = {{"dtype", int8 ? "I8" : "F32"},
                      {"shape", t.shape},
                      {"data_offsets", {begin, data.size()}}};
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  return SafetensorsRawBytes(header_text, data);
}

std::string ConfigJson(const ModelConfig& c) {
  nlohmann::ordered_json j;
  j["architecture"] = "transformer-encoder-decoder";
  j["d_model"] = c.d_model;
  j["num_heads"] = c.num_heads;
  j["encoder_layers"] = c.encoder_layers;
  j["decoder_layers"] = c.decoder_layers;
  j["ffn_dim"] = c.ffn_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_positions"] = c.max_positions;
  j["activation"] = ActivationName(c.activation);
  j["norm_placement"] = NormPlacementName(c.norm_placement);
  // Written as the double nearest the float, which parses back to the same
  // float.
  j["layer_norm_eps"] = static_cast<double>(c.layer_norm_eps);
  j["scale_embedding"] = c.scale_embedding;
  j["positional_encoding"] = PositionalEncodingName(c.positional_encoding);
  j["tie_output_embedding"] = c.tie_output_embedding;
  j["pad_id"] = c.pad_id;
  j["bos_id"] = c.bos_id;
  j["eos_id"] = c.eos_id;
  j["decoder_start_id"] = c.decoder_start_id;
  j["add_eos_to_source"] = c.add_eos_to_source;
  if (c.attention_head_dim > 0) j["attention_head_dim"] = c.attention_head_dim;
  j["norm_kind"] = NormKindName(c.norm_kind);
  j["linear_bias"] = c.linear_bias;
  j["gated_ffn"] = c.gated_ffn;
  j["scale_attention"] = c.scale_attention;
  j["embedding_norm"] = c.embedding_norm;
  j["position_offset"] = c.position_offset;
  j["relative_attention_num_buckets"] = c.relative_attention_num_buckets;
  j["relative_attention_max_distance"] = c.relative_attention_max_distance;
  j["output_scale"] = static_cast<double>(c.output_scale);
  return j.dump(2) + "\n";
}

ModelConfig TinyConfig() {
  ModelConfig c;
  c.d_model = 16;
  c.num_heads = 2;
  c.encoder_layers = 2;
  c.decoder_layers = 2;
  c.ffn_dim = 32;
  c.vocab_size = 23;
  c.max_positions = 64;
  return c;
}

std::vector<NamedTensor> RandomModelTensors(const ModelConfig& c,
                                            const RandomModelOptions& o) {
  std::vector<NamedTensor> tensors;
  RandomTensors r(o.seed, &tensors);
  const int64_t d = c.d_model;
  const int64_t vocab = c.vocab_size;
  const float embed_std = 1.0f / std::sqrt(static_cast<float>(d));
  if (o.shared_embedding) {
    r.Normal("shared.embed.weight", {vocab, d}, embed_std);
  } else {
    r.Normal("encoder.embed.weight", {vocab, d}, embed_std);
    r.Normal("decoder.embed.weight", {vocab, d}, embed_std);
  }
  r.set_linear_bias(c.linear_bias);
  r.set_rms_norm(c.norm_kind == NormKind::kRmsNorm);
  const int64_t a = c.attention_dim();
  const bool final_norms =
      o.final_norms || c.norm_placement == NormPlacement::kPre;
  // The per-stack tensors of the issue-16 keys, only when the config asks.
  auto extras = [&](const std::string& stack) {
    if (c.positional_encoding == PositionalEncoding::kLearned) {
      r.Normal(stack + ".embed_positions.weight", {c.max_positions, d},
               embed_std);
    }
    if (c.embedding_norm) r.Norm(stack + ".embed_norm", d);
    if (c.relative_attention_num_buckets > 0) {
      r.Normal(stack + ".relative_attention_bias.weight",
               {c.relative_attention_num_buckets, c.num_heads}, 0.5f);
    }
  };
  for (int i = 0; i < c.encoder_layers; ++i) {
    const std::string prefix = absl::StrCat("encoder.layers.", i);
    r.Attention(prefix + ".self_attn", d, a);
    r.Norm(prefix + ".self_attn_norm", d);
    r.Ffn(prefix + ".ffn", d, c.ffn_dim, c.gated_ffn);
    r.Norm(prefix + ".ffn_norm", d);
  }
  if (final_norms) r.Norm("encoder.final_norm", d);
  extras("encoder");
  for (int i = 0; i < c.decoder_layers; ++i) {
    const std::string prefix = absl::StrCat("decoder.layers.", i);
    r.Attention(prefix + ".self_attn", d, a);
    r.Norm(prefix + ".self_attn_norm", d);
    r.Attention(prefix + ".cross_attn", d, a);
    r.Norm(prefix + ".cross_attn_norm", d);
    r.Ffn(prefix + ".ffn", d, c.ffn_dim, c.gated_ffn);
    r.Norm(prefix + ".ffn_norm", d);
  }
  if (final_norms) r.Norm("decoder.final_norm", d);
  extras("decoder");
  if (!c.tie_output_embedding) r.LinearWeight("lm_head.weight", vocab, d);
  if (o.lm_head_bias) r.Bias("lm_head.bias", vocab);
  return tensors;
}

const NamedTensor* FindTensor(const std::vector<NamedTensor>& tensors,
                              absl::string_view name) {
  for (const NamedTensor& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

absl::Status WriteModelDir(const std::string& dir,
                           const std::string& config_json,
                           const std::vector<NamedTensor>& tensors) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create ", dir, ": ", error.message()));
  }
  absl::Status status = WriteFileOrStatus(dir + "/config.json", config_json);
  if (!status.ok()) return status;
  return WriteFileOrStatus(dir + "/model.safetensors",
                           SafetensorsBytes(tensors));
}

std::string MakeTempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(
      tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/", prefix, "XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    std::fprintf(stderr, "mkdtemp(%s): %s\n", pattern.c_str(),
                 std::strerror(errno));
    std::abort();
  }
  return pattern;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  const absl::Status status = WriteFileOrStatus(path, bytes);
  if (!status.ok()) ADD_FAILURE() << status;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace attnserve::engine::testing
