// How nasctl prints: `nasctl trial` with its learning curve (the table for
// people, json / yaml / csv carrying the same curve), lists in every format
// with their columns, sorting and state spellings, YAML that reads back as
// what was written, and no control character from a server in any format.
#include "client/output.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/proto_yaml.h"
#include "gtest/gtest.h"

namespace nas::client {
namespace {

v1::Trial TrialWithCurve() {
  v1::Trial trial;
  trial.set_trial_id("t000007");
  trial.set_job_id("j-1");
  trial.set_replica(1);
  trial.set_state(v1::TRIAL_STATE_SUCCEEDED);
  trial.set_attempts(2);
  trial.set_worker_id("worker-3");
  trial.set_create_time_unix_ms(1'000'000);
  trial.set_end_time_unix_ms(1'065'000);
  trial.set_sequence(7);
  v1::Architecture* arch = trial.mutable_architecture();
  arch->set_canonical("L0:3x3/24/s1/in[]|L1:5x5/36/s1/in[0]");
  v1::MacroCnnLayer* l0 = arch->mutable_macro_cnn()->add_layers();
  l0->set_filter_height(3);
  l0->set_filter_width(3);
  l0->set_num_filters(24);
  l0->set_stride(1);
  v1::MacroCnnLayer* l1 = arch->mutable_macro_cnn()->add_layers();
  l1->set_filter_height(5);
  l1->set_filter_width(5);
  l1->set_num_filters(36);
  l1->set_stride(1);
  l1->add_inputs(0);
  trial.mutable_metrics()->set_reward(0.8125);
  trial.mutable_metrics()->set_accuracy(0.875);
  for (int epoch = 1; epoch <= 3; ++epoch) {
    v1::EpochResult* e = trial.add_curve();
    e->set_epoch(epoch);
    e->set_train_loss(1.0 / (1 << epoch));  // exact in YAML's 6 digits
    e->set_train_accuracy(0.5 + 0.125 * epoch);
    e->set_validation_accuracy(0.5 + 0.0625 * epoch);
    e->set_seconds(2.5 * epoch);
  }
  return trial;
}

constexpr OutputFormat kEveryFormat[] = {OutputFormat::kTable, OutputFormat::kWide,
                                         OutputFormat::kName,  OutputFormat::kJson,
                                         OutputFormat::kYaml,  OutputFormat::kCsv};

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST(FormatTrialTest, TableShowsTheDetailsAndTheCurveOneRowPerEpoch) {
  const std::string out = FormatTrial(TrialWithCurve(), OutputFormat::kTable);
  for (const char* expected :
       {"trial:             t000007\n", "job:               j-1\n", "sequence:          7\n",
        "state:             succeeded\n", "attempts:          2\n", "worker:            worker-3\n",
        "reward:            0.8125\n", "accuracy:          0.8750\n", "duration:          1m05s\n",
        "architecture:      L0:3x3/24/s1/in[]|L1:5x5/36/s1/in[0]\n",
        // The readable form: one line per layer.
        "    1  5x5          36       1  0\n"}) {
    EXPECT_NE(out.find(expected), std::string::npos) << expected << "\nin:\n" << out;
  }
  const std::vector<std::string> lines = Lines(out);
  auto header = std::find_if(lines.begin(), lines.end(),
                             [](const std::string& line) { return line.rfind("EPOCH", 0) == 0; });
  ASSERT_NE(header, lines.end()) << out;
  EXPECT_EQ(*header, "EPOCH  TRAIN LOSS  TRAIN ACC  VAL ACC  SECONDS");
  ASSERT_EQ(lines.end() - header, 4) << out;  // the header and three epochs, last
  EXPECT_EQ(header[1], "1      0.5000      0.6250     0.5625   2.50");
  EXPECT_EQ(header[2], "2      0.2500      0.7500     0.6250   5.00");
  EXPECT_EQ(header[3], "3      0.1250      0.8750     0.6875   7.50");
}

TEST(FormatTrialTest, TableShowsTheTestAccuracyOnlyWhenItWasMeasured) {
  v1::Trial trial = TrialWithCurve();
  EXPECT_EQ(FormatTrial(trial, OutputFormat::kTable).find("test accuracy"), std::string::npos);
  trial.mutable_metrics()->set_test_accuracy(0.9312);
  const std::string out = FormatTrial(trial, OutputFormat::kTable);
  EXPECT_NE(out.find("test accuracy:     0.9312\n"), std::string::npos) << out;
}

TEST(FormatTrialTest, TableOfAFailedTrialWithoutCurveSaysSoAndShowsTheError) {
  v1::Trial trial = TrialWithCurve();
  trial.set_state(v1::TRIAL_STATE_FAILED);
  trial.set_error("worker lost its lease");
  trial.clear_metrics();
  trial.clear_curve();
  const std::string out = FormatTrial(trial, OutputFormat::kTable);
  EXPECT_NE(out.find("state:             failed\n"), std::string::npos) << out;
  EXPECT_NE(out.find("error:             worker lost its lease\n"), std::string::npos) << out;
  EXPECT_NE(out.find("reward:            -\n"), std::string::npos) << out;
  EXPECT_NE(out.find("no learning curve stored"), std::string::npos) << out;
  EXPECT_EQ(out.find("EPOCH"), std::string::npos) << out;
}

TEST(FormatTrialTest, JsonIsTheWholeTrialWithItsCurve) {
  const v1::Trial trial = TrialWithCurve();
  const std::string out = FormatTrial(trial, OutputFormat::kJson);
  // JSON is YAML's flow form: the service's own spec parser reads it back.
  v1::Trial parsed;
  ASSERT_TRUE(ParseYamlToMessage(out, &parsed).ok()) << out;
  EXPECT_EQ(parsed.SerializeAsString(), trial.SerializeAsString()) << out;
  EXPECT_NE(out.find("\"validation_accuracy\": 0.6875"), std::string::npos) << out;
}

TEST(FormatTrialTest, YamlIsTheWholeTrialWithItsCurve) {
  const v1::Trial trial = TrialWithCurve();
  const std::string out = FormatTrial(trial, OutputFormat::kYaml);
  v1::Trial parsed;
  ASSERT_TRUE(ParseYamlToMessage(out, &parsed).ok()) << out;
  EXPECT_EQ(parsed.SerializeAsString(), trial.SerializeAsString()) << out;
  EXPECT_NE(out.find("curve:\n"), std::string::npos) << out;
}

// A recurrent cell's language model on Penn Treebank: perplexities, no
// accuracy (the worker reports 0 there).
v1::Trial LanguageModelTrial() {
  v1::Trial trial;
  trial.set_trial_id("t000004");
  trial.set_job_id("j-ptb");
  trial.set_state(v1::TRIAL_STATE_SUCCEEDED);
  trial.set_create_time_unix_ms(1'000'000);
  trial.set_end_time_unix_ms(1'065'000);
  v1::Architecture* arch = trial.mutable_architecture();
  arch->set_canonical("n0:add/tanh|n1:elem_mult/sigmoid|n2:add/relu|out:n0");
  for (const char* activation : {"tanh", "sigmoid", "relu"}) {
    v1::RecurrentTreeNode* node = arch->mutable_recurrent_cell()->add_nodes();
    node->set_combination("add");
    node->set_activation(activation);
  }
  v1::TrialMetrics* m = trial.mutable_metrics();
  m->set_reward(0.0149);
  m->set_perplexity(655.25);
  m->set_parameters(346640);
  m->set_flops(713000);
  m->set_latency_seconds(0.000125);
  for (int epoch = 1; epoch <= 2; ++epoch) {
    v1::EpochResult* e = trial.add_curve();
    e->set_epoch(epoch);
    e->set_train_loss(7.5 - epoch);
    e->set_train_perplexity(epoch == 1 ? 1808.04 : 665.14);
    e->set_validation_perplexity(epoch == 1 ? 904.5 : 655.25);
    e->set_seconds(30 * epoch);
  }
  return trial;
}

TEST(FormatTrialTest, ALanguageModelShowsPerplexityAndAPerplexityCurveNotAccuracy) {
  const v1::Trial trial = LanguageModelTrial();
  const std::string out = FormatTrial(trial, OutputFormat::kTable);
  for (const char* expected :
       {"perplexity:        655.25\n", "flops:             713000 per token\n",
        "latency:           0.000125 s per token\n"}) {
    EXPECT_NE(out.find(expected), std::string::npos) << expected << "\nin:\n" << out;
  }
  EXPECT_EQ(out.find("accuracy"), std::string::npos) << out;
  const std::vector<std::string> lines = Lines(out);
  auto header = std::find_if(lines.begin(), lines.end(),
                             [](const std::string& line) { return line.rfind("EPOCH", 0) == 0; });
  ASSERT_NE(header, lines.end()) << out;
  EXPECT_EQ(*header, "EPOCH  TRAIN LOSS  TRAIN PPL  VAL PPL  SECONDS");
  ASSERT_EQ(lines.end() - header, 3) << out;
  EXPECT_EQ(header[1], "1      6.5000      1808.04    904.50   30.00");
  EXPECT_EQ(header[2], "2      5.5000      665.14     655.25   60.00");

  const std::vector<std::string> csv = Lines(FormatTrial(trial, OutputFormat::kCsv));
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_EQ(csv[0], "epoch,train_loss,train_perplexity,validation_perplexity,seconds");
  EXPECT_EQ(csv[2], "2,5.5000,665.14,655.25,60.00");

  // A diverged child's perplexity is infinite; a running one's not known yet.
  v1::Trial diverged = trial;
  diverged.mutable_metrics()->set_perplexity(std::numeric_limits<double>::infinity());
  EXPECT_NE(FormatTrial(diverged, OutputFormat::kTable).find("perplexity:        inf\n"),
            std::string::npos);
  v1::Trial running = trial;
  running.set_state(v1::TRIAL_STATE_RUNNING);
  running.clear_metrics();
  EXPECT_NE(FormatTrial(running, OutputFormat::kTable).find("perplexity:        -\n"),
            std::string::npos);
}

TEST(FormatTrialTest, CsvIsTheCurveOneRowPerEpoch) {
  const std::vector<std::string> lines = Lines(FormatTrial(TrialWithCurve(), OutputFormat::kCsv));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], "epoch,train_loss,train_accuracy,validation_accuracy,seconds");
  EXPECT_EQ(lines[3], "3,0.1250,0.8750,0.6875,7.50");
}

