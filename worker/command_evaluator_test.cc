#include "worker/command_evaluator.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "gtest/gtest.h"

namespace nas::worker {
namespace {

std::string TempDir() {
  std::string pattern = std::string(absl::StripSuffix(::testing::TempDir(), "/")) + "/command_test_XXXXXX";
  EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
  return pattern;
}

// A task whose command is `sh -c script`; $T names a scratch directory of
// the test.
v1::Task ShellTask(const std::string& script, const std::string& scratch) {
  v1::Task task;
  task.set_task_id("job-1/t-7#2");
  task.set_job_id("job-1");
  task.set_trial_id("t-7");
  task.set_attempt(2);
  v1::CellSpace* space = task.mutable_search_space()->mutable_cell();
  space->set_num_nodes(3);
  space->add_operations("none");
  space->add_operations("nor_conv_3x3");
  v1::CellArchitecture* cell = task.mutable_architecture()->mutable_cell();
  cell->set_num_nodes(3);
  for (const char* op : {"nor_conv_3x3", "none", "nor_conv_3x3"}) cell->add_edge_operations(op);
  task.mutable_architecture()->set_canonical("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|");
  v1::CommandEvaluatorSpec* command = task.mutable_evaluator()->mutable_command();
  command->add_argv("/bin/sh");
  command->add_argv("-c");
  command->add_argv(script);
  command->set_epochs(3);
  command->set_grace_seconds(1);
  v1::EnvVar* var = command->add_env();
  var->set_name("T");
  var->set_value(scratch);
  task.mutable_reward()->set_last_epochs(1);
  task.mutable_reward()->set_power(1);
  return task;
}

EvaluatorOptions Allowed(const std::string& work_dir) {
  EvaluatorOptions options;
  options.allow_command = true;
  options.command_work_dir = work_dir;
  options.device = "cpu";
  return options;
}

TEST(ParseMetricLineTest, EpochAndFinalLinesOrdinaryOutputAndBadValues) {
  auto line = ParseMetricLine(R"({"epoch": 3, "accuracy": 0.91, "loss": 0.30, "note": "x"})");
  ASSERT_TRUE(line.ok() && line->has_value()) << line.status();
  EXPECT_EQ((*line)->epoch, 3);
  EXPECT_EQ((*line)->accuracy, 0.91);
  EXPECT_EQ((*line)->loss, 0.30);
  line = ParseMetricLine(R"(  {"accuracy": 0.93, "parameters": 123456}  )");
  ASSERT_TRUE(line.ok() && line->has_value()) << line.status();
  EXPECT_FALSE((*line)->epoch.has_value());
  EXPECT_EQ((*line)->parameters, 123456);
  // Python's json writes NaN: a diverged loss is "not reported".
  line = ParseMetricLine(R"({"epoch": 1, "accuracy": 0.1, "loss": NaN, "tag": "NaN"})");
  ASSERT_TRUE(line.ok() && line->has_value()) << line.status();
  EXPECT_FALSE((*line)->loss.has_value());
  // Ordinary output.
  for (const char* text : {"Epoch 1/3 ....", "{'accuracy': 0.5}", "{\"lr\": 0.1}", "{not json", ""}) {
    line = ParseMetricLine(text);
    ASSERT_TRUE(line.ok()) << text;
    EXPECT_FALSE(line->has_value()) << text;
  }
  // Metric lines with bad values name the key.
  for (const auto& [text, message] : std::vector<std::pair<std::string, std::string>>{
           {R"({"accuracy": 1.5})", "\"accuracy\" must be in [0, 1], got 1.5"},
           {R"({"accuracy": NaN})", "\"accuracy\" must not be NaN or infinite"},
           {R"({"accuracy": "high"})", "\"accuracy\" must be a number"},
           {R"({"epoch": 0, "accuracy": 0.5})", "\"epoch\" must be an integer >= 1, got 0"},
           {R"({"epoch": 1.5, "accuracy": 0.5})", "\"epoch\" must be an integer >= 1, got 1.5"},
           {R"({"accuracy": 0.5, "parameters": -1})", "\"parameters\" must be an integer >= 0, got -1"}}) {
    line = ParseMetricLine(text);
    EXPECT_EQ(line.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_EQ(line.status().message(), message) << text;
  }
}

TEST(CommandEvaluatorTest, RefusedUnlessTheWorkerAllowsCommandsForGood) {
  EvaluatorOptions options;  // allow_command is false by default
  options.command_work_dir = TempDir();
  std::unique_ptr<Evaluator> evaluator = NewCommandEvaluator(options);
  const std::string scratch = TempDir();
  absl::StatusOr<v1::TrialMetrics> result =
      evaluator->Evaluate(ShellTask("touch $T/ran", scratch), EvaluationContext());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(result.status().message().find("--allow_command_evaluator"), std::string::npos) << result.status();
  EXPECT_TRUE(IsPermanent(result.status()));
  EXPECT_FALSE(ReadFile(scratch + "/ran").ok()) << "the command ran";
}

TEST(CommandEvaluatorTest, RunsInAWorkingDirectoryWithTheExportAndReportsEpochsAndTheFinalLine) {
  const std::string scratch = TempDir();
  const std::string work = TempDir();
  // Checks its files, records its environment, prints lines between chatter.
  const std::string script = R"sh(
set -e
grep -q nor_conv_3x3 "$NAS_ARCHITECTURE_JSON"
grep -q "class ChildNet" "$NAS_MODEL_PY"
test -d "$NAS_OUTPUT_DIR"
test "$(pwd)" = "$NAS_WORK_DIR"
env | grep '^NAS_' | sort > $T/env
echo "loading data"
echo '{"epoch": 1, "accuracy": 0.5, "loss": 1.2, "train_accuracy": 0.4}'
echo "warning on stderr" >&2
echo '{"epoch": 2, "accuracy": 0.7, "loss": 0.9}'
echo '{"accuracy": 0.75, "parameters": 1234, "flops": 99}'
)sh";
  std::unique_ptr<Evaluator> evaluator = NewCommandEvaluator(Allowed(work));
  std::vector<v1::EpochResult> epochs;
  std::string output;
  EvaluationContext context;
  context.on_epoch = [&](const v1::EpochResult& e) { epochs.push_back(e); };
  context.on_output = [&](absl::string_view chunk) { output.append(chunk.data(), chunk.size()); };
  absl::StatusOr<v1::TrialMetrics> result = evaluator->Evaluate(ShellTask(script, scratch), context);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_EQ(epochs[0].epoch(), 1);
  EXPECT_EQ(epochs[0].validation_accuracy(), 0.5);
  EXPECT_EQ(epochs[0].train_loss(), 1.2);
  EXPECT_EQ(epochs[0].train_accuracy(), 0.4);
  EXPECT_EQ(epochs[1].validation_accuracy(), 0.7);
  EXPECT_EQ(result->epochs_size(), 2);
  EXPECT_EQ(result->accuracy(), 0.75);
  EXPECT_EQ(result->reward(), 0.75);
  EXPECT_EQ(result->parameters(), 1234);
  EXPECT_EQ(result->flops(), 99);
  EXPECT_EQ(result->device(), "cpu");
  EXPECT_NE(output.find("loading data"), std::string::npos);
  EXPECT_NE(output.find("warning on stderr"), std::string::npos);
  absl::StatusOr<std::string> env = ReadFile(scratch + "/env");
  ASSERT_TRUE(env.ok()) << env.status();
  for (const char* expected : {"NAS_JOB_ID=job-1\n", "NAS_TRIAL_ID=t-7\n", "NAS_ATTEMPT=2\n", "NAS_DEVICE=cpu\n",
                               "NAS_EPOCHS=3\n"}) {
    EXPECT_NE(env->find(expected), std::string::npos) << expected << " in\n" << *env;
  }
  EXPECT_NE(env->find("NAS_MODEL_PY=" + work + "/job-1-t-7-2-"), std::string::npos) << *env;
  // The working directory is gone afterwards.
  EXPECT_TRUE(std::filesystem::is_empty(work));
}

TEST(CommandEvaluatorTest, ANonZeroExitFailsTheAttemptWithTheEndOfStderr) {
  std::unique_ptr<Evaluator> evaluator = NewCommandEvaluator(Allowed(TempDir()));
  absl::StatusOr<v1::TrialMetrics> result = evaluator->Evaluate(
      ShellTask("echo '{\"epoch\": 1, \"accuracy\": 0.5}'; echo 'Traceback: CUDA out of memory' >&2; exit 3",
                TempDir()),
      EvaluationContext());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(result.status().message(),
            "the command exited with status 3; the end of its stderr: Traceback: CUDA out of memory");
  EXPECT_FALSE(IsPermanent(result.status())) << "another attempt may succeed";
}

TEST(CommandEvaluatorTest, ABadMetricLineOrNoMetricLineFailsForGood) {
  std::unique_ptr<Evaluator> evaluator = NewCommandEvaluator(Allowed(TempDir()));
  absl::StatusOr<v1::TrialMetrics> result = evaluator->Evaluate(
      ShellTask("echo hello; echo '{\"epoch\": 1, \"accuracy\": 91}'; sleep 300", TempDir()),
      EvaluationContext());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("metric line 2 is invalid: \"accuracy\" must be in [0, 1], got 91"),
            std::string::npos)
      << result.status();
  result = evaluator->Evaluate(ShellTask("echo done", TempDir()), EvaluationContext());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("without printing a metric line"), std::string::npos)
      << result.status();
  // Epoch lines without a final line: the accuracy of the last epochs.
  result = evaluator->Evaluate(
      ShellTask("echo '{\"epoch\": 1, \"accuracy\": 0.5}'; printf '{\"epoch\": 2, \"accuracy\": 0.6}'", TempDir()),
      EvaluationContext());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->accuracy(), 0.6) << "the last line had no newline and still counts";
}

