#include "worker/recurrent_net.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <cstdlib>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "search_space/child_size.h"
#include "search_space/search_space.h"
#include "gtest/gtest.h"

namespace nas::worker {
namespace {

v1::SearchSpace RecurrentSpace(int base, bool inject) {
  v1::SearchSpace space;
  v1::RecurrentCellSpace* r = space.mutable_recurrent_cell();
  r->set_base(base);
  r->add_combinations("add");
  r->add_combinations("elem_mult");
  for (const char* a : {"identity", "tanh", "sigmoid", "relu"}) r->add_activations(a);
  r->set_cell_inject(inject);
  return space;
}

LanguageModelOptions Options(int vocabulary, int embedding, int hidden, bool tie, int bptt = 5) {
  LanguageModelOptions options;
  options.shape.vocabulary = vocabulary;
  options.shape.embedding_size = embedding;
  options.shape.hidden_size = hidden;
  options.shape.tie_weights = tie;
  options.shape.bptt_steps = bptt;
  return options;
}

TEST(RecurrentNetTest, SampledCellsOfEveryBaseRunForwardAndBackwardWithTheFormulasParameterCount) {
  torch::manual_seed(1);
  std::mt19937_64 rng(23);
  int i = 0;
  for (int base : {2, 4, 8, 16}) {
    for (bool inject : {false, true}) {
      for (bool tie : {false, true}) {
        const v1::SearchSpace space = RecurrentSpace(base, inject);
        const v1::Architecture arch = search_space::SampleUniform(space, 0, rng);
        const int embedding = 6 + i % 3, hidden = tie ? embedding : 5 + i % 4;
        LanguageModelOptions options = Options(31, embedding, hidden, tie);
        options.dropout = 0.25;
        ChildLimits limits;
        limits.batch_size = 3;
        auto lm = BuildRecurrentLm(arch, options, limits);
        ASSERT_TRUE(lm.ok()) << lm.status() << " " << arch.canonical();
        RecurrentState state = (*lm)->cell->InitialState(3, torch::kCPU);
        EXPECT_EQ(state.c.defined(), inject);
        const torch::Tensor tokens = torch::randint(31, {5, 3}, torch::kLong);
        const torch::Tensor logits = (*lm)->forward(tokens, &state);
        ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{5, 3, 31})) << arch.canonical();
        ASSERT_EQ(state.h.sizes(), (std::vector<int64_t>{3, hidden}));
        if (inject) ASSERT_EQ(state.c.sizes(), (std::vector<int64_t>{3, hidden}));
        logits.sum().backward();
        for (const auto& p : (*lm)->named_parameters()) {
          EXPECT_TRUE(p.value().grad().defined()) << p.key() << " " << arch.canonical();
        }
        const int64_t expected = 31 * embedding + (embedding * base * hidden + base * hidden) +
                                 hidden * base * hidden + (tie ? 0 : 31 * hidden) + 31;
        EXPECT_EQ((*lm)->parameter_count(), expected) << arch.canonical();
        EXPECT_EQ(search_space::RecurrentLmParameters(base, options.shape), expected);
        EXPECT_EQ(search_space::EstimateRecurrentChildSize(arch, options.shape, 3)->parameters, expected);
        std::vector<std::string> names;
        for (const auto& p : (*lm)->named_parameters()) names.push_back(p.key());
        std::vector<std::string> want = {"embedding.weight", "cell.w_x.weight", "cell.w_x.bias", "cell.w_h.weight"};
        if (!tie) want.push_back("decoder.weight");
        want.push_back("decoder.bias");
        EXPECT_EQ(names, want);
        ++i;
      }
    }
  }
}