// Server text with every kind of control character: the forged row of issue
// 18, then each C0 control, DEL, each C1 control and a right-to-left override.
std::string Hostile() {
  std::string text = "\x1b[2J\x1b[31mPWNED\x1b[0m\r\nfake-job   running";
  for (int c = 0; c < 0x20; ++c) text.push_back(static_cast<char>(c));
  text.push_back('\x7f');
  for (int c = 0x80; c <= 0x9f; ++c) {
    text.push_back(static_cast<char>(0xc2));
    text.push_back(static_cast<char>(c));
  }
  return text + "\xe2\x80\xae" + "end";
}

// No byte that a terminal acts on, other than the newlines ending lines.
void ExpectNothingATerminalActsOn(const std::string& out, const std::string& what) {
  for (size_t i = 0; i < out.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(out[i]);
    if (c == '\n') continue;
    ASSERT_FALSE(c < 0x20 || c == 0x7f) << what << ": raw byte " << int{c} << " at " << i << " in\n"
                                        << out;
    ASSERT_FALSE(c == 0xc2 && i + 1 < out.size() &&
                 static_cast<unsigned char>(out[i + 1]) >= 0x80 &&
                 static_cast<unsigned char>(out[i + 1]) <= 0x9f)
        << what << ": a C1 control at " << i << " in\n"
        << out;
  }
  EXPECT_EQ(out.find("\xe2\x80\xae"), std::string::npos) << what;
}

