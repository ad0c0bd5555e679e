"""Wide & Deep: the hashed crosses of the wide part and what the model learns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from skctr.cores.wdl import WideDeep, hash_codes
from skctr.estimators import LRClassifier, WDLClassifier
from skctr.training.loop import make_optimizers
from tests.cores.planted import SCHEMA, tiny_batch

SETTINGS = dict(max_epochs=5, learning_rate=0.01, batch_size=128, early_stopping=False)


def _cross_data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The target depends on the combination of columns a and b (a random 6 x 6 table of
    signs), not on either alone; c and d are noise."""
    table = 2.5 * np.random.default_rng(42).choice([-1.0, 1.0], size=(6, 6))
    rng = np.random.default_rng(seed)
    codes = {name: rng.integers(0, 6, n) for name in "abcd"}
    logit = table[codes["a"], codes["b"]]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({k: [f"{k}{v}" for v in c] for k, c in codes.items()}), y


def test_core_output_shape():
    core = WideDeep(SCHEMA, embedding_dim=3, hidden_units=(8,), cross_features=(("a", "b"),))
    assert core(tiny_batch(min_length=1)).shape == (6,)
    assert WideDeep(SCHEMA, embedding_dim=3)(tiny_batch(min_length=1)).shape == (6,)


def test_cross_weights_are_first_order_weights():
    core = WideDeep(SCHEMA, embedding_dim=3, hidden_units=(8,), cross_features=(("a", "b"),))
    first_order = {id(p) for p in (*core.linear.parameters(), core.cross_weights.weight)}
    for group in (g for opt in make_optimizers(core, 1e-3, 3e-3) for g in opt.param_groups):
        assert group["lr"] == (3e-3 if group["first_order"] else 1e-3)
        assert all((id(p) in first_order) == group["first_order"] for p in group["params"])


def test_hash_is_deterministic_in_range_and_spreads():
    a, b = torch.meshgrid(torch.arange(3, 23), torch.arange(3, 23), indexing="ij")
    codes = torch.stack([a.flatten(), b.flatten()], dim=1)  # 400 distinct pairs
    ids = hash_codes(codes, 10000)
    assert ids.dtype == torch.long
    assert ((ids >= 0) & (ids < 10000)).all()
    torch.testing.assert_close(ids, hash_codes(codes.clone(), 10000))
    assert ids.unique().numel() >= 380  # birthday bound: about 8 collisions expected
    # the order of the crossed columns matters, and huge codes do not overflow
    assert not torch.equal(ids, hash_codes(codes.flip(1), 10000))
    big = hash_codes(torch.tensor([[2**62, 2**40]]), 7)
    assert 0 <= int(big) < 7


def test_cross_ids_use_one_block_per_cross():
    core = WideDeep(SCHEMA, cross_features=(("a", "b"), ("b",)), cross_buckets=50)
    ids = core.cross_ids(tiny_batch(min_length=1))
    assert ids.shape == (6, 2)
    assert ((ids[:, 0] >= 0) & (ids[:, 0] < 50)).all()
    assert ((ids[:, 1] >= 50) & (ids[:, 1] < 100)).all()


def test_unknown_cross_column_is_named():
    with pytest.raises(ValueError, match=r"'nope'.*\['a', 'b'\]"):
        WideDeep(SCHEMA, cross_features=(("a", "nope"),))
    with pytest.raises(ValueError, match="not a sparse field"):
        WideDeep(SCHEMA, cross_features=(("a", "x"),))  # a dense field
    with pytest.raises(ValueError, match="tuple of sparse column names"):
        WideDeep(SCHEMA, cross_features=("a", "b"))  # a flat tuple, not a tuple of tuples
    X, y = _cross_data(200, 0)
    with pytest.raises(ValueError, match="'e'"):
        WDLClassifier(cross_features=(("a", "e"),), max_epochs=1).fit(X, y)


def test_deterministic():
    X, y = _cross_data(400, 0)
    params = dict(embedding_dim=3, hidden_units=(8,), cross_features=(("a", "b"),), random_state=3)
    a = WDLClassifier(**params, **SETTINGS).fit(X, y).predict_proba(X)
    b = WDLClassifier(**params, **SETTINGS).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_declared_cross_learns_what_lr_cannot():
    X, y = _cross_data(2000, 0)
    X_test, y_test = _cross_data(1000, 1)

    def auc(clf):
        return roc_auc_score(y_test, clf.fit(X, y).predict_proba(X_test)[:, 1])

    auc_lr = auc(LRClassifier(random_state=0, **SETTINGS))
    # the wide part alone (no MLP): the cross is what lets it learn the table
    wide = dict(hidden_units=(), embedding_dim=2, random_state=0, **SETTINGS)
    auc_no_cross = auc(WDLClassifier(**wide))
    auc_cross = auc(WDLClassifier(cross_features=(("a", "b"),), **wide))
    assert auc_cross >= auc_lr + 0.1, (auc_cross, auc_lr)
    assert auc_cross >= auc_no_cross + 0.1, (auc_cross, auc_no_cross)
