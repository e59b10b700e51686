#include "engine/format/pickle_reader.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/status_matchers.h"

namespace attnserve::engine {
namespace {

using ::attnserve::IsOk;
using ::attnserve::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using Kind = PickleValue::Kind;
using namespace std::string_literals;  // "...\x00..."s keeps the NUL

const std::vector<std::string> kAllowed = {"collections.OrderedDict",
                                           "torch._utils._rebuild_tensor_v2",
                                           "torch.FloatStorage"};

// Pickle bytes from pieces; std::string(..., n) keeps embedded NULs.
std::string B(const char* bytes, size_t n) { return std::string(bytes, n); }
std::string Str(const std::string& text) {  // BINUNICODE
  std::string out = "X";
  const uint32_t n = text.size();
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
  return out + text;
}
std::string Global(const std::string& module, const std::string& name) {
  return "c" + module + "\n" + name + "\n";
}
const std::string kProto = "\x80\x02";

absl::StatusOr<PickleValuePtr> Read(const std::string& bytes) {
  return ReadPickle(bytes, kAllowed, "test.pkl");
}

// One tensor entry as torch 1.13 writes it (memo puts included).
std::string TorchStateDict() {
  return kProto + "}q\x00("s + Str("w") + "q\x01" +
         Global("torch._utils", "_rebuild_tensor_v2") + "q\x02((" +
         Str("storage") + "q\x03" + Global("torch", "FloatStorage") + "q\x04" +
         Str("0") + "q\x05" + Str("cpu") + "q\x06K\x06tq\x07QK\x00K\x02K\x03"s +
         "\x86q\x08K\x03K\x01\x86q\x09\x89" +
         Global("collections", "OrderedDict") + "q\x0a)Rq\x0btq\x0cRq\x0d" +
         Str("w.alias") + "h\x0du.";
}

TEST(PickleReaderTest, ReadsATorchStateDict) {
  absl::StatusOr<PickleValuePtr> root = Read(TorchStateDict());
  ASSERT_THAT(root, IsOk());
  const PickleValue& dict = **root;
  ASSERT_EQ(dict.kind, Kind::kDict);
  ASSERT_EQ(dict.entries.size(), 2u);
  EXPECT_EQ(dict.entries[0].first->text, "w");
  EXPECT_EQ(dict.entries[1].first->text, "w.alias");
  // BINGET gives the same value, not a copy: tied tensors stay one object.
  EXPECT_EQ(dict.entries[0].second, dict.entries[1].second);

  const PickleValue& call = *dict.entries[0].second;
  ASSERT_EQ(call.kind, Kind::kCall);
  EXPECT_EQ(call.text, "torch._utils._rebuild_tensor_v2");
  ASSERT_EQ(call.items.size(), 6u);
  ASSERT_EQ(call.items[0]->kind, Kind::kPersistentId);
  const PickleValue& id = *call.items[0]->items[0];
  ASSERT_EQ(id.kind, Kind::kTuple);
  ASSERT_EQ(id.items.size(), 5u);
  EXPECT_EQ(id.items[0]->text, "storage");
  EXPECT_EQ(id.items[1]->kind, Kind::kGlobal);
  EXPECT_EQ(id.items[1]->text, "torch.FloatStorage");
  EXPECT_EQ(id.items[2]->text, "0");
  EXPECT_EQ(id.items[4]->integer, 6);
  EXPECT_EQ(call.items[1]->integer, 0);
  ASSERT_EQ(call.items[2]->items.size(), 2u);
  EXPECT_EQ(call.items[2]->items[1]->integer, 3);
  EXPECT_EQ(call.items[3]->items[0]->integer, 3);
  EXPECT_EQ(call.items[4]->kind, Kind::kBool);
  EXPECT_FALSE(call.items[4]->boolean);
  EXPECT_EQ(call.items[5]->kind, Kind::kDict);  // OrderedDict() -> {}
  EXPECT_LE(dict.depth, kMaxPickleDepth);
}

TEST(PickleReaderTest, ReadsScalars) {
  // [BININT -2, BININT1 255, BININT2 65535, LONG1 -129 (2 bytes),
  //  LONG1 2^40 (6 bytes), LONG1 0 (0 bytes), BINFLOAT 1.5, None, True,
  //  SHORT_BINUNICODE "hi", BINBYTES "ab"]
  const std::string bytes =
      kProto + "](" + B("J\xfe\xff\xff\xff", 5) + "K\xff" + "M\xff\xff" +
      B("\x8a\x02\x7f\xff", 4) + B("\x8a\x06\x00\x00\x00\x00\x00\x01", 8) +
      B("\x8a\x00", 2) + B("G\x3f\xf8\x00\x00\x00\x00\x00\x00", 9) + "N" +
      "\x88" + "\x8c\x02hi" +
      B("B\x02\x00\x00\x00"
        "ab",
        7) +
      "e.";
  absl::StatusOr<PickleValuePtr> root = Read(bytes);
  ASSERT_THAT(root, IsOk());
  const std::vector<PickleValuePtr>& v = (*root)->items;
  ASSERT_EQ(v.size(), 11u);
  EXPECT_EQ(v[0]->integer, -2);
  EXPECT_EQ(v[1]->integer, 255);
  EXPECT_EQ(v[2]->integer, 65535);
  EXPECT_EQ(v[3]->integer, -129);
  EXPECT_EQ(v[4]->integer, int64_t{1} << 40);
  EXPECT_EQ(v[5]->integer, 0);
  EXPECT_EQ(v[6]->real, 1.5);
  EXPECT_EQ(v[7]->kind, Kind::kNone);
  EXPECT_TRUE(v[8]->boolean);
  EXPECT_EQ(v[9]->text, "hi");
  EXPECT_EQ(v[10]->text, "ab");
}

TEST(PickleReaderTest, BuildDropsAnOrderedDictsAttributes) {
  // OrderedDict() then BUILD with {'_metadata': {}}, as state_dict() pickles.
  const std::string bytes = kProto + Global("collections", "OrderedDict") +
                            ")R}(" + Str("_metadata") + "}ub.";
  absl::StatusOr<PickleValuePtr> root = Read(bytes);
  ASSERT_THAT(root, IsOk());
  EXPECT_EQ((*root)->kind, Kind::kDict);
  EXPECT_TRUE((*root)->entries.empty());
  EXPECT_THAT(Read(kProto + "]N" + "b."),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("BUILD of a list")));
}

TEST(PickleReaderTest, RefusesGlobalsThatWouldRunCode) {
  for (const auto& [module, name] :
       std::vector<std::pair<std::string, std::string>>{
           {"os", "system"},
           {"posix", "system"},
           {"builtins", "eval"},
           {"builtins", "exec"},
           {"torch", "load"},
           {"torch._utils", "_rebuild_parameter"}}) {
    const std::string bytes =
        kProto + "}(" + Str("w") + Global(module, name) + Str("id") + "\x85Ru.";
    EXPECT_THAT(Read(bytes),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("test.pkl"),
                               HasSubstr("\"" + module + "." + name + "\""),
                               HasSubstr("refused"))))
        << module << "." << name;
  }
  // The same through STACK_GLOBAL (protocol 4).
  EXPECT_THAT(
      Read("\x80\x04" + Str("os") + Str("system") + "\x93."),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"os.system\"")));
}

