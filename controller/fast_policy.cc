#include "controller/fast_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/vector_clones.h"

namespace nas::controller {

using search_space::Decision;
using search_space::Decisions;
namespace {

// Decision kinds with a softmax head and an embedding, with their choice counts.
std::map<std::string, int> CategoricalKinds(const v1::SearchSpace& space) {
  std::map<std::string, int> kinds;
  const int layers = space.has_macro_cnn() ? 2 : 1;
  for (const Decision& d : Decisions(space, layers)) {
    if (d.kind == Decision::Kind::kCategorical) kinds[d.name] = d.num_choices;
  }
  return kinds;
}

}  // namespace

ControllerShapes ControllerParameterShapes(const v1::SearchSpace& space,
                                           const v1::ControllerSpec& spec) {
  const int64_t h = spec.lstm_units();
  std::map<std::string, std::vector<int64_t>> shapes;
  for (int l = 0; l < spec.lstm_layers(); ++l) {
    shapes[absl::StrCat("lstm_", l, "_w_ih")] = {4 * h, h};
    shapes[absl::StrCat("lstm_", l, "_w_hh")] = {4 * h, h};
    shapes[absl::StrCat("lstm_", l, "_bias")] = {4 * h};
  }
  shapes["embedding_start"] = {1, h};
  for (const auto& [name, choices] : CategoricalKinds(space)) {
    shapes["embedding_" + name] = {choices, h};
    shapes["head_" + name + "_weight"] = {choices, h};
    shapes["head_" + name + "_bias"] = {choices};
  }
  if (space.has_macro_cnn() && space.macro_cnn().skip_connections()) {
    shapes["embedding_anchor"] = {1, h};
    shapes["anchor_w_prev"] = {h, h};
    shapes["anchor_w_curr"] = {h, h};
    shapes["anchor_v"] = {h};
  }
  return shapes;
}

absl::Status CheckControllerTensors(const ControllerShapes& expected,
                                    const std::vector<FlatTensor>& given) {
  if (given.size() != expected.size()) {
    return absl::InvalidArgumentError(absl::StrCat("expected ", expected.size(),
                                                   " controller tensors, got ", given.size()));
  }
  for (const FlatTensor& f : given) {
    auto it = expected.find(f.name);
    if (it == expected.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown controller tensor '", f.name, "'"));
    }
    if (f.shape != it->second || static_cast<int64_t>(f.values.size()) != f.NumElements()) {
      return absl::InvalidArgumentError(absl::StrCat("controller tensor '", f.name,
                                                     "' has the wrong shape"));
    }
  }
  return absl::OkStatus();
}

namespace {

// e^x in plain float arithmetic the compiler can vectorise (a libm call
// cannot be): e^x = 2^n e^r with n = round(x / ln 2), |r| <= ln(2) / 2, and
// e^r by its Taylor series to r^7 (truncation < 2^-24 relative, so within
// about an ulp of expf). x is clamped to [-87, 88], where 2^n is a normal
// float; NaN stays NaN.
inline float Exp(float x) {
  x = std::min(std::max(x, -87.f), 88.f);
  const float n = std::nearbyint(x * 1.44269504f);
  // r = x - n ln 2, with ln 2 split in two so n * (high part) is exact.
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.f / 5040;
  p = p * r + 1.f / 720;
  p = p * r + 1.f / 120;
  p = p * r + 1.f / 24;
  p = p * r + 1.f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// The LSTM's hot spot: 5 of these per unit per layer per step.
inline float Sigmoid(float x) { return 1.f / (1.f + Exp(-x)); }
inline float Tanh(float x) { return 2.f / (1.f + Exp(-2.f * x)) - 1.f; }

// One LSTM cell's activations, in place on its gates (i f g o): sigmoid on
// i, f and o, tanh on g; then c = f c_prev + i g, tanh(c) and h = o tanh(c).
// Loops over units only, so each vectorises.
NAS_VECTOR_CLONES
void CellForward(float* __restrict g, const float* __restrict c_prev, float* __restrict c,
                 float* __restrict tanh_c, float* __restrict h_out, int h) {
  for (int k = 0; k < 2 * h; ++k) g[k] = Sigmoid(g[k]);      // input, forget
  for (int k = 2 * h; k < 3 * h; ++k) g[k] = Tanh(g[k]);     // cell
  for (int k = 3 * h; k < 4 * h; ++k) g[k] = Sigmoid(g[k]);  // output
  for (int k = 0; k < h; ++k) {
    c[k] = g[h + k] * c_prev[k] + g[k] * g[2 * h + k];
    tanh_c[k] = Tanh(c[k]);
    h_out[k] = g[3 * h + k] * tanh_c[k];
  }
}

// log(sigmoid(x)) without overflow.
double LogSigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }

// Rows of a transposed matrix are padded with zeros to a multiple of 8, one
// 8-float vector, so that every block below reads whole vectors.
constexpr int kLanes = 8;
inline int PaddedRows(int rows) { return (rows + kLanes - 1) / kLanes * kLanes; }

// out[r] += sum_c w[r][c] * x[c] for the rows of one block of kVectors
// vectors, given w's padded transpose (wt: cols x PaddedRows(rows)). Column
// by column: the block's sums stay in vector registers for the whole column
// loop. A multiply-add takes 4 cycles and two can start per cycle, so about 8
// independent sums keep the units busy: narrow blocks (the last of a matrix,
// small matrices) spread the columns over two sets of sums. Always inlined,
// so that it is compiled for the caller's target (the AVX2 clone): not
// inlined, it ran as baseline code, 2.4x slower.
template <int kVectors>
__attribute__((always_inline)) inline void MatVecAddBlock(const float* wt, int padded_rows,
                                                          int rows, int cols, const float* x,
                                                          float* out, int r) {
  constexpr int kRows = kVectors * kLanes;
  // (Measured on 140x35, 35x35 and 4x35: a single vector does best alone.)
  constexpr int kSets = kVectors >= 8 || kVectors == 1 ? 1 : 2;
  float acc[kSets][kRows] = {};
  int c = 0;
  for (; c + kSets <= cols; c += kSets) {
    for (int set = 0; set < kSets; ++set) {
      const float* col = wt + static_cast<size_t>(c + set) * padded_rows + r;
      const float xc = x[c + set];
      for (int k = 0; k < kRows; ++k) acc[set][k] += col[k] * xc;
    }
  }
  for (; c < cols; ++c) {
    const float* col = wt + static_cast<size_t>(c) * padded_rows + r;
    const float xc = x[c];
    for (int k = 0; k < kRows; ++k) acc[0][k] += col[k] * xc;
  }
  for (int set = 1; set < kSets; ++set) {
    for (int k = 0; k < kRows; ++k) acc[0][k] += acc[set][k];
  }
  if (r + kRows <= rows) {
    for (int k = 0; k < kRows; ++k) out[r + k] += acc[0][k];
  } else {
    for (int k = 0; r + k < rows; ++k) out[r + k] += acc[0][k];  // the padding is dropped
  }
}

NAS_VECTOR_CLONES
void MatVecAdd(const std::vector<float>& wt, int rows, int cols, const float* x, float* out) {
  const int padded = PaddedRows(rows);
  int r = 0;
  // Widest blocks first (9 vectors: 9 sums, a weight vector and x[c] fill
  // 11 of the 16 AVX registers), then one block for what is left.
  for (; padded - r >= 9 * kLanes; r += 9 * kLanes) {
    MatVecAddBlock<9>(wt.data(), padded, rows, cols, x, out, r);
  }
  switch ((padded - r) / kLanes) {
    case 8:
      return MatVecAddBlock<8>(wt.data(), padded, rows, cols, x, out, r);
    case 7:
      return MatVecAddBlock<7>(wt.data(), padded, rows, cols, x, out, r);
    case 6:
      return MatVecAddBlock<6>(wt.data(), padded, rows, cols, x, out, r);
    case 5:
      return MatVecAddBlock<5>(wt.data(), padded, rows, cols, x, out, r);
    case 4:
      return MatVecAddBlock<4>(wt.data(), padded, rows, cols, x, out, r);
    case 3:
      return MatVecAddBlock<3>(wt.data(), padded, rows, cols, x, out, r);
    case 2:
      return MatVecAddBlock<2>(wt.data(), padded, rows, cols, x, out, r);
    case 1:
      return MatVecAddBlock<1>(wt.data(), padded, rows, cols, x, out, r);
    default:
      return;
  }
}

// wt = transpose of w (rows x cols), each of its rows padded with zeros to
// PaddedRows(rows) floats.
void Transpose(const std::vector<float>& w, int rows, int cols, std::vector<float>* wt) {
  const int padded = PaddedRows(rows);
  wt->assign(static_cast<size_t>(cols) * padded, 0.f);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      (*wt)[static_cast<size_t>(c) * padded + r] = w[static_cast<size_t>(r) * cols + c];
    }
  }
}

