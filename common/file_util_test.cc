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

}  // namespace
}  // namespace nas