TEST(EscapeForTerminalTest, EscapesEveryControlCharacterAndKeepsPrintableText) {
  const std::string escaped = EscapeForTerminal(Hostile());
  ExpectNothingATerminalActsOn(escaped, "EscapeForTerminal");
  EXPECT_EQ(escaped.find('\n'), std::string::npos);
  EXPECT_EQ(escaped.rfind("\\e[2J\\e[31mPWNED\\e[0m\\r\\nfake-job   running\\x00\\x01", 0), 0u)
      << escaped;
  EXPECT_NE(escaped.find("\\x7f\\u0080\\u0081"), std::string::npos) << escaped;
  EXPECT_NE(escaped.find("\\u009f\\u202eend"), std::string::npos) << escaped;
  EXPECT_EQ(EscapeForTerminal("fashion-mnist r\xc3\xa9seau \xe6\x97\xa5\xe6\x9c\xac"),
            "fashion-mnist r\xc3\xa9seau \xe6\x97\xa5\xe6\x9c\xac");
}

v1::Job HostileJob() {
  v1::Job job;
  job.set_job_id("j-" + Hostile());
  job.mutable_spec()->set_name(Hostile());
  job.mutable_spec()->mutable_strategy()->set_name(Hostile());
  job.set_state(v1::JOB_STATE_FAILED);
  job.set_error(Hostile());
  job.set_best_trial_id(Hostile());
  job.set_best_canonical(Hostile());
  return job;
}

TEST(EscapeForTerminalTest, JobsPrintNoControlCharacterInAnyFormat) {
  for (OutputFormat format : kEveryFormat) {
    const std::string list = FormatJobs({HostileJob(), HostileJob()}, ListOptions{format});
    ExpectNothingATerminalActsOn(list, "FormatJobs");
    ExpectNothingATerminalActsOn(FormatJob(HostileJob(), format), "FormatJob");
    if (format == OutputFormat::kTable || format == OutputFormat::kWide ||
        format == OutputFormat::kCsv) {
      EXPECT_EQ(Lines(list).size(), 3u) << "a header and one row per job, none forged:\n" << list;
    }
  }
  // The escaped name is still there to read.
  EXPECT_NE(FormatJobs({HostileJob()}, ListOptions{}).find("\\e[2J\\e[31mPWNED"),
            std::string::npos);
}