// The pid the script wrote to $T/pid, once it is there.
ProcessId WaitForPid(const std::string& scratch) {
  absl::StatusOr<std::string> text = WaitForFile(scratch + "/pid", absl::Seconds(20));
  EXPECT_TRUE(text.ok()) << text.status();
  int pid = 0;
  EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(text.value_or("")), &pid));
  return IdentifyProcess(pid).value_or(ProcessId{});
}

bool GoneWithin(const ProcessId& id, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (IsRunning(id) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  return !IsRunning(id);
}

TEST(CommandEvaluatorTest, ACancelEndsTheWholeProcessGroupEvenOneIgnoringSigterm) {
  const std::string scratch = TempDir();
  // A grandchild that ignores SIGTERM: SIGKILL after the 1 s grace ends it.
  const std::string script =
      "sh -c 'trap \"\" TERM; sleep 300 & wait' & echo $! > $T/pid; echo ready; wait";
  std::unique_ptr<Evaluator> evaluator = NewCommandEvaluator(Allowed(TempDir()));
  std::atomic<bool> cancelled{false};
  EvaluationContext context;
  context.cancelled = &cancelled;
  context.on_output = [&](absl::string_view chunk) {
    if (absl::StrContains(chunk, "ready")) cancelled = true;
  };
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::TrialMetrics> result = evaluator->Evaluate(ShellTask(script, scratch), context);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << result.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(60));
  const ProcessId grandchild = WaitForPid(scratch);
  EXPECT_TRUE(GoneWithin(grandchild, absl::Seconds(10))) << "a process of the group survived";
}

