// `nasctl export`'s model.py for recurrent cells under real PyTorch (Debian's
// python3-torch, /usr/bin/python3): cells sampled from several spaces (with
// and without c_{t-1} injection, tied and untied language models) are
// exported, imported by tests/recurrent_export_check.py, run forward and
// backward on token ids, and their parameter count must equal the spec's
// formula. The spec's LSTM arrangement must compute what nn.LSTMCell and
// nn.LSTM compute.
#include <sys/wait.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/export.h"
#include "client/export_recurrent.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "gtest/gtest.h"
#include "search_space/search_space.h"
#include "tests/test_util.h"

namespace nas {
namespace {

using ::nas::testing::BinaryPath;
using ::nas::testing::NewTempDir;

struct PythonResult {
  int exit_code = -1;
  std::string output;
};

// Runs tests/recurrent_export_check.py with `args`.
PythonResult RunCheck(const std::vector<std::string>& args, const std::string& dir) {
  std::vector<std::string> argv = {"/usr/bin/python3",
                                   BinaryPath("tests/recurrent_export_check.py")};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string log = dir + "/check.log";
  PythonResult result;
  absl::StatusOr<Subprocess> process = Subprocess::Start(argv, log);
  if (!process.ok()) {
    result.output = std::string(process.status().message());
    return result;
  }
  absl::StatusOr<int> status = process->Wait(absl::Seconds(240));
  if (status.ok() && WIFEXITED(*status)) result.exit_code = WEXITSTATUS(*status);
  result.output = ReadFile(log).value_or("");
  return result;
}

v1::SearchSpace RecurrentSpace(int base, bool inject) {
  v1::SearchSpace space;
  v1::RecurrentCellSpace* r = space.mutable_recurrent_cell();
  r->set_base(base);
  for (const char* c : {"add", "elem_mult"}) r->add_combinations(c);
  for (const char* a : {"identity", "tanh", "sigmoid", "relu"}) r->add_activations(a);
  r->set_cell_inject(inject);
  return space;
}

client::RecurrentLmSizes Sizes(int vocab, int embedding, int hidden, double dropout, bool tied) {
  client::RecurrentLmSizes sizes;
  sizes.vocab_size = vocab;
  sizes.embedding_size = embedding;
  sizes.hidden_size = hidden;
  sizes.dropout = dropout;
  sizes.tie_weights = tied;
  return sizes;
}

// Writes model.py for `cell` with `sizes` into a new directory; returns it.
std::string ExportModule(const v1::Architecture& architecture,
                         const client::RecurrentLmSizes& sizes, const std::string& dir) {
  v1::Job job;
  job.set_job_id("j-recurrent");
  v1::Trial trial;
  trial.set_trial_id("t1");
  *trial.mutable_architecture() = architecture;
  absl::StatusOr<std::string> module = client::RecurrentPyTorchModule(job, trial, sizes);
  EXPECT_TRUE(module.ok()) << module.status();
  EXPECT_TRUE(MakeDirectories(dir).ok());
  EXPECT_TRUE(WriteFileAtomically(dir + "/model.py", module.value_or("")).ok());
  return dir;
}

TEST(RecurrentExportTest, SampledCellsRunUnderPyTorchWithTheFormulasParameterCount) {
  struct Case {
    int base;
    bool inject;
    client::RecurrentLmSizes sizes;
  };
  const std::vector<Case> cases = {
      {8, true, Sizes(50, 12, 12, 0.5, /*tied=*/true)},
      {8, true, Sizes(37, 6, 10, 0.0, /*tied=*/false)},
      {8, false, Sizes(20, 9, 9, 0.1, /*tied=*/true)},
      {4, true, Sizes(25, 8, 5, 0.2, /*tied=*/false)},
      {2, false, Sizes(15, 4, 7, 0.0, /*tied=*/false)},
      {16, true, Sizes(30, 6, 6, 0.3, /*tied=*/true)},
  };
  const std::string dir = NewTempDir("recurrent_export");
  std::mt19937_64 rng(23);
  std::vector<std::string> args;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const v1::Architecture arch =
        search_space::SampleUniform(RecurrentSpace(c.base, c.inject), 0, rng);
    ASSERT_EQ(arch.recurrent_cell().nodes_size(), 2 * c.base - 1);
    ASSERT_EQ(arch.recurrent_cell().cell_inject_node() >= 0, c.inject) << arch.canonical();
    const int64_t parameters = client::RecurrentLmParameters(arch.recurrent_cell(), c.sizes);
    const int64_t v = c.sizes.vocab_size, e = c.sizes.embedding_size, h = c.sizes.hidden_size;
    ASSERT_EQ(parameters, v * e + (e * c.base * h + c.base * h) + h * c.base * h +
                              (c.sizes.tie_weights ? 0 : v * h) + v)
        << arch.canonical();
    const std::string module_dir =
        ExportModule(arch, c.sizes, absl::StrCat(dir, "/case", i));
    args.push_back("--model");
    args.push_back(absl::StrCat(module_dir, ":", parameters));
  }
  PythonResult checked = RunCheck(args, dir);
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_EQ(std::count(checked.output.begin(), checked.output.end(), '\n'),
            static_cast<int>(cases.size()))
      << checked.output;
}

// The LSTM of docs/search_spaces.md (base 8, c_{t-1} injected at node 6).
v1::Architecture LstmArchitecture() {
  const char* kNodes[][2] = {
      {"elem_mult", "identity"}, {"add", "sigmoid"},  {"add", "tanh"},
      {"add", "identity"},       {"add", "identity"}, {"elem_mult", "identity"},
      {"add", "sigmoid"},        {"add", "identity"}, {"add", "identity"},
      {"add", "identity"},       {"add", "identity"}, {"add", "sigmoid"},
      {"add", "tanh"},           {"add", "identity"}, {"add", "identity"}};
  v1::Architecture arch;
  v1::RecurrentCellArchitecture* cell = arch.mutable_recurrent_cell();
  for (const auto& node : kNodes) {
    v1::RecurrentTreeNode* n = cell->add_nodes();
    n->set_combination(node[0]);
    n->set_activation(node[1]);
  }
  cell->set_cell_inject_node(6);
  cell->set_cell_inject_combination("elem_mult");
  cell->set_cell_inject_activation("identity");
  cell->set_cell_output_node(2);
  return arch;
}

TEST(RecurrentExportTest, TheLstmArrangementComputesTorchsLstm) {
  const std::string dir = NewTempDir("recurrent_export_lstm");
  const std::string module_dir =
      ExportModule(LstmArchitecture(), Sizes(11, 5, 7, 0.0, false), dir + "/lstm");
  PythonResult checked = RunCheck({"--lstm", module_dir}, dir);
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_NE(checked.output.find("cell = nn.LSTMCell"), std::string::npos) << checked.output;
  EXPECT_NE(checked.output.find("RNNModel = embedding -> nn.LSTM -> decoder"), std::string::npos)
      << checked.output;
}

}  // namespace
}  // namespace nas