TEST(EscapeForTerminalTest, TrialsAndArchitecturesPrintNoControlCharacterInAnyFormat) {
  v1::Trial trial = TrialWithCurve();
  trial.set_trial_id(Hostile());
  trial.set_worker_id(Hostile());
  trial.set_error(Hostile());
  trial.mutable_metrics()->set_device(Hostile());
  v1::Trial failed = trial;
  failed.set_state(v1::TRIAL_STATE_FAILED);
  v1::Trial cell = trial;
  cell.mutable_architecture()->set_canonical(Hostile());
  cell.mutable_architecture()->mutable_cell()->set_num_nodes(2);
  cell.mutable_architecture()->mutable_cell()->add_edge_operations(Hostile());
  v1::Trial recurrent = trial;
  v1::RecurrentCellArchitecture* r = recurrent.mutable_architecture()->mutable_recurrent_cell();
  r->add_nodes()->set_combination(Hostile());
  r->mutable_nodes(0)->set_activation(Hostile());
  r->set_cell_inject_node(0);
  r->set_cell_inject_combination(Hostile());
  r->set_cell_inject_activation(Hostile());
  for (OutputFormat format : kEveryFormat) {
    ExpectNothingATerminalActsOn(
        FormatTrials({trial, failed, cell, recurrent}, ListOptions{format}), "FormatTrials");
    for (const v1::Trial& t : {trial, failed, cell, recurrent}) {
      ExpectNothingATerminalActsOn(FormatTrial(t, format), "FormatTrial");
    }
  }
  ExpectNothingATerminalActsOn(FormatArchitecture(cell.architecture()), "cell architecture");
  ExpectNothingATerminalActsOn(FormatArchitecture(recurrent.architecture()), "recurrent cell");
}

// Strings a YAML reader takes for something else when written plain: null,
// booleans of YAML 1.1 and 1.2, numbers, infinities, what starts an
// indicator, leading and trailing spaces, several lines, and control
// characters.
const std::vector<std::string>& TrickyStrings() {
  static const auto* strings =
      new std::vector<std::string>{"~",
                                   "null",
                                   "Null",
                                   "",
                                   ".inf",
                                   "-.inf",
                                   ".nan",
                                   "yes",
                                   "No",
                                   "on",
                                   "OFF",
                                   "y",
                                   "true",
                                   "123",
                                   "0x1f",
                                   "1e3",
                                   "0o17",
                                   "1_000",
                                   "12:30",
                                   "  leading spaces",
                                   "trailing ",
                                   "first line\nsecond line\n",
                                   "- item",
                                   "key: value",
                                   "# comment",
                                   "&anchor",
                                   "*alias",
                                   "!tag",
                                   "{a: 1}",
                                   "[1, 2]",
                                   "'quoted'",
                                   "\"double\"",
                                   "a\tb",
                                   "100%",
                                   "@at",
                                   "`tick",
                                   "fashion-mnist r\xc3\xa9seau \xe6\x97\xa5\xe6\x9c\xac",
                                   Hostile()};
  return *strings;
}

// A plain scalar a typed reader would not take for a string.
bool ReadsAsNonString(const YAML::Node& node) {
  if (node.Tag() != "?") return false;  // Quoted: a string.
  bool b;
  double d;
  return node.IsNull() || YAML::convert<bool>::decode(node, b) ||
         YAML::convert<double>::decode(node, d);
}

TEST(YamlTest, EveryStringReadsBackAsTheSameStringThroughAYamlParser) {
  for (const std::string& text : TrickyStrings()) {
    v1::Job job;
    job.set_job_id("j-1");
    job.set_state(v1::JOB_STATE_RUNNING);
    job.mutable_spec()->set_name(text);
    job.set_error(text);
    job.set_best_trial_id(text);
    const std::string out = FormatJob(job, OutputFormat::kYaml);
    YAML::Node root;
    ASSERT_NO_THROW(root = YAML::Load(out)) << out;
    for (const YAML::Node& node : {root["spec"]["name"], root["error"], root["best_trial_id"]}) {
      ASSERT_TRUE(node.IsScalar()) << "'" << text << "' read back as a non-scalar from\n" << out;
      EXPECT_FALSE(ReadsAsNonString(node)) << "'" << text << "' is written plain:\n" << out;
      EXPECT_EQ(node.Scalar(), text) << out;
    }
    // And the list form, and the service's own YAML reader.
    const std::string list = FormatJobs({job, job}, ListOptions{OutputFormat::kYaml});
    YAML::Node items = YAML::Load(list);
    ASSERT_TRUE(items.IsSequence()) << list;
    ASSERT_EQ(items.size(), 2u) << list;
    EXPECT_EQ(items[1]["spec"]["name"].Scalar(), text) << list;
    v1::Job parsed;
    const absl::Status read = ParseYamlToMessage(out, &parsed);
    ASSERT_TRUE(read.ok()) << read << "\n" << out;
    EXPECT_EQ(parsed.spec().name(), text) << out;
  }
}

