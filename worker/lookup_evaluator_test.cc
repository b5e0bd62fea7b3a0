#include "worker/lookup_evaluator.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
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

// Tables live under TEST_TMPDIR, this test's one data root.
EvaluatorOptions TestOptions() {
  EvaluatorOptions options;
  options.data_roots = {std::getenv("TEST_TMPDIR")};
  return options;
}

std::unique_ptr<Evaluator> Lookup() { return NewLookupEvaluator(TestOptions()); }

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
  absl::StatusOr<v1::TrialMetrics> metrics = Lookup()->Evaluate(task, {});
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_DOUBLE_EQ(metrics->accuracy(), 0.75);
  EXPECT_EQ(metrics->parameters(), 42);
  EXPECT_DOUBLE_EQ(metrics->reward(), 0.75);
}

TEST(LookupEvaluatorTest, AnArchitectureMissingFromTheTableIsNotFound) {
  const std::string table = WriteTable("missing.csv", "arch,accuracy\n|none~0|+|none~0|none~1|,0.1\n");
  absl::StatusOr<v1::TrialMetrics> metrics =
      Lookup()->Evaluate(LookupTask(table, {1, 1, 1}), {});
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
  EXPECT_EQ(Lookup()->Evaluate(task, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Issue 18 rows 2-4: a job names any path as its table.
TEST(LookupEvaluatorTest, TablesAreReadOnlyUnderTheRootsAndOnlyRegularFilesUpToACap) {
  const std::string root = std::getenv("TEST_TMPDIR");
  const std::string secret = WriteTable("secret.csv", "arch,accuracy\nx,SECRET\n");
  EvaluatorOptions outside = TestOptions();
  outside.data_roots = {root + "/elsewhere"};
  // Outside the roots: the same answer whether the file exists or not.
  const absl::Status existing = NewLookupEvaluator(outside)->Evaluate(LookupTask(secret, {0, 0, 0}), {}).status();
  const absl::Status absent =
      NewLookupEvaluator(outside)->Evaluate(LookupTask(root + "/absent.csv", {0, 0, 0}), {}).status();
  EXPECT_EQ(existing.code(), absl::StatusCode::kFailedPrecondition) << existing;
  EXPECT_NE(existing.message().find("is not under the worker's --data_roots"), std::string::npos) << existing;
  EXPECT_EQ(existing.message().substr(existing.message().find(" is not")),
            absent.message().substr(absent.message().find(" is not")));
  for (const char* path : {"/etc/shadow", "/dev/zero", "/proc/self/environ"}) {
    const absl::Status status = Lookup()->Evaluate(LookupTask(path, {0, 0, 0}), {}).status();
    EXPECT_NE(status.message().find("is not under the worker's --data_roots"), std::string::npos) << status;
  }
  // ".." and symlinks do not lead out.
  const absl::Status dotdot =
      Lookup()->Evaluate(LookupTask(root + "/../../../../../../../etc/passwd", {0, 0, 0}), {}).status();
  EXPECT_NE(dotdot.message().find("is not under"), std::string::npos) << dotdot;
  ASSERT_EQ(::symlink("/etc/passwd", (root + "/link.csv").c_str()), 0);
  const absl::Status link = Lookup()->Evaluate(LookupTask(root + "/link.csv", {0, 0, 0}), {}).status();
  EXPECT_NE(link.message().find("is not under"), std::string::npos) << link;
  // A FIFO (nobody writes it: opening it blocking would never return) and a
  // directory are refused at once.
  ASSERT_EQ(::mkfifo((root + "/fifo.csv").c_str(), 0600), 0);
  const absl::Status fifo = Lookup()->Evaluate(LookupTask(root + "/fifo.csv", {0, 0, 0}), {}).status();
  EXPECT_NE(fifo.message().find("is a FIFO; only regular files are read"), std::string::npos) << fifo;
  const absl::Status dir = Lookup()->Evaluate(LookupTask(root, {0, 0, 0}), {}).status();
  EXPECT_NE(dir.message().find("is a directory"), std::string::npos) << dir;
  // Over the cap.
  EvaluatorOptions small = TestOptions();
  small.max_table_bytes = 16;
  const absl::Status big = NewLookupEvaluator(small)->Evaluate(LookupTask(secret, {0, 0, 0}), {}).status();
  EXPECT_NE(big.message().find("the limit is 16 bytes"), std::string::npos) << big;
  // Inside the roots, a malformed cell is named by line and column, not shown.
  const absl::Status parsed = Lookup()->Evaluate(LookupTask(secret, {0, 0, 0}), {}).status();
  EXPECT_NE(parsed.message().find("line 2, column 'accuracy': not a number in [0, 1]"), std::string::npos)
      << parsed;
  for (const absl::Status& status : {existing, absent, dotdot, link, fifo, dir, big, parsed}) {
    EXPECT_EQ(status.message().find("SECRET"), std::string::npos) << status;
    EXPECT_EQ(status.message().find("root:"), std::string::npos) << status;
  }
}

TEST(LookupEvaluatorTest, ParseErrorsNameTheLineAndColumnNeverTheCell) {
  EXPECT_EQ(ParseLookupTable("arch,accuracy\na,0.5\nb,1.5\n", "t").status().message(),
            "t line 3, column 'accuracy': not a number in [0, 1]");
  EXPECT_EQ(ParseLookupTable("arch,accuracy\nSECRET,0.5\nSECRET,0.5\n", "t").status().message(),
            "t line 3, column 'arch': an architecture an earlier line has");
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
  absl::StatusOr<v1::TrialMetrics> full = Lookup()->Evaluate(task, context);
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
  absl::StatusOr<v1::TrialMetrics> stopped = Lookup()->Evaluate(task, context);
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
  // Like every parse error: the line and column, never a cell's text.
  EXPECT_EQ(ParseLookupTable("arch,accuracy,val_accuracy_e1\na,0.5,1.5\n", "t.csv").status().message(),
            "t.csv line 2, column 'val_accuracy_e1': not a number in [0, 1]");
  EXPECT_EQ(ParseLookupTable("arch,accuracy,val_accuracy_e1\na,0.5,SECRET\n", "t.csv").status().message(),
            "t.csv line 2, column 'val_accuracy_e1': not a number in [0, 1]");
  EXPECT_EQ(ParseLookupTable("arch,accuracy,val_accuracy_e0\na,0.5,0.1\n", "t.csv").status().message(),
            "t.csv line 1, column 3: a val_accuracy_e column that is not a new epoch from 1");
  EXPECT_EQ(ParseLookupTable("arch,accuracy,seconds_per_epoch\na,0.5,SECRET\n", "t.csv").status().message(),
            "t.csv line 2, column 'seconds_per_epoch': not a number in [0, 1e7)");
}

}  // namespace
}  // namespace nas::worker
