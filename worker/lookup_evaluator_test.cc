#include "worker/lookup_evaluator.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "search_space/search_space.h"

namespace nas::worker {
namespace {

v1::SearchSpace CellSpace() {
  v1::SearchSpace space;
  space.mutable_cell()->set_num_nodes(3);
  for (const char* op : {"none", "nor_conv_3x3"}) space.mutable_cell()->add_operations(op);
  return space;
}

v1::Task LookupTask(const std::string& table, const std::vector<int>& tokens) {
  v1::Task task;
  task.mutable_evaluator()->mutable_lookup()->set_table_path(table);
  *task.mutable_architecture() =
      search_space::ArchitectureFromTokens(CellSpace(), 0, tokens).value();
  task.mutable_reward()->set_power(1);
  return task;
}

std::string WriteTable(const std::string& name, const std::string& csv) {
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
  EXPECT_TRUE(WriteFileAtomically(path, csv).ok());
  return path;
}

TEST(LookupEvaluatorTest, FindsTheRowKeyedByTheReadableFormsCanonicalString) {
  const v1::Architecture arch = search_space::ArchitectureFromTokens(CellSpace(), 0, {1, 0, 1}).value();
  ASSERT_EQ(arch.canonical(), "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|");
  const std::string table =
      WriteTable("found.csv", absl::StrCat("arch,accuracy,parameters\n", arch.canonical(), ",0.75,42\n",
                                           "|none~0|+|none~0|none~1|,0.1,0\n"));
  v1::Task task = LookupTask(table, {1, 0, 1});
  // A stale or missing canonical field does not matter: the key is printed
  // from the readable form.
  task.mutable_architecture()->set_canonical("stale");
  absl::StatusOr<v1::TrialMetrics> metrics = NewLookupEvaluator()->Evaluate(task, {});
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_DOUBLE_EQ(metrics->accuracy(), 0.75);
  EXPECT_EQ(metrics->parameters(), 42);
  EXPECT_DOUBLE_EQ(metrics->reward(), 0.75);
}

TEST(LookupEvaluatorTest, AnArchitectureMissingFromTheTableIsNotFound) {
  const std::string table = WriteTable("missing.csv", "arch,accuracy\n|none~0|+|none~0|none~1|,0.1\n");
  absl::StatusOr<v1::TrialMetrics> metrics =
      NewLookupEvaluator()->Evaluate(LookupTask(table, {1, 1, 1}), {});
  ASSERT_EQ(metrics.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(metrics.status().message().find("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"),
            std::string::npos)
      << metrics.status();
}

TEST(LookupEvaluatorTest, AnArchitectureWithoutAReadableFormIsRejected) {
  const std::string table = WriteTable("no_form.csv", "arch,accuracy\n|none~0|+|none~0|none~1|,0.1\n");
  v1::Task task = LookupTask(table, {0, 0, 0});
  task.mutable_architecture()->clear_form();
  task.mutable_architecture()->set_canonical("|none~0|+|none~0|none~1|");
  EXPECT_EQ(NewLookupEvaluator()->Evaluate(task, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nas::worker
