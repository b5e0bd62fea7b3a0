// End to end through the CLI, as a user runs it: `nasctl local up` starts a
// real cluster of processes, a job is submitted and watched to completion,
// its trials are listed in every output format, filtered by state and
// sorted, one is shown in detail (`nasctl trial`), the best one is exported
// (the PyTorch module must compile), and `nasctl local down` leaves no
// process behind. Without a cluster: --help and usage errors exit as
// docs/cli.md says, and the bash completion script completes commands,
// flags and their values.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/numbers.h"
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
using ::nas::testing::RunCommand;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = NewTempDir("cli");
    data_ = dir_ + "/cluster";
    nasctl_ = BinaryPath("client/nasctl");
    bin_dir_ = BinaryPath("");
  }

  Result Nasctl(std::vector<std::string> args, absl::Duration timeout = absl::Seconds(60)) {
    std::vector<std::string> argv = {nasctl_};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!args.empty() && args[0] == "local") argv.push_back("--data_dir=" + data_);
    if (!server_.empty()) argv.push_back("--server=" + server_);
    return RunCommand(argv, dir_, timeout);
  }

  std::vector<int> RecordedPids() {
    std::vector<int> pids;
    std::ifstream in(data_ + "/cluster.txt");
    std::string line;
    while (std::getline(in, line)) {
      // name, pid, start time, log, ready file, argv... (tab-separated).
      std::vector<std::string> fields = absl::StrSplit(line, '\t');
      int pid = 0;
      if (fields.size() >= 6 && absl::SimpleAtoi(fields[1], &pid)) pids.push_back(pid);
    }
    return pids;
  }

  std::string dir_, data_, nasctl_, bin_dir_, server_;
};

