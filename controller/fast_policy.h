// The paper's LSTM controller in plain C++ float math with a hand-written
// backward pass: the same parameters (names, shapes, initial values), the same
// sampling distribution and the same REINFORCE loss as the LibTorch module in
// lstm_policy.h, which stays as the reference the tests compare against.
//
// Why: the controller's tensors are tiny (35 units), so LibTorch spends nearly
// all its time dispatching operators and recording autograd, not computing.
// Doing the arithmetic directly is ~20x cheaper per architecture (see
// docs/controller.md), which is what lets one controller process keep 800
// children in flight. No LibTorch include: the controller binary does not
// link LibTorch at all.
//
// Gate order and formulas follow torch::nn::LSTM (input, forget, cell,
// output):  c' = f*c + i*g,  h' = o*tanh(c').
// Not thread-safe; one object per replica.
#ifndef NAS_CONTROLLER_FAST_POLICY_H_
#define NAS_CONTROLLER_FAST_POLICY_H_

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/flat_tensor.h"
#include "search_space/search_space.h"
#include "proto/job.pb.h"
#include "proto/search_space.pb.h"

namespace nas::controller {

// Initial controller parameters for a space, sorted by name: U(-r, r) from a
// generator seeded by `seed`, drawn tensor by tensor in name order (the
// LibTorch reference module uses the same function).
std::vector<FlatTensor> InitialControllerParameters(const v1::SearchSpace& space,
                                                    const v1::ControllerSpec& spec,
                                                    uint64_t seed);

// The controller's tensors for a space: name → shape.
using ControllerShapes = std::map<std::string, std::vector<int64_t>>;
ControllerShapes ControllerParameterShapes(const v1::SearchSpace& space,
                                           const v1::ControllerSpec& spec);

// OK when `given` holds exactly the tensors of `expected`, each with its
// shape and as many values; else INVALID_ARGUMENT naming the first problem.
// Both policies' Load check pulled weights with it.
absl::Status CheckControllerTensors(const ControllerShapes& expected,
                                    const std::vector<FlatTensor>& given);

class FastPolicy {
 public:
  FastPolicy(const v1::SearchSpace& space, const v1::ControllerSpec& spec, uint64_t seed);

  // Samples one token sequence for `num_layers` layers (macro CNN; ignored for
  // other spaces). Adds the sequence's summed decision entropy to *entropy and
  // returns its log-probability through *log_prob when not null.
  std::vector<int> Sample(int num_layers, std::mt19937_64* rng, double* log_prob,
                          double* entropy);

  // Log-probability and summed entropy of a given sequence (teacher forcing).
  // INVALID_ARGUMENT if the tokens do not fit the space.
  absl::Status Score(const std::vector<int>& tokens, int num_layers, double* log_prob,
                     double* entropy);

  // Keeps the forward traces of the last `n` sampled sequences (none by
  // default). Backward of one of them, with the parameters not reloaded
  // since, then reuses its trace instead of running the forward pass again:
  // the same numbers, about a third of the work of a gradient saved. A
  // replica keeps m (its children per round).
  void KeepSampleTraces(int n);
  // Backward calls that reused a kept trace so far.
  int64_t traces_reused() const { return traces_reused_; }
  // Adds to the gradient the derivative of
  //   -reward_weight * log_prob(tokens) - entropy_weight * entropy(tokens).
  absl::Status Backward(const std::vector<int>& tokens, int num_layers, double reward_weight,
                        double entropy_weight);

  void ZeroGradients();
  // Scales the gradient so its global L2 norm is at most max_norm (as
  // torch::nn::utils::clip_grad_norm_). Returns the norm before clipping.
  double ClipGradientNorm(double max_norm);

  std::vector<FlatTensor> Parameters() const;
  std::vector<FlatTensor> Gradients() const;
  absl::Status Load(const std::vector<FlatTensor>& parameters);

