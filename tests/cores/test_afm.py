"""AFM: the core, the attention weights the estimator exposes and what it learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from skctr.cores.afm import AFM
from skctr.estimators import AFMClassifier, LRClassifier
from tests.cores.planted import SCHEMA, interaction_data, tiny_batch

SETTINGS = dict(max_epochs=5, learning_rate=0.01, batch_size=128, early_stopping=False)


def test_core_output_shape():
    core = AFM(SCHEMA, embedding_dim=3, attention_dim=5, attention_dropout=0.2)
    batch = tiny_batch(min_length=1)
    assert core(batch).shape == (6,)
    weights = core.attention(batch)
    assert weights.shape == (6, 6)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(6))


def test_deterministic():
    X, y = interaction_data(400, 0)
    params = dict(embedding_dim=3, attention_dropout=0.2, random_state=3)
    a = AFMClassifier(**params, **SETTINGS).fit(X, y).predict_proba(X)
    b = AFMClassifier(**params, **SETTINGS).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_attention_weights_and_pair_names():
    X, y = interaction_data(400, 0)
    clf = AFMClassifier(embedding_dim=3, random_state=0, **SETTINGS)
    with pytest.raises(NotFittedError):
        clf.attention_weights(X)
    assert not hasattr(clf, "pair_names_")
    clf.fit(X, y)
    assert clf.pair_names_ == [
        ("a", "b"),
        ("a", "c"),
        ("a", "d"),
        ("b", "c"),
        ("b", "d"),
        ("c", "d"),
    ]
    weights = clf.attention_weights(X.head(50))
    assert weights.shape == (50, 6)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    # encoded as predict encodes: unseen categories are fine
    unseen = X.head(50).replace({"a0": "never-seen"})
    np.testing.assert_array_equal(clf.attention_weights(unseen).shape, (50, 6))
    assert clf.attention_weights(X.head(0)).shape == (0, 6)


def test_learns_a_pairwise_interaction_lr_cannot():
    X, y = interaction_data(2000, 0)
    X_test, y_test = interaction_data(1000, 1)
    lr = LRClassifier(random_state=0, **SETTINGS).fit(X, y)
    afm = AFMClassifier(embedding_dim=4, random_state=0, **SETTINGS).fit(X, y)
    auc_lr = roc_auc_score(y_test, lr.predict_proba(X_test)[:, 1])
    auc_afm = roc_auc_score(y_test, afm.predict_proba(X_test)[:, 1])
    assert auc_afm >= auc_lr + 0.1, (auc_afm, auc_lr)
    # and the attention puts most weight on the planted pair (a, b)
    mean = afm.attention_weights(X_test).mean(axis=0)
    assert afm.pair_names_[int(np.argmax(mean))] == ("a", "b")
