// `nasctl export` writes server text (ids, names, architectures) into a
// summary people read and Python people run: none of it may carry a control
// character, and a CR or newline must not end a Python comment and start code.
#include "client/export.h"

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "gtest/gtest.h"

namespace nas::client {
namespace {

constexpr char kHostile[] = "x\r\nimport os; os.system('echo PWNED')\n#\x1b[2J\xc2\x9b";

void ExpectOnlyPlainLines(const std::string& text, const std::string& what) {
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    ASSERT_FALSE((u < 0x20 && c != '\n') || u == 0x7f) << what << ": byte " << int{u} << "\n"
                                                       << text;
  }
  EXPECT_EQ(text.find("\xc2\x9b"), std::string::npos) << what;
  EXPECT_EQ(text.find("\nimport os"), std::string::npos) << what << ": injected a line\n" << text;
}

v1::Trial CellTrial(const std::string& op) {
  v1::Trial trial;
  trial.set_trial_id(std::string("t1") + kHostile);
  trial.mutable_metrics()->set_device(kHostile);
  v1::Architecture* arch = trial.mutable_architecture();
  arch->set_canonical(std::string("|nor_conv_3x3~0|") + kHostile);
  arch->mutable_cell()->set_num_nodes(2);
  arch->mutable_cell()->add_edge_operations(op);
  return trial;
}

TEST(ExportTest, ServerTextInTheSummaryAndModuleIsEscaped) {
  v1::Job job;
  job.set_job_id(std::string("j1") + kHostile);
  job.mutable_spec()->set_name(kHostile);
  const v1::Trial trial = CellTrial("nor_conv_3x3");
  ExpectOnlyPlainLines(Summary(job, trial), "summary.txt");
  absl::StatusOr<std::string> module = PyTorchModule(job, trial);
  ASSERT_TRUE(module.ok()) << module.status();
  ExpectOnlyPlainLines(*module, "model.py");
  EXPECT_NE(module->find("EDGE_OPS = [\"nor_conv_3x3\"]"), std::string::npos) << *module;
}

TEST(ExportTest, UnknownCellOperationsGetNoPythonModule) {
  v1::Job job;
  job.set_job_id("j1");
  absl::StatusOr<std::string> module = PyTorchModule(job, CellTrial("x\"]\nimport os #"));
  EXPECT_EQ(module.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(module.status().message().find("no PyTorch module for cell operation 'x\"]\\nimport"),
            std::string::npos)
      << module.status();
}

// Runs model.py's module under Debian's python3-torch on a batch of the
// given shape; returns "first conv in_channels, output shape" or the error.
std::string RunModule(const std::string& module, const std::string& name, int c, int h, int w) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
  EXPECT_TRUE(MakeDirectories(dir).ok());
  EXPECT_TRUE(WriteFileAtomically(dir + "/model.py", module).ok());
  const std::string script = absl::StrCat(
      "import sys, torch; sys.path.insert(0, sys.argv[1]); import model; net = model.ChildNet(); "
      "conv = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][0]; net.eval(); "
      "print('RESULT', conv.in_channels, tuple(net(torch.zeros(1, ",
      c, ", ", h, ", ", w, ")).shape))");
  const std::string log = dir + "/python.log";
  absl::StatusOr<Subprocess> python = Subprocess::Start({"/usr/bin/python3", "-c", script, dir}, log);
  if (!python.ok()) return python.status().ToString();
  absl::StatusOr<int> rc = python->Wait(absl::Seconds(120));
  const std::string output = ReadFile(log).value_or("");
  const size_t at = output.find("RESULT ");
  if (!rc.ok() || *rc != 0 || at == std::string::npos) return absl::StrCat("python3 failed:\n", output);
  return output.substr(at + 7, output.find('\n', at) - at - 7);
}

TEST(ExportTest, TheModuleFollowsTheInputShapeTheWorkerReportedFromTheData) {
  v1::Job job;
  job.set_job_id("j1");
  job.mutable_spec()->mutable_evaluator()->mutable_train()->set_dataset("image_folder");
  v1::Trial macro;
  macro.set_trial_id("t1");
  for (int i = 0; i < 2; ++i) {
    v1::MacroCnnLayer* layer = macro.mutable_architecture()->mutable_macro_cnn()->add_layers();
    layer->set_filter_height(3);
    layer->set_filter_width(3);
    layer->set_num_filters(4);
    if (i > 0) layer->add_inputs(0);
  }
  // No reported shape: an image folder's shape is the data's, so no module.
  EXPECT_EQ(PyTorchModule(job, macro).status().code(), absl::StatusCode::kUnimplemented);
  v1::ImageShape* shape = macro.mutable_metrics()->mutable_input_shape();
  shape->set_channels(3);
  shape->set_height(20);
  shape->set_width(12);
  shape->set_classes(5);
  absl::StatusOr<std::string> module = PyTorchModule(job, macro);
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_NE(module->find("def __init__(self, in_channels=3, num_classes=5):"), std::string::npos) << *module;
  EXPECT_EQ(RunModule(*module, "macro", 3, 20, 12), "3 (1, 5)");

  job.mutable_spec()->mutable_evaluator()->mutable_train()->set_dataset("numpy");
  v1::Trial cell = CellTrial("nor_conv_3x3");
  cell.set_trial_id("t2");
  cell.mutable_architecture()->set_canonical("|nor_conv_3x3~0|");
  cell.mutable_metrics()->set_device("cpu");
  *cell.mutable_metrics()->mutable_input_shape() = *shape;
  cell.mutable_metrics()->mutable_input_shape()->set_channels(1);
  cell.mutable_metrics()->mutable_input_shape()->set_classes(7);
  module = PyTorchModule(job, cell);
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_EQ(RunModule(*module, "cell", 1, 20, 12), "1 (1, 7)");
}

// A one-shot job's final trial was trained with final_training's data, its
// search trials with the supernet's.
TEST(ExportTest, AOneShotJobsFinalTrialTakesTheShapeOfFinalTraining) {
  v1::Job job;
  job.set_job_id("j1");
  v1::SharedEvaluatorSpec* shared = job.mutable_spec()->mutable_evaluator()->mutable_shared();
  shared->mutable_data()->set_dataset("image_folder");
  shared->mutable_final_training()->set_dataset("cifar10");
  v1::Trial trial = CellTrial("nor_conv_3x3");
  trial.set_trial_id("t2");
  trial.mutable_architecture()->set_canonical("|nor_conv_3x3~0|");
  trial.mutable_metrics()->set_device("cpu");
  EXPECT_EQ(PyTorchModule(job, trial).status().code(), absl::StatusCode::kUnimplemented);
  trial.set_final_training(true);
  absl::StatusOr<std::string> module = PyTorchModule(job, trial);
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_NE(module->find("in_channels=3"), std::string::npos) << *module;
  EXPECT_EQ(RunModule(*module, "one_shot_cell", 3, 32, 32), "3 (1, 10)");
}

}  // namespace
}  // namespace nas::client
