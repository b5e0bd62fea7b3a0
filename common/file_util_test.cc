#include "common/file_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace nas {
namespace {

std::string TestDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return tmp != nullptr ? tmp : "/tmp";
}

TEST(FileUtilTest, WriteFileAtomicallyReplacesContentsAndLeavesNoTemporary) {
  const std::string path = absl::StrCat(TestDir(), "/atomic.txt");
  ASSERT_TRUE(WriteFileAtomically(path, "first").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "second, longer").ok());
  auto contents = ReadFile(path);
  ASSERT_TRUE(contents.ok()) << contents.status();
  EXPECT_EQ(*contents, "second, longer");
  struct stat st;
  EXPECT_NE(::stat(absl::StrCat(path, ".tmp.", ::getpid()).c_str(), &st), 0);
}

TEST(FileUtilTest, ReadFileOfMissingFileIsNotFound) {
  auto contents = ReadFile(absl::StrCat(TestDir(), "/no-such-file"));
  EXPECT_EQ(contents.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(contents.status().message().find("no-such-file"), absl::string_view::npos);
}

TEST(FileUtilTest, MakeDirectoriesCreatesNestedPathsAndIsIdempotent) {
  const std::string dir = absl::StrCat(TestDir(), "/a/b/c");
  ASSERT_TRUE(MakeDirectories(dir).ok());
  ASSERT_TRUE(MakeDirectories(dir).ok());
  struct stat st;
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

TEST(FileUtilTest, MakeDirectoriesOverAFileFails) {
  const std::string path = absl::StrCat(TestDir(), "/plain-file");
  ASSERT_TRUE(WriteFileAtomically(path, "x").ok());
  EXPECT_FALSE(MakeDirectories(path).ok());
}

TEST(FileUtilTest, ReadRegularFileReadsUpToTheCapAndRefusesMore) {
  const std::string path = absl::StrCat(TestDir(), "/spec.yaml");
  ASSERT_TRUE(WriteFileAtomically(path, std::string(1024, 'x')).ok());
  auto contents = ReadRegularFile(path, 1024);
  ASSERT_TRUE(contents.ok()) << contents.status();
  EXPECT_EQ(contents->size(), 1024u);
  auto refused = ReadRegularFile(path, 1023);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message(),
            absl::StrCat(path, " is 1024 bytes; the limit is 1023 bytes"));
  EXPECT_EQ(ReadRegularFile(path, 1 << 9).status().message(),
            absl::StrCat(path, " is 1024 bytes; the limit is 512 bytes"));
  EXPECT_NE(ReadRegularFile(path, 0).status().message().find("the limit is 0 bytes"),
            std::string::npos);
  EXPECT_EQ(ReadRegularFile(absl::StrCat(TestDir(), "/missing.yaml"), 1024).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(FileUtilTest, ReadRegularFileRefusesDevicesDirectoriesAndFifosWithoutBlocking) {
  // A FIFO with no writer: a plain open() would wait forever.
  const std::string fifo = absl::StrCat(TestDir(), "/spec.fifo");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const struct {
    std::string path;
    std::string kind;
  } cases[] = {{fifo, "a FIFO"},
               {"/dev/zero", "a character device"},
               {"/dev/null", "a character device"},
               {TestDir(), "a directory"}};
  for (const auto& c : cases) {
    auto refused = ReadRegularFile(c.path, 1 << 20);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << c.path;
    EXPECT_EQ(refused.status().message(),
              absl::StrCat(c.path, " is ", c.kind, "; only regular files are read"));
  }
}

}  // namespace
}  // namespace nas