TEST(YamlTest, ListsOfStringsReadBackItemByItem) {
  v1::Trial trial;
  for (const std::string& text : TrickyStrings()) {
    trial.mutable_architecture()->mutable_cell()->add_edge_operations(text);
  }
  for (OutputFormat format : {OutputFormat::kYaml, OutputFormat::kJson}) {
    const std::string out = FormatTrial(trial, format);
    const YAML::Node list = YAML::Load(out)["architecture"]["cell"]["edge_operations"];
    ASSERT_TRUE(list.IsSequence()) << out;
    ASSERT_EQ(list.size(), TrickyStrings().size()) << out;
    for (size_t i = 0; i < list.size(); ++i) {
      EXPECT_FALSE(ReadsAsNonString(list[i])) << out;
      EXPECT_EQ(list[i].Scalar(), TrickyStrings()[i]) << out;
    }
  }
}

TEST(YamlTest, OrdinaryIdsStayPlainAndNumbersKeepTheirValue) {
  v1::Job job;
  job.set_job_id("j-20261124-041502-3f1a");
  job.set_best_reward(std::numeric_limits<double>::infinity());
  job.set_mean_reward(0.1);
  job.set_baseline(-std::numeric_limits<double>::infinity());
  job.set_samples(9007199254740993);  // Beyond a double's 53 bits.
  const std::string out = FormatJob(job, OutputFormat::kYaml);
  EXPECT_NE(out.find("job_id: j-20261124-041502-3f1a\n"), std::string::npos) << out;
  EXPECT_NE(out.find("mean_reward: 0.1\n"), std::string::npos) << out;
  const YAML::Node root = YAML::Load(out);
  EXPECT_EQ(root["best_reward"].as<double>(), std::numeric_limits<double>::infinity()) << out;
  EXPECT_EQ(root["baseline"].as<double>(), -std::numeric_limits<double>::infinity()) << out;
  EXPECT_EQ(root["samples"].as<int64_t>(), 9007199254740993) << out;
  // JSON has no infinity: protobuf's spelling, as a string.
  const std::string json = FormatJob(job, OutputFormat::kJson);
  EXPECT_NE(json.find("\"best_reward\": \"Infinity\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"samples\": 9007199254740993,"), std::string::npos) << json;
}

TEST(JsonTest, EveryStringReadsBackAsTheSameString) {
  for (const std::string& text : TrickyStrings()) {
    v1::Job job;
    job.mutable_spec()->set_name(text);
    const std::string out = FormatJob(job, OutputFormat::kJson);
    YAML::Node root;  // JSON is YAML's flow form.
    ASSERT_NO_THROW(root = YAML::Load(out)) << out;
    EXPECT_EQ(root["spec"]["name"].Scalar(), text) << out;
  }
}

v1::Job JobIn(v1::JobState state, const std::string& id) {
  v1::Job job;
  job.set_job_id(id);
  job.mutable_spec()->set_name("name-" + id);
  job.set_state(state);
  return job;
}

TEST(StateTest, OneSpellingOfEveryStateInEveryFormat) {
  const std::vector<v1::Job> jobs = {JobIn(v1::JOB_STATE_SUCCEEDED, "j-1"),
                                     JobIn(v1::JOB_STATE_CANCELLED, "j-2")};
  v1::Trial trial = TrialWithCurve();
  trial.set_state(v1::TRIAL_STATE_QUEUED);
  for (OutputFormat format : kEveryFormat) {
    std::vector<std::string> outputs = {FormatJobs(jobs, ListOptions{format}),
                                        FormatJob(jobs[0], format),
                                        FormatTrials({trial}, ListOptions{format})};
    if (format != OutputFormat::kCsv) outputs.push_back(FormatTrial(trial, format));
    for (const std::string& out : outputs) {
      EXPECT_FALSE(absl::StrContains(absl::AsciiStrToLower(out), "state_")) << out;
      if (format == OutputFormat::kName) continue;
      EXPECT_TRUE(absl::StrContains(out, "succeeded") || absl::StrContains(out, "queued")) << out;
    }
  }
  EXPECT_NE(FormatJob(jobs[0], OutputFormat::kJson).find("\"state\": \"succeeded\""),
            std::string::npos);
  EXPECT_NE(FormatJob(jobs[0], OutputFormat::kYaml).find("state: succeeded\n"), std::string::npos);
}

