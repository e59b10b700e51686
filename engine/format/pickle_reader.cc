#include "engine/format/pickle_reader.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/quote_text.h"

namespace attnserve::engine {
namespace {

using Kind = PickleValue::Kind;
// Inside the reader values stay mutable (a dict is filled after it is
// created); the caller gets them const.
using Value = std::shared_ptr<PickleValue>;

constexpr char kOrderedDict[] = "collections.OrderedDict";

// Every opcode of protocols 0-5 by name, so that a refused one is named.
struct OpcodeInfo {
  unsigned char code;
  const char* name;
};
// clang-format off
constexpr OpcodeInfo kOpcodes[] = {
    {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"},
    {'F', "FLOAT"}, {'I', "INT"}, {'J', "BININT"}, {'K', "BININT1"},
    {'L', "LONG"}, {'M', "BININT2"}, {'N', "NONE"}, {'P', "PERSID"},
    {'Q', "BINPERSID"}, {'R', "REDUCE"}, {'S', "STRING"}, {'T', "BINSTRING"},
    {'U', "SHORT_BINSTRING"}, {'V', "UNICODE"}, {'X', "BINUNICODE"},
    {'a', "APPEND"}, {'b', "BUILD"}, {'c', "GLOBAL"}, {'d', "DICT"},
    {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"}, {'i', "INST"},
    {'j', "LONG_BINGET"}, {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"},
    {'p', "PUT"}, {'q', "BINPUT"}, {'r', "LONG_BINPUT"}, {'s', "SETITEM"},
    {'t', "TUPLE"}, {')', "EMPTY_TUPLE"}, {'u', "SETITEMS"}, {'G', "BINFLOAT"},
    {0x80, "PROTO"}, {0x81, "NEWOBJ"}, {0x82, "EXT1"}, {0x83, "EXT2"},
    {0x84, "EXT4"}, {0x85, "TUPLE1"}, {0x86, "TUPLE2"}, {0x87, "TUPLE3"},
    {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"}, {0x8a, "LONG1"}, {0x8b, "LONG4"},
    {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"}, {0x8c, "SHORT_BINUNICODE"},
    {0x8d, "BINUNICODE8"}, {0x8e, "BINBYTES8"}, {0x8f, "EMPTY_SET"},
    {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"},
    {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"}, {0x95, "FRAME"},
    {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"},
};
// clang-format on

const char* OpcodeName(unsigned char op) {
  for (const OpcodeInfo& info : kOpcodes) {
    if (info.code == op) return info.name;
  }
  return nullptr;
}

class Reader {
 public:
  Reader(absl::string_view bytes, absl::Span<const std::string> allowed,
         absl::string_view what)
      : bytes_(bytes), allowed_(allowed), what_(what) {}

  absl::StatusOr<PickleValuePtr> Run();

 private:
  template <typename... Parts>
  absl::Status Error(const Parts&... parts) const {
    return absl::InvalidArgumentError(
        absl::StrCat(what_, ": pickle byte ", op_offset_, ": ", parts...));
  }

  // The next `n` bytes of input, or an error.
  absl::Status Take(size_t n, absl::string_view& out) {
    if (bytes_.size() - pos_ < n) {
      return Error("truncated: needs ", n, " more bytes, ",
                   bytes_.size() - pos_, " left");
    }
    out = bytes_.substr(pos_, n);
    pos_ += n;
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> TakeUnsigned(size_t n) {
    absl::string_view b;
    if (absl::Status s = Take(n, b); !s.ok()) return s;
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
      v = (v << 8) | static_cast<unsigned char>(b[i]);
    return v;
  }
  // A text line ended by '\n' (GLOBAL's operands).
  absl::StatusOr<absl::string_view> TakeLine() {
    const size_t end = bytes_.find('\n', pos_);
    if (end == absl::string_view::npos) return Error("truncated GLOBAL line");
    absl::string_view line = bytes_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return line;
  }

  size_t Floor() const { return marks_.empty() ? 0 : marks_.back(); }
  absl::Status Need(size_t n, const char* op) const {
    if (stack_.size() - Floor() < n) {
      return Error(op, " needs ", n, " values on the stack, has ",
                   stack_.size() - Floor());
    }
    return absl::OkStatus();
  }
  absl::Status Push(Value v) {
    if (stack_.size() >= kMaxPickleStack) {
      return Error("stack exceeds ", kMaxPickleStack, " values");
    }
    stack_.push_back(std::move(v));
    return absl::OkStatus();
  }
  Value Pop() {
    Value v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  // The values above the innermost mark, which is removed.
  absl::StatusOr<std::vector<Value>> PopMark(const char* op) {
    if (marks_.empty()) return Error(op, " without a MARK");
    const size_t floor = marks_.back();
    marks_.pop_back();
    std::vector<Value> values(std::make_move_iterator(stack_.begin() + floor),
                              std::make_move_iterator(stack_.end()));
    stack_.resize(floor);
    return values;
  }

  static Value Leaf(Kind kind) {
    auto v = std::make_shared<PickleValue>();
    v->kind = kind;
    return v;
  }
  // Records that `child` is now inside `parent` (which grows deeper). A
  // sealed container is never modified again, which rules out cycles: a
  // container being filled is inside nothing, so nothing added to it can
  // contain it, and it cannot be added to itself (checked by the caller).
  absl::Status Adopt(PickleValue& parent, PickleValue& child) {
    child.sealed = true;
    parent.depth = std::max(parent.depth, child.depth + 1);
    if (parent.depth > kMaxPickleDepth) {
      return Error("values nest deeper than ", kMaxPickleDepth, " levels");
    }
    return absl::OkStatus();
  }
  absl::StatusOr<Value> MakeSequence(Kind kind, std::vector<Value> children) {
    Value v = Leaf(kind);
    v->items.reserve(children.size());
    for (Value& child : children) {
      if (absl::Status s = Adopt(*v, *child); !s.ok()) return s;
      v->items.push_back(std::move(child));
    }
    return v;
  }
  absl::Status CheckMutable(const Value& container, Kind kind,
                            const char* op) const {
    if (container->kind != kind) {
      return Error(op, " on a ", PickleKindName(container->kind), ", not a ",
                   PickleKindName(kind));
    }
    if (container->sealed) {
      return Error(op, " on a ", PickleKindName(kind),
                   " that is already inside another value");
    }
    return absl::OkStatus();
  }
  absl::Status SetItems(const Value& dict, std::vector<Value> kv,
                        const char* op) {
    if (absl::Status s = CheckMutable(dict, Kind::kDict, op); !s.ok()) return s;
    if (kv.size() % 2 != 0) return Error(op, " with an odd number of values");
    for (size_t i = 0; i < kv.size(); i += 2) {
      if (kv[i] == dict || kv[i + 1] == dict) {
        return Error(op, " would put a dict inside itself");
      }
      if (absl::Status s = Adopt(*dict, *kv[i]); !s.ok()) return s;
      if (absl::Status s = Adopt(*dict, *kv[i + 1]); !s.ok()) return s;
      dict->entries.emplace_back(std::move(kv[i]), std::move(kv[i + 1]));
    }
    return absl::OkStatus();
  }
  absl::Status Appends(const Value& list, std::vector<Value> items,
                       const char* op) {
    if (absl::Status s = CheckMutable(list, Kind::kList, op); !s.ok()) return s;
    for (Value& item : items) {
      if (item == list) return Error(op, " would put a list inside itself");
      if (absl::Status s = Adopt(*list, *item); !s.ok()) return s;
      list->items.push_back(std::move(item));
    }
    return absl::OkStatus();
  }
  absl::Status Global(absl::string_view module, absl::string_view name) {
    const std::string full = absl::StrCat(module, ".", name);
    if (std::find(allowed_.begin(), allowed_.end(), full) == allowed_.end()) {
      return Error("global ", QuoteText(full),
                   " is not one a checkpoint of tensors uses; refused "
                   "(unpickling would call it)");
    }
    Value v = Leaf(Kind::kGlobal);
    v->text = full;
    return Push(std::move(v));
  }
  absl::Status Put(uint64_t index) {
    if (stack_.size() == Floor()) return Error("memo put of an empty stack");
    if (memo_.size() >= kMaxPickleMemo && !memo_.contains(index)) {
      return Error("memo exceeds ", kMaxPickleMemo, " entries");
    }
    memo_[index] = stack_.back();
    return absl::OkStatus();
  }
  absl::Status Get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) return Error("memo get of missing index ", index);
    return Push(it->second);
  }
  absl::Status Reduce() {
    if (absl::Status s = Need(2, "REDUCE"); !s.ok()) return s;
    Value args = Pop();
    Value callable = Pop();
    if (callable->kind != Kind::kGlobal) {
      return Error("REDUCE calls a ", PickleKindName(callable->kind),
                   ", not a global");
    }
    if (args->kind != Kind::kTuple) {
      return Error("REDUCE arguments are a ", PickleKindName(args->kind),
                   ", not a tuple");
    }
    if (callable->text == kOrderedDict) {
      if (!args->items.empty()) {
        return Error(kOrderedDict, " called with arguments");
      }
      return Push(Leaf(Kind::kDict));
    }
    Value call = Leaf(Kind::kCall);
    call->text = callable->text;
    // Copied, not moved: the arguments' tuple may be memoized and used again.
    call->depth = args->depth;  // the tuple itself is not a level
    call->items = args->items;
    return Push(std::move(call));
  }
  absl::Status Build() {
    if (absl::Status s = Need(2, "BUILD"); !s.ok()) return s;
    Value state = Pop();
    const Value& object = stack_.back();
    // The only BUILD a state dict needs: an OrderedDict's instance
    // attributes (a state_dict's `_metadata`), which are dropped.
    if (object->kind != Kind::kDict ||
        (state->kind != Kind::kDict && state->kind != Kind::kNone)) {
      return Error("BUILD of a ", PickleKindName(object->kind), " with a ",
                   PickleKindName(state->kind),
                   " state (only a dict's attributes are accepted)");
    }
    return absl::OkStatus();
  }

  absl::Status Step(unsigned char op);

  absl::string_view bytes_;
  absl::Span<const std::string> allowed_;
  absl::string_view what_;
  size_t pos_ = 0;
  size_t op_offset_ = 0;
  bool stopped_ = false;
  std::vector<Value> stack_;
  std::vector<size_t> marks_;  // stack sizes at each open MARK
  absl::flat_hash_map<uint64_t, Value> memo_;
};

absl::Status Reader::Step(unsigned char op) {
  switch (op) {
    case 0x80: {  // PROTO
      auto version = TakeUnsigned(1);
      if (!version.ok()) return version.status();
      if (*version < 2 || *version > 4) {
        return Error("pickle protocol ", *version,
                     " (torch.save writes 2; 2 to 4 are read)");
      }
      return absl::OkStatus();
    }
    case 0x95: {  // FRAME: a length hint only
      auto length = TakeUnsigned(8);
      return length.ok() ? absl::OkStatus() : length.status();
    }
    case '.':  // STOP
      if (!marks_.empty()) return Error("STOP with an open MARK");
      if (stack_.size() != 1) {
        return Error("STOP with ", stack_.size(), " values on the stack");
      }
      stopped_ = true;
      return absl::OkStatus();
    case '(':  // MARK
      if (marks_.size() >= kMaxPickleStack) {
        return Error("more than ", kMaxPickleStack, " open MARKs");
      }
      marks_.push_back(stack_.size());
      return absl::OkStatus();
    case 'N':
      return Push(Leaf(Kind::kNone));
    case 0x88:
    case 0x89: {  // NEWTRUE, NEWFALSE
      Value v = Leaf(Kind::kBool);
      v->boolean = op == 0x88;
      return Push(std::move(v));
    }
    case 'J':
    case 'K':
    case 'M': {  // BININT (signed 32), BININT1, BININT2 (unsigned)
      const size_t n = op == 'J' ? 4 : op == 'K' ? 1 : 2;
      auto raw = TakeUnsigned(n);
      if (!raw.ok()) return raw.status();
      Value v = Leaf(Kind::kInt);
      v->integer = op == 'J' ? static_cast<int32_t>(static_cast<uint32_t>(*raw))
                             : static_cast<int64_t>(*raw);
      return Push(std::move(v));
    }
    case 0x8a: {  // LONG1: n bytes of little-endian two's complement
      auto n = TakeUnsigned(1);
      if (!n.ok()) return n.status();
      if (*n > 8) return Error("LONG1 of ", *n, " bytes does not fit 64 bits");
      auto raw = TakeUnsigned(*n);
      if (!raw.ok()) return raw.status();
      uint64_t bits = *raw;
      if (*n > 0 && *n < 8 && (bits >> (8 * *n - 1)) & 1) {
        bits |= ~uint64_t{0} << (8 * *n);  // sign-extend
      }
      Value v = Leaf(Kind::kInt);
      v->integer = static_cast<int64_t>(bits);
      return Push(std::move(v));
    }
    case 'G': {  // BINFLOAT: big-endian double
      absl::string_view b;
      if (absl::Status s = Take(8, b); !s.ok()) return s;
      uint64_t bits = 0;
      for (char c : b) bits = (bits << 8) | static_cast<unsigned char>(c);
      Value v = Leaf(Kind::kFloat);
      std::memcpy(&v->real, &bits, sizeof(bits));
      return Push(std::move(v));
    }
    case 'X':
    case 0x8c:
    case 0x8d:
    case 'B':
    case 'C':
    case 0x8e: {  // [SHORT_]BINUNICODE[8], [SHORT_]BINBYTES[8]
      const size_t n = (op == 0x8c || op == 'C')    ? 1
                       : (op == 0x8d || op == 0x8e) ? 8
                                                    : 4;
      auto length = TakeUnsigned(n);
      if (!length.ok()) return length.status();
      absl::string_view text;
      if (*length > bytes_.size() - pos_) {
        return Error("string of ", *length, " bytes runs past the end (",
                     bytes_.size() - pos_, " left)");
      }
      if (absl::Status s = Take(*length, text); !s.ok()) return s;
      Value v = Leaf(Kind::kString);
      v->text = std::string(text);
      return Push(std::move(v));
    }
    case '}':
      return Push(Leaf(Kind::kDict));
    case ']':
      return Push(Leaf(Kind::kList));
    case ')':
      return Push(Leaf(Kind::kTuple));
    case 't':
    case 'l': {  // TUPLE, LIST
      auto items = PopMark(op == 't' ? "TUPLE" : "LIST");
      if (!items.ok()) return items.status();
      auto v = MakeSequence(op == 't' ? Kind::kTuple : Kind::kList,
                            std::move(*items));
      if (!v.ok()) return v.status();
      return Push(std::move(*v));
    }
    case 0x85:
    case 0x86:
    case 0x87: {  // TUPLE1..3
      const size_t n = op - 0x84;
      if (absl::Status s = Need(n, OpcodeName(op)); !s.ok()) return s;
      std::vector<Value> items(std::make_move_iterator(stack_.end() - n),
                               std::make_move_iterator(stack_.end()));
      stack_.resize(stack_.size() - n);
      auto v = MakeSequence(Kind::kTuple, std::move(items));
      if (!v.ok()) return v.status();
      return Push(std::move(*v));
    }
    case 'd': {  // DICT
      auto kv = PopMark("DICT");
      if (!kv.ok()) return kv.status();
      Value dict = Leaf(Kind::kDict);
      if (absl::Status s = SetItems(dict, std::move(*kv), "DICT"); !s.ok()) {
        return s;
      }
      return Push(std::move(dict));
    }
    case 's': {  // SETITEM
      if (absl::Status s = Need(3, "SETITEM"); !s.ok()) return s;
      std::vector<Value> kv(2);
      kv[1] = Pop();
      kv[0] = Pop();
      return SetItems(stack_.back(), std::move(kv), "SETITEM");
    }
    case 'u': {  // SETITEMS
      auto kv = PopMark("SETITEMS");
      if (!kv.ok()) return kv.status();
      if (stack_.size() == Floor()) return Error("SETITEMS without a dict");
      return SetItems(stack_.back(), std::move(*kv), "SETITEMS");
    }
    case 'a': {  // APPEND
      if (absl::Status s = Need(2, "APPEND"); !s.ok()) return s;
      std::vector<Value> items(1);
      items[0] = Pop();
      return Appends(stack_.back(), std::move(items), "APPEND");
    }
    case 'e': {  // APPENDS
      auto items = PopMark("APPENDS");
      if (!items.ok()) return items.status();
      if (stack_.size() == Floor()) return Error("APPENDS without a list");
      return Appends(stack_.back(), std::move(*items), "APPENDS");
    }
    case 'q':
    case 'r': {  // BINPUT, LONG_BINPUT
      auto index = TakeUnsigned(op == 'q' ? 1 : 4);
      if (!index.ok()) return index.status();
      return Put(*index);
    }
    case 0x94:  // MEMOIZE
      return Put(memo_.size());
    case 'h':
    case 'j': {  // BINGET, LONG_BINGET
      auto index = TakeUnsigned(op == 'h' ? 1 : 4);
      if (!index.ok()) return index.status();
      return Get(*index);
    }
    case 'c': {  // GLOBAL
      auto module = TakeLine();
      if (!module.ok()) return module.status();
      auto name = TakeLine();
      if (!name.ok()) return name.status();
      return Global(*module, *name);
    }
    case 0x93: {  // STACK_GLOBAL
      if (absl::Status s = Need(2, "STACK_GLOBAL"); !s.ok()) return s;
      Value name = Pop();
      Value module = Pop();
      if (module->kind != Kind::kString || name->kind != Kind::kString) {
        return Error("STACK_GLOBAL of non-strings");
      }
      return Global(module->text, name->text);
    }
    case 'R':
      return Reduce();
    case 'b':
      return Build();
    case 'Q': {  // BINPERSID
      if (absl::Status s = Need(1, "BINPERSID"); !s.ok()) return s;
      Value id = Pop();
      Value v = Leaf(Kind::kPersistentId);
      if (absl::Status s = Adopt(*v, *id); !s.ok()) return s;
      v->items.push_back(std::move(id));
      return Push(std::move(v));
    }
    default: {
      const char* name = OpcodeName(op);
      return Error("opcode ", name != nullptr ? name : "(unknown)", " (0x",
                   absl::Hex(op, absl::kZeroPad2),
                   ") is not one a checkpoint of tensors uses; refused");
    }
  }
}

absl::StatusOr<PickleValuePtr> Reader::Run() {
  while (!stopped_) {
    if (pos_ >= bytes_.size()) {
      op_offset_ = pos_;
      return Error("ends without STOP (truncated?)");
    }
    op_offset_ = pos_;
    const unsigned char op = static_cast<unsigned char>(bytes_[pos_++]);
    if (absl::Status s = Step(op); !s.ok()) return s;
  }
  if (pos_ != bytes_.size()) {
    op_offset_ = pos_;
    return Error(bytes_.size() - pos_, " bytes after STOP");
  }
  return PickleValuePtr(stack_.back());
}

}  // namespace

const char* PickleKindName(PickleValue::Kind kind) {
  switch (kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "string";
    case Kind::kTuple:
      return "tuple";
    case Kind::kList:
      return "list";
    case Kind::kDict:
      return "dict";
    case Kind::kGlobal:
      return "global";
    case Kind::kCall:
      return "call";
    case Kind::kPersistentId:
      return "persistent id";
  }
  return "value";
}

absl::StatusOr<PickleValuePtr> ReadPickle(
    absl::string_view bytes, absl::Span<const std::string> allowed_globals,
    absl::string_view what) {
  return Reader(bytes, allowed_globals, what).Run();
}

}  // namespace attnserve::engine
