#include "worker/progress_file.h"

#include "common/file_util.h"
#include "gtest/gtest.h"

namespace nas::worker {
namespace {

TEST(ProgressFileTest, WritesTheTimeOfTheLastProgressAtMostOncePerInterval) {
  const std::string path = ::testing::TempDir() + "/progress";
  ProgressFile file(path, absl::Seconds(5));
  const absl::Time t0 = absl::FromUnixSeconds(1'700'000'000);
  ASSERT_TRUE(file.Update(t0).ok());
  EXPECT_EQ(ReadFile(path).value(), "1700000000\n");
  // Within the interval: not rewritten (an epoch every few ms must not write
  // the file each time).
  ASSERT_TRUE(file.Update(t0 + absl::Seconds(4)).ok());
  EXPECT_EQ(ReadFile(path).value(), "1700000000\n");
  ASSERT_TRUE(file.Update(t0 + absl::Seconds(5)).ok());
  EXPECT_EQ(ReadFile(path).value(), "1700000005\n");
}

TEST(ProgressFileTest, AnUnwritablePathIsAnError) {
  ProgressFile file(::testing::TempDir() + "/no/such/dir/progress", absl::Seconds(1));
  EXPECT_FALSE(file.Update(absl::Now()).ok());
}

}  // namespace
}  // namespace nas::worker