TEST(PickleReaderTest, RefusesOtherOpcodesByName) {
  EXPECT_THAT(Read(kProto + "(" + Global("collections", "OrderedDict") + "o."),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("opcode OBJ (0x6f)"),
                             HasSubstr("pickle byte 28"))));
  EXPECT_THAT(Read(kProto + "i"), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("opcode INST")));
  EXPECT_THAT(Read(kProto + "\xff"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("(unknown) (0xff)")));
  EXPECT_THAT(Read("\x80\x05N."), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("pickle protocol 5")));
}

TEST(PickleReaderTest, RefusesCallsOfNonGlobals) {
  EXPECT_THAT(Read(kProto + "))R."),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("REDUCE calls a tuple")));
  EXPECT_THAT(Read(kProto + Global("collections", "OrderedDict") + "NR."),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("arguments are a None")));
  EXPECT_THAT(Read(kProto + Global("collections", "OrderedDict") + "N\x85R."),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("called with arguments")));
}

TEST(PickleReaderTest, RefusesCycles) {
  // l = []; l.append(l)
  EXPECT_THAT(
      Read(kProto + "]q\x00h\x00"
                    "a."s),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("inside itself")));
  // d = {}; d[1] = d
  EXPECT_THAT(
      Read(kProto + "}q\x00K\x01h\x00s."s),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("inside itself")));
  // l = []; t = (l,); l.append(t): l is sealed once inside t.
  EXPECT_THAT(Read(kProto + "]q\x00h\x00\x85"
                            "a."s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("already inside another value")));
}

