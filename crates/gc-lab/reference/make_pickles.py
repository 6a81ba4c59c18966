"""Write CIFAR-100 python-version batches re-saved by Python 3 (numpy arrays pickled with
protocols 2, 4 and 5), the forms a user who re-pickled the official files would have.

The test `data::cifar::tests::python3_pickles_of_every_protocol` reads them. Run with the reference
environment (numpy): `crates/gradient-centralization/reference/.venv/bin/python
crates/gc-lab/reference/make_pickles.py crates/gc-lab/tests/fixtures`.
"""

import pathlib
import pickle
import sys

import numpy as np


def batch():
    pixels = (np.arange(2 * 3072) % 251).astype(np.uint8).reshape(2, 3072)
    return {
        "filenames": ["a.png", "b.png"],
        "batch_label": "testing batch 1 of 1",
        "fine_labels": [42, 99],
        "coarse_labels": [3, 19],
        "data": pixels,
    }


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for protocol in (2, 4, 5):
        with open(out / f"cifar100-py3-protocol{protocol}.pickle", "wb") as f:
            pickle.dump(batch(), f, protocol=protocol)


if __name__ == "__main__":
    main(sys.argv[1])