 private:
  struct Param {
    std::vector<float> value, grad;
    // The matrices the forward pass multiplies by (LSTM, heads, anchor
    // projections): value transposed. Empty for the others.
    std::vector<float> value_t;
    int rows = 1, cols = 1;
  };
  // One LSTM layer at one step: what the backward pass needs.
  struct Cell {
    std::vector<float> x, h_prev, c_prev, gates, c, tanh_c;  // gates: i f g o, activated
  };
  // One controller step: the input embedding row, and every layer's cell.
  struct StepRecord {
    Param* input = nullptr;
    int input_row = 0;
    std::vector<Cell> cells;
    std::vector<float> out;  // the top layer's new h
  };
  // A decision made at a step: categorical head or anchor attention.
  struct DecisionRecord {
    const search_space::Decision* decision = nullptr;
    int step = 0;
    Param *head_w = nullptr, *head_b = nullptr;
    std::vector<float> logits;  // shaped
    std::vector<int> chosen;    // categorical: one index; anchor: one bit per earlier layer
    std::vector<int> anchor_steps;
    // Anchor: q_j = tanh(W_prev h_j + W_curr a) for each earlier layer j
    // (i x units), kept for the backward pass.
    std::vector<float> q;
  };

  // Walks the decisions. `forced` null: sample with *rng; else teacher-force.
  absl::Status Forward(int num_layers, const std::vector<int>* forced, std::mt19937_64* rng,
                       std::vector<int>* tokens, double* log_prob, double* entropy);
  const float* Step(Param* input, int row);
  // Recomputes value_t of the forward pass's matrices after values changed.
  void RefreshTransposes();
  float ShapeLogit(float logit) const;
  float ShapeDerivative(float raw) const;

  const v1::SearchSpace space_;
  const int units_, layers_;
  const double temperature_, tanh_constant_;
  const ControllerShapes shapes_;
  std::map<std::string, Param> params_;
  std::vector<Param*> w_ih_, w_hh_, bias_;
  Param* embedding_start_ = nullptr;
  Param* embedding_anchor_ = nullptr;
  Param *anchor_w_prev_ = nullptr, *anchor_w_curr_ = nullptr, *anchor_v_ = nullptr;
  // The last Forward's trace: the first num_steps_ / num_decisions_ entries.
  // Records are reused from call to call, so a warm policy does not allocate.
  std::vector<StepRecord> steps_;
  std::vector<DecisionRecord> decisions_;
  int num_steps_ = 0, num_decisions_ = 0;
  DecisionRecord& NextDecision();
  // A sampled sequence's trace, kept for its Backward (KeepSampleTraces).
  struct KeptTrace {
    std::vector<StepRecord> steps;
    std::vector<DecisionRecord> decisions;
    int num_steps = 0, num_decisions = 0, num_layers = 0;
    std::vector<int> tokens;
    uint64_t generation = 0;
    bool valid = false;
  };
  std::vector<KeptTrace> kept_;
  size_t next_kept_ = 0;
  // Bumped whenever the parameters change (Load): older traces are stale.
  uint64_t generation_ = 0;
  int64_t traces_reused_ = 0;
  // Makes a kept trace of (tokens, num_layers) the current one; false if none.
  bool TakeKeptTrace(const std::vector<int>& tokens, int num_layers);
  // A categorical decision's head and embedding, by decision name.
  struct Head {
    Param *weight = nullptr, *bias = nullptr, *embedding = nullptr;
  };
  std::map<std::string, Head> heads_;
  // Scratch buffers.
  std::vector<float> raw_, curr_, s_, ds_, da_curr_, dz_, dh_, dgates_, dx_, from_above_;
  std::vector<double> p_, logp_;
  // Anchor attention: W_prev h_j for the anchor points of the current Forward
  // (units_ floats per point, filled as layers are reached).
  std::vector<float> anchor_proj_;
  std::vector<std::vector<float>> dout_, dh_next_, dc_next_;
  std::vector<std::vector<float>> h_, c_;
  // Decision lists by layer count, built once.
  std::map<int, std::vector<search_space::Decision>> decision_cache_;
};

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_FAST_POLICY_H_
