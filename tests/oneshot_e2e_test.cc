// One-shot search end to end through the CLI, as a user runs it (issue 21,
// docs/one_shot.md): `nasctl local up --shards=2 --workers=2` starts real
// processes; a tiny ENAS job and a tiny DARTS job are submitted with
// `nasctl submit --watch`. The search trials must show that the children
// were scored with the shared weights ω held on the two parameter servers
// (each search trial's SharedStats: steps taken, pushes applied, bytes moved,
// and the ω version it was scored at, which advances over the job), and the
// job's final trials must have been trained from scratch by the train
// evaluator (final_training, a learning curve, no shared stats), one per
// chosen architecture, which `nasctl export` turns into a standalone model.
#include <sys/wait.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace nas {
namespace {

using ::nas::testing::BinaryPath;
using ::nas::testing::NewTempDir;
using Result = ::nas::testing::CommandResult;

class OneShotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = NewTempDir("oneshot");
    Result up = Nasctl({"local", "up", "--shards=2", "--workers=2", "--controller_port=0",
                        "--bin_dir=" + BinaryPath(""), "--device=cpu"},
                       absl::Seconds(120));
    ASSERT_EQ(up.exit_code, 0) << up.output;
    Result address = Nasctl({"local", "address"});
    ASSERT_EQ(address.exit_code, 0) << address.output;
    server_ = std::string(absl::StripAsciiWhitespace(address.output));
  }

  void TearDown() override {
    server_.clear();
    Result down = Nasctl({"local", "down"}, absl::Seconds(60));
    EXPECT_EQ(down.exit_code, 0) << down.output;
  }

  Result Run(const std::vector<std::string>& argv, absl::Duration timeout) {
    return ::nas::testing::RunCommand(argv, dir_, timeout);
  }

  Result Nasctl(std::vector<std::string> args, absl::Duration timeout = absl::Seconds(60)) {
    std::vector<std::string> argv = {BinaryPath("client/nasctl")};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!args.empty() && args[0] == "local") argv.push_back("--data_dir=" + dir_ + "/cluster");
    if (!server_.empty()) argv.push_back("--server=" + server_);
    return Run(argv, timeout);
  }

  // Submits `yaml`, watches it to the end and returns the job id.
  std::string SubmitAndWatch(const std::string& name, const std::string& yaml) {
    const std::string path = absl::StrCat(dir_, "/", name, ".yaml");
    EXPECT_TRUE(WriteFileAtomically(path, yaml).ok());
    Result submit = Nasctl({"submit", path, "--watch"}, absl::Seconds(420));
    EXPECT_EQ(submit.exit_code, 0) << submit.output;
    EXPECT_NE(submit.output.find("succeeded"), std::string::npos) << submit.output;
    Result list = Nasctl({"list", "-o", "csv", "--no-headers"});
    for (absl::string_view row : absl::StrSplit(list.output, '\n', absl::SkipEmpty())) {
      std::vector<std::string> cells = absl::StrSplit(row, ',');
      if (cells.size() > 2 && cells[1] == name) return cells[0];
    }
    ADD_FAILURE() << "job " << name << " not listed: " << list.output;
    return "";
  }

  // Runs the Python `check` on the job's trials as JSON (variable `t`).
  void CheckTrials(const std::string& job_id, const std::string& check) {
    Result json = Nasctl({"trials", job_id, "-o", "json", "--sort-by", "sequence"});
    ASSERT_EQ(json.exit_code, 0) << json.output;
    const std::string path = absl::StrCat(dir_, "/trials-", job_id, ".json");
    ASSERT_TRUE(WriteFileAtomically(path, json.output).ok());
    Result checked = Run({"/usr/bin/python3", "-c",
                          "import json,sys; t=json.load(open(sys.argv[1]))\n" + check, path},
                         absl::Seconds(30));
    EXPECT_EQ(checked.exit_code, 0) << checked.output << "\n" << json.output;
  }

  std::string dir_, server_;
};

// What both jobs search and how their final trials train.
constexpr char kSpace[] = R"(
search_space:
  cell: {num_nodes: 3, operations: [none, skip_connect, nor_conv_3x3, avg_pool_3x3],
         cells_per_stage: 1, initial_channels: 8}
)";
constexpr char kEvaluator[] = R"(
evaluator:
  shared:
    data: {dataset: fashion_mnist, batch_size: 32, train_size: 1024, validation_size: 256}
    train_steps: 4
    reward_batches: 2
    max_staleness: 8
    final_top_k: %K%
    final_training: {dataset: fashion_mnist, epochs: 1, batch_size: 32, train_size: 256,
                     validation_size: 128}
  max_attempts: 2
  lease_seconds: 60
)";

