#pragma once
// A restricted unpickler: it builds a tree of plain values from a pickle and
// never calls anything. It knows the opcodes of protocol 2 that torch.save's
// data.pkl uses (and the few protocol 3-4 ones that a newer writer would add
// for the same data); any other opcode is an error naming it. A GLOBAL is
// accepted only when the caller lists it; REDUCE of a listed global is kept as
// a kCall node for the caller to interpret, except collections.OrderedDict()
// which becomes an empty dict. BINPERSID becomes a kPersistentId node.
//
// Bounded: the stack, the memo, the mark stack and the value nesting have
// caps, so that a hostile pickle costs memory linear in its size with a small
// constant, and no traversal of the result (including its destructor) can
// recurse deeper than kMaxPickleDepth. Containers are sealed once they are
// inside another value, which also makes cycles impossible.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace attnserve::engine {

inline constexpr int kMaxPickleDepth = 32;
inline constexpr size_t kMaxPickleStack = size_t{1} << 20;
inline constexpr size_t kMaxPickleMemo = size_t{1} << 20;

struct PickleValue;
using PickleValuePtr = std::shared_ptr<const PickleValue>;

struct PickleValue {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,        // text (BINUNICODE) or bytes (BINBYTES): `text`
    kTuple,         // `items`
    kList,          // `items`
    kDict,          // `entries`, in insertion order, as written
    kGlobal,        // `text` = "module.name"
    kCall,          // `text` = the global called, `items` = its arguments
    kPersistentId,  // `items[0]` = the id
  };
  Kind kind = Kind::kNone;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;
  std::vector<PickleValuePtr> items;
  std::vector<std::pair<PickleValuePtr, PickleValuePtr>> entries;
  // 1 for a leaf, else 1 + the deepest child (<= kMaxPickleDepth).
  int depth = 1;
  // The reader's bookkeeping: true once inside another value (never modified
  // again).
  bool sealed = false;
};

// "dict", "tuple", "int", ... for errors.
const char* PickleKindName(PickleValue::Kind kind);

// Unpickles `bytes` (which must end with STOP, with nothing after it).
// `allowed_globals` are "module.name" strings; any other GLOBAL is an error
// naming it. Errors are InvalidArgument and start with `what` (e.g.
// "model.bin: archive/data.pkl"), then the byte offset and the problem.
absl::StatusOr<PickleValuePtr> ReadPickle(
    absl::string_view bytes, absl::Span<const std::string> allowed_globals,
    absl::string_view what);

}  // namespace attnserve::engine