TEST(StateTest, FiltersTakeExactlyThatSpellingInAnyCase) {
  absl::StatusOr<std::vector<v1::JobState>> jobs = ParseJobStates("running,FAILED,Pending");
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_EQ(*jobs, (std::vector<v1::JobState>{v1::JOB_STATE_RUNNING, v1::JOB_STATE_FAILED,
                                              v1::JOB_STATE_PENDING}));
  absl::StatusOr<std::vector<v1::TrialState>> trials = ParseTrialStates("queued,cancelled");
  ASSERT_TRUE(trials.ok()) << trials.status();
  EXPECT_EQ(*trials,
            (std::vector<v1::TrialState>{v1::TRIAL_STATE_QUEUED, v1::TRIAL_STATE_CANCELLED}));
  for (const char* bad :
       {"job_state_running", "JOB_STATE_RUNNING", "run", "queued", "", "running,", "unspecified"}) {
    absl::StatusOr<std::vector<v1::JobState>> parsed = ParseJobStates(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.status().message().find("one of pending, running, succeeded, cancelled, "
                                             "failed"),
              std::string::npos)
        << parsed.status();
  }
  EXPECT_EQ(JobStateNames(),
            (std::vector<std::string>{"pending", "running", "succeeded", "cancelled", "failed"}));
}

TEST(ListTest, NameWideAndNoHeaders) {
  const std::vector<v1::Job> jobs = {JobIn(v1::JOB_STATE_RUNNING, "j-1"),
                                     JobIn(v1::JOB_STATE_FAILED, "j-2")};
  EXPECT_EQ(FormatJobs(jobs, ListOptions{OutputFormat::kName}), "j-1\nj-2\n");
  EXPECT_EQ(FormatJob(jobs[0], OutputFormat::kName), "j-1\n");
  EXPECT_EQ(FormatTrial(TrialWithCurve(), OutputFormat::kName), "t000007\n");

  const std::vector<std::string> table = Lines(FormatJobs(jobs, ListOptions{}));
  ASSERT_EQ(table.size(), 3u);
  EXPECT_TRUE(absl::StartsWith(table[0], "JOB  NAME      STATE    STRATEGY")) << table[0];
  EXPECT_FALSE(absl::StrContains(table[0], "SAMPLES")) << table[0];
  const std::vector<std::string> wide = Lines(FormatJobs(jobs, ListOptions{OutputFormat::kWide}));
  ASSERT_EQ(wide.size(), 3u);
  EXPECT_TRUE(absl::StrContains(wide[0], "SAMPLES")) << wide[0];
  EXPECT_TRUE(absl::StrContains(wide[0], "ENDED")) << wide[0];

  for (OutputFormat format : {OutputFormat::kTable, OutputFormat::kWide, OutputFormat::kCsv}) {
    const std::vector<std::string> rows = Lines(FormatJobs(jobs, ListOptions{format, true}));
    ASSERT_EQ(rows.size(), 2u) << FormatJobs(jobs, ListOptions{format, true});
    EXPECT_TRUE(absl::StartsWith(rows[0], "j-1")) << rows[0];
    EXPECT_TRUE(absl::StartsWith(rows[1], "j-2")) << rows[1];
  }
}

v1::Trial TrialAt(const std::string& id, int64_t sequence, double reward, int64_t created_ms,
                  int64_t ended_ms) {
  v1::Trial t;
  t.set_trial_id(id);
  t.set_sequence(sequence);
  t.set_state(ended_ms != 0 ? v1::TRIAL_STATE_SUCCEEDED : v1::TRIAL_STATE_RUNNING);
  t.mutable_metrics()->set_reward(reward);
  t.set_create_time_unix_ms(created_ms);
  t.set_end_time_unix_ms(ended_ms);
  return t;
}

