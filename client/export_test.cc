// `nasctl export` writes server text (ids, names, architectures) into a
// summary people read and Python people run: none of it may carry a control
// character, and a CR or newline must not end a Python comment and start code.
#include "client/export.h"

#include <string>

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

}  // namespace
}  // namespace nas::client
