#include "controller/lstm_policy.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "controller/fast_policy.h"
#include "search_space/search_space.h"

namespace nas::controller {

using search_space::Decision;
using search_space::Decisions;

LstmPolicyImpl::LstmPolicyImpl(const v1::SearchSpace& space, const v1::ControllerSpec& spec,
                               uint64_t seed)
    : space_(space),
      units_(spec.lstm_units()),
      layers_(spec.lstm_layers()),
      temperature_(spec.temperature() > 0 ? spec.temperature() : 1.0),
      tanh_constant_(spec.tanh_constant()),
      shapes_(ControllerParameterShapes(space, spec)) {
  for (FlatTensor& f : InitialControllerParameters(space, spec, seed)) {
    torch::Tensor t = torch::from_blob(f.values.data(), f.shape, torch::kFloat32).clone();
    params_[f.name] = register_parameter(f.name, t);
  }
}

torch::Tensor LstmPolicyImpl::Step(const torch::Tensor& x) {
  torch::Tensor input = x;
  for (int l = 0; l < layers_; ++l) {
    const std::string p = absl::StrCat("lstm_", l, "_");
    torch::Tensor gates = torch::matmul(input, params_[p + "w_ih"].t()) +
                          torch::matmul(h_[l], params_[p + "w_hh"].t()) + params_[p + "bias"];
    std::vector<torch::Tensor> g = gates.chunk(4, 1);
    c_[l] = torch::sigmoid(g[1]) * c_[l] + torch::sigmoid(g[0]) * torch::tanh(g[2]);
    h_[l] = torch::sigmoid(g[3]) * torch::tanh(c_[l]);
    input = h_[l];
  }
  return input;
}

torch::Tensor LstmPolicyImpl::Shape(torch::Tensor logits) const {
  logits = logits / temperature_;
  if (tanh_constant_ > 0) logits = tanh_constant_ * torch::tanh(logits);
  return logits;
}

PolicyRun LstmPolicyImpl::Run(int batch, int num_layers,
                              const std::vector<std::vector<int>>* forced, std::mt19937_64* rng) {
  h_.assign(layers_, torch::zeros({batch, units_}));
  c_.assign(layers_, torch::zeros({batch, units_}));
  PolicyRun run;
  run.tokens.assign(batch, {});
  run.log_prob = torch::zeros({batch});
  run.entropy = torch::zeros({batch});
  torch::Tensor x = params_["embedding_start"].expand({batch, units_});
  std::vector<int> position(batch, 0);

  auto categorical = [&](const Decision& d) {
    torch::Tensor h = Step(x);
    torch::Tensor logits =
        Shape(torch::matmul(h, params_["head_" + d.name + "_weight"].t()) +
              params_["head_" + d.name + "_bias"]);
    torch::Tensor logp = torch::log_softmax(logits, 1);
    std::vector<int64_t> chosen(batch);
    if (forced != nullptr) {
      for (int b = 0; b < batch; ++b) chosen[b] = (*forced)[b][position[b]++];
    } else {
      torch::Tensor probs = logp.detach().exp().contiguous();
      auto acc = probs.accessor<float, 2>();
      std::uniform_real_distribution<double> u(0, 1);
      for (int b = 0; b < batch; ++b) {
        double draw = u(*rng), cumulative = 0;
        int pick = d.num_choices - 1;
        for (int k = 0; k < d.num_choices; ++k) {
          cumulative += acc[b][k];
          if (draw < cumulative) {
            pick = k;
            break;
          }
        }
        chosen[b] = pick;
      }
    }
    torch::Tensor index = torch::tensor(chosen, torch::kLong);
    run.log_prob = run.log_prob + logp.gather(1, index.unsqueeze(1)).squeeze(1);
    run.entropy = run.entropy - (logp.exp() * logp).sum(1);
    for (int b = 0; b < batch; ++b) run.tokens[b].push_back(static_cast<int>(chosen[b]));
    x = params_["embedding_" + d.name].index_select(0, index);
  };

  if (space_.has_macro_cnn()) {
    const bool skip = space_.macro_cnn().skip_connections();
    const std::vector<Decision> decisions = Decisions(space_, num_layers);
    std::vector<torch::Tensor> anchors;
    size_t next = 0;
    for (int i = 0; i < num_layers; ++i) {
      while (next < decisions.size() && decisions[next].layer == i &&
             decisions[next].kind == Decision::Kind::kCategorical) {
        categorical(decisions[next++]);
      }
      if (!skip) continue;
      // The anchor point of layer i: its state attends over earlier anchors.
      torch::Tensor a = Step(x);
      if (i > 0) {
        ++next;  // the anchor decision
        torch::Tensor previous = torch::stack(anchors, 1);  // [B, i, H]
        torch::Tensor q = torch::tanh(torch::matmul(previous, params_["anchor_w_prev"].t()) +
                                      torch::matmul(a, params_["anchor_w_curr"].t()).unsqueeze(1));
        torch::Tensor logits = Shape(torch::matmul(q, params_["anchor_v"]));  // [B, i]
        torch::Tensor p = torch::sigmoid(logits);
        torch::Tensor logp1 = torch::log_sigmoid(logits);
        torch::Tensor logp0 = torch::log_sigmoid(-logits);
        std::vector<float> bits(static_cast<size_t>(batch) * i);
        if (forced != nullptr) {
          for (int b = 0; b < batch; ++b) {
            for (int j = 0; j < i; ++j) bits[b * i + j] = static_cast<float>((*forced)[b][position[b]++]);
          }
        } else {
          torch::Tensor pd = p.detach().contiguous();
          auto acc = pd.accessor<float, 2>();
          std::uniform_real_distribution<double> u(0, 1);
          for (int b = 0; b < batch; ++b) {
            for (int j = 0; j < i; ++j) bits[b * i + j] = u(*rng) < acc[b][j] ? 1.f : 0.f;
          }
        }
        torch::Tensor chosen = torch::from_blob(bits.data(), {batch, i}, torch::kFloat32).clone();
        run.log_prob = run.log_prob + (chosen * logp1 + (1 - chosen) * logp0).sum(1);
        run.entropy = run.entropy - (p * logp1 + (1 - p) * logp0).sum(1);
        for (int b = 0; b < batch; ++b) {
          for (int j = 0; j < i; ++j) run.tokens[b].push_back(static_cast<int>(bits[b * i + j]));
        }
      }
      anchors.push_back(a);
      x = params_["embedding_anchor"].expand({batch, units_});
    }
  } else {
    for (const Decision& d : Decisions(space_, num_layers)) categorical(d);
  }
  return run;
}

std::vector<FlatTensor> LstmPolicyImpl::Parameters() const {
  std::vector<FlatTensor> out;
  for (const auto& [name, t] : params_) {
    FlatTensor f;
    f.name = name;
    f.shape.assign(t.sizes().begin(), t.sizes().end());
    torch::Tensor c = t.detach().contiguous();
    f.values.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<FlatTensor> LstmPolicyImpl::Gradients() const {
  std::vector<FlatTensor> out;
  for (const auto& [name, t] : params_) {
    FlatTensor f;
    f.name = name;
    f.shape.assign(t.sizes().begin(), t.sizes().end());
    if (t.grad().defined()) {
      torch::Tensor c = t.grad().contiguous();
      f.values.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    } else {
      f.values.assign(t.numel(), 0.f);
    }
    out.push_back(std::move(f));
  }
  return out;
}

absl::Status LstmPolicyImpl::Load(const std::vector<FlatTensor>& parameters) {
  if (absl::Status s = CheckControllerTensors(shapes_, parameters); !s.ok()) return s;
  torch::NoGradGuard no_grad;
  for (const FlatTensor& f : parameters) {
    torch::Tensor& t = params_[f.name];
    std::copy(f.values.begin(), f.values.end(), t.data_ptr<float>());
  }
  return absl::OkStatus();
}

}  // namespace nas::controller