// A job `name` of `strategy` with `children` per round, `trials` search
// tasks and the top `k` trained from scratch.
std::string JobYaml(const std::string& name, const std::string& strategy, double learning_rate, int children,
                    int trials, int k) {
  std::string evaluator = kEvaluator;
  evaluator.replace(evaluator.find("%K%"), 3, std::to_string(k));
  return absl::StrCat("name: ", name, "\n", kSpace, "strategy: {name: ", strategy, ", seed: 3}\n",
                      "controller: {learning_rate: ", learning_rate, "}\n",
                      "parallelism: {num_replicas: 1, children_per_replica: ", children, "}\n",
                      "budget: {max_trials: ", trials, "}\n", evaluator);
}

// The shared checks: search trials scored with ω, final trials trained.
constexpr char kCommonChecks[] = R"(
search = [x for x in t if not x.get('final_training')]
final = [x for x in t if x.get('final_training')]
assert all(x['state'] == 'succeeded' for x in t), [x['state'] for x in t]
for x in search:
    s = x['metrics']['shared']
    assert int(s['train_steps']) == 4, s
    assert int(s['pushes_applied']) >= 1, s
    assert int(s['bytes_pulled']) > 0 and int(s['bytes_pushed']) > 0, s
    assert int(s['omega_version']) > 0, s
versions = [int(x['metrics']['shared']['omega_version']) for x in search]
assert max(versions[len(versions)//2:]) > min(versions[:len(versions)//2]), versions
for x in final:
    m = x['metrics']
    assert 'shared' not in m or int(m['shared'].get('omega_version', 0)) == 0, m
    assert len(m['epochs']) == 1 and m['accuracy'] > 0, m
)";

TEST_F(OneShotTest, EnasScoresChildrenWithSharedWeightsAndTrainsTheTopTwoFromScratch) {
  const std::string job = SubmitAndWatch("enas", JobYaml("enas", "reinforce", 0.01, 2, 8, 2));
  ASSERT_FALSE(job.empty());
  CheckTrials(job, absl::StrCat(kCommonChecks, R"(
assert len(search) == 8, len(search)
assert len(final) == 2, [x['architecture']['canonical'] for x in final]
# Each final architecture was searched, and its one-shot score is the
# reward one of its search tasks earned with the shared weights.
for x in final:
    c = x['architecture']['canonical']
    rewards = [y['metrics']['reward'] for y in search if y['architecture']['canonical'] == c]
    assert rewards, c
    assert any(abs(x['one_shot_score'] - r) < 1e-9 for r in rewards), (x['one_shot_score'], rewards)
assert len({x['architecture']['canonical'] for x in final}) == 2
)"));
  // The job's best trial is a final one, and it exports to a standalone
  // network.
  Result exported = Nasctl({"export", job, "--out", dir_ + "/export"});
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_TRUE(ReadFile(dir_ + "/export/model.py").ok());
  const std::string summary = ReadFile(dir_ + "/export/summary.txt").value_or("");
  const size_t at = summary.find("\ntrial");
  ASSERT_NE(at, std::string::npos) << summary;
  const size_t line_end = summary.find('\n', at + 1);
  const std::string trial_id(
      absl::StripAsciiWhitespace(summary.substr(at + 6, line_end - at - 6)));
  Result trial = Nasctl({"trial", job, trial_id, "-o", "json"});
  ASSERT_EQ(trial.exit_code, 0) << trial.output;
  EXPECT_NE(trial.output.find("\"final_training\": true"), std::string::npos) << trial.output;
}

TEST_F(OneShotTest, DartsLearnsAlphaOnTheServersAndTrainsItsArgmaxFromScratch) {
  const std::string job = SubmitAndWatch("darts", JobYaml("darts", "darts", 0.003, 1, 6, 1));
  ASSERT_FALSE(job.empty());
  CheckTrials(job, absl::StrCat(kCommonChecks, R"(
assert len(search) == 6, len(search)
assert len(final) == 1, len(final)
)"));
}

}  // namespace
}  // namespace nas