// out[c] += sum_r w[r][c] * d[r]   (w: rows x cols, row-major). Skips zero
// d[r] (frequent in the backward pass), which beats register blocking here.
NAS_VECTOR_CLONES
void MatTVecAdd(const std::vector<float>& w, int rows, int cols, const float* d, float* out) {
  for (int r = 0; r < rows; ++r) {
    const float* row = w.data() + static_cast<size_t>(r) * cols;
    const float dr = d[r];
    if (dr == 0) continue;
    for (int c = 0; c < cols; ++c) out[c] += row[c] * dr;
  }
}

// g[r][c] += d[r] * x[c]
NAS_VECTOR_CLONES
void OuterAdd(std::vector<float>* g, int rows, int cols, const float* d, const float* x) {
  for (int r = 0; r < rows; ++r) {
    float* row = g->data() + static_cast<size_t>(r) * cols;
    const float dr = d[r];
    if (dr == 0) continue;
    for (int c = 0; c < cols; ++c) row[c] += dr * x[c];
  }
}

}  // namespace

std::vector<FlatTensor> InitialControllerParameters(const v1::SearchSpace& space,
                                                    const v1::ControllerSpec& spec,
                                                    uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + 17);
  const double r = spec.init_range() > 0 ? spec.init_range() : 0.08;
  std::uniform_real_distribution<double> uniform(-r, r);
  std::vector<FlatTensor> out;
  for (const auto& [name, shape] : ControllerParameterShapes(space, spec)) {
    FlatTensor t;
    t.name = name;
    t.shape = shape;
    t.values.resize(t.NumElements());
    for (float& v : t.values) v = static_cast<float>(uniform(rng));
    out.push_back(std::move(t));
  }
  return out;
}

