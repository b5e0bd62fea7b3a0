"""Runs model.py files that `nasctl export` wrote for recurrent cells under real
PyTorch (Debian's python3-torch); tests/recurrent_export_test.cc calls it.

  --model DIR[:PARAMETERS]  imports DIR/model.py, builds ChildNet() (the
                          job's sizes), runs two batches of token ids forward
                          and backward (the state of the first carried,
                          detached, into the second), checks the shapes, the
                          parameter names, the worker's initial ranges
                          and that the parameters number
                          PARAMETERS (without it: the spec's formula
                          V*E + (E*base*H + base*H) + H*base*H
                          + (tied ? 0 : V*H) + V over the module's sizes).
  --lstm DIR              DIR/model.py is the spec's LSTM arrangement: with
                          nn.LSTMCell's weights split over its leaves, the
                          cell computes nn.LSTMCell's h and c, and RNNModel
                          the logits of embedding -> nn.LSTM -> decoder.
  --logits DIR:FILE       FILE (JSON: tokens (steps x batch), logits (steps x
                          batch x vocab, flat)) holds what the worker's C++
                          network computed for the tokens with every parameter
                          set by deterministic_fill() and dropout off; the
                          module must compute the same logits.

Prints one line per check; exits 1 naming the first failure.
"""
import argparse
import importlib.util
import json
import sys

import torch
import torch.nn as nn


