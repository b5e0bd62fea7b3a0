#include "worker/lookup_evaluator.h"

#include <atomic>
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

TEST(LookupEvaluatorTest, ACurveIsReplayedEpochByEpochAndAStopEndsItAfterTheCurrentEpoch) {
  const v1::Architecture arch = search_space::ArchitectureFromTokens(CellSpace(), 0, {1, 0, 1}).value();
  const std::string table = WriteTable(
      "curve.csv", absl::StrCat("arch,accuracy,val_accuracy_e1,val_accuracy_e2,val_accuracy_e3,"
                                "val_accuracy_e4,seconds_per_epoch\n",
                                arch.canonical(), ",0.8,0.3,0.6,0.5,0.8,12.5\n"));
  v1::Task task = LookupTask(table, {1, 0, 1});
  task.mutable_reward()->set_last_epochs(1);
  std::vector<v1::EpochResult> seen;
  EvaluationContext context;
  context.on_epoch = [&](const v1::EpochResult& e) { seen.push_back(e); };
  absl::StatusOr<v1::TrialMetrics> full = NewLookupEvaluator()->Evaluate(task, context);
  ASSERT_TRUE(full.ok()) << full.status();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[2].epoch(), 3);
  EXPECT_DOUBLE_EQ(seen[2].validation_accuracy(), 0.5);
  EXPECT_DOUBLE_EQ(seen[2].seconds(), 12.5);
  EXPECT_EQ(full->epochs_size(), 4);
  EXPECT_DOUBLE_EQ(full->accuracy(), 0.8);
  EXPECT_DOUBLE_EQ(full->train_seconds(), 50);

  // The controller's stop arrives with epoch 2's heartbeat (time_scale makes
  // the replay wait for it): epochs 1 and 2 only, rewarded from them.
  task.mutable_evaluator()->mutable_lookup()->set_time_scale(0.001);
  std::atomic<bool> stop{false};
  seen.clear();
  context.stop_early = &stop;
  context.on_epoch = [&](const v1::EpochResult& e) {
    seen.push_back(e);
    if (e.epoch() == 2) stop = true;
  };
  absl::StatusOr<v1::TrialMetrics> stopped = NewLookupEvaluator()->Evaluate(task, context);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(stopped->epochs_size(), 2);
  EXPECT_DOUBLE_EQ(stopped->accuracy(), 0.6);
  EXPECT_DOUBLE_EQ(stopped->reward(), 0.6);
  EXPECT_DOUBLE_EQ(stopped->train_seconds(), 25);
}

TEST(LookupEvaluatorTest, BadCurveColumnsAreRefusedNamingTheProblem) {
  EXPECT_NE(ParseLookupTable("arch,accuracy,val_accuracy_e1,val_accuracy_e3\na,0.5,0.1,0.2\n", "t.csv")
                .status()
                .message()
                .find("t.csv: curve columns must be val_accuracy_e1 ... val_accuracy_eN without a gap"),
            std::string::npos);
  EXPECT_EQ(ParseLookupTable("arch,accuracy,val_accuracy_e1\na,0.5,1.5\n", "t.csv").status().message(),
            "t.csv line 2: val_accuracy_e1 '1.5' is not in [0, 1]");
  EXPECT_EQ(ParseLookupTable("arch,accuracy,val_accuracy_e0\na,0.5,0.1\n", "t.csv").status().message(),
            "t.csv: curve column 'val_accuracy_e0' is not a new epoch from 1");
  EXPECT_EQ(ParseLookupTable("arch,accuracy,seconds_per_epoch\na,0.5,-1\n", "t.csv").status().message(),
            "t.csv line 2: seconds_per_epoch '-1' is not in [0, 1e7)");
}

}  // namespace
}  // namespace nas::worker