FastPolicy::FastPolicy(const v1::SearchSpace& space, const v1::ControllerSpec& spec, uint64_t seed)
    : space_(space),
      units_(spec.lstm_units()),
      layers_(spec.lstm_layers()),
      temperature_(spec.temperature() > 0 ? spec.temperature() : 1.0),
      tanh_constant_(spec.tanh_constant()),
      shapes_(ControllerParameterShapes(space, spec)) {
  for (FlatTensor& t : InitialControllerParameters(space, spec, seed)) {
    Param& p = params_[t.name];
    p.rows = t.shape.size() == 2 ? static_cast<int>(t.shape[0]) : 1;
    p.cols = static_cast<int>(t.shape.back());
    p.value = std::move(t.values);
    p.grad.assign(p.value.size(), 0.f);
  }
  for (int l = 0; l < layers_; ++l) {
    w_ih_.push_back(&params_[absl::StrCat("lstm_", l, "_w_ih")]);
    w_hh_.push_back(&params_[absl::StrCat("lstm_", l, "_w_hh")]);
    bias_.push_back(&params_[absl::StrCat("lstm_", l, "_bias")]);
  }
  embedding_start_ = &params_["embedding_start"];
  for (const auto& [name, choices] : CategoricalKinds(space)) {
    Head& head = heads_[name];
    head.weight = &params_["head_" + name + "_weight"];
    head.bias = &params_["head_" + name + "_bias"];
    head.embedding = &params_["embedding_" + name];
  }
  if (params_.count("embedding_anchor")) {
    embedding_anchor_ = &params_["embedding_anchor"];
    anchor_w_prev_ = &params_["anchor_w_prev"];
    anchor_w_curr_ = &params_["anchor_w_curr"];
    anchor_v_ = &params_["anchor_v"];
  }
  RefreshTransposes();
}

