// model.py for recurrent cells: the tree, injection and sizes land in the
// module's constants; names outside the implemented combinations and
// activations never become Python; a malformed tree is refused naming the
// field; server text stays inside comments. tests/recurrent_export_test runs
// the module under real PyTorch.
#include "client/export_recurrent.h"

#include <string>

#include "absl/strings/match.h"
#include "client/export.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace nas::client {
namespace {

// The LSTM of docs/search_spaces.md (base 8).
v1::RecurrentCellArchitecture LstmCell() {
  const char* kNodes[][2] = {
      {"elem_mult", "identity"}, {"add", "sigmoid"}, {"add", "tanh"},
      {"add", "identity"},       {"add", "identity"}, {"elem_mult", "identity"},
      {"add", "sigmoid"},        {"add", "identity"}, {"add", "identity"},
      {"add", "identity"},       {"add", "identity"}, {"add", "sigmoid"},
      {"add", "tanh"},           {"add", "identity"}, {"add", "identity"}};
  v1::RecurrentCellArchitecture cell;
  for (const auto& node : kNodes) {
    v1::RecurrentTreeNode* n = cell.add_nodes();
    n->set_combination(node[0]);
    n->set_activation(node[1]);
  }
  cell.set_cell_inject_node(6);
  cell.set_cell_inject_combination("elem_mult");
  cell.set_cell_inject_activation("identity");
  cell.set_cell_output_node(2);
  return cell;
}

v1::Trial TrialWith(const v1::RecurrentCellArchitecture& cell) {
  v1::Trial trial;
  trial.set_trial_id("t1");
  *trial.mutable_architecture()->mutable_recurrent_cell() = cell;
  trial.mutable_architecture()->set_canonical("n0:elem_mult/identity|...");
  return trial;
}

RecurrentLmSizes Sizes(int vocab, int embedding, int hidden, bool tied) {
  RecurrentLmSizes sizes;
  sizes.shape.vocabulary = vocab;
  sizes.shape.embedding_size = embedding;
  sizes.shape.hidden_size = hidden;
  sizes.shape.tie_weights = tied;
  sizes.dropout = 0.25;
  return sizes;
}

bool Contains(absl::string_view text, absl::string_view part) {
  return absl::StrContains(text, part);
}

TEST(ExportRecurrentTest, TheTreeInjectionAndSizesBecomeTheModulesConstants) {
  v1::Job job;
  job.set_job_id("j1");
  absl::StatusOr<std::string> module =
      RecurrentPyTorchModule(job, TrialWith(LstmCell()), Sizes(100, 16, 16, true));
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_TRUE(Contains(*module, "NODES = [\n    (\"elem_mult\", \"identity\"),  # node 0\n"
                                "    (\"add\", \"sigmoid\"),  # node 1\n"))
      << *module;
  EXPECT_TRUE(Contains(*module, "    (\"add\", \"identity\"),  # node 14\n]\n")) << *module;
  EXPECT_TRUE(Contains(*module, "CELL_INJECT_NODE = 6\nCELL_INJECT = (\"elem_mult\", \"identity\")\n"
                                "CELL_OUTPUT_NODE = 2\n"))
      << *module;
  EXPECT_TRUE(Contains(*module, "VOCAB_SIZE = 100\nEMBEDDING_SIZE = 16\nHIDDEN_SIZE = 16\n"
                                "DROPOUT = 0.25\nTIE_WEIGHTS = True\n"))
      << *module;
}

TEST(ExportRecurrentTest, ACellWithoutInjectionHasNoCellState) {
  v1::RecurrentCellArchitecture cell;
  for (int i = 0; i < 3; ++i) {
    v1::RecurrentTreeNode* node = cell.add_nodes();
    node->set_combination("add");
    node->set_activation("relu");
  }
  cell.set_cell_inject_node(-1);
  cell.set_cell_output_node(-1);
  v1::Job job;
  absl::StatusOr<std::string> module =
      RecurrentPyTorchModule(job, TrialWith(cell), Sizes(10, 4, 6, false));
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_TRUE(Contains(*module, "CELL_INJECT_NODE = -1\nCELL_INJECT = (None, None)\n"
                                "CELL_OUTPUT_NODE = -1\n"))
      << *module;
  EXPECT_TRUE(Contains(*module, "DROPOUT = 0.25\nTIE_WEIGHTS = False\n")) << *module;
}

TEST(ExportRecurrentTest, TheSummaryGivesTheModelsSizesAndParameters) {
  // V*E + (E*base*H + base*H) + H*base*H + (tied ? 0 : V*H) + V, base 8.
  EXPECT_EQ(RecurrentLmSummary(LstmCell(), Sizes(100, 16, 16, true)),
            "language model: vocabulary 100, embedding 16, hidden 16, dropout 0.25, "
            "tied weights, 5924 parameters (tree of 8 leaves)\n");
  EXPECT_TRUE(Contains(RecurrentLmSummary(LstmCell(), Sizes(100, 16, 32, false)),
                       "untied weights, 17444 parameters"));
}

TEST(ExportRecurrentTest, CellsTheWorkerCannotBuildGetNoModule) {
  // Unknown names never become Python; a malformed tree is refused too.
  v1::Job job;
  v1::RecurrentCellArchitecture cell = LstmCell();
  cell.mutable_nodes(3)->set_activation("tanh\")]\nimport os #");
  absl::StatusOr<std::string> module =
      RecurrentPyTorchModule(job, TrialWith(cell), Sizes(10, 4, 4, false));
  EXPECT_EQ(module.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_TRUE(Contains(module.status().message(),
                       "no PyTorch module for this recurrent cell: recurrent cell node 3 has "
                       "combination 'add' and activation 'tanh\")]\\nimport os #'"))
      << module.status();

  cell = LstmCell();
  cell.mutable_nodes(12)->set_combination("concat");
  module = RecurrentPyTorchModule(job, TrialWith(cell), Sizes(10, 4, 4, false));
  EXPECT_EQ(module.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_TRUE(Contains(module.status().message(), "node 12 has combination 'concat'"))
      << module.status();

  cell = LstmCell();
  cell.set_cell_inject_activation("x\"");
  module = RecurrentPyTorchModule(job, TrialWith(cell), Sizes(10, 4, 4, false));
  EXPECT_EQ(module.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_TRUE(Contains(module.status().message(), "activation 'x\"'")) << module.status();

  cell = LstmCell();
  cell.mutable_nodes()->RemoveLast();
  module = RecurrentPyTorchModule(job, TrialWith(cell), Sizes(10, 4, 4, false));
  EXPECT_EQ(module.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_TRUE(Contains(module.status().message(), "recurrent cell has 14 tree nodes"))
      << module.status();

  cell = LstmCell();
  cell.set_cell_inject_node(15);
  module = RecurrentPyTorchModule(job, TrialWith(cell), Sizes(10, 4, 4, false));
  EXPECT_EQ(module.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_TRUE(Contains(module.status().message(), "cell_inject_node (15)")) << module.status();
}

TEST(ExportRecurrentTest, SizesNoNetworkIsBuiltFromAreRefused) {
  v1::Job job;
  absl::StatusOr<std::string> module =
      RecurrentPyTorchModule(job, TrialWith(LstmCell()), Sizes(10, 4, 6, true));
  EXPECT_EQ(module.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(module.status().message(),
                       "language model: tie_weights needs embedding_size (4) == hidden_size (6)"))
      << module.status();
  RecurrentLmSizes sizes = Sizes(10, 4, 4, false);
  sizes.dropout = 1.0;
  module = RecurrentPyTorchModule(job, TrialWith(LstmCell()), sizes);
  EXPECT_EQ(module.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(module.status().message(), "dropout must be in [0, 1), got 1"))
      << module.status();
}

TEST(ExportRecurrentTest, SizesComeFromTheJobsLanguageModel) {
  v1::Job job;
  v1::TrainEvaluatorSpec* train = job.mutable_spec()->mutable_evaluator()->mutable_train();
  train->set_dataset("ptb");
  train->mutable_language_model()->set_embedding_size(48);
  train->mutable_language_model()->set_hidden_size(48);
  train->mutable_language_model()->set_tie_weights(true);
  train->mutable_language_model()->set_dropout(0.3);
  absl::StatusOr<std::string> module = PyTorchModule(job, TrialWith(LstmCell()));
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_TRUE(Contains(*module, "VOCAB_SIZE = 10000\nEMBEDDING_SIZE = 48\nHIDDEN_SIZE = 48\n"
                                "DROPOUT = 0.3\nTIE_WEIGHTS = True\n"))
      << *module;

  // Unset fields, or no train evaluator at all: the worker's defaults.
  train->mutable_language_model()->set_hidden_size(0);
  train->mutable_language_model()->set_embedding_size(0);
  train->mutable_language_model()->set_tie_weights(false);
  for (int i = 0; i < 2; ++i) {
    module = PyTorchModule(job, TrialWith(LstmCell()));
    ASSERT_TRUE(module.ok()) << module.status();
    EXPECT_TRUE(Contains(*module, "VOCAB_SIZE = 10000\nEMBEDDING_SIZE = 200\nHIDDEN_SIZE = 200\n"))
        << *module;
    job.mutable_spec()->mutable_evaluator()->mutable_synthetic();
  }
}

TEST(ExportRecurrentTest, ServerTextStaysInsideComments) {
  v1::Job job;
  job.set_job_id("j1\r\nimport os; os.system('echo PWNED')\n#");
  v1::Trial trial = TrialWith(LstmCell());
  trial.mutable_architecture()->set_canonical("n0\nimport os");
  absl::StatusOr<std::string> module = RecurrentPyTorchModule(job, trial, Sizes(10, 4, 4, false));
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_FALSE(Contains(*module, "\nimport os")) << *module;
  EXPECT_FALSE(Contains(*module, "\r")) << *module;
}

TEST(ExportRecurrentTest, ExportTrialWritesModelPyAndTheSummaryDescribesTheModel) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/export_recurrent";
  v1::Job job;
  job.set_job_id("j1");
  v1::Trial trial = TrialWith(LstmCell());
  trial.mutable_metrics()->set_perplexity(123.456);
  absl::StatusOr<std::vector<std::string>> written = ExportTrial(job, trial, dir);
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_EQ(written->size(), 3u);
  absl::StatusOr<std::string> model = ReadFile(dir + "/model.py");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE(Contains(*model, "class RNNModel(nn.Module):")) << *model;
  absl::StatusOr<std::string> summary = ReadFile(dir + "/summary.txt");
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_TRUE(Contains(*summary, "c_{t-1} joins node 6 (elem_mult, identity); c_t is node 2\n"))
      << *summary;
  EXPECT_TRUE(Contains(*summary, "language model: vocabulary 10000, embedding 200, hidden 200, "))
      << *summary;
  EXPECT_TRUE(Contains(*summary, "\nperplexity 123.46 (validation)\n")) << *summary;
}

TEST(ExportRecurrentTest, TheSummaryShowsPerplexitiesAndNoAccuracyOrPerImageLatency) {
  v1::Job job;
  job.set_job_id("j1");
  v1::Trial trial = TrialWith(LstmCell());
  v1::TrialMetrics* m = trial.mutable_metrics();
  m->set_reward(0.0149);
  m->set_perplexity(655.25);
  m->set_flops(713000);
  m->set_latency_seconds(0.000125);
  v1::EpochResult* e = m->add_epochs();
  e->set_epoch(1);
  e->set_train_loss(6.5);
  e->set_train_perplexity(665.14);
  e->set_validation_perplexity(655.25);
  e->set_seconds(30);
  const std::string summary = Summary(job, trial);
  EXPECT_TRUE(Contains(summary, "reward     0.0149\nperplexity 655.25 (validation)\n")) << summary;
  EXPECT_TRUE(Contains(summary, "FLOPs      713000 per token\nlatency    0.000125 s (one token)\n"))
      << summary;
  EXPECT_FALSE(Contains(summary, "accuracy")) << summary;
  EXPECT_FALSE(Contains(summary, "image")) << summary;
  EXPECT_TRUE(Contains(summary,
                       "\nepoch  train_loss  train_ppl    val_ppl  seconds\n"
                       "    1      6.5000     665.14     655.25     30.0\n"))
      << summary;
}

}  // namespace
}  // namespace nas::client
