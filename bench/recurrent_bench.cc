// Benchmark: recurrent cells on Penn Treebank.
//
// 1. Throughput: the train evaluator's training (TrainOnText, the worker's
//    code path for dataset ptb) against a bare LibTorch loop over the same
//    language model (truncated BPTT: detach, forward, cross entropy,
//    backward, clipping, SGD step), same cell, sizes and tokens. Each runs
//    three times, alternating (this shared VM's speed drifts), and the best
//    of each is compared. Goal: worker tokens/s >= 0.95 x the bare loop's.
// 2. Quality: with --cell=FILE (an Architecture in JSON or YAML, or a Trial
//    holding one: the architecture.json `nasctl export JOB` writes for the
//    best trial of examples/ptb_quick.yaml),
//    that cell and the LSTM cell of the space (equal parameter counts:
//    every cell of a space has the same; checked, exit 1 otherwise) trained
//    alike; prints both validation perplexities (no goal: a figure for
//    docs/benchmarks.md).
//    The file is YAML or JSON with the proto's field names.
// Exits 1 naming a figure that misses its goal or a measurement that fails.
//   bazel run //bench:recurrent_bench -- [--cell=best.json]
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/proto_yaml.h"
#include "proto/job.pb.h"
#include "worker/device.h"
#include "worker/ptb_dataset.h"
#include "worker/recurrent_net.h"
#include "worker/train_evaluator.h"

ABSL_FLAG(std::string, ptb_dir, "../ptb", "Directory of ptb.{train,valid,test}.txt[.gz] (default: @ptb's runfiles)");
ABSL_FLAG(std::string, cell, "", "Architecture (YAML or JSON, proto field names) of a cell to compare with the LSTM cell (part 2)");
ABSL_FLAG(int, hidden, 64, "E = H of the language model");
ABSL_FLAG(int, train_tokens, 20000, "Training tokens per run (part 1)");
ABSL_FLAG(int, quality_tokens, 100000, "Training tokens per epoch (part 2)");
ABSL_FLAG(int, quality_epochs, 2, "Epochs (part 2)");
ABSL_FLAG(int, quality_batch, 20,
          "Sequences per batch (part 2; examples/ptb_quick.yaml trains 10)");
ABSL_FLAG(int, quality_bptt, 35,
          "Steps of truncated back-propagation (part 2; examples/ptb_quick.yaml: 20)");

