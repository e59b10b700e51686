#include "client/request_mix.h"

#include <unistd.h>

#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnserve::client {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

LengthDistribution Parsed(const char* spec) {
  absl::StatusOr<LengthDistribution> distribution =
      LengthDistribution::Parse(spec);
  EXPECT_TRUE(distribution.ok()) << spec << ": " << distribution.status();
  return distribution.value_or(LengthDistribution());
}

TEST(LengthDistributionTest, ParsesTheThreeForms) {
  EXPECT_EQ(Parsed("16").ToString(), "16");
  EXPECT_EQ(Parsed("16").min(), 16);
  EXPECT_EQ(Parsed("16").max(), 16);
  EXPECT_EQ(Parsed("8:32").ToString(), "8:32");
  EXPECT_EQ(Parsed("8:32").min(), 8);
  EXPECT_EQ(Parsed("8:32").max(), 32);
  EXPECT_EQ(Parsed("4:16@3,64:128").ToString(), "4:16@3,64:128@1");
  EXPECT_EQ(Parsed("4:16@3,64:128").min(), 4);
  EXPECT_EQ(Parsed("4:16@3,64:128").max(), 128);
  EXPECT_EQ(Parsed("0").max(), 0);
}

TEST(LengthDistributionTest, RejectsBadSpecs) {
  for (const char* spec : {"", "a", "8:", ":8", "32:8", "-1", "4:8@0", "4:8@-1",
                           "4:8@x", "4:8,", "1:2:3"}) {
    EXPECT_EQ(LengthDistribution::Parse(spec).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "\"" << spec << "\"";
  }
  EXPECT_THAT(LengthDistribution::Parse("32:8").status().message(),
              HasSubstr("32:8"));
}

TEST(LengthDistributionTest, SamplesStayInRangeAndCoverIt) {
  std::mt19937_64 rng(7);
  const LengthDistribution uniform = Parsed("3:6");
  std::set<int> seen;
  for (int i = 0; i < 1000; ++i) {
    const int value = uniform.Sample(rng);
    ASSERT_GE(value, 3);
    ASSERT_LE(value, 6);
    seen.insert(value);
  }
  EXPECT_THAT(seen, ElementsAre(3, 4, 5, 6));
}

TEST(LengthDistributionTest, MixtureDrawsFromEveryComponentOnly) {
  std::mt19937_64 rng(7);
  const LengthDistribution mixture = Parsed("1:2@3,100:101@1");
  int short_count = 0;
  int long_count = 0;
  for (int i = 0; i < 1000; ++i) {
    const int value = mixture.Sample(rng);
    if (value <= 2) {
      ++short_count;
    } else {
      ASSERT_GE(value, 100);
      ASSERT_LE(value, 101);
      ++long_count;
    }
  }
  // Weights 3:1 with a fixed seed: both occur, short ones more often.
  EXPECT_GT(long_count, 0);
  EXPECT_GT(short_count, long_count);
}

TEST(ParseSourcesTest, IdsPerLineSkippingBlankLines) {
  absl::StatusOr<std::vector<Source>> sources =
      ParseSources("5,17,42\n\n  \n7\r\n", /*text=*/false);
  ASSERT_TRUE(sources.ok()) << sources.status();
  ASSERT_EQ(sources->size(), 2u);
  EXPECT_THAT((*sources)[0].ids, ElementsAre(5, 17, 42));
  EXPECT_THAT((*sources)[1].ids, ElementsAre(7));
}

TEST(ParseSourcesTest, TextLinesAsTheyAre) {
  absl::StatusOr<std::vector<Source>> sources =
      ParseSources("hello, world\r\n 12 Jan 2020\n", /*text=*/true);
  ASSERT_TRUE(sources.ok()) << sources.status();
  ASSERT_EQ(sources->size(), 2u);
  EXPECT_EQ((*sources)[0].text, "hello, world");
  EXPECT_EQ((*sources)[1].text, " 12 Jan 2020");
  EXPECT_TRUE((*sources)[0].ids.empty());
}

TEST(ParseSourcesTest, NamesTheBadLine) {
  absl::StatusOr<std::vector<Source>> sources =
      ParseSources("1,2\n3,x\n", /*text=*/false);
  EXPECT_EQ(sources.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sources.status().message(), HasSubstr("line 2"));
  EXPECT_EQ(ParseSources("\n\n", false).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A sources file is read whole, but only a regular file: a device or a FIFO
// would read forever. Errors name the path; lines are numbered as in the file.
TEST(ReadSourcesFileTest, ReadsRegularFilesAndNamesWhatFails) {
  char path[] = "/tmp/request_mix_testXXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text = "5,17\n42\n";
  ASSERT_EQ(write(fd, text.data(), text.size()),
            static_cast<ssize_t>(text.size()));
  close(fd);
  absl::StatusOr<std::vector<Source>> sources = ReadSourcesFile(path, false);
  ASSERT_TRUE(sources.ok()) << sources.status();
  EXPECT_EQ(sources->size(), 2u);
  unlink(path);
  EXPECT_THAT(ReadSourcesFile(path, false).status().message(),
              HasSubstr(std::string(path) + ": cannot open"));
  EXPECT_THAT(ReadSourcesFile("/dev/zero", false).status().message(),
              HasSubstr("/dev/zero: not a regular file"));
}

TEST(ParseModelVocabTest, ReadsSizeAndSpecialIds) {
  absl::StatusOr<ModelVocab> vocab = ParseModelVocab(
      R"({"vocab_size": 53, "pad_id": 0, "bos_id": 1, "eos_id": 2,
          "decoder_start_id": 1})");
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  EXPECT_EQ(vocab->vocab_size, 53);
  EXPECT_THAT(vocab->special_ids, ElementsAre(0, 1, 2));
}

TEST(ParseModelVocabTest, DefaultsFollowTheModelFormat) {
  absl::StatusOr<ModelVocab> vocab =
      ParseModelVocab(R"({"vocab_size": 10, "eos_id": 9})");
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  EXPECT_THAT(vocab->special_ids, ElementsAre(0, 1, 9));
}

TEST(ParseModelVocabTest, RejectsConfigsWithoutVocabSize) {
  for (const char* json : {"", "not json", "[]", R"({"vocab_size": "big"})",
                           R"({"d_model": 8})"}) {
    EXPECT_EQ(ParseModelVocab(json).status().code(),
              absl::StatusCode::kInvalidArgument)
        << json;
  }
}

RequestMixOptions RandomOptions() {
  RequestMixOptions options;
  options.src_len = Parsed("2:5");
  options.max_new_tokens = Parsed("1:3");
  options.vocab_size = 6;
  options.excluded_ids = {2, 0, 1};
  options.beam_size = 2;
  options.seed = 42;
  return options;
}

TEST(RequestMixTest, RandomSourcesFollowTheOptions) {
  absl::StatusOr<RequestMix> mix = RequestMix::Create(RandomOptions());
  ASSERT_TRUE(mix.ok()) << mix.status();
  std::set<int> ids;
  for (int i = 0; i < 200; ++i) {
    const v1::GenerateRequest request = mix->Next();
    ASSERT_GE(request.input_ids_size(), 2);
    ASSERT_LE(request.input_ids_size(), 5);
    ASSERT_GE(request.max_new_tokens(), 1u);
    ASSERT_LE(request.max_new_tokens(), 3u);
    EXPECT_EQ(request.beam_size(), 2u);
    EXPECT_TRUE(request.text().empty());
    ids.insert(request.input_ids().begin(), request.input_ids().end());
  }
  // [0, 6) without the special ids 0, 1, 2.
  EXPECT_THAT(ids, ElementsAre(3, 4, 5));
}

TEST(RequestMixTest, SameSeedSameRequests) {
  absl::StatusOr<RequestMix> a = RequestMix::Create(RandomOptions());
  absl::StatusOr<RequestMix> b = RequestMix::Create(RandomOptions());
  ASSERT_TRUE(a.ok() && b.ok());
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(a->Next().SerializeAsString(), b->Next().SerializeAsString());
  }
}

TEST(RequestMixTest, SourcesCycleInOrder) {
  RequestMixOptions options;
  options.sources = {{{5, 6}, ""}, {{}, "hello"}};
  options.max_new_tokens = LengthDistribution(7);
  absl::StatusOr<RequestMix> mix = RequestMix::Create(options);
  ASSERT_TRUE(mix.ok()) << mix.status();
  for (int round = 0; round < 2; ++round) {
    const v1::GenerateRequest first = mix->Next();
    EXPECT_THAT(first.input_ids(), ElementsAre(5, 6));
    EXPECT_EQ(first.max_new_tokens(), 7u);
    const v1::GenerateRequest second = mix->Next();
    EXPECT_TRUE(second.input_ids().empty());
    EXPECT_EQ(second.text(), "hello");
  }
}

TEST(RequestMixTest, EveryRequestCarriesTheControls) {
  RequestMixOptions options = RandomOptions();
  options.beam_size = 0;
  options.controls.temperature = 0.7f;
  options.controls.seed = 5;
  options.controls.num_return_sequences = 2;
  options.controls.bad_words = "3,4";
  absl::StatusOr<RequestMix> mix = RequestMix::Create(options);
  ASSERT_TRUE(mix.ok()) << mix.status();
  for (int i = 0; i < 5; ++i) {
    const v1::GenerateRequest request = mix->Next();
    EXPECT_GE(request.input_ids_size(), 2);
    EXPECT_FLOAT_EQ(request.temperature(), 0.7f);
    EXPECT_EQ(request.seed(), 5u);
    EXPECT_EQ(request.num_return_sequences(), 2u);
    ASSERT_EQ(request.bad_words_size(), 1);
    EXPECT_THAT(request.bad_words(0).ids(), ElementsAre(3, 4));
  }
  // The controls draw nothing from the mix's generator: the sources are
  // those of a mix without them.
  absl::StatusOr<RequestMix> plain = RequestMix::Create([] {
    RequestMixOptions o = RandomOptions();
    o.beam_size = 0;
    return o;
  }());
  absl::StatusOr<RequestMix> again = RequestMix::Create(options);
  ASSERT_TRUE(plain.ok() && again.ok());
  for (int i = 0; i < 5; ++i) {
    EXPECT_THAT(again->Next().input_ids(),
                ElementsAreArray(plain->Next().input_ids()));
  }
}

TEST(RequestMixTest, RejectsUnusableOptions) {
  RequestMixOptions no_vocab = RandomOptions();
  no_vocab.vocab_size = 0;
  EXPECT_EQ(RequestMix::Create(no_vocab).status().code(),
            absl::StatusCode::kInvalidArgument);
  RequestMixOptions only_specials = RandomOptions();
  only_specials.vocab_size = 3;
  EXPECT_EQ(RequestMix::Create(only_specials).status().code(),
            absl::StatusCode::kInvalidArgument);
  RequestMixOptions empty_sources = RandomOptions();
  empty_sources.src_len = Parsed("0:4");
  EXPECT_EQ(RequestMix::Create(empty_sources).status().code(),
            absl::StatusCode::kInvalidArgument);
  RequestMixOptions bad_controls = RandomOptions();
  bad_controls.controls.top_k = -1;
  EXPECT_THAT(RequestMix::Create(bad_controls).status().message(),
              HasSubstr("--top_k"));
}

}  // namespace
}  // namespace attnserve::client
