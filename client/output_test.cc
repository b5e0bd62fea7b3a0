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

}  // namespace
}  // namespace nas::client
