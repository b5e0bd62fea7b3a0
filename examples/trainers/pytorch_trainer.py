#!/usr/bin/env python3
"""Trains one nas-service child on Fashion-MNIST with plain PyTorch.

An example of the command evaluator (docs/command_evaluator.md): the worker
runs this script once per trial in a fresh working directory and reads the
JSON lines it prints on stdout:

  {"epoch": 1, "accuracy": 0.81, "loss": 0.52, "train_accuracy": 0.78}
  ...
  {"accuracy": 0.84, "parameters": 123456}

It imports the child network from $NAS_MODEL_PY (the module `nasctl export`
writes), trains it for $NAS_EPOCHS epochs on $NAS_DEVICE and saves its
weights to $NAS_OUTPUT_DIR/model.pt. Anything else it prints (to stdout or
stderr) is ordinary output: it ends up in the trial's log (`nasctl logs`).

Needs python3-torch (Debian) and the Fashion-MNIST IDX files (the Debian
location, or --data_dir).
"""
import argparse
import gzip
import importlib.util
import json
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F


def report(**fields):
    # One JSON object per line, flushed at once so the worker sees each
    # epoch as it ends (heartbeats, early stopping).
    print(json.dumps(fields), flush=True)


def open_idx(path):
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_idx(data_dir, prefix, count):
    """The first `count` images (N x 1 x 28 x 28 floats in [0, 1]) and labels."""
    with open_idx(os.path.join(data_dir, prefix + "-images-idx3-ubyte")) as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 0x803:
            sys.exit("%s: not an IDX image file" % prefix)
        count = min(count, n) if count > 0 else n
        pixels = f.read(count * rows * cols)
    with open_idx(os.path.join(data_dir, prefix + "-labels-idx1-ubyte")) as f:
        magic, n = struct.unpack(">II", f.read(8))
        if magic != 0x801:
            sys.exit("%s: not an IDX label file" % prefix)
        labels = f.read(count)
    images = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).float().div_(255)
    return images.view(count, 1, rows, cols), torch.tensor(list(labels), dtype=torch.long)


def load_model(path):
    spec = importlib.util.spec_from_file_location("nas_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ChildNet()


def accuracy(model, images, labels, device, batch=256):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            logits = model(images[i:i + batch].to(device))
            correct += (logits.argmax(1).cpu() == labels[i:i + batch]).sum().item()
    return correct / max(1, len(images))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--train_size", type=int, default=10000, help="training images (0 = all)")
    parser.add_argument("--validation_size", type=int, default=2000, help="images of the test set")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    epochs = int(os.environ.get("NAS_EPOCHS", "1"))
    device = os.environ.get("NAS_DEVICE", "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("NAS_DEVICE=%s but CUDA is not available; training on the CPU" % device, file=sys.stderr)
        device = "cpu"
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    model_py = os.environ.get("NAS_MODEL_PY", "")
    if not model_py:
        sys.exit("NAS_MODEL_PY is empty: this search space has no PyTorch export")
    model = load_model(model_py).to(device)
    parameters = sum(p.numel() for p in model.parameters())

    train_x, train_y = read_idx(args.data_dir, "train", args.train_size)
    val_x, val_y = read_idx(args.data_dir, "t10k", args.validation_size)
    print("trial %s: %d training and %d validation images, %d parameters, %s" %
          (os.environ.get("NAS_TRIAL_ID", "?"), len(train_x), len(val_x), parameters, device), flush=True)

    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                                weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    for epoch in range(1, epochs + 1):
        start = time.time()
        model.train()
        order = torch.randperm(len(train_x))
        loss_sum, correct = 0.0, 0
        for i in range(0, len(train_x), args.batch_size):
            idx = order[i:i + args.batch_size]
            x, y = train_x[idx].to(device), train_y[idx].to(device)
            optimizer.zero_grad()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
        scheduler.step()
        report(epoch=epoch, accuracy=accuracy(model, val_x, val_y, device),
               loss=loss_sum / len(train_x), train_accuracy=correct / len(train_x),
               seconds=round(time.time() - start, 3))

    output_dir = os.environ.get("NAS_OUTPUT_DIR", ".")
    torch.save(model.state_dict(), os.path.join(output_dir, "model.pt"))
    report(accuracy=accuracy(model, val_x, val_y, device), parameters=parameters)


if __name__ == "__main__":
    main()
