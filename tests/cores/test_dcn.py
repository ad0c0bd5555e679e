"""DCN: the core and what the cross network learns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from skctr.cores.dcn import DCN
from skctr.estimators import DCNClassifier, LRClassifier
from skctr.nn.embedding import TensorBatch
from skctr.preprocessing.schema import DenseField, FeatureSchema, SequenceField, SparseField

SCHEMA = FeatureSchema(
    sparse=(SparseField("a", 7), SparseField("b", 5)),
    dense=(DenseField("x"),),
    sequence=(SequenceField("hist_a", 7, 4, shares="a"),),
)
SETTINGS = dict(
    max_epochs=10,
    learning_rate=0.01,
    batch_size=128,
    early_stopping=False,
    n_jobs=1,
    random_state=0,
)


def _batch(n: int = 6) -> TensorBatch:
    g = torch.Generator().manual_seed(0)
    return TensorBatch(
        torch.randint(0, 5, (n, 2), generator=g),
        torch.randn(n, 1, generator=g),
        (torch.randint(3, 7, (n, 4), generator=g),),
        torch.randint(0, 5, (n, 1), generator=g),
    )


def _sign_data(n: int, seed: int, order: int) -> tuple[pd.DataFrame, np.ndarray]:
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


def _test_auc(clf, order: int) -> float:
    X, y = _sign_data(4000, 0, order)
    X_test, y_test = _sign_data(2000, 1, order)
    return roc_auc_score(y_test, clf.fit(X, y).predict_proba(X_test)[:, 1])


@pytest.mark.parametrize("parameterization", ["vector", "matrix"])
@pytest.mark.parametrize("hidden_units", [(8, 4), ()])
def test_core_output_shape(parameterization, hidden_units):
    core = DCN(
        SCHEMA,
        embedding_dim=3,
        hidden_units=hidden_units,
        cross_num=3,
        cross_parameterization=parameterization,
    )
    d = SCHEMA.num_fields * 3
    assert core.cross.in_dim == d and core.cross.num_layers == 3
    assert core.head.in_features == d + (hidden_units[-1] if hidden_units else 0)
    assert core(_batch()).shape == (6,)


def test_cross_only_logit_is_a_linear_map_of_the_cross_output():
    core = DCN(SCHEMA, embedding_dim=3, hidden_units=()).eval()
    batch = _batch()
    x0 = core.embedding(batch).flatten(1)
    torch.testing.assert_close(core(batch), core.head(core.cross(x0)).squeeze(-1))


def test_deterministic():
    X, y = _sign_data(500, 0, order=2)
    params = dict(embedding_dim=3, hidden_units=(8,), dropout=0.2, **SETTINGS)
    a = DCNClassifier(**params).fit(X, y).predict_proba(X)
    b = DCNClassifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_cross_network_learns_pairwise_interactions_lr_cannot():
    lr = _test_auc(LRClassifier(**SETTINGS), order=2)
    dcn = _test_auc(DCNClassifier(embedding_dim=4, hidden_units=(), **SETTINGS), order=2)
    assert lr < 0.56
    assert dcn >= lr + 0.2, (dcn, lr)


def test_matrix_cross_network_learns_a_three_way_interaction():
    lr = _test_auc(LRClassifier(**SETTINGS), order=3)
    dcn = _test_auc(
        DCNClassifier(
            embedding_dim=4, hidden_units=(), cross_parameterization="matrix", **SETTINGS
        ),
        order=3,
    )
    assert dcn >= lr + 0.3, (dcn, lr)