TEST(ListTest, TrialsShowSequenceAndTimesInEveryFormat) {
  const std::vector<v1::Trial> trials = {TrialAt("t000002", 7, 0.5, 1'000'000, 1'065'000)};
  const std::vector<std::string> table = Lines(FormatTrials(trials, ListOptions{}));
  EXPECT_EQ(table[0].substr(0, 19), "TRIAL    SEQ  STATE") << table[0];
  EXPECT_TRUE(absl::StrContains(table[0], "DURATION")) << table[0];
  EXPECT_TRUE(absl::StrContains(table[1], "t000002  7    succeeded")) << table[1];
  EXPECT_TRUE(absl::StrContains(table[1], "1m05s")) << table[1];
  const std::vector<std::string> wide =
      Lines(FormatTrials(trials, ListOptions{OutputFormat::kWide}));
  for (const char* column : {"SEQ", "CREATED", "ENDED", "DURATION"}) {
    EXPECT_TRUE(absl::StrContains(wide[0], column)) << wide[0];
  }
  const std::vector<std::string> csv = Lines(FormatTrials(trials, ListOptions{OutputFormat::kCsv}));
  EXPECT_EQ(csv[0],
            "trial_id,state,reward,accuracy,parameters,flops,latency_seconds,train_seconds,"
            "attempts,worker_id,canonical,error,cached_from,sequence,created,ended,"
            "duration_seconds,final,one_shot_score,perplexity");
  EXPECT_TRUE(absl::StrContains(csv[1], ",7,")) << csv[1];
  // The last cell, perplexity, is empty: not a language model.
  EXPECT_TRUE(absl::EndsWith(csv[1], ",65.000,false,,")) << csv[1];
  const std::string json = FormatTrials(trials, ListOptions{OutputFormat::kJson});
  EXPECT_TRUE(absl::StrContains(json, "\"sequence\": 7,")) << json;
  EXPECT_TRUE(absl::StrContains(json, "\"create_time_unix_ms\": 1000000,")) << json;
  EXPECT_TRUE(absl::StrContains(json, "\"end_time_unix_ms\": 1065000,")) << json;
  const YAML::Node yaml = YAML::Load(FormatTrials(trials, ListOptions{OutputFormat::kYaml}));
  EXPECT_EQ(yaml[0]["sequence"].as<int>(), 7);
  EXPECT_EQ(yaml[0]["end_time_unix_ms"].as<int64_t>(), 1065000);
}

TEST(ListTest, CacheHitsNameTheEvaluationTheyReusedAndItsJobWhenItIsAnother) {
  v1::Trial same = TrialAt("t000003", 3, 0.5, 1'000'000, 1'000'000);
  same.set_cached_from("t000001");
  v1::Trial shared = TrialAt("t000004", 4, 0.5, 1'000'000, 1'000'000);
  shared.set_cached_from("t000009");
  shared.set_cached_from_job("job-a");
  const std::vector<std::string> csv =
      Lines(FormatTrials({same, shared}, ListOptions{OutputFormat::kCsv}));
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_TRUE(absl::StrContains(csv[1], ",t000001,")) << csv[1];
  EXPECT_TRUE(absl::StrContains(csv[2], ",job-a/t000009,")) << csv[2];
  EXPECT_TRUE(absl::StrContains(FormatTrial(shared, OutputFormat::kTable), "job-a/t000009"));
}

TEST(ListTest, LanguageModelTrialsShowPerplexityInPlaceOfAccuracy) {
  v1::Trial running = LanguageModelTrial();
  running.set_trial_id("t000005");
  running.set_state(v1::TRIAL_STATE_RUNNING);
  running.clear_metrics();
  running.set_end_time_unix_ms(0);
  const std::vector<v1::Trial> trials = {LanguageModelTrial(), running};
  for (OutputFormat format : {OutputFormat::kTable, OutputFormat::kWide}) {
    const std::vector<std::string> table = Lines(FormatTrials(trials, ListOptions{format}));
    ASSERT_EQ(table.size(), 3u);
    EXPECT_TRUE(absl::StrContains(table[0], "REWARD  PERPLEXITY  PARAMS")) << table[0];
    EXPECT_FALSE(absl::StrContains(table[0], "ACCURACY")) << table[0];
    EXPECT_TRUE(absl::StrContains(table[1], "0.0149  655.25      346640")) << table[1];
    EXPECT_TRUE(absl::StrContains(table[2], "0.0000  -           0")) << table[2];
  }
  // A classifier's list keeps its accuracy column.
  const std::string classifier = Lines(FormatTrials({TrialWithCurve()}, ListOptions{}))[0];
  EXPECT_TRUE(absl::StrContains(classifier, "ACCURACY")) << classifier;
  EXPECT_FALSE(absl::StrContains(classifier, "PERPLEXITY")) << classifier;

  const std::vector<std::string> csv = Lines(FormatTrials(trials, ListOptions{OutputFormat::kCsv}));
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_TRUE(absl::EndsWith(csv[1], ",655.25")) << csv[1];
  EXPECT_TRUE(absl::EndsWith(csv[2], ",,"))
      << csv[2];  // running: ended, duration, perplexity unknown
  std::vector<v1::Trial> sorted = trials;
  ASSERT_TRUE(SortTrials("-perplexity", &sorted).ok());
  EXPECT_EQ(sorted[0].trial_id(), "t000004");
}

std::vector<std::string> Ids(const std::vector<v1::Trial>& trials) {
  std::vector<std::string> ids;
  for (const v1::Trial& t : trials) ids.push_back(t.trial_id());
  return ids;
}

