"""Small schemas, batches and planted-signal data shared by the tests of the cores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from skctr.nn.embedding import TensorBatch
from skctr.preprocessing.schema import DenseField, FeatureSchema, SequenceField, SparseField

SCHEMA = FeatureSchema(
    sparse=(SparseField("a", 7), SparseField("b", 5)),
    dense=(DenseField("x"),),
    sequence=(SequenceField("hist_a", 7, 4, shares="a"),),
)


def tiny_batch(n: int = 6, *, min_length: int = 0) -> TensorBatch:
    """A fixed random batch for SCHEMA; history lengths drawn from [min_length, 5)."""
    g = torch.Generator().manual_seed(0)
    return TensorBatch(
        torch.randint(0, 5, (n, 2), generator=g),
        torch.randn(n, 1, generator=g),
        (torch.randint(3, 7, (n, 4), generator=g),),
        torch.randint(min_length, 5, (n, 1), generator=g),
    )


def interaction_data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Two columns whose effect is only their product (no main effects), two noise columns."""
    rng = np.random.default_rng(seed)
    codes = {name: rng.integers(0, 6, n) for name in "abcd"}
    sign = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    logit = 2.5 * sign[codes["a"]] * sign[codes["b"]]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({k: [f"{k}{v}" for v in c] for k, c in codes.items()}), y


def sign_data(n: int, seed: int, order: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Four columns with balanced ±1 codes: the label depends on products of their signs only.

    ``order=2``: ``3 (s_a s_b + s_c s_d)`` (8 categories each); ``order=3``: ``4 s_a s_b s_c``
    (4 categories each, d is noise). Every column alone, and for order 3 every pair, carries
    no signal, so a first-order model stays at AUC 0.5.
    """
    n_cat = 8 if order == 2 else 4
    table = np.random.default_rng(0)
    signs = np.array([table.permutation(np.repeat([-1.0, 1.0], n_cat // 2)) for _ in range(4)])
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, n_cat, size=(n, 4))
    s = signs[np.arange(4), codes]
    logit = 3.0 * (s[:, 0] * s[:, 1] + s[:, 2] * s[:, 3]) if order == 2 else 4.0 * s[:, :3].prod(1)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(codes, columns=list("abcd")).astype(str), y


#: Training settings under which the interaction models learn sign_data in a few seconds.
SIGN_SETTINGS = dict(
    max_epochs=10,
    learning_rate=0.01,
    batch_size=128,
    early_stopping=False,
    n_jobs=1,
    random_state=0,
)


def sign_test_auc(clf, order: int) -> float:
    X, y = sign_data(4000, 0, order)
    X_test, y_test = sign_data(2000, 1, order)
    return roc_auc_score(y_test, clf.fit(X, y).predict_proba(X_test)[:, 1])