float FastPolicy::ShapeLogit(float raw) const {
  double z = raw / temperature_;
  if (tanh_constant_ > 0) z = tanh_constant_ * std::tanh(z);
  return static_cast<float>(z);
}

// d(shaped)/d(raw).
float FastPolicy::ShapeDerivative(float raw) const {
  double d = 1.0 / temperature_;
  if (tanh_constant_ > 0) {
    const double t = std::tanh(raw / temperature_);
    d *= tanh_constant_ * (1 - t * t);
  }
  return static_cast<float>(d);
}

const float* FastPolicy::Step(Param* input, int row) {
  const int h = units_;
  if (num_steps_ == static_cast<int>(steps_.size())) {
    steps_.emplace_back();
    steps_.back().cells.resize(layers_);
  }
  StepRecord& record = steps_[num_steps_++];
  record.input = input;
  record.input_row = row;
  const float* x = input->value.data() + static_cast<size_t>(row) * h;
  for (int l = 0; l < layers_; ++l) {
    Cell& cell = record.cells[l];
    cell.x.assign(x, x + h);
    cell.h_prev = h_[l];
    cell.c_prev = c_[l];
    cell.gates = bias_[l]->value;
    MatVecAdd(w_ih_[l]->value_t, 4 * h, h, cell.x.data(), cell.gates.data());
    MatVecAdd(w_hh_[l]->value_t, 4 * h, h, cell.h_prev.data(), cell.gates.data());
    cell.c.resize(h);
    cell.tanh_c.resize(h);
    CellForward(cell.gates.data(), cell.c_prev.data(), cell.c.data(), cell.tanh_c.data(),
                h_[l].data(), h);
    c_[l] = cell.c;
    x = h_[l].data();
  }
  record.out = h_[layers_ - 1];
  return record.out.data();
}

FastPolicy::DecisionRecord& FastPolicy::NextDecision() {
  if (num_decisions_ == static_cast<int>(decisions_.size())) decisions_.emplace_back();
  DecisionRecord& rec = decisions_[num_decisions_++];
  rec.logits.clear();
  rec.chosen.clear();
  rec.anchor_steps.clear();
  rec.q.clear();
  return rec;
}

