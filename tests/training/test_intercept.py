"""The output intercept starts at the base rate, and default estimators learn."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from skctr import all_classifiers
from skctr.estimators import DCNClassifier, DeepFMClassifier, FMClassifier, LRClassifier
from skctr.training.intercept import base_rate_logit, init_intercept


def test_base_rate_logit_is_the_weighted_log_odds():
    y = np.array([1, 0, 0, 0])
    assert base_rate_logit(y, np.ones(4)) == pytest.approx(math.log(1 / 3))
    assert base_rate_logit(y, np.array([3.0, 1, 1, 1])) == pytest.approx(0.0)
    assert math.isfinite(base_rate_logit(np.zeros(5), np.ones(5)))  # clipped, not -inf


@pytest.mark.parametrize("cls", all_classifiers(), ids=lambda c: c.__name__)
def test_untrained_core_predicts_the_base_rate(cls):
    # one epoch on rows whose features carry no signal: the mean prediction stays near the
    # click rate (0.1) instead of starting at 0.5
    if cls.__name__ == "CTRClassifier":
        pytest.skip("needs a user-supplied core")
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"a": rng.integers(0, 5, n), "b": rng.integers(0, 5, n)})
    y = np.zeros(n, dtype=int)
    y[rng.choice(n, 40, replace=False)] = 1
    clf = cls(max_epochs=1, learning_rate=1e-5, random_state=0, early_stopping=False)
    proba = clf.fit(X, y).predict_proba(X)[:, 1]
    assert abs(proba.mean() - 0.1) < 0.03, proba.mean()


def test_init_intercept_picks_the_output_bias():
    head = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    bias = init_intercept(head, -2.0)
    assert bias is head[2].bias and float(bias.detach()) == -2.0
    assert init_intercept(torch.nn.Linear(3, 4), 1.0) is None  # no one-output layer


def planted(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Main effects plus a pairwise interaction (parity of a and b) a linear model misses."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 10, n), rng.integers(0, 10, n)
    noise = rng.integers(0, 50, n)
    logit = -1.5 + 2.0 * (a < 3) + 1.5 * np.where(a % 2 == b % 2, 1.0, -1.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame({"a": a.astype(str), "b": b.astype(str), "noise": noise.astype(str)})
    return X, y


@pytest.fixture(scope="module")
def planted_data():
    X, y = planted(4000, 0)
    X_test, y_test = planted(2000, 1)
    onehot = OneHotEncoder(handle_unknown="ignore").fit(X)
    lr = LogisticRegression(max_iter=1000).fit(onehot.transform(X), y)
    lr_auc = roc_auc_score(y_test, lr.predict_proba(onehot.transform(X_test))[:, 1])
    constant = log_loss(y_test, np.full(len(y_test), y.mean()))
    return X, y, X_test, y_test, lr_auc, constant


_DCN_MISSES = pytest.mark.xfail(
    reason="with its defaults DCN does not find the parity interaction in 4,000 rows before "
    "early stopping (AUC about LR's); kept visible, see docs/defaults.rst",
    strict=False,
)


@pytest.mark.parametrize(
    "cls",
    [LRClassifier, FMClassifier, DeepFMClassifier, pytest.param(DCNClassifier, marks=_DCN_MISSES)],
    ids=lambda c: c.__name__,
)
def test_defaults_learn_a_planted_signal(cls, planted_data):
    X, y, X_test, y_test, lr_auc, constant = planted_data
    proba = cls(random_state=0).fit(X, y).predict_proba(X_test)[:, 1]
    auc, loss = roc_auc_score(y_test, proba), log_loss(y_test, proba)
    assert loss < constant - 0.02  # clearly beats predicting the click rate
    if cls is LRClassifier:
        assert auc > lr_auc - 0.01  # as good as sklearn's one-hot LR
    else:
        assert auc > lr_auc + 0.05  # the interaction models find the parity LR cannot
