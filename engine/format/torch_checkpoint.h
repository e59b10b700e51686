#pragma once
// pytorch_model.bin as torch.save writes it since 1.6: a zip archive of stored
// (uncompressed) entries <top>/data.pkl (a pickle of {name: tensor}),
// <top>/data/<key> (each storage's raw little-endian bytes) and
// <top>/version. Read without running any pickled code: the unpickler
// understands only the opcodes and globals that a state dict uses (dict,
// collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch.*Storage
// persistent ids) and refuses everything else, naming it. Tensors that share a
// storage (tied weights) are read from it under each name.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/format/tensor_source.h"

namespace attnserve::engine {

// Errors name the file and the problem: not a zip archive, a compressed or
// truncated entry, a pickle opcode or global outside the allowed set, a
// tensor whose storage is missing or too short, a non-contiguous stride.
absl::StatusOr<std::unique_ptr<TensorSource>> OpenTorchCheckpoint(
    const std::string& path);

}  // namespace attnserve::engine