def load(directory):
    spec = importlib.util.spec_from_file_location("exported_model", directory + "/model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fail(message):
    print("FAIL " + message)
    sys.exit(1)


def check_model(directory, expected_parameters):
    m = load(directory)
    torch.manual_seed(1)
    model = m.ChildNet()
    steps, batch = 5, 3
    state = None
    for _ in range(2):
        tokens = torch.randint(0, m.VOCAB_SIZE, (steps, batch))
        logits, state = model(tokens, state)
        if tuple(logits.shape) != (steps, batch, m.VOCAB_SIZE):
            fail("%s: logits %s, want %s" % (directory, tuple(logits.shape),
                                             (steps, batch, m.VOCAB_SIZE)))
        want_state = 2 if m.CELL_INJECT_NODE >= 0 else 1
        if len(state) != want_state or any(tuple(s.shape) != (batch, m.HIDDEN_SIZE)
                                           for s in state):
            fail("%s: state %s, want %d tensors of %s" % (
                directory, [tuple(s.shape) for s in state], want_state, (batch, m.HIDDEN_SIZE)))
        loss = nn.functional.cross_entropy(logits.reshape(-1, m.VOCAB_SIZE),
                                           torch.randint(0, m.VOCAB_SIZE, (steps * batch,)))
        loss.backward()
        state = m.detach_state(state)
    names = sorted(name for name, _ in model.named_parameters())
    want_names = sorted(["embedding.weight", "cell.w_x.weight", "cell.w_x.bias",
                         "cell.w_h.weight", "decoder.bias"] +
                        ([] if m.TIE_WEIGHTS else ["decoder.weight"]))
    if names != want_names:
        fail("%s: parameters %s, want %s" % (directory, names, want_names))
    fresh = m.ChildNet()
    bound = 1.0 / m.HIDDEN_SIZE ** 0.5
    for name, parameter in fresh.named_parameters():
        low, high = ((-bound, bound) if name.startswith("cell.") else
                     (0.0, 0.0) if name == "decoder.bias" else (-0.1, 0.1))
        if parameter.min().item() < low or parameter.max().item() > high:
            fail("%s: %s starts outside [%g, %g]" % (directory, name, low, high))
    if expected_parameters is None:
        v, e, h = m.VOCAB_SIZE, m.EMBEDDING_SIZE, m.HIDDEN_SIZE
        base = (len(m.NODES) + 1) // 2
        expected_parameters = (v * e + (e * base * h + base * h) + h * base * h +
                               (0 if m.TIE_WEIGHTS else v * h) + v)
    count = sum(p.numel() for p in model.parameters())
    if count != expected_parameters:
        fail("%s: %d parameters, want %d" % (directory, count, expected_parameters))
    print("OK %s: %d parameters, logits %s" % (directory, count, tuple(logits.shape)))


# The order of the parameters in deterministic_fill (the C++ side fills the
# same names the same way).
FILL_ORDER = ["embedding.weight", "cell.w_x.weight", "cell.w_x.bias", "cell.w_h.weight",
              "decoder.weight", "decoder.bias"]


def deterministic_fill(model):
    """Parameter j of FILL_ORDER, element k (row-major): 0.1 * sin(0.37 * k + j)."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            j = FILL_ORDER.index(name)
            k = torch.arange(parameter.numel(), dtype=torch.float64)
            parameter.copy_((0.1 * torch.sin(0.37 * k + j)).reshape(parameter.shape))


def check_logits(directory, path):
    m = load(directory)
    with open(path) as f:
        expected = json.load(f)
    model = m.RNNModel(dropout=0.0)
    deterministic_fill(model)
    model.eval()
    tokens = torch.tensor(expected["tokens"], dtype=torch.long)
    with torch.no_grad():
        logits, _ = model(tokens)
    want = torch.tensor(expected["logits"], dtype=logits.dtype).reshape(logits.shape)
    worst = (logits - want).abs().max().item()
    if not worst <= 1e-4:
        fail("%s: logits differ from the worker's network by %g" % (directory, worst))
    print("OK %s: logits = the worker's network's (max difference %.3g)" % (directory, worst))


def split_randomly(tensor, parts):
    """`parts` random tensors that sum to `tensor`."""
    pieces = [torch.randn_like(tensor) for _ in range(parts - 1)]
    return pieces + [tensor - sum(pieces)]


def lstm_weights_into_cell(cell, ref, hidden):
    """Puts nn.LSTMCell `ref`'s gates (i, f, g, o) on the spec's LSTM leaves:
    leaves 0-3 sum to o, leaf 4 is i, leaf 5 is g, leaves 6-7 sum to f."""
    gate_leaves = {3: [0, 1, 2, 3], 0: [4], 2: [5], 1: [6, 7]}
    with torch.no_grad():
        for gate, leaves in gate_leaves.items():
            rows = slice(gate * hidden, (gate + 1) * hidden)
            for name, whole in (("wx", ref.weight_ih[rows]), ("wh", ref.weight_hh[rows]),
                                ("b", ref.bias_ih[rows] + ref.bias_hh[rows])):
                for leaf, piece in zip(leaves, split_randomly(whole, len(leaves))):
                    target = {"wx": cell.w_x.weight, "wh": cell.w_h.weight, "b": cell.w_x.bias}
                    target[name][leaf * hidden:(leaf + 1) * hidden] = piece


def check_lstm(directory):
    m = load(directory)
    torch.manual_seed(2)
    embedding, hidden, batch, vocab = 5, 7, 3, 11
    ref = nn.LSTMCell(embedding, hidden).double()
    cell = m.RecurrentCell(embedding, hidden).double()
    lstm_weights_into_cell(cell, ref, hidden)
    h = torch.randn(batch, hidden, dtype=torch.double)
    c = torch.randn(batch, hidden, dtype=torch.double)
    state = (h, c)
    worst = 0.0
    for _ in range(6):
        x = torch.randn(batch, embedding, dtype=torch.double)
        h, c = ref(x, (h, c))
        out, state = cell(x, state)
        worst = max(worst, (out - h).abs().max().item(), (state[0] - h).abs().max().item(),
                    (state[1] - c).abs().max().item())
    if worst > 1e-10:
        fail("%s: the LSTM arrangement differs from nn.LSTMCell by %g" % (directory, worst))
    print("OK %s: cell = nn.LSTMCell (max difference %.3g)" % (directory, worst))

    model = m.RNNModel(vocab, embedding, hidden, dropout=0.0, tie_weights=False).double()
    lstm = nn.LSTM(embedding, hidden).double()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(ref.weight_ih)
        lstm.weight_hh_l0.copy_(ref.weight_hh)
        lstm.bias_ih_l0.copy_(ref.bias_ih)
        lstm.bias_hh_l0.copy_(ref.bias_hh)
    lstm_weights_into_cell(model.cell, ref, hidden)
    state, ref_state = None, None
    worst = 0.0
    for _ in range(2):
        tokens = torch.randint(0, vocab, (6, batch))
        logits, state = model(tokens, state)
        ref_out, ref_state = lstm(model.embedding(tokens), ref_state)
        worst = max(worst, (logits - model.decoder(ref_out)).abs().max().item(),
                    (state[1] - ref_state[1][0]).abs().max().item())
    if worst > 1e-10:
        fail("%s: RNNModel with the LSTM arrangement differs from nn.LSTM by %g" %
             (directory, worst))
    print("OK %s: RNNModel = embedding -> nn.LSTM -> decoder (max difference %.3g)" %
          (directory, worst))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--lstm", action="append", default=[])
    parser.add_argument("--logits", action="append", default=[])
    args = parser.parse_args()
    for item in args.model:
        directory, _, parameters = item.partition(":")
        check_model(directory, int(parameters) if parameters else None)
    for directory in args.lstm:
        check_lstm(directory)
    for item in args.logits:
        directory, _, path = item.partition(":")
        check_logits(directory, path)


if __name__ == "__main__":
    main()
