#!/usr/bin/python3
"""Writes a small "own data" set in both layouts nas-service reads
(docs/own_data.md): Fashion-MNIST images of three classes as an image folder
of PNG files (OUT/folder/<class>/*.png) and the same images as a NumPy
archive (OUT/fashion3.npz with x_train and y_train).

    /usr/bin/python3 examples/own_data/make_fashion_subsets.py /tmp/own-data

Needs Debian's python3-numpy and python3-pil (Pillow) and dataset-fashion-mnist.
"""
import gzip
import os
import sys

import numpy as np
from PIL import Image

SOURCE = "/usr/share/datasets/fashion-mnist"
CLASSES = {0: "t-shirt", 1: "trouser", 7: "sneaker"}
PER_CLASS = 400


def read_idx(name, offset):
    with gzip.open(os.path.join(SOURCE, name)) as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/own-data"
    images = read_idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = read_idx("train-labels-idx1-ubyte.gz", 8)
    xs, ys = [], []
    for new_label, (label, name) in enumerate(sorted(CLASSES.items(), key=lambda kv: kv[1])):
        picked = np.flatnonzero(labels == label)[:PER_CLASS]
        directory = os.path.join(out, "folder", name)
        os.makedirs(directory, exist_ok=True)
        for i in picked:
            Image.fromarray(images[i]).save(os.path.join(directory, f"{i}.png"))
        xs.append(images[picked])
        ys.append(np.full(len(picked), new_label, dtype=np.int64))
    np.savez_compressed(os.path.join(out, "fashion3.npz"), x_train=np.concatenate(xs), y_train=np.concatenate(ys))
    print(f"wrote {out}/folder ({len(CLASSES)} classes x {PER_CLASS} PNGs) and {out}/fashion3.npz")


if __name__ == "__main__":
    main()
