"""AutoInt: the core and what the self-attention layers learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from skctr.cores.autoint import AutoInt
from skctr.estimators import AutoIntClassifier, LRClassifier
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


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("hidden_units", [(), (8,)])
def test_core_output_shape(residual, hidden_units):
    core = AutoInt(
        SCHEMA,
        embedding_dim=3,
        hidden_units=hidden_units,
        att_layer_num=2,
        att_head_num=3,
        att_embedding_dim=5,
        att_res=residual,
    )
    assert len(core.interacting) == 2
    assert core.interacting[0].embedding_dim == 3 and core.interacting[1].embedding_dim == 15
    assert core.head.in_features == SCHEMA.num_fields * 15
    assert (core.mlp is None) == (hidden_units == ())
    assert core(_batch()).shape == (6,)


def test_autoint_plus_adds_the_mlp_logit():
    core = AutoInt(SCHEMA, embedding_dim=3, hidden_units=(8,), att_layer_num=1).eval()
    batch = _batch()
    fields = core.embedding(batch)
    attention = core.head(core.interacting(fields).flatten(1)).squeeze(-1)
    torch.testing.assert_close(core(batch), attention + core.mlp(fields.flatten(1)).squeeze(-1))


def test_default_is_plain_autoint():
    assert AutoIntClassifier().hidden_units == ()
    assert AutoInt(SCHEMA).mlp is None


def test_deterministic():
    X, y = _sign_data(500, 0, order=2)
    params = dict(embedding_dim=3, att_layer_num=2, att_embedding_dim=4, **SETTINGS)
    a = AutoIntClassifier(**params).fit(X, y).predict_proba(X)
    b = AutoIntClassifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("order", [2, 3])
def test_attention_learns_interactions_lr_cannot(order):
    lr = _test_auc(LRClassifier(**SETTINGS), order=order)
    autoint = _test_auc(
        AutoIntClassifier(embedding_dim=4, att_layer_num=2, att_embedding_dim=4, **SETTINGS),
        order=order,
    )
    assert lr < 0.56
    assert autoint >= lr + 0.25, (autoint, lr)
