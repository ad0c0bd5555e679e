"""Time CTRFeatureTransformer.fit_transform on Criteo-shaped rows (13 dense + 26 sparse).

Run: python benchmarks/transformer_speed.py [--rows 1000000]
Prints the wall time of fit_transform and transform, and of the peer's README preprocessing
(fillna + LabelEncoder per sparse column + MinMaxScaler) on the same frame.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from sklearn.preprocessing import LabelEncoder, MinMaxScaler

from skctr import CTRFeatureTransformer


def make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Criteo-shaped frame: 13 log-normal dense columns with 5% NaN, 26 Zipf hex columns."""
    rng = np.random.default_rng(seed)
    cols = {}
    for i in range(1, 14):
        v = np.floor(rng.lognormal(1.0, 1.5, n))
        v[rng.random(n) < 0.05] = np.nan
        cols[f"I{i}"] = v
    cards = np.geomspace(10, 100_000, 26).astype(int)
    for i, card in enumerate(cards, start=1):
        ids = np.minimum(rng.zipf(1.2, n), card) - 1
        vocab = np.array([f"{h:08x}" for h in rng.integers(0, 2**32, card)])
        values = pd.Series(vocab[ids], dtype="str")
        values[rng.random(n) < 0.03] = None
        cols[f"C{i}"] = values
    return pd.DataFrame(cols)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    frame = make_frame(args.rows)
    dense = [f"I{i}" for i in range(1, 14)]
    sparse = [f"C{i}" for i in range(1, 27)]

    t = time.perf_counter()
    enc = CTRFeatureTransformer(sparse_features=sparse, dense_features=dense)
    enc.fit_transform(frame)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    enc.transform(frame)
    transform_s = time.perf_counter() - t

    t = time.perf_counter()
    peer = frame.copy()
    peer[sparse] = peer[sparse].fillna("-1")
    peer[dense] = peer[dense].fillna(0)
    for c in sparse:
        peer[c] = LabelEncoder().fit_transform(peer[c])
    peer[dense] = MinMaxScaler().fit_transform(peer[dense])
    peer_s = time.perf_counter() - t

    print(
        f"rows={args.rows}  skctr fit_transform {fit_s:.2f} s  transform {transform_s:.2f} s  "
        f"peer LabelEncoder+MinMaxScaler {peer_s:.2f} s  ratio skctr/peer "
        f"{fit_s / peer_s:.2f}"
    )


if __name__ == "__main__":
    main()