absl::Status FastPolicy::Forward(int num_layers, const std::vector<int>* forced,
                                 std::mt19937_64* rng, std::vector<int>* tokens,
                                 double* log_prob, double* entropy) {
  const int h = units_;
  h_.resize(layers_);
  c_.resize(layers_);
  for (int l = 0; l < layers_; ++l) {
    h_[l].assign(h, 0.f);
    c_[l].assign(h, 0.f);
  }
  num_steps_ = 0;
  anchor_proj_.clear();
  num_decisions_ = 0;
  tokens->clear();
  double lp = 0, ent = 0;
  size_t position = 0;
  auto next_token = [&](int limit, int* out) -> absl::Status {
    if (position >= forced->size()) return absl::InvalidArgumentError("too few tokens");
    const int t = (*forced)[position++];
    if (t < 0 || t >= limit) return absl::InvalidArgumentError(absl::StrCat("token ", t, " out of range"));
    *out = t;
    return absl::OkStatus();
  };
  std::uniform_real_distribution<double> uniform(0, 1);
  Param* input = embedding_start_;
  int input_row = 0;

  auto categorical = [&](const Decision& d) -> absl::Status {
    const float* out = Step(input, input_row);
    const Head& head = heads_.at(d.name);
    DecisionRecord& rec = NextDecision();
    rec.decision = &d;
    rec.step = num_steps_ - 1;
    rec.head_w = head.weight;
    rec.head_b = head.bias;
    const int n = d.num_choices;
    std::vector<float>& raw = raw_;
    raw = rec.head_b->value;
    MatVecAdd(rec.head_w->value_t, n, h, out, raw.data());
    rec.logits.resize(n);
    double max = -1e30;
    for (int k = 0; k < n; ++k) {
      rec.logits[k] = ShapeLogit(raw[k]);
      max = std::max(max, static_cast<double>(rec.logits[k]));
    }
    double sum = 0;
    for (int k = 0; k < n; ++k) sum += std::exp(rec.logits[k] - max);
    const double lse = max + std::log(sum);
    int pick = n - 1;
    if (forced != nullptr) {
      absl::Status s = next_token(n, &pick);
      if (!s.ok()) return s;
    } else {
      const double draw = uniform(*rng);
      double cumulative = 0;
      for (int k = 0; k < n; ++k) {
        cumulative += std::exp(rec.logits[k] - lse);
        if (draw < cumulative) {
          pick = k;
          break;
        }
      }
    }
    lp += rec.logits[pick] - lse;
    for (int k = 0; k < n; ++k) {
      const double logp = rec.logits[k] - lse;
      ent -= std::exp(logp) * logp;
    }
    rec.chosen.push_back(pick);
    tokens->push_back(pick);
    // Keep the pre-shaping logits for the backward pass's shape derivative.
    rec.logits.insert(rec.logits.end(), raw.begin(), raw.end());
    input = head.embedding;
    input_row = pick;
    return absl::OkStatus();
  };

  auto found = decision_cache_.find(num_layers);
  if (found == decision_cache_.end()) {
    found = decision_cache_.emplace(num_layers, Decisions(space_, num_layers)).first;
  }
  const std::vector<Decision>& decisions = found->second;
  if (space_.has_macro_cnn() && space_.macro_cnn().skip_connections()) {
    std::vector<int> anchor_steps;
    size_t next = 0;
    for (int i = 0; i < num_layers; ++i) {
      while (next < decisions.size() && decisions[next].layer == i &&
             decisions[next].kind == Decision::Kind::kCategorical) {
        absl::Status s = categorical(decisions[next++]);
        if (!s.ok()) return s;
      }
      const float* a = Step(input, input_row);
      const int a_step = num_steps_ - 1;
      if (i > 0) {
        DecisionRecord& rec = NextDecision();
        rec.decision = &decisions[next++];
        rec.step = a_step;
        rec.anchor_steps = anchor_steps;
        std::vector<float>& curr = curr_;
        curr.assign(h, 0.f);
        MatVecAdd(anchor_w_curr_->value_t, h, h, a, curr.data());
        rec.logits.resize(2 * i);  // shaped, then raw
        rec.q.resize(static_cast<size_t>(i) * h);
        // W_prev h_j of each earlier anchor point, computed once per point.
        for (int j = static_cast<int>(anchor_proj_.size()) / h; j < i; ++j) {
          anchor_proj_.resize(static_cast<size_t>(j + 1) * h, 0.f);  // zeroes point j
          float* proj = anchor_proj_.data() + static_cast<size_t>(j) * h;
          MatVecAdd(anchor_w_prev_->value_t, h, h, steps_[anchor_steps[j]].out.data(), proj);
        }
        for (int j = 0; j < i; ++j) {
          std::vector<float>& s = s_;
          s = curr;
          const float* proj = anchor_proj_.data() + static_cast<size_t>(j) * h;
          for (int k = 0; k < h; ++k) s[k] += proj[k];
          float* q = rec.q.data() + static_cast<size_t>(j) * h;
          float raw = 0;
          for (int k = 0; k < h; ++k) {
            q[k] = Tanh(s[k]);
            raw += anchor_v_->value[k] * q[k];
          }
          rec.logits[j] = ShapeLogit(raw);
          rec.logits[i + j] = raw;
        }
        for (int j = 0; j < i; ++j) {
          const double y = rec.logits[j];
          const double p = 1.0 / (1.0 + std::exp(-y));
          int bit = 0;
          if (forced != nullptr) {
            absl::Status s = next_token(2, &bit);
            if (!s.ok()) return s;
          } else {
            bit = uniform(*rng) < static_cast<float>(p) ? 1 : 0;
          }
          const double l1 = LogSigmoid(y), l0 = LogSigmoid(-y);
          lp += bit ? l1 : l0;
          ent -= p * l1 + (1 - p) * l0;
          rec.chosen.push_back(bit);
          tokens->push_back(bit);
        }
      }
      anchor_steps.push_back(a_step);
      input = embedding_anchor_;
      input_row = 0;
    }
  } else {
    for (const Decision& d : decisions) {
      absl::Status s = categorical(d);
      if (!s.ok()) return s;
    }
  }
  if (forced != nullptr && position != forced->size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected ", position, " tokens, got ", forced->size()));
  }
  if (log_prob != nullptr) *log_prob = lp;
  if (entropy != nullptr) *entropy += ent;
  return absl::OkStatus();
}