TEST(CommandEvaluatorTest, AnEarlyStopEndsTheCommandAndKeepsTheEpochsSoFar) {
  const std::string scratch = TempDir();
  const std::string script =
      "echo '{\"epoch\": 1, \"accuracy\": 0.3}'; echo '{\"epoch\": 2, \"accuracy\": 0.4}'; "
      "sleep 300 & echo $! > $T/pid; wait";
  std::unique_ptr<Evaluator> evaluator = NewCommandEvaluator(Allowed(TempDir()));
  std::atomic<bool> stop{false};
  EvaluationContext context;
  context.stop_early = &stop;
  context.on_epoch = [&](const v1::EpochResult& e) {
    if (e.epoch() == 2) stop = true;
  };
  absl::StatusOr<v1::TrialMetrics> result = evaluator->Evaluate(ShellTask(script, scratch), context);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->epochs_size(), 2);
  EXPECT_EQ(result->accuracy(), 0.4);
}

TEST(CommandEvaluatorTest, WallTimeAndOutputLimitsKillTheCommandForGood) {
  std::unique_ptr<Evaluator> evaluator = NewCommandEvaluator(Allowed(TempDir()));
  v1::Task slow = ShellTask("sleep 300", TempDir());
  slow.mutable_evaluator()->mutable_command()->set_timeout_seconds(0.5);
  absl::StatusOr<v1::TrialMetrics> result = evaluator->Evaluate(slow, EvaluationContext());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(result.status().message().find("timeout_seconds (0.5 s)"), std::string::npos) << result.status();

  v1::Task chatty = ShellTask("while true; do echo xxxxxxxxxxxxxxxxxxxxxxxx; done", TempDir());
  chatty.mutable_evaluator()->mutable_command()->set_max_output_bytes(100000);
  result = evaluator->Evaluate(chatty, EvaluationContext());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(result.status().message().find("max_output_bytes (100000 bytes)"), std::string::npos)
      << result.status();

  // The address-space limit: the command sees it (ulimit -v is in KiB).
  v1::Task hungry = ShellTask("ulimit -v; exit 1", TempDir());
  hungry.mutable_evaluator()->mutable_command()->set_max_memory_bytes(int64_t{512} << 20);
  std::string output;
  EvaluationContext context;
  context.on_output = [&](absl::string_view chunk) { output.append(chunk.data(), chunk.size()); };
  (void)evaluator->Evaluate(hungry, context);
  EXPECT_EQ(output, "524288\n");
}

TEST(CommandEvaluatorTest, AMissingProgramFailsForGoodNamingIt) {
  std::unique_ptr<Evaluator> evaluator = NewCommandEvaluator(Allowed(TempDir()));
  v1::Task task = ShellTask("", TempDir());
  task.mutable_evaluator()->mutable_command()->set_argv(0, "no-such-trainer-h22a");
  absl::StatusOr<v1::TrialMetrics> result = evaluator->Evaluate(task, EvaluationContext());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(result.status().message().find("no-such-trainer-h22a"), std::string::npos) << result.status();
  EXPECT_TRUE(IsPermanent(result.status()));
}

}  // namespace
}  // namespace nas::worker
