// How `nasctl trial` prints one trial with its learning curve: the table for
// people, and json / yaml / csv, which must carry the same curve.
#include "client/output.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/proto_yaml.h"
#include "google/protobuf/util/json_util.h"
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

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST(FormatTrialTest, TableShowsTheDetailsAndTheCurveOneRowPerEpoch) {
  const std::string out = FormatTrial(TrialWithCurve(), OutputFormat::kTable);
  for (const char* expected :
       {"trial:             t000007\n", "job:               j-1\n",
        "state:             succeeded\n", "attempts:          2\n",
        "worker:            worker-3\n", "reward:            0.8125\n",
        "accuracy:          0.8750\n", "duration:          1m05s\n",
        "architecture:      L0:3x3/24/s1/in[]|L1:5x5/36/s1/in[0]\n",
        // The readable form: one line per layer.
        "    1  5x5          36       1  0\n"}) {
    EXPECT_NE(out.find(expected), std::string::npos) << expected << "\nin:\n" << out;
  }
  const std::vector<std::string> lines = Lines(out);
  auto header = std::find_if(lines.begin(), lines.end(), [](const std::string& line) {
    return line.rfind("EPOCH", 0) == 0;
  });
  ASSERT_NE(header, lines.end()) << out;
  EXPECT_EQ(*header, "EPOCH  TRAIN LOSS  TRAIN ACC  VAL ACC  SECONDS");
  ASSERT_EQ(lines.end() - header, 4) << out;  // the header and three epochs, last
  EXPECT_EQ(header[1], "1      0.5000      0.6250     0.5625   2.50");
  EXPECT_EQ(header[2], "2      0.2500      0.7500     0.6250   5.00");
  EXPECT_EQ(header[3], "3      0.1250      0.8750     0.6875   7.50");
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
  v1::Trial parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(out, &parsed).ok()) << out;
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

TEST(FormatTrialTest, CsvIsTheCurveOneRowPerEpoch) {
  const std::vector<std::string> lines =
      Lines(FormatTrial(TrialWithCurve(), OutputFormat::kCsv));
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
    ASSERT_FALSE(c < 0x20 || c == 0x7f) << what << ": raw byte " << int{c} << " at " << i
                                        << " in\n" << out;
    ASSERT_FALSE(c == 0xc2 && i + 1 < out.size() &&
                 static_cast<unsigned char>(out[i + 1]) >= 0x80 &&
                 static_cast<unsigned char>(out[i + 1]) <= 0x9f)
        << what << ": a C1 control at " << i << " in\n" << out;
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
  for (OutputFormat format :
       {OutputFormat::kTable, OutputFormat::kJson, OutputFormat::kYaml, OutputFormat::kCsv}) {
    const std::string list = FormatJobs({HostileJob(), HostileJob()}, format);
    ExpectNothingATerminalActsOn(list, "FormatJobs");
    ExpectNothingATerminalActsOn(FormatJob(HostileJob(), format), "FormatJob");
    if (format == OutputFormat::kTable || format == OutputFormat::kCsv) {
      EXPECT_EQ(Lines(list).size(), 3u) << "a header and one row per job, none forged:\n" << list;
    }
  }
  // The escaped name is still there to read.
  EXPECT_NE(FormatJobs({HostileJob()}, OutputFormat::kTable).find("\\e[2J\\e[31mPWNED"),
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
  for (OutputFormat format :
       {OutputFormat::kTable, OutputFormat::kJson, OutputFormat::kYaml, OutputFormat::kCsv}) {
    ExpectNothingATerminalActsOn(FormatTrials({trial, failed, cell, recurrent}, format),
                                 "FormatTrials");
    for (const v1::Trial& t : {trial, failed, cell, recurrent}) {
      ExpectNothingATerminalActsOn(FormatTrial(t, format), "FormatTrial");
    }
  }
  ExpectNothingATerminalActsOn(FormatArchitecture(cell.architecture()), "cell architecture");
  ExpectNothingATerminalActsOn(FormatArchitecture(recurrent.architecture()), "recurrent cell");
}

}  // namespace
}  // namespace nas::client