TEST(PickleReaderTest, BoundsNesting) {
  // () wrapped in TUPLE1 100 times.
  std::string bytes = kProto + ")" + std::string(100, '\x85') + ".";
  EXPECT_THAT(Read(bytes), StatusIs(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("nest deeper than 32")));
  // Exactly at the limit is fine.
  bytes = kProto + ")" + std::string(kMaxPickleDepth - 1, '\x85') + ".";
  EXPECT_THAT(Read(bytes), IsOk());
  // Lists filled after nesting are counted too: [[[...]]] built by APPEND.
  bytes = kProto;
  for (int i = 0; i < 40; ++i) bytes += "]";
  for (int i = 0; i < 39; ++i) bytes += "a";
  EXPECT_THAT(Read(bytes + "."), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("nest deeper")));
}

TEST(PickleReaderTest, BoundsTheStackMarksAndMemo) {
  EXPECT_THAT(
      Read(kProto + std::string(kMaxPickleStack + 1, 'N')),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stack exceeds")));
  EXPECT_THAT(
      Read(kProto + std::string(kMaxPickleStack + 1, '(')),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("open MARKs")));
  // N, then LONG_BINPUT to kMaxPickleMemo + 1 distinct indices.
  std::string bytes = kProto + "N";
  for (uint32_t i = 0; i <= kMaxPickleMemo; ++i) {
    bytes += 'r';
    for (int b = 0; b < 4; ++b)
      bytes.push_back(static_cast<char>(i >> (8 * b)));
  }
  EXPECT_THAT(Read(bytes), StatusIs(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("memo exceeds")));
}

TEST(PickleReaderTest, RefusesMalformedStreams) {
  struct Case {
    std::string bytes;
    std::string message;
  };
  const std::vector<Case> cases = {
      {kProto + "NN.", "STOP with 2 values"},
      {kProto + "N.N", "1 bytes after STOP"},
      {kProto + "N", "ends without STOP"},
      {kProto + "(N.", "STOP with an open MARK"},
      {kProto + "h\x07.", "missing index 7"},
      {kProto + "N(\x86.", "TUPLE2 needs 2 values on the stack, has 0"},
      {kProto + "t.", "TUPLE without a MARK"},
      {kProto + "K", "truncated"},
      {kProto + B("X\xff\xff\xff\xff", 5), "runs past the end"},
      {kProto + B("\x8a\x09", 2) + std::string(9, '\1') + ".",
       "does not fit 64 bits"},
      {kProto + "cos\nsys", "truncated GLOBAL line"},
      {kProto + "K\x01" + "]" + "u.", "SETITEMS without a MARK"},
      {kProto + "}(K\x01u.", "odd number"},
      {kProto + "](N" + "u.", "SETITEMS on a list"},
      {kProto + "q\x00."s, "memo put of an empty stack"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(Read(c.bytes),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("test.pkl"), HasSubstr(c.message))))
        << c.message;
  }
}

TEST(PickleReaderTest, EveryTruncationIsAnError) {
  const std::string bytes = TorchStateDict();
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(Read(bytes.substr(0, n)).ok()) << "prefix of " << n;
  }
}

}  // namespace
}  // namespace attnserve::engine