TEST_F(CliTest, LocalClusterSubmitWatchTrialsExportAndDownLeaveNoProcessBehind) {
  Result up = Nasctl({"local", "up", "--shards=2", "--workers=2", "--controller_port=0",
                      "--bin_dir=" + bin_dir_, "--device=cpu"},
                     absl::Seconds(120));
  ASSERT_EQ(up.exit_code, 0) << up.output;
  std::vector<int> pids = RecordedPids();
  ASSERT_EQ(pids.size(), 5u);
  Result address = Nasctl({"local", "address"});
  ASSERT_EQ(address.exit_code, 0) << address.output;
  server_ = std::string(absl::StripAsciiWhitespace(address.output));
  Result status = Nasctl({"local", "status"});
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_EQ(std::count(status.output.begin(), status.output.end(), '\n'), 6) << status.output;

  // A synthetic job and a very short real training job.
  const std::string synthetic = dir_ + "/synthetic.yaml";
  ASSERT_TRUE(WriteFileAtomically(synthetic, R"(
name: e2e-synthetic
search_space:
  macro_cnn: {filter_heights: [3, 5], filter_widths: [3, 5], num_filters: [24, 64], skip_connections: true,
              depth: {initial_layers: 3, max_layers: 3}}
strategy: {name: reinforce, seed: 1}
controller: {learning_rate: 0.01}
parallelism: {num_replicas: 2, children_per_replica: 3}
budget: {max_trials: 30, max_samples: 30}
evaluator: {synthetic: {duration_seconds: 0.01}}
)").ok());
  const std::string trained = dir_ + "/trained.yaml";
  ASSERT_TRUE(WriteFileAtomically(trained, R"(
name: e2e-train
search_space:
  macro_cnn: {filter_heights: [3], filter_widths: [3], num_filters: [8, 16], strides: [2],
              skip_connections: true, depth: {initial_layers: 2, max_layers: 2}}
strategy: {name: random, seed: 1}
parallelism: {num_replicas: 1, children_per_replica: 2}
budget: {max_trials: 2, max_samples: 2}
evaluator:
  train: {dataset: fashion_mnist, epochs: 1, batch_size: 32, train_size: 256, validation_size: 128}
)").ok());
  for (const std::string& spec : {synthetic, trained}) {
    Result submit = Nasctl({"submit", spec, "--watch"}, absl::Seconds(240));
    ASSERT_EQ(submit.exit_code, 0) << submit.output;
    EXPECT_NE(submit.output.find("succeeded"), std::string::npos) << submit.output;
  }
  Result list = Nasctl({"list", "-o", "csv"});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  std::vector<std::string> rows = absl::StrSplit(list.output, '\n', absl::SkipEmpty());
  ASSERT_EQ(rows.size(), 3u) << list.output;
  EXPECT_EQ(rows[0].substr(0, 11), "job_id,name");
  std::string synthetic_job, trained_job;
  for (size_t i = 1; i < rows.size(); ++i) {
    std::vector<std::string> cells = absl::StrSplit(rows[i], ',');
    (cells[1] == "e2e-synthetic" ? synthetic_job : trained_job) = cells[0];
    EXPECT_EQ(cells[2], "succeeded") << rows[i];
  }

  Result csv = Nasctl({"trials", synthetic_job, "-o", "csv"});
  ASSERT_EQ(csv.exit_code, 0);
  std::vector<std::string> trial_rows = absl::StrSplit(csv.output, '\n', absl::SkipEmpty());
  EXPECT_EQ(trial_rows.size(), 31u);
  EXPECT_EQ(trial_rows[0],
            "trial_id,state,reward,accuracy,parameters,flops,latency_seconds,train_seconds,attempts,"
            "worker_id,canonical,error,cached_from,sequence,created,ended,duration_seconds,final,"
            "one_shot_score,perplexity");

  // -o name, --no-headers, state filters (one spelling, any case) and --sort-by.
  Result names = Nasctl({"list", "-o", "name"});
  ASSERT_EQ(names.exit_code, 0) << names.output;
  EXPECT_EQ(names.output, absl::StrCat(rows[1].substr(0, rows[1].find(',')), "\n",
                                       rows[2].substr(0, rows[2].find(',')), "\n"));
  Result succeeded = Nasctl({"list", "--state=SUCCEEDED", "-o", "csv", "--no-headers"});
  ASSERT_EQ(succeeded.exit_code, 0) << succeeded.output;
  EXPECT_EQ(succeeded.output, absl::StrCat(rows[1], "\n", rows[2], "\n"));
  Result none = Nasctl({"list", "--state", "running,failed", "-o", "name"});
  ASSERT_EQ(none.exit_code, 0) << none.output;
  EXPECT_EQ(none.output, "");
  Result wide = Nasctl({"list", "-o", "wide"});
  ASSERT_EQ(wide.exit_code, 0) << wide.output;
  EXPECT_NE(wide.output.find("SAMPLES"), std::string::npos) << wide.output;
  EXPECT_EQ(std::count(wide.output.begin(), wide.output.end(), '\n'), 3) << wide.output;
  Result by_sequence = Nasctl({"trials", synthetic_job, "--sort-by", "sequence", "-o", "json"});
  ASSERT_EQ(by_sequence.exit_code, 0) << by_sequence.output;
  const std::string sequence_path = dir_ + "/by_sequence.json";
  ASSERT_TRUE(WriteFileAtomically(sequence_path, by_sequence.output).ok());
  Result in_order = RunCommand(
      {"/usr/bin/python3", "-c",
       "import json,sys; t=json.load(open(sys.argv[1])); assert len(t)==30, len(t); "
       "s=[x['sequence'] for x in t]; assert s==sorted(s) and s[0]>=1, s; "
       "assert all(x['end_time_unix_ms']>=x['create_time_unix_ms']>0 for x in t)",
       sequence_path},
      dir_, absl::Seconds(30));
  EXPECT_EQ(in_order.exit_code, 0) << by_sequence.output << in_order.output;
  Result ended = Nasctl({"trials", synthetic_job, "--state=succeeded,failed", "-o", "name",
                         "--sort-by=-reward"});
  ASSERT_EQ(ended.exit_code, 0) << ended.output;
  EXPECT_EQ(std::count(ended.output.begin(), ended.output.end(), '\n'), 30) << ended.output;
  Result queued = Nasctl({"trials", synthetic_job, "--state=queued", "-o", "name"});
  ASSERT_EQ(queued.exit_code, 0) << queued.output;
  EXPECT_EQ(queued.output, "");

  // One trial in detail. Its curve may be empty: only its id and state are checked.
  const std::string best_trial = std::vector<std::string>(absl::StrSplit(trial_rows[1], ','))[0];
  Result trial = Nasctl({"trial", synthetic_job, best_trial});
  ASSERT_EQ(trial.exit_code, 0) << trial.output;
  EXPECT_NE(trial.output.find("trial:             " + best_trial + "\n"), std::string::npos)
      << trial.output;
  EXPECT_NE(trial.output.find("state:             succeeded\n"), std::string::npos)
      << trial.output;
  Result trial_json = Nasctl({"trial", synthetic_job, best_trial, "-o", "json"});
  ASSERT_EQ(trial_json.exit_code, 0) << trial_json.output;
  const std::string trial_json_path = dir_ + "/trial.json";
  ASSERT_TRUE(WriteFileAtomically(trial_json_path, trial_json.output).ok());
  Result trial_parsed =
      RunCommand({"/usr/bin/python3", "-c",
                  "import json,sys; t=json.load(open(sys.argv[1])); "
                  "assert t['trial_id']==sys.argv[2], t['trial_id']; "
                  "assert t['state']=='succeeded', t['state']; "
                  "assert isinstance(t['curve'], list)",
                  trial_json_path, best_trial},
                 dir_, absl::Seconds(30));
  EXPECT_EQ(trial_parsed.exit_code, 0) << trial_json.output << trial_parsed.output;
  Result trial_yaml = Nasctl({"trial", synthetic_job, best_trial, "-o", "yaml"});
  ASSERT_EQ(trial_yaml.exit_code, 0) << trial_yaml.output;
  EXPECT_NE(trial_yaml.output.find("trial_id: " + best_trial + "\n"), std::string::npos)
      << trial_yaml.output;
  Result no_trial = Nasctl({"trial", synthetic_job, "t999999"});
  EXPECT_EQ(no_trial.exit_code, 1) << no_trial.output;
  EXPECT_NE(no_trial.output.find("no trial t999999 in job " + synthetic_job), std::string::npos)
      << no_trial.output;
  Result no_job = Nasctl({"trial", "no-such-job", best_trial});
  EXPECT_EQ(no_job.exit_code, 1) << no_job.output;
  EXPECT_NE(no_job.output.find("no job 'no-such-job'"), std::string::npos) << no_job.output;
  EXPECT_EQ(Nasctl({"trial", synthetic_job}).exit_code, 2);

  Result json = Nasctl({"trials", trained_job, "-o", "json", "--top", "1"});
  ASSERT_EQ(json.exit_code, 0);
  const std::string json_path = dir_ + "/trials.json";
  ASSERT_TRUE(WriteFileAtomically(json_path, json.output).ok());
  Result parsed = RunCommand({"/usr/bin/python3", "-c",
                       "import json,sys; t=json.load(open(sys.argv[1])); assert len(t)==1; "
                       "assert t[0]['state']=='succeeded'; assert t[0]['metrics']['accuracy']>0",
                       json_path},
                      dir_, absl::Seconds(30));
  EXPECT_EQ(parsed.exit_code, 0) << json.output << parsed.output;
  Result yaml = Nasctl({"get", trained_job, "-o", "yaml"});
  ASSERT_EQ(yaml.exit_code, 0);
  EXPECT_NE(yaml.output.find("state: succeeded\n"), std::string::npos) << yaml.output;

  const std::string out = dir_ + "/export";
  Result exported = Nasctl({"export", trained_job, "--out", out});
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  for (const char* file : {"/architecture.json", "/summary.txt", "/model.py"}) {
    EXPECT_TRUE(ReadFile(out + file).ok()) << file;
  }
  Result compiled = RunCommand({"/usr/bin/python3", "-m", "py_compile", out + "/model.py"}, dir_, absl::Seconds(30));
  EXPECT_EQ(compiled.exit_code, 0) << compiled.output;

  // Issue 18, row 9: a name that would clear the terminal and forge a row is
  // refused at submit, and the refusal itself shows the bytes escaped.
  const std::string hostile = dir_ + "/hostile.yaml";
  ASSERT_TRUE(WriteFileAtomically(hostile, R"(
name: "\e[2J\e[31mPWNED\e[0m\r\nfake-job   running"
search_space:
  cell: {num_nodes: 3, operations: [none, skip_connect]}
budget: {max_trials: 2}
evaluator: {synthetic: {}}
)").ok());
  Result refused = Nasctl({"submit", hostile});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("name: must be printable UTF-8 (no control characters); got "
                                "\"\\e[2J\\e[31mPWNED\\e[0m\\r\\nfake-job   running\""),
            std::string::npos)
      << refused.output;
  EXPECT_EQ(refused.output.find('\x1b'), std::string::npos) << refused.output;
  Result listed = Nasctl({"list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_EQ(std::count(listed.output.begin(), listed.output.end(), '\n'), 3) << listed.output;
  EXPECT_EQ(listed.output.find('\x1b'), std::string::npos) << listed.output;

  Result unknown = Nasctl({"get", "no-such-job"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.output.find("no job 'no-such-job'"), std::string::npos) << unknown.output;
  Result usage = Nasctl({"trials"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_NE(usage.output.find("JOB is required"), std::string::npos) << usage.output;

  Result down = Nasctl({"local", "down"}, absl::Seconds(120));
  ASSERT_EQ(down.exit_code, 0) << down.output;
  for (int pid : pids) {
    EXPECT_NE(::kill(pid, 0), 0) << "process " << pid << " is still running";
  }
  Result after = Nasctl({"local", "status"});
  EXPECT_NE(after.output.find("no local cluster"), std::string::npos) << after.output;
}

// Issue 18, row 10: `nasctl submit` reads only regular files up to 1 MiB and
// never blocks; a duplicate key and a non-UTF-8 name fail with a message
// naming the problem. None of these needs a controller: they are refused
// before any call.
TEST_F(CliTest, SubmitRefusesWhatIsNotASmallRegularFileOrNotAValidSpec) {
  const std::string fifo = dir_ + "/spec.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string big = dir_ + "/big.yaml";
  {
    std::ofstream out(big);
    out << "name: big\n";
  }
  ASSERT_EQ(::truncate(big.c_str(), 100 << 20), 0);  // 100 MB, sparse
  const struct {
    std::string path;
    std::string message;
  } unreadable[] = {
      {"/dev/zero", "nasctl: /dev/zero is a character device; only regular files are read\n"},
      {fifo, "nasctl: " + fifo + " is a FIFO; only regular files are read\n"},
      {dir_, "nasctl: " + dir_ + " is a directory; only regular files are read\n"},
      {big, "nasctl: " + big + " is 104857600 bytes; the limit is 1 MiB\n"},
  };
  for (const auto& c : unreadable) {
    Result submit = Nasctl({"submit", c.path}, absl::Seconds(30));
    EXPECT_EQ(submit.exit_code, 1) << c.path << "\n" << submit.output;
    EXPECT_EQ(submit.output, c.message);
  }

  const std::string duplicate = dir_ + "/duplicate.yaml";
  ASSERT_TRUE(WriteFileAtomically(duplicate, "name: dup\n"
                                             "budget:\n"
                                             "  max_trials: 5\n"
                                             "  max_trials: 500\n").ok());
  Result dup = Nasctl({"submit", duplicate}, absl::Seconds(30));
  EXPECT_EQ(dup.exit_code, 1) << dup.output;
  EXPECT_NE(dup.output.find("budget: duplicate key 'max_trials' at line 4 (first at line 3)"),
            std::string::npos)
      << dup.output;

  const std::string not_utf8 = dir_ + "/latin1.yaml";
  ASSERT_TRUE(WriteFileAtomically(not_utf8, "name: r\xe9seau\n").ok());
  Result latin1 = Nasctl({"submit", not_utf8}, absl::Seconds(30));
  EXPECT_EQ(latin1.exit_code, 1) << latin1.output;
  EXPECT_NE(latin1.output.find("name: not valid UTF-8 (byte 0xe9 at offset 1): \"r\\xe9seau\""),
            std::string::npos)
      << latin1.output;
}

// docs/cli.md: --help exits 0 with the command's own flags; a usage error
// (unknown flag, a flag of another command, missing argument, bad value)
// exits 2 with a message naming it. No controller is needed: each is decided
// before any call.
TEST_F(CliTest, HelpExitsZeroAndUsageErrorsExitTwoNamingTheProblem) {
  Result help = Nasctl({"--help"});
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_NE(help.output.find("trials"), std::string::npos) << help.output;
  EXPECT_EQ(help.output.find("nasctl: nasctl:"), std::string::npos) << help.output;
  Result list_help = Nasctl({"list", "--help"});
  EXPECT_EQ(list_help.exit_code, 0) << list_help.output;
  EXPECT_NE(list_help.output.find("--sort-by"), std::string::npos) << list_help.output;
  EXPECT_EQ(list_help.output.find("--top"), std::string::npos) << list_help.output;
  Result up_help = Nasctl({"local", "up", "--help"});
  EXPECT_EQ(up_help.exit_code, 0) << up_help.output;
  EXPECT_NE(up_help.output.find("--data_roots"), std::string::npos) << up_help.output;

  const struct {
    std::vector<std::string> args;
    std::string message;
  } usage[] = {
      {{"list", "--top", "5"}, "--top"},
      {{"list", "--bogus"}, "--bogus"},
      {{"trials"}, "JOB is required"},
      {{"trial", "j-1"}, "TRIAL is required"},
      {{"get", "j-1", "-o", "xml"}, "--output: xml not in {table,wide,name,json,yaml,csv}"},
      {{"list", "--state=job_state_running"},
       "--state: unknown job state 'job_state_running'; one of pending, running, succeeded, "
       "cancelled, failed"},
      {{"trials", "j-1", "--state=pending"}, "unknown trial state 'pending'"},
      {{"trials", "j-1", "--sort-by=rewrd"}, "--sort-by: unknown field 'rewrd'"},
      {{"trials", "j-1", "--top=-1"}, "--top"},
      {{"list", "--timeout=soon"}, "--timeout: must be a positive duration"},
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{"local", "sideways"}, "unknown command 'local sideways'"},
      {{"local"}, "local: no subcommand given"},
      {{}, "no command given"},
      {{"completion", "fish"}, "fish not in {bash}"},
  };
  for (const auto& c : usage) {
    Result result = Nasctl(c.args);
    EXPECT_EQ(result.exit_code, 2) << absl::StrJoin(c.args, " ") << "\n" << result.output;
    EXPECT_NE(result.output.find(c.message), std::string::npos)
        << absl::StrJoin(c.args, " ") << "\n" << result.output;
  }
}

// `nasctl completion bash` prints a script bash accepts that completes
// commands, subcommands, flags (a command's and the global ones) and the
// values of -o and --state.
TEST_F(CliTest, BashCompletionCompletesCommandsFlagsAndValues) {
  Result script = Nasctl({"completion", "bash"});
  ASSERT_EQ(script.exit_code, 0) << script.output;
  const std::string path = dir_ + "/nasctl.bash";
  ASSERT_TRUE(WriteFileAtomically(path, script.output).ok());
  Result syntax = RunCommand({"/bin/bash", "-n", path}, dir_, absl::Seconds(30));
  ASSERT_EQ(syntax.exit_code, 0) << syntax.output;
  auto complete = [&](const std::string& words) {
    const std::string line = absl::StrCat(
        "source '", path, "'; COMP_WORDS=(", words, "); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
        "_nasctl; printf '%s\\n' \"${COMPREPLY[@]}\"");
    Result result = RunCommand({"/bin/bash", "-c", line}, dir_, absl::Seconds(30));
    EXPECT_EQ(result.exit_code, 0) << words << "\n" << result.output;
    std::vector<std::string> replies = absl::StrSplit(result.output, '\n', absl::SkipEmpty());
    std::sort(replies.begin(), replies.end());
    return replies;
  };
  using Words = std::vector<std::string>;
  EXPECT_EQ(complete("nasctl lo"), Words({"local", "logs"}));
  EXPECT_EQ(complete("nasctl logs j t --fo"), Words({"--follow"}));
  EXPECT_EQ(complete("nasctl tr"), Words({"trial", "trials"}));
  EXPECT_EQ(complete("nasctl --server=x local ''"),
            Words({"address", "down", "prometheus-config", "restart", "status", "up"}));
  EXPECT_EQ(complete("nasctl local up --sh"), Words({"--shards"}));
  EXPECT_EQ(complete("nasctl list --s"), Words({"--server", "--sort-by", "--sort_by", "--state"}));
  EXPECT_EQ(complete("nasctl trials j-1 --st"), Words({"--state"}));
  EXPECT_EQ(complete("nasctl list -o ''"), Words({"csv", "json", "name", "table", "wide", "yaml"}));
  EXPECT_EQ(complete("nasctl list --state r"), Words({"running"}));
  EXPECT_EQ(complete("nasctl trials j-1 --state q"), Words({"queued"}));
  EXPECT_EQ(complete("nasctl completion ''"), Words({"bash"}));
}

// Issue 23, point 5: a recurrent-cell job's best trial, trained by a worker
// on a slice of Penn Treebank (@ptb) and exported through `nasctl export`,
// gives a model.py that python3-torch imports and runs with the job's sizes
// (tests/recurrent_export_check.py: forward and backward over token ids, the
// spec's parameter count).
TEST_F(CliTest, ARecurrentJobsBestCellExportsAModuleThatPyTorchRuns) {
  char* real = ::realpath(BinaryPath("../ptb/ptb.train.txt.gz").c_str(), nullptr);
  ASSERT_NE(real, nullptr) << BinaryPath("../ptb/ptb.train.txt.gz");
  const std::string ptb = std::string(real).substr(0, std::string(real).rfind('/'));
  ::free(real);
  Result up = Nasctl({"local", "up", "--shards=1", "--workers=1", "--controller_port=0",
                      "--bin_dir=" + bin_dir_, "--device=cpu", "--data_roots=" + ptb},
                     absl::Seconds(120));
  ASSERT_EQ(up.exit_code, 0) << up.output;
  Result address = Nasctl({"local", "address"});
  ASSERT_EQ(address.exit_code, 0) << address.output;
  server_ = std::string(absl::StripAsciiWhitespace(address.output));

  const std::string spec = dir_ + "/recurrent.yaml";
  ASSERT_TRUE(WriteFileAtomically(spec, absl::StrCat(R"(
name: e2e-recurrent
search_space:
  recurrent_cell: {base: 8, combinations: [add, elem_mult],
                   activations: [identity, tanh, sigmoid, relu], cell_inject: true}
strategy: {name: random, seed: 23}
budget: {max_trials: 2}
evaluator:
  train:
    dataset: ptb
    data_dir: )", ptb, R"(
    epochs: 1
    batch_size: 4
    language_model: {embedding_size: 8, hidden_size: 8, tie_weights: true, bptt_steps: 5,
                     train_tokens: 2000, valid_tokens: 400}
)")).ok());
  Result submit = Nasctl({"submit", spec, "--watch"}, absl::Seconds(120));
  ASSERT_EQ(submit.exit_code, 0) << submit.output;
  Result list = Nasctl({"list", "-o", "csv"});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  std::vector<std::string> rows = absl::StrSplit(list.output, '\n', absl::SkipEmpty());
  ASSERT_EQ(rows.size(), 2u) << list.output;
  const std::string job = std::vector<std::string>(absl::StrSplit(rows[1], ','))[0];

  const std::string out = dir_ + "/export-recurrent";
  Result exported = Nasctl({"export", job, "--out", out});
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  absl::StatusOr<std::string> summary = ReadFile(out + "/summary.txt");
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_NE(summary->find("c_{t-1} joins node "), std::string::npos) << *summary;
  EXPECT_NE(summary->find("language model: vocabulary 10000, embedding 8, hidden 8, dropout 0, "
                          "tied weights, "),
            std::string::npos)
      << *summary;
  // Trained: a perplexity, neither 0 (none) nor above the vocabulary (worse than chance).
  const size_t at = summary->find("\nperplexity ");
  ASSERT_NE(at, std::string::npos) << *summary;
  double perplexity = 0;
  ASSERT_TRUE(absl::SimpleAtod(summary->substr(at + 12, summary->find(' ', at + 12) - at - 12),
                               &perplexity))
      << *summary;
  EXPECT_GT(perplexity, 1.0) << *summary;
  EXPECT_LT(perplexity, 10000.0) << *summary;
  Result checked = RunCommand({"/usr/bin/python3", BinaryPath("tests/recurrent_export_check.py"),
                               "--model", out},
                              dir_, absl::Seconds(120));
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_NE(checked.output.find("OK " + out + ": "), std::string::npos) << checked.output;

  Result down = Nasctl({"local", "down"}, absl::Seconds(120));
  EXPECT_EQ(down.exit_code, 0) << down.output;
}

}  // namespace
}  // namespace nas
