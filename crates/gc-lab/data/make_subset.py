#!/usr/bin/env python3
"""Write the Fashion-MNIST subset shipped in data/fashion-mnist-subset/ from the full set.

The first TRAIN_PER_CLASS training and TEST_PER_CLASS test images of each class, in file order, as
gzipped IDX files with the official names. Source: Debian's dataset-fashion-mnist package
(/usr/share/datasets/fashion-mnist), or the folder given as the first argument.

Usage: python3 make_subset.py [SOURCE_DIR]
"""

import gzip
import os
import struct
import sys

TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 200
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fashion-mnist-subset")


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return dims, data[4 + 4 * rank:]


def write_idx(path, dims, body):
    header = bytes([0, 0, 8, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims)
    # mtime=0 keeps the output byte-identical between runs.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(header + body)


def subset(src, prefix, per_class):
    (n, h, w), pixels = read_idx(os.path.join(src, f"{prefix}-images-idx3-ubyte.gz"))
    (_,), labels = read_idx(os.path.join(src, f"{prefix}-labels-idx1-ubyte.gz"))
    taken = [0] * 10
    keep = []
    for i, label in enumerate(labels):
        if taken[label] < per_class:
            taken[label] += 1
            keep.append(i)
    size = h * w
    write_idx(os.path.join(OUT, f"{prefix}-images-idx3-ubyte.gz"), (len(keep), h, w),
              b"".join(pixels[i * size:(i + 1) * size] for i in keep))
    write_idx(os.path.join(OUT, f"{prefix}-labels-idx1-ubyte.gz"), (len(keep),),
              bytes(labels[i] for i in keep))
    print(f"{prefix}: {len(keep)} of {n} images")


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    os.makedirs(OUT, exist_ok=True)
    subset(src, "train", TRAIN_PER_CLASS)
    subset(src, "t10k", TEST_PER_CLASS)


if __name__ == "__main__":
    main()