std::vector<int> FastPolicy::Sample(int num_layers, std::mt19937_64* rng, double* log_prob,
                                    double* entropy) {
  std::vector<int> tokens;
  // Sampling cannot fail: every drawn token is in range by construction.
  (void)Forward(num_layers, nullptr, rng, &tokens, log_prob, entropy);
  if (!kept_.empty()) {
    // Swap the trace out (the slot's old records become the scratch ones,
    // so a warm policy still does not allocate).
    KeptTrace& kept = kept_[next_kept_++ % kept_.size()];
    kept.steps.swap(steps_);
    kept.decisions.swap(decisions_);
    kept.num_steps = num_steps_;
    kept.num_decisions = num_decisions_;
    kept.num_layers = num_layers;
    kept.tokens = tokens;
    kept.generation = generation_;
    kept.valid = true;
    num_steps_ = num_decisions_ = 0;
  }
  return tokens;
}

void FastPolicy::KeepSampleTraces(int n) {
  kept_.assign(std::max(n, 0), KeptTrace());
  next_kept_ = 0;
}

bool FastPolicy::TakeKeptTrace(const std::vector<int>& tokens, int num_layers) {
  for (KeptTrace& kept : kept_) {
    if (!kept.valid || kept.generation != generation_ || kept.num_layers != num_layers ||
        kept.tokens != tokens) {
      continue;
    }
    kept.steps.swap(steps_);
    kept.decisions.swap(decisions_);
    num_steps_ = kept.num_steps;
    num_decisions_ = kept.num_decisions;
    kept.valid = false;  // its records now serve as scratch
    ++traces_reused_;
    return true;
  }
  return false;
}

absl::Status FastPolicy::Score(const std::vector<int>& tokens, int num_layers, double* log_prob,
                               double* entropy) {
  std::vector<int> seen;
  *entropy = 0;
  return Forward(num_layers, &tokens, nullptr, &seen, log_prob, entropy);
}

