"""MLR / LS-PLM: the mixture's logit, the field selection and what the model learns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from skctr.cores.mlr import MixedLogisticRegression
from skctr.estimators import LRClassifier, MLRClassifier
from skctr.training.loop import to_tensors
from tests.cores.planted import SCHEMA, tiny_batch

SETTINGS = dict(max_epochs=5, learning_rate=0.01, batch_size=128, early_stopping=False)


def _region_data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Column r picks a region; in one region x's effect is the opposite of the other's."""
    rng = np.random.default_rng(seed)
    codes = {name: rng.integers(0, 6, n) for name in ["x", "c", "d"]}
    codes["r"] = rng.integers(0, 2, n)
    effect = np.array([1.0, -1.0, 0.5, -0.5, 1.5, -1.5])
    logit = 2.5 * np.where(codes["r"] == 0, 1.0, -1.0) * effect[codes["x"]]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({k: [f"{k}{v}" for v in c] for k, c in codes.items()}), y


def test_core_output_shape():
    core = MixedLogisticRegression(SCHEMA, region_num=3)
    batch = tiny_batch(min_length=1)
    assert core(batch).shape == (6,)
    regions = core.regions(batch)
    assert regions.shape == (6, 3)
    torch.testing.assert_close(regions.sum(dim=1), torch.ones(6))


def test_histories_have_first_order_weights_of_their_own():
    core = MixedLogisticRegression(SCHEMA, region_num=3)
    shared = [f for f in SCHEMA.sequence if f.shares is not None]
    assert shared  # the planted schema has a history sharing a sparse field's codes
    own = sum(f.vocab_size for f in (*SCHEMA.sparse, *SCHEMA.sequence))
    for table in (core.region, core.base):  # as in LinearTerm: not the candidate's rows
        assert table.num_rows == own


def test_logit_is_that_of_the_mixture():
    core = MixedLogisticRegression(SCHEMA, region_num=3)
    torch.nn.init.normal_(core.region.table.weight)
    torch.nn.init.normal_(core.base.table.weight)
    batch = tiny_batch(min_length=1)
    gate, base = core._scores(batch)
    p = (gate.double().exp() * torch.sigmoid(base.double())).sum(dim=1)
    torch.testing.assert_close(core(batch).double(), torch.logit(p), rtol=1e-4, atol=1e-4)


def test_logit_is_finite_at_the_extremes():
    core = MixedLogisticRegression(SCHEMA, region_num=2)
    with torch.no_grad():
        for sign in (1.0, -1.0):
            core.base_bias.fill_(sign * 1e4)
            logits = core(tiny_batch(min_length=1))
            assert torch.isfinite(logits).all()
            assert (logits * sign > 1e3).all()
        core.base_bias.copy_(torch.tensor([1e4, -1e4]))
        core.region_bias.copy_(torch.tensor([1e4, -1e4]))
        assert torch.isfinite(core(tiny_batch(min_length=1))).all()


def test_one_region_is_logistic_regression():
    core = MixedLogisticRegression(SCHEMA, region_num=1)
    batch = tiny_batch(min_length=1)
    expected = core.base(batch).sum(dim=(1, 2)) + core.base_bias
    torch.testing.assert_close(core(batch), expected, rtol=1e-5, atol=1e-5)


def test_field_selection():
    core = MixedLogisticRegression(SCHEMA, region_features=["hist_a"], base_features=["b", "x"])
    assert core.region_fields.tolist() == [3]
    assert core.base_fields.tolist() == [1, 2]
    with pytest.raises(ValueError, match=r"region_features names \['nope'\].*'hist_a'"):
        MixedLogisticRegression(SCHEMA, region_features=["a", "nope"])
    with pytest.raises(ValueError, match="base_features"):
        MixedLogisticRegression(SCHEMA, base_features=[])


def test_deterministic():
    X, y = _region_data(400, 0)
    a = MLRClassifier(random_state=3, **SETTINGS).fit(X, y).predict_proba(X)
    b = MLRClassifier(random_state=3, **SETTINGS).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "selection", [{}, {"region_features": ["r"], "base_features": ["x", "c", "d"]}]
)
def test_learns_regions_lr_cannot(selection):
    X, y = _region_data(2000, 0)
    X_test, y_test = _region_data(1000, 1)
    lr = LRClassifier(random_state=0, **SETTINGS).fit(X, y)
    mlr = MLRClassifier(random_state=0, **selection, **SETTINGS).fit(X, y)
    auc_lr = roc_auc_score(y_test, lr.predict_proba(X_test)[:, 1])
    auc_mlr = roc_auc_score(y_test, mlr.predict_proba(X_test)[:, 1])
    assert auc_mlr >= auc_lr + 0.1, (auc_mlr, auc_lr)
    if selection:  # the gate sees only r, so it splits the rows by r
        with torch.no_grad():
            regions = mlr.core_.regions(to_tensors(mlr.features_.transform(X_test))).numpy()
        r = X_test["r"].to_numpy()
        assert np.abs(regions[r == "r0"].mean(0) - regions[r == "r1"].mean(0)).max() > 0.5