TEST(RecurrentNetTest, StateCarriesAcrossCallsAndMatchesOneLongCall) {
  torch::manual_seed(2);
  std::mt19937_64 rng(7);
  const v1::Architecture arch = search_space::SampleUniform(RecurrentSpace(8, true), 0, rng);
  auto lm = BuildRecurrentLm(arch, Options(17, 8, 8, false));
  ASSERT_TRUE(lm.ok()) << lm.status();
  (*lm)->eval();
  const torch::Tensor tokens = torch::randint(17, {6, 2}, torch::kLong);
  RecurrentState whole = (*lm)->cell->InitialState(2, torch::kCPU);
  const torch::Tensor all = (*lm)->forward(tokens, &whole);
  RecurrentState split = (*lm)->cell->InitialState(2, torch::kCPU);
  const torch::Tensor first = (*lm)->forward(tokens.slice(0, 0, 3), &split);
  split = split.Detached();
  const torch::Tensor second = (*lm)->forward(tokens.slice(0, 3, 6), &split);
  EXPECT_TRUE(torch::allclose(torch::cat({first, second}), all, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(split.c, whole.c, 1e-5, 1e-6));
}

TEST(RecurrentNetTest, TheLstmArrangementComputesAnLstmCell) {
  torch::manual_seed(3);
  const int e = 7, h = 5, batch = 4;
  torch::nn::LSTMCell lstm(e, h);
  RecurrentCell cell(LstmCellArchitecture(), e, h);
  // LSTMCell's gates, rows in the order i, f, g, o.
  const std::vector<torch::Tensor> wi = lstm->weight_ih.chunk(4, 0), wh = lstm->weight_hh.chunk(4, 0);
  const std::vector<torch::Tensor> bi = (lstm->bias_ih + lstm->bias_hh).chunk(4, 0);
  // The leaves' gates (leaf j = node 7 + j): o is split over leaves 0..3,
  // i is leaf 4, g leaf 5, f is split over leaves 6 and 7. A gate over n
  // leaves gets n-1 random parts and the remainder, so the parts sum to it.
  const std::vector<std::pair<int, int>> leaf_gate_parts = {{3, 4}, {3, 4}, {3, 4}, {3, 4}, {0, 1},
                                                            {2, 1}, {1, 2}, {1, 2}};
  std::vector<torch::Tensor> wx_rows(8), wh_rows(8), b_rows(8);
  std::map<int, std::vector<torch::Tensor>> rest;  // gate -> what its later leaves still get: wx, wh, b
  std::map<int, int> seen;
  for (size_t j = 0; j < leaf_gate_parts.size(); ++j) {
    const auto [gate, parts] = leaf_gate_parts[j];
    if (rest.count(gate) == 0) rest[gate] = {wi[gate], wh[gate], bi[gate]};
    std::vector<torch::Tensor>& r = rest[gate];
    if (++seen[gate] < parts) {
      wx_rows[j] = torch::randn_like(r[0]);
      wh_rows[j] = torch::randn_like(r[1]);
      b_rows[j] = torch::randn_like(r[2]);
      r = {r[0] - wx_rows[j], r[1] - wh_rows[j], r[2] - b_rows[j]};
    } else {
      wx_rows[j] = r[0];
      wh_rows[j] = r[1];
      b_rows[j] = r[2];
    }
  }
  {
    torch::NoGradGuard no_grad;
    cell->w_x->weight.copy_(torch::cat(wx_rows, 0));
    cell->w_x->bias.copy_(torch::cat(b_rows, 0));
    cell->w_h->weight.copy_(torch::cat(wh_rows, 0));
  }
  const torch::Tensor x = torch::randn({3, batch, e});
  RecurrentState ours{torch::randn({batch, h}), torch::randn({batch, h})};
  std::tuple<torch::Tensor, torch::Tensor> theirs{ours.h, ours.c};
  const torch::Tensor outputs = cell->forward(x, &ours);
  for (int t = 0; t < 3; ++t) {
    theirs = lstm->forward(x[t], theirs);
    EXPECT_TRUE(torch::allclose(outputs[t], std::get<0>(theirs), 1e-5, 1e-6)) << "step " << t;
  }
  EXPECT_TRUE(torch::allclose(ours.h, std::get<0>(theirs), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(ours.c, std::get<1>(theirs), 1e-5, 1e-6));
}

TEST(RecurrentNetTest, BadCellsAndShapesFailWithTheProblemAndOversizedOnesWithTheirSize) {
  v1::Architecture arch;
  *arch.mutable_recurrent_cell() = LstmCellArchitecture();
  arch.mutable_recurrent_cell()->mutable_nodes()->RemoveLast();
  auto lm = BuildRecurrentLm(arch, Options(10, 4, 4, false));
  EXPECT_TRUE(absl::IsInvalidArgument(lm.status()));
  EXPECT_NE(lm.status().message().find("14 tree nodes"), std::string::npos) << lm.status();

  *arch.mutable_recurrent_cell() = LstmCellArchitecture();
  arch.mutable_recurrent_cell()->mutable_nodes(3)->set_activation("softplus");
  lm = BuildRecurrentLm(arch, Options(10, 4, 4, false));
  EXPECT_NE(lm.status().message().find("node 3"), std::string::npos) << lm.status();

  *arch.mutable_recurrent_cell() = LstmCellArchitecture();
  arch.mutable_recurrent_cell()->set_cell_output_node(15);
  lm = BuildRecurrentLm(arch, Options(10, 4, 4, false));
  EXPECT_NE(lm.status().message().find("cell_output_node (15)"), std::string::npos) << lm.status();

  *arch.mutable_recurrent_cell() = LstmCellArchitecture();
  lm = BuildRecurrentLm(arch, Options(10, 4, 6, true));
  EXPECT_NE(lm.status().message().find("tie_weights needs embedding_size (4) == hidden_size (6)"),
            std::string::npos)
      << lm.status();

  ChildLimits limits;
  limits.max_parameters = 1000;
  lm = BuildRecurrentLm(arch, Options(10000, 200, 200, true), limits);
  EXPECT_TRUE(absl::IsResourceExhausted(lm.status()));
  EXPECT_NE(lm.status().message().find("2651600 parameters"), std::string::npos) << lm.status();
}

// The first `count` tokens of a gzipped PTB file ("<eos>" ends each line).
std::vector<std::string> ReadPtbTokens(const std::string& path, size_t count) {
  std::vector<std::string> tokens;
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return tokens;
  char line[8192];
  while (tokens.size() < count && gzgets(file, line, sizeof(line)) != nullptr) {
    for (absl::string_view word : absl::StrSplit(line, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
      tokens.emplace_back(word);
    }
    tokens.push_back("<eos>");
  }
  gzclose(file);
  tokens.resize(std::min(tokens.size(), count));
  return tokens;
}

// [tokens / batch, batch]: each column a contiguous stretch of the text;
// words not in `vocabulary` are "<unk>" (id 0).
torch::Tensor Batchify(const std::vector<std::string>& words, const std::map<std::string, int64_t>& vocabulary,
                       int batch) {
  std::vector<int64_t> ids;
  for (const std::string& w : words) {
    auto it = vocabulary.find(w);
    ids.push_back(it == vocabulary.end() ? 0 : it->second);
  }
  const int64_t rows = static_cast<int64_t>(ids.size()) / batch;
  ids.resize(rows * batch);
  return torch::tensor(ids, torch::kLong).view({batch, rows}).t().contiguous();
}

// "<unk>" and the size-1 most frequent other words of `words`.
std::map<std::string, int64_t> Vocabulary(const std::vector<std::string>& words, size_t size) {
  std::map<std::string, int64_t> counts;
  for (const std::string& w : words) ++counts[w];
  std::vector<std::pair<int64_t, std::string>> by_count;
  for (const auto& [w, n] : counts) {
    if (w != "<unk>") by_count.push_back({-n, w});
  }
  std::sort(by_count.begin(), by_count.end());
  std::map<std::string, int64_t> vocabulary = {{"<unk>", 0}};
  for (size_t i = 0; i + 1 < size && i < by_count.size(); ++i) vocabulary[by_count[i].second] = i + 1;
  return vocabulary;
}

// A language model around torch::nn::LSTM, built like RecurrentLm.
struct TorchLstmLmImpl : torch::nn::Module {
  TorchLstmLmImpl(int vocabulary, int size) {
    embedding = register_module("embedding", torch::nn::Embedding(vocabulary, size));
    lstm = register_module("lstm", torch::nn::LSTM(size, size));
    decoder = register_module("decoder", torch::nn::Linear(size, vocabulary));
    torch::NoGradGuard no_grad;
    embedding->weight.uniform_(-0.1, 0.1);
    decoder->weight.uniform_(-0.1, 0.1);
    decoder->bias.zero_();
  }
  torch::Tensor forward(const torch::Tensor& tokens, std::tuple<torch::Tensor, torch::Tensor>* state) {
    auto [out, next] = lstm->forward(embedding->forward(tokens), *state);
    *state = next;
    return decoder->forward(out);
  }
  torch::nn::Embedding embedding{nullptr};
  torch::nn::LSTM lstm{nullptr};
  torch::nn::Linear decoder{nullptr};
};
TORCH_MODULE(TorchLstmLm);

// Trains `forward` (tokens, detach) -> logits on `train` with truncated BPTT
// and plain SGD for `epochs`, returns the perplexity on `valid`.
template <typename Model, typename State, typename Detach>
double TrainAndEvaluate(Model model, State initial, Detach detach, const torch::Tensor& train,
                        const torch::Tensor& valid, int bptt, int epochs, double lr) {
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(lr));
  const int64_t v = model->embedding->weight.size(0);
  for (int epoch = 0; epoch < epochs; ++epoch) {
    model->train();
    State state = initial;
    for (int64_t t = 0; t + 1 < train.size(0); t += bptt) {
      const int64_t n = std::min<int64_t>(bptt, train.size(0) - 1 - t);
      state = detach(state);
      sgd.zero_grad();
      const torch::Tensor logits = model->forward(train.slice(0, t, t + n), &state);
      torch::Tensor loss =
          torch::nn::functional::cross_entropy(logits.view({-1, v}), train.slice(0, t + 1, t + 1 + n).reshape(-1));
      loss.backward();
      torch::nn::utils::clip_grad_norm_(model->parameters(), 0.25);
      sgd.step();
    }
  }
  model->eval();
  torch::NoGradGuard no_grad;
  State state = initial;
  double total = 0;
  int64_t count = 0;
  for (int64_t t = 0; t + 1 < valid.size(0); t += bptt) {
    const int64_t n = std::min<int64_t>(bptt, valid.size(0) - 1 - t);
    const torch::Tensor logits = model->forward(valid.slice(0, t, t + n), &state);
    total += torch::nn::functional::cross_entropy(
                 logits.view({-1, v}), valid.slice(0, t + 1, t + 1 + n).reshape(-1),
                 torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                 .item<double>();
    count += logits.size(0) * logits.size(1);
  }
  return std::exp(total / count);
}

TEST(RecurrentNetTest, TheLstmInTheSpaceTrainsToTorchLstmsPerplexityOnAPtbSlice) {
  torch::set_num_threads(1);
  const char* srcdir = std::getenv("TEST_SRCDIR");
  ASSERT_NE(srcdir, nullptr);
  const int train_tokens = 20000, batch = 5, epochs = 1;
  const std::vector<std::string> words =
      ReadPtbTokens(std::string(srcdir) + "/ptb/ptb.train.txt.gz", train_tokens + 5000);
  ASSERT_EQ(words.size(), train_tokens + 5000u);
  // A small vocabulary (the slice's most frequent words) keeps the softmax
  // from dominating: the cells are what is compared.
  const std::vector<std::string> train_words(words.begin(), words.begin() + train_tokens);
  const std::map<std::string, int64_t> vocabulary = Vocabulary(train_words, 500);
  const torch::Tensor train = Batchify(train_words, vocabulary, batch);
  const torch::Tensor valid = Batchify({words.begin() + train_tokens, words.end()}, vocabulary, batch);
  const int v = static_cast<int>(vocabulary.size()), size = 32, bptt = 20;
  const double lr = 10;
  // Three seeds each: the spread between seeds is the noise the two
  // networks' perplexities are compared within.
  std::vector<double> ours, theirs;
  for (int seed = 0; seed < 3; ++seed) {
    torch::manual_seed(seed);
    v1::Architecture arch;
    *arch.mutable_recurrent_cell() = LstmCellArchitecture();
    auto lm = BuildRecurrentLm(arch, Options(v, size, size, false, bptt));
    ASSERT_TRUE(lm.ok()) << lm.status();
    ours.push_back(TrainAndEvaluate(
        *lm, (*lm)->cell->InitialState(batch, torch::kCPU), [](const RecurrentState& s) { return s.Detached(); },
        train, valid, bptt, epochs, lr));
    torch::manual_seed(seed);
    TorchLstmLm baseline(v, size);
    const torch::Tensor zeros = torch::zeros({1, batch, size});
    theirs.push_back(TrainAndEvaluate(
        baseline, std::make_tuple(zeros, zeros),
        [](const std::tuple<torch::Tensor, torch::Tensor>& s) {
          return std::make_tuple(std::get<0>(s).detach(), std::get<1>(s).detach());
        },
        train, valid, bptt, epochs, lr));
  }
  const auto mean = [](const std::vector<double>& xs) { return (xs[0] + xs[1] + xs[2]) / 3; };
  for (int i = 0; i < 3; ++i) {
    std::cerr << "seed " << i << ": in the space " << ours[i] << ", torch::nn::LSTM " << theirs[i] << "\n";
  }
  // Both learn: well under the perplexity of the validation slice under the
  // training slice's word frequencies.
  std::vector<double> counts(v, 1.0);  // add-one
  for (int64_t id : std::vector<int64_t>(train.data_ptr<int64_t>(), train.data_ptr<int64_t>() + train.numel())) {
    counts[id] += 1;
  }
  const double total = std::accumulate(counts.begin(), counts.end(), 0.0);
  double nll = 0;
  for (int64_t id : std::vector<int64_t>(valid.data_ptr<int64_t>(), valid.data_ptr<int64_t>() + valid.numel())) {
    nll -= std::log(counts[id] / total);
  }
  const double unigram = std::exp(nll / valid.numel());
  std::cerr << "unigram " << unigram << "\n";
  EXPECT_LT(mean(ours), 0.9 * unigram);
  EXPECT_LT(mean(theirs), 0.9 * unigram);
  // The same perplexity within noise. The seeds' spread is about 2%; the
  // space's LSTM has its output gate summed from four projections and its
  // forget gate from two (the same functions, more parameters), which here
  // trains about 2% better.
  EXPECT_LT(std::abs(mean(ours) - mean(theirs)), 0.05 * mean(theirs));
}

}  // namespace
}  // namespace nas::worker