TEST(SortTest, SortsByAnyFieldNumbersAsNumbersAndDescendingWithAMinus) {
  std::vector<v1::Trial> trials = {TrialAt("t1", 3, 0.9, 3000, 9000),
                                   TrialAt("t2", 10, 0.1, 1000, 2000),
                                   TrialAt("t3", 2, 0.5, 2000, 0)};
  ASSERT_TRUE(SortTrials("sequence", &trials).ok());
  EXPECT_EQ(Ids(trials), (std::vector<std::string>{"t3", "t1", "t2"}));  // 10 after 3.
  ASSERT_TRUE(SortTrials("-reward", &trials).ok());
  EXPECT_EQ(Ids(trials), (std::vector<std::string>{"t1", "t3", "t2"}));
  ASSERT_TRUE(SortTrials("created", &trials).ok());
  EXPECT_EQ(Ids(trials), (std::vector<std::string>{"t2", "t3", "t1"}));
  // A running trial has no duration yet: it sorts first.
  ASSERT_TRUE(SortTrials("duration_seconds", &trials).ok());
  EXPECT_EQ(Ids(trials), (std::vector<std::string>{"t3", "t2", "t1"}));
  ASSERT_TRUE(SortTrials("-trial_id", &trials).ok());
  EXPECT_EQ(Ids(trials), (std::vector<std::string>{"t3", "t2", "t1"}));

  absl::Status bad = SortTrials("rewrd", &trials);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("--sort-by: unknown field 'rewrd'; one of trial_id, state"),
            std::string::npos)
      << bad;
  std::vector<v1::Job> jobs = {JobIn(v1::JOB_STATE_RUNNING, "j-b"),
                               JobIn(v1::JOB_STATE_FAILED, "j-a")};
  ASSERT_TRUE(SortJobs("name", &jobs).ok());
  EXPECT_EQ(jobs[0].job_id(), "j-a");
  EXPECT_FALSE(SortJobs("sequence", &jobs).ok());
}

// One-shot jobs (docs/one_shot.md): final trials are marked in the list and
// the detail; a search task's use of the shared weights is shown.
TEST(OutputTest, FinalTrialsAreMarkedAndSharedStatsShown) {
  v1::Trial search;
  search.set_trial_id("t000001");
  search.set_state(v1::TRIAL_STATE_SUCCEEDED);
  search.mutable_metrics()->set_reward(0.5);
  v1::SharedStats* stats = search.mutable_metrics()->mutable_shared();
  stats->set_omega_version(1234);
  stats->set_train_steps(10);
  stats->set_pushes_applied(9);
  stats->set_pushes_refused_stale(1);
  stats->set_max_staleness(3);
  stats->set_bytes_pulled(int64_t{3} << 20);
  stats->set_bytes_pushed(int64_t{2} << 20);
  v1::Trial final_trial = search;
  final_trial.set_trial_id("t000002");
  final_trial.mutable_metrics()->clear_shared();
  final_trial.set_final_training(true);
  final_trial.set_one_shot_score(0.625);
  const std::vector<std::string> table = Lines(FormatTrials({search, final_trial}, ListOptions{}));
  ASSERT_EQ(table.size(), 3u);
  EXPECT_TRUE(absl::StrContains(table[0], "FINAL")) << table[0];
  EXPECT_FALSE(absl::StrContains(table[1], "final")) << table[1];
  EXPECT_TRUE(absl::StrContains(table[2], "final")) << table[2];
  const std::vector<std::string> csv =
      Lines(FormatTrials({search, final_trial}, ListOptions{OutputFormat::kCsv}));
  EXPECT_TRUE(absl::EndsWith(csv[0], ",final,one_shot_score,perplexity")) << csv[0];
  EXPECT_TRUE(absl::EndsWith(csv[1], ",false,,")) << csv[1];
  EXPECT_TRUE(absl::EndsWith(csv[2], ",true,0.6250,")) << csv[2];
  const std::string detail = FormatTrial(final_trial, OutputFormat::kTable);
  EXPECT_TRUE(absl::StrContains(detail, "final trial:       trained from scratch; one-shot score 0.6250"))
      << detail;
  const std::string search_detail = FormatTrial(search, OutputFormat::kTable);
  EXPECT_FALSE(absl::StrContains(search_detail, "final trial")) << search_detail;
  EXPECT_TRUE(absl::StrContains(search_detail, "version 1234, 10 steps, 9 pushes applied, 1 refused as stale"))
      << search_detail;
  EXPECT_TRUE(absl::StrContains(search_detail, "at most 3 versions behind")) << search_detail;
  EXPECT_TRUE(absl::StrContains(search_detail, "3.0 MiB pulled, 2.0 MiB pushed")) << search_detail;
}

}  // namespace
}  // namespace nas::client
