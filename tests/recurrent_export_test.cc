// `nasctl export`'s model.py for recurrent cells against the worker's network
// (worker/recurrent_net), under real PyTorch (Debian's python3-torch,
// /usr/bin/python3, running tests/recurrent_export_check.py): cells sampled
// from several spaces (with and without c_{t-1} injection, tied and untied
// language models) are exported, imported, run forward and backward on token
// ids, and must have as many parameters as the worker's RecurrentLm of the
// same cell and sizes (which must equal the spec's formula); with every
// parameter set to the same deterministic values, model.py computes the
// worker's logits; and the spec's LSTM arrangement computes what
// nn.LSTMCell and nn.LSTM compute.
#include <sys/wait.h>

#include <algorithm>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/export_recurrent.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "gtest/gtest.h"
#include "search_space/child_size.h"
#include "search_space/search_space.h"
#include "tests/test_util.h"
#include "worker/recurrent_net.h"

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
  sizes.shape.vocabulary = vocab;
  sizes.shape.embedding_size = embedding;
  sizes.shape.hidden_size = hidden;
  sizes.shape.tie_weights = tied;
  sizes.dropout = dropout;
  return sizes;
}

// The worker's network for `architecture` with `sizes`.
worker::RecurrentLm WorkersNetwork(const v1::Architecture& architecture,
                                   const client::RecurrentLmSizes& sizes) {
  worker::LanguageModelOptions options;
  options.shape = sizes.shape;
  options.dropout = sizes.dropout;
  absl::StatusOr<worker::RecurrentLm> lm = worker::BuildRecurrentLm(architecture, options);
  EXPECT_TRUE(lm.ok()) << lm.status();
  return lm.value_or(worker::RecurrentLm(nullptr));
}

// Sets parameter j of this order, element k (row-major), to 0.1 sin(0.37 k +
// j), as recurrent_export_check.py's deterministic_fill does.
void DeterministicFill(worker::RecurrentLm& lm) {
  const std::vector<std::string> order = {"embedding.weight", "cell.w_x.weight", "cell.w_x.bias",
                                          "cell.w_h.weight",  "decoder.weight",  "decoder.bias"};
  torch::NoGradGuard no_grad;
  for (auto& item : lm->named_parameters()) {
    const auto j = std::find(order.begin(), order.end(), item.key()) - order.begin();
    ASSERT_LT(j, static_cast<int>(order.size())) << item.key();
    torch::Tensor k = torch::arange(item.value().numel(), torch::kFloat64);
    item.value().copy_((0.1 * torch::sin(0.37 * k + static_cast<double>(j)))
                           .to(torch::kFloat32)
                           .reshape(item.value().sizes()));
  }
}

// Writes the worker's logits for random tokens (steps x batch) with the
// deterministic parameters and dropout off, as JSON for --logits.
std::string WriteWorkersLogits(worker::RecurrentLm& lm, int vocab, const std::string& path) {
  DeterministicFill(lm);
  lm->eval();
  torch::manual_seed(5);
  const torch::Tensor tokens = torch::randint(vocab, {6, 3}, torch::kLong);
  worker::RecurrentState state = lm->cell->InitialState(3, torch::kCPU);
  torch::NoGradGuard no_grad;
  const torch::Tensor logits = lm->forward(tokens, &state).contiguous();
  std::vector<std::string> rows;
  for (int64_t t = 0; t < tokens.size(0); ++t) {
    std::vector<int64_t> row(tokens[t].data_ptr<int64_t>(),
                             tokens[t].data_ptr<int64_t>() + tokens.size(1));
    rows.push_back(absl::StrCat("[", absl::StrJoin(row, ", "), "]"));
  }
  const float* data = logits.data_ptr<float>();
  std::vector<std::string> values;
  for (int64_t i = 0; i < logits.numel(); ++i) values.push_back(absl::StrFormat("%.9g", data[i]));
  EXPECT_TRUE(WriteFileAtomically(path, absl::StrCat("{\"tokens\": [", absl::StrJoin(rows, ", "),
                                                     "], \"logits\": [",
                                                     absl::StrJoin(values, ", "), "]}\n"))
                  .ok());
  return path;
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

TEST(RecurrentExportTest, SampledCellsMatchTheWorkersNetworkUnderPyTorch) {
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
    worker::RecurrentLm lm = WorkersNetwork(arch, c.sizes);
    ASSERT_TRUE(lm) << arch.canonical();
    const int64_t v = c.sizes.shape.vocabulary, e = c.sizes.shape.embedding_size,
                  h = c.sizes.shape.hidden_size;
    ASSERT_EQ(lm->parameter_count(), v * e + (e * c.base * h + c.base * h) + h * c.base * h +
                                         (c.sizes.shape.tie_weights ? 0 : v * h) + v)
        << arch.canonical();
    const std::string module_dir = ExportModule(arch, c.sizes, absl::StrCat(dir, "/case", i));
    args.push_back("--model");
    args.push_back(absl::StrCat(module_dir, ":", lm->parameter_count()));
    args.push_back("--logits");
    args.push_back(absl::StrCat(module_dir, ":",
                                WriteWorkersLogits(lm, c.sizes.shape.vocabulary,
                                                   module_dir + "/logits.json")));
  }
  PythonResult checked = RunCheck(args, dir);
  std::cout << checked.output;
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_EQ(std::count(checked.output.begin(), checked.output.end(), '\n'),
            static_cast<int>(2 * cases.size()))
      << checked.output;
}

TEST(RecurrentExportTest, TheLstmArrangementComputesTorchsLstm) {
  const std::string dir = NewTempDir("recurrent_export_lstm");
  v1::Architecture lstm;
  *lstm.mutable_recurrent_cell() = worker::LstmCellArchitecture();
  const std::string module_dir = ExportModule(lstm, Sizes(11, 5, 7, 0.0, false), dir + "/lstm");
  PythonResult checked = RunCheck({"--lstm", module_dir}, dir);
  std::cout << checked.output;
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_NE(checked.output.find("cell = nn.LSTMCell"), std::string::npos) << checked.output;
  EXPECT_NE(checked.output.find("RNNModel = embedding -> nn.LSTM -> decoder"), std::string::npos)
      << checked.output;
}

}  // namespace
}  // namespace nas
