#include "worker/ptb_dataset.h"

#include <zlib.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace nas::worker {
namespace {

std::string NewDir(const std::string& name) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
  EXPECT_TRUE(MakeDirectories(dir).ok());
  return dir;
}

void WriteGzipped(const std::string& path, const std::string& data) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, data.data(), static_cast<unsigned>(data.size())), static_cast<int>(data.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

constexpr char kTrain[] = " the cat sat \n a <unk> cat \n";
constexpr char kValid[] = " the cat \n";
constexpr char kTest[] = " a <unk> sat \n the \n";

TEST(PtbDatasetTest, PlainAndGzippedFilesGiveWordsWithEosAndTheTrainingVocabulary) {
  for (bool gz : {false, true}) {
    const std::string dir = NewDir(gz ? "gz" : "plain");
    for (const auto& [part, text] : {std::pair{"train", kTrain}, {"valid", kValid}, {"test", kTest}}) {
      const std::string path = absl::StrCat(dir, "/ptb.", part, ".txt");
      if (gz) {
        WriteGzipped(path + ".gz", text);
      } else {
        ASSERT_TRUE(WriteFileAtomically(path, text).ok());
      }
    }
    auto corpus = LoadPtb(dir, {"/"});
    ASSERT_TRUE(corpus.ok()) << corpus.status();
    EXPECT_EQ((*corpus)->words, (std::vector<std::string>{"the", "cat", "sat", "<eos>", "a", "<unk>"}));
    EXPECT_EQ((*corpus)->train, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 1, 3}));
    EXPECT_EQ((*corpus)->valid, (std::vector<int32_t>{0, 1, 3}));
    EXPECT_EQ((*corpus)->test, (std::vector<int32_t>{4, 5, 2, 3, 0, 3}));
  }
}

TEST(PtbDatasetTest, MissingOrMalformedFilesAreErrorsNamingTheFileAndLine) {
  const std::string dir = NewDir("bad");
  ASSERT_TRUE(WriteFileAtomically(dir + "/ptb.train.txt", kTrain).ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/ptb.valid.txt", kValid).ok());
  auto corpus = LoadPtb(dir, {"/"});
  ASSERT_FALSE(corpus.ok());
  EXPECT_NE(corpus.status().message().find(dir + "/ptb.test.txt"), std::string::npos) << corpus.status();

  auto parsed = ParsePtb(kTrain, kValid, " a \n the dog \n", "train.txt", "valid.txt", "test.txt");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), "test.txt line 2: word 'dog' is not in train.txt's vocabulary");

  parsed = ParsePtb(std::string("the\0cat\n", 8), kValid, kTest, "train.txt", "valid.txt", "test.txt");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("train.txt line 1: a control byte"), std::string::npos)
      << parsed.status();

  parsed = ParsePtb(kTrain, "", kTest, "train.txt", "valid.txt", "test.txt");
  EXPECT_NE(parsed.status().message().find("valid.txt: empty file"), std::string::npos) << parsed.status();

  std::string many;
  for (int i = 0; i < kPtbVocabulary; ++i) absl::StrAppend(&many, "w", i, " ");
  parsed = ParsePtb(many, kValid, kTest, "train.txt", "valid.txt", "test.txt");
  EXPECT_NE(parsed.status().message().find("train.txt line 1: more than 10000 distinct words"), std::string::npos)
      << parsed.status();

  // Outside the roots: refused without probing.
  corpus = LoadPtb(dir, {"/nonexistent-root"});
  EXPECT_TRUE(absl::IsPermissionDenied(corpus.status())) << corpus.status();
  EXPECT_TRUE(absl::IsInvalidArgument(LoadPtb("", {"/"}).status()));
}

TEST(PtbDatasetTest, TheSharedCopyHasMikolovsTokenCountsAndVocabulary) {
  auto corpus = LoadPtb(absl::StrCat(std::getenv("TEST_SRCDIR"), "/ptb"), {"/"});
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ((*corpus)->words.size(), 10000u);
  EXPECT_EQ((*corpus)->train.size(), 929589u);
  EXPECT_EQ((*corpus)->valid.size(), 73760u);
  EXPECT_EQ((*corpus)->test.size(), 82430u);
}

}  // namespace
}  // namespace nas::worker