absl::Status FastPolicy::Backward(const std::vector<int>& tokens, int num_layers,
                                  double reward_weight, double entropy_weight) {
  if (!TakeKeptTrace(tokens, num_layers)) {
    double lp = 0, ent = 0;
    std::vector<int> seen;
    seen.reserve(tokens.size());
    absl::Status s = Forward(num_layers, &tokens, nullptr, &seen, &lp, &ent);
    if (!s.ok()) return s;
  }
  const int h = units_;
  const int T = num_steps_;
  // d loss / d (top-layer output h) of each step, from the heads and anchors.
  std::vector<std::vector<float>>& dout = dout_;
  if (static_cast<int>(dout.size()) < T) dout.resize(T);
  for (int t = 0; t < T; ++t) dout[t].assign(h, 0.f);
  std::vector<float>& dz = dz_;
  for (int r = 0; r < num_decisions_; ++r) {
    const DecisionRecord& rec = decisions_[r];
    const std::vector<float>& out_h = steps_[rec.step].out;
    if (rec.decision->kind == Decision::Kind::kCategorical) {
      const int n = rec.decision->num_choices;
      double max = -1e30;
      for (int k = 0; k < n; ++k) max = std::max(max, static_cast<double>(rec.logits[k]));
      double sum = 0;
      for (int k = 0; k < n; ++k) sum += std::exp(rec.logits[k] - max);
      const double lse = max + std::log(sum);
      double H = 0;
      std::vector<double>& p = p_;
      std::vector<double>& logp = logp_;
      p.resize(n);
      logp.resize(n);
      for (int k = 0; k < n; ++k) {
        logp[k] = rec.logits[k] - lse;
        p[k] = std::exp(logp[k]);
        H -= p[k] * logp[k];
      }
      dz.assign(n, 0.f);
      for (int k = 0; k < n; ++k) {
        const double onehot = k == rec.chosen[0] ? 1.0 : 0.0;
        const double d = -reward_weight * (onehot - p[k]) + entropy_weight * p[k] * (logp[k] + H);
        dz[k] = static_cast<float>(d * ShapeDerivative(rec.logits[n + k]));
      }
      OuterAdd(&rec.head_w->grad, n, h, dz.data(), out_h.data());
      for (int k = 0; k < n; ++k) rec.head_b->grad[k] += dz[k];
      MatTVecAdd(rec.head_w->value, n, h, dz.data(), dout[rec.step].data());
    } else {
      const int i = static_cast<int>(rec.anchor_steps.size());
      std::vector<float>& da_curr = da_curr_;  // d loss / d (W_curr a)
      da_curr.assign(h, 0.f);
      std::vector<float>& ds = ds_;
      ds.resize(h);
      for (int j = 0; j < i; ++j) {
        const double y = rec.logits[j];
        const double p = 1.0 / (1.0 + std::exp(-y));
        const double dy = -reward_weight * (rec.chosen[j] - p) + entropy_weight * p * (1 - p) * y;
        const float dl = static_cast<float>(dy * ShapeDerivative(rec.logits[i + j]));
        const std::vector<float>& h_j = steps_[rec.anchor_steps[j]].out;
        const float* q = rec.q.data() + static_cast<size_t>(j) * h;
        for (int k = 0; k < h; ++k) {
          anchor_v_->grad[k] += dl * q[k];
          ds[k] = dl * anchor_v_->value[k] * (1 - q[k] * q[k]);
          da_curr[k] += ds[k];
        }
        OuterAdd(&anchor_w_prev_->grad, h, h, ds.data(), h_j.data());
        MatTVecAdd(anchor_w_prev_->value, h, h, ds.data(), dout[rec.anchor_steps[j]].data());
      }
      OuterAdd(&anchor_w_curr_->grad, h, h, da_curr.data(), out_h.data());
      MatTVecAdd(anchor_w_curr_->value, h, h, da_curr.data(), dout[rec.step].data());
    }
  }
  // Backpropagation through time, layer by layer from the top at each step.
  std::vector<std::vector<float>>&dh_next = dh_next_, &dc_next = dc_next_;
  dh_next.resize(layers_);
  dc_next.resize(layers_);
  for (int l = 0; l < layers_; ++l) {
    dh_next[l].assign(h, 0.f);
    dc_next[l].assign(h, 0.f);
  }
  std::vector<float>&dh = dh_, &dgates = dgates_, &dx = dx_, &from_above = from_above_;
  dh.resize(h);
  dgates.resize(4 * h);
  dx.resize(h);
  for (int t = T - 1; t >= 0; --t) {
    StepRecord& step = steps_[t];
    from_above = dout[t];
    for (int l = layers_ - 1; l >= 0; --l) {
      const Cell& cell = step.cells[l];
      const float* g = cell.gates.data();
      for (int k = 0; k < h; ++k) dh[k] = from_above[k] + dh_next[l][k];
      for (int k = 0; k < h; ++k) {
        const float i_g = g[k], f_g = g[h + k], c_g = g[2 * h + k], o_g = g[3 * h + k];
        const float dc = dc_next[l][k] + dh[k] * o_g * (1 - cell.tanh_c[k] * cell.tanh_c[k]);
        const float d_o = dh[k] * cell.tanh_c[k];
        dgates[k] = dc * c_g * i_g * (1 - i_g);
        dgates[h + k] = dc * cell.c_prev[k] * f_g * (1 - f_g);
        dgates[2 * h + k] = dc * i_g * (1 - c_g * c_g);
        dgates[3 * h + k] = d_o * o_g * (1 - o_g);
        dc_next[l][k] = dc * f_g;
      }
      OuterAdd(&w_ih_[l]->grad, 4 * h, h, dgates.data(), cell.x.data());
      OuterAdd(&w_hh_[l]->grad, 4 * h, h, dgates.data(), cell.h_prev.data());
      for (int k = 0; k < 4 * h; ++k) bias_[l]->grad[k] += dgates[k];
      std::fill(dh_next[l].begin(), dh_next[l].end(), 0.f);
      MatTVecAdd(w_hh_[l]->value, 4 * h, h, dgates.data(), dh_next[l].data());
      std::fill(dx.begin(), dx.end(), 0.f);
      MatTVecAdd(w_ih_[l]->value, 4 * h, h, dgates.data(), dx.data());
      from_above = dx;
    }
    float* emb = step.input->grad.data() + static_cast<size_t>(step.input_row) * h;
    for (int k = 0; k < h; ++k) emb[k] += from_above[k];
  }
  return absl::OkStatus();
}