namespace {

constexpr double kThroughputGoal = 0.95;
constexpr int kBatch = 20;
constexpr int kBptt = 35;
constexpr double kLearningRate = 20;
constexpr double kClip = 0.25;

nas::v1::Task LmTask(const nas::v1::Architecture& arch, int train_tokens, int valid_tokens,
                     int epochs, int batch = kBatch, int bptt = kBptt) {
  nas::v1::Task task;
  task.set_job_id("recurrent-bench");
  task.set_trial_id("t0");
  *task.mutable_architecture() = arch;
  nas::v1::TrainEvaluatorSpec* spec = task.mutable_evaluator()->mutable_train();
  spec->set_dataset("ptb");
  spec->set_epochs(epochs);
  spec->set_batch_size(batch);
  spec->set_learning_rate(kLearningRate);
  nas::v1::LanguageModelSpec* lm = spec->mutable_language_model();
  lm->set_embedding_size(absl::GetFlag(FLAGS_hidden));
  lm->set_hidden_size(absl::GetFlag(FLAGS_hidden));
  lm->set_tie_weights(true);
  lm->set_bptt_steps(bptt);
  lm->set_grad_clip(kClip);
  lm->set_train_tokens(train_tokens);
  lm->set_valid_tokens(valid_tokens);
  lm->set_eval_batch_size(10);
  task.mutable_reward()->set_last_epochs(1);
  return task;
}

// Tokens/s of the bare loop over the same model and tokens as TrainOnText.
double BareTokensPerSecond(const nas::v1::Architecture& arch, const nas::worker::TextCorpus& corpus,
                           int train_tokens) {
  nas::worker::LanguageModelOptions options;
  options.shape = {static_cast<int>(corpus.words.size()), absl::GetFlag(FLAGS_hidden), absl::GetFlag(FLAGS_hidden),
                   true, kBptt};
  nas::worker::ChildLimits limits;
  limits.batch_size = kBatch;
  nas::worker::RecurrentLm net = *nas::worker::BuildRecurrentLm(arch, options, limits);
  const int64_t rows = train_tokens / kBatch;
  std::vector<int64_t> ids(corpus.train.begin(), corpus.train.begin() + rows * kBatch);
  const torch::Tensor data = torch::tensor(ids, torch::kLong).view({kBatch, rows}).t().contiguous();
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(kLearningRate));
  const int64_t v = options.shape.vocabulary;
  const absl::Time start = absl::Now();
  nas::worker::RecurrentState state = net->cell->InitialState(kBatch, torch::kCPU);
  for (int64_t t = 0; t + 1 < rows; t += kBptt) {
    const int64_t n = std::min<int64_t>(kBptt, rows - 1 - t);
    state = state.Detached();
    sgd.zero_grad();
    const torch::Tensor logits = net->forward(data.slice(0, t, t + n), &state);
    const torch::Tensor loss =
        torch::nn::functional::cross_entropy(logits.view({-1, v}), data.slice(0, t + 1, t + 1 + n).reshape(-1));
    loss.backward();
    torch::nn::utils::clip_grad_norm_(net->parameters(), kClip);
    sgd.step();
  }
  return static_cast<double>((rows - 1) * kBatch) / absl::ToDoubleSeconds(absl::Now() - start);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  nas::worker::SetTorchThreads(1);
  std::string dir = absl::GetFlag(FLAGS_ptb_dir);
  if (!dir.empty() && dir[0] != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) != nullptr) dir = std::string(cwd) + "/" + dir;  // roots need absolute paths
  }
  auto corpus = nas::worker::LoadPtb(dir, {"/"});
  if (!corpus.ok()) {
    std::fprintf(stderr, "FAILED: %s\n", std::string(corpus.status().message()).c_str());
    return 1;
  }
  nas::v1::Architecture lstm;
  *lstm.mutable_recurrent_cell() = nas::worker::LstmCellArchitecture();
  const int train_tokens = absl::GetFlag(FLAGS_train_tokens);
  const int64_t trained = (train_tokens / kBatch - 1) * kBatch;
  double best_worker = 0, best_bare = 0;
  for (int run = 0; run < 3; ++run) {
    best_bare = std::max(best_bare, BareTokensPerSecond(lstm, **corpus, train_tokens));
    // Two rows of 10 validation tokens: the epoch is all training.
    auto metrics = nas::worker::TrainOnText(LmTask(lstm, train_tokens, 20, 1), **corpus, "cpu",
                                            nas::worker::EvaluationContext());
    if (!metrics.ok()) {
      std::fprintf(stderr, "FAILED: the train evaluator: %s\n", std::string(metrics.status().message()).c_str());
      return 1;
    }
    best_worker = std::max(best_worker, static_cast<double>(trained) / metrics->epochs(0).seconds());
  }
  const double ratio = best_worker / best_bare;
  std::printf("throughput (LSTM cell, E = H = %d, V = %zu, batch %d x %d steps, %lld tokens):\n",
              absl::GetFlag(FLAGS_hidden), (**corpus).words.size(), kBatch, kBptt, static_cast<long long>(trained));
  std::printf("  bare LibTorch loop  %8.0f tokens/s\n", best_bare);
  std::printf("  train evaluator     %8.0f tokens/s\n", best_worker);
  std::printf("  ratio               %8.3f (goal >= %.2f)\n", ratio, kThroughputGoal);
  int failed = 0;
  if (ratio < kThroughputGoal) {
    std::printf("FAILED: the train evaluator's tokens/s ratio %.3f is below %.2f\n", ratio, kThroughputGoal);
    failed = 1;
  }

  const std::string cell_path = absl::GetFlag(FLAGS_cell);
  if (!cell_path.empty()) {
    absl::StatusOr<std::string> json = nas::ReadFile(cell_path);
    nas::v1::Architecture cell;
    nas::v1::Trial trial;
    if (json.ok() && !nas::ParseYamlToMessage(*json, &cell).ok() &&
        nas::ParseYamlToMessage(*json, &trial).ok()) {
      cell = trial.architecture();  // nasctl export's architecture.json
    }
    if (!json.ok() || !cell.has_recurrent_cell()) {
      std::fprintf(stderr,
                   "FAILED: %s holds no recurrent-cell Architecture (or Trial) in JSON or YAML\n",
                   cell_path.c_str());
      return 1;
    }
    const int tokens = absl::GetFlag(FLAGS_quality_tokens), epochs = absl::GetFlag(FLAGS_quality_epochs);
    int64_t parameters[2] = {0, 0};
    int side = 0;
    const int batch = absl::GetFlag(FLAGS_quality_batch), bptt = absl::GetFlag(FLAGS_quality_bptt);
    std::printf(
        "quality (E = H = %d, %d epochs of %d tokens, batch %d x %d steps, validation perplexity "
        "on all of "
        "ptb.valid.txt):\n",
        absl::GetFlag(FLAGS_hidden), epochs, tokens, batch, bptt);
    for (const auto& [name, arch] : {std::pair<const char*, nas::v1::Architecture>{"searched cell", cell},
                                     {"LSTM cell", lstm}}) {
      torch::manual_seed(0);
      auto metrics = nas::worker::TrainOnText(LmTask(arch, tokens, 0, epochs, batch, bptt),
                                              **corpus, "cpu", nas::worker::EvaluationContext());
      if (!metrics.ok()) {
        std::fprintf(stderr, "FAILED: %s: %s\n", name, std::string(metrics.status().message()).c_str());
        return 1;
      }
      std::printf("  %-14s %lld parameters, perplexity %.1f\n", name, static_cast<long long>(metrics->parameters()),
                  metrics->perplexity());
      parameters[side++] = metrics->parameters();
    }
    if (parameters[0] != parameters[1]) {
      std::printf(
          "FAILED: the cells' parameter counts differ (%lld, %lld): not a comparison at equal "
          "parameters\n",
          static_cast<long long>(parameters[0]), static_cast<long long>(parameters[1]));
      failed = 1;
    }
  }
  return failed;
}
