// The paper's LSTM controller as a LibTorch module. It walks a search space's
// decisions token by token: the embedding of each sampled token is the next
// input; each decision kind has its own embedding and softmax head; anchor
// decisions (macro CNN skip connections) use sigmoid attention
//   P(layer j feeds layer i) = sigmoid(v^T tanh(W_prev h_j + W_curr h_i)).
// Run() either samples (recording tokens) or recomputes the log-probability
// and entropy of given token sequences (teacher forcing), so a gradient is
// always that of the architectures actually evaluated.
#ifndef NAS_CONTROLLER_LSTM_POLICY_H_
#define NAS_CONTROLLER_LSTM_POLICY_H_

#include <torch/torch.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/flat_tensor.h"
#include "controller/fast_policy.h"
#include "proto/job.pb.h"
#include "proto/search_space.pb.h"

namespace nas::controller {

struct PolicyRun {
  // [batch][token]
  std::vector<std::vector<int>> tokens;
  // [batch]: summed log-probability of each sequence, and summed entropy of
  // its decisions.
  torch::Tensor log_prob;
  torch::Tensor entropy;
};

class LstmPolicyImpl : public torch::nn::Module {
 public:
  // Parameters are initialised U(-init_range, init_range) from `seed`, so every
  // replica of a job starts from the same weights.
  LstmPolicyImpl(const v1::SearchSpace& space, const v1::ControllerSpec& spec, uint64_t seed);

  // Samples `batch` sequences for `num_layers` layers (macro CNN) when
  // `forced` is null; otherwise scores the given sequences (all of
  // `num_layers` layers). `rng` draws the samples.
  PolicyRun Run(int batch, int num_layers, const std::vector<std::vector<int>>* forced,
                std::mt19937_64* rng);

  // Parameters as named flat tensors, sorted by name.
  std::vector<FlatTensor> Parameters() const;
  // Gradients (zeros where none), in the same order and names.
  std::vector<FlatTensor> Gradients() const;
  absl::Status Load(const std::vector<FlatTensor>& parameters);

 private:
  torch::Tensor Step(const torch::Tensor& x);
  torch::Tensor Shape(torch::Tensor logits) const;

  const v1::SearchSpace space_;
  const int units_;
  const int layers_;
  const double temperature_;
  const double tanh_constant_;
  const ControllerShapes shapes_;
  std::map<std::string, torch::Tensor> params_;
  // LSTM state during a Run.
  std::vector<torch::Tensor> h_, c_;
};
TORCH_MODULE(LstmPolicy);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_LSTM_POLICY_H_