void FastPolicy::ZeroGradients() {
  for (auto& [name, p] : params_) std::fill(p.grad.begin(), p.grad.end(), 0.f);
}

double FastPolicy::ClipGradientNorm(double max_norm) {
  double squares = 0;
  for (const auto& [name, p] : params_) {
    for (float g : p.grad) squares += static_cast<double>(g) * g;
  }
  const double norm = std::sqrt(squares);
  const double scale = max_norm / (norm + 1e-6);
  if (scale < 1) {
    for (auto& [name, p] : params_) {
      for (float& g : p.grad) g = static_cast<float>(g * scale);
    }
  }
  return norm;
}

std::vector<FlatTensor> FastPolicy::Parameters() const {
  std::vector<FlatTensor> out;
  for (const auto& [name, p] : params_) {
    FlatTensor f;
    f.name = name;
    f.shape = shapes_.at(name);
    f.values = p.value;
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<FlatTensor> FastPolicy::Gradients() const {
  std::vector<FlatTensor> out = Parameters();
  for (FlatTensor& f : out) f.values = params_.at(f.name).grad;
  return out;
}

absl::Status FastPolicy::Load(const std::vector<FlatTensor>& parameters) {
  if (absl::Status s = CheckControllerTensors(shapes_, parameters); !s.ok()) return s;
  for (const FlatTensor& f : parameters) params_[f.name].value = f.values;
  ++generation_;
  RefreshTransposes();
  return absl::OkStatus();
}

void FastPolicy::RefreshTransposes() {
  auto refresh = [](Param* p) { Transpose(p->value, p->rows, p->cols, &p->value_t); };
  for (int l = 0; l < layers_; ++l) {
    refresh(w_ih_[l]);
    refresh(w_hh_[l]);
  }
  for (auto& [name, head] : heads_) refresh(head.weight);
  if (anchor_w_prev_ != nullptr) {
    refresh(anchor_w_prev_);
    refresh(anchor_w_curr_);
  }
}

}  // namespace nas::controller
