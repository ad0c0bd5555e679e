"""PNN: the core's product layer and what the model learns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from skctr.cores.pnn import PNN
from skctr.estimators import LRClassifier, PNNClassifier
from skctr.nn.embedding import TensorBatch
from skctr.preprocessing.schema import DenseField, FeatureSchema, SequenceField, SparseField

SCHEMA = FeatureSchema(
    sparse=(SparseField("a", 7), SparseField("b", 5)),
    dense=(DenseField("x"),),
    sequence=(SequenceField("hist_a", 7, 4, shares="a"),),
)
SETTINGS = dict(max_epochs=5, learning_rate=0.01, batch_size=128, early_stopping=False)


def _batch(n: int = 6) -> TensorBatch:
    g = torch.Generator().manual_seed(0)
    return TensorBatch(
        torch.randint(0, 5, (n, 2), generator=g),
        torch.randn(n, 1, generator=g),
        (torch.randint(3, 7, (n, 4), generator=g),),
        torch.randint(1, 5, (n, 1), generator=g),
    )


def _interaction_data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Two columns whose effect is only their product (no main effects), two noise columns."""
    rng = np.random.default_rng(seed)
    codes = {name: rng.integers(0, 6, n) for name in "abcd"}
    sign = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    logit = 2.5 * sign[codes["a"]] * sign[codes["b"]]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({k: [f"{k}{v}" for v in c] for k, c in codes.items()}), y


@pytest.mark.parametrize(("product_type", "n_products"), [("inner", 6), ("outer", 6), ("both", 12)])
def test_core_output_shape(product_type, n_products):
    core = PNN(SCHEMA, embedding_dim=3, hidden_units=(8,), product_type=product_type)
    assert core.mlp.in_dim == 4 * 3 + n_products
    assert core(_batch()).shape == (6,)


@pytest.mark.parametrize("kernel_type", ["mat", "vec", "num"])
def test_outer_kernel_types(kernel_type):
    core = PNN(SCHEMA, embedding_dim=3, product_type="outer", kernel_type=kernel_type)
    assert core.outer.kernel_type == kernel_type
    assert torch.isfinite(core(_batch())).all()


def test_single_field_has_no_products():
    schema = FeatureSchema(sparse=(SparseField("a", 7),))
    core = PNN(schema, embedding_dim=3, product_type="both")
    batch = TensorBatch(
        torch.tensor([[3], [4]]), torch.zeros(2, 0), (), torch.zeros(2, 0, dtype=torch.long)
    )
    assert core.mlp.in_dim == 3
    assert core(batch).shape == (2,)


def test_unknown_product_type():
    with pytest.raises(ValueError, match="product_type"):
        PNN(SCHEMA, product_type="cross")


def test_deterministic():
    X, y = _interaction_data(400, 0)
    params = dict(embedding_dim=3, hidden_units=(8,), product_type="both", random_state=3)
    a = PNNClassifier(**params, **SETTINGS).fit(X, y).predict_proba(X)
    b = PNNClassifier(**params, **SETTINGS).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("product_type", ["inner", "outer"])
def test_learns_a_pairwise_interaction_lr_cannot(product_type):
    X, y = _interaction_data(2000, 0)
    X_test, y_test = _interaction_data(1000, 1)
    lr = LRClassifier(random_state=0, **SETTINGS).fit(X, y)
    pnn = PNNClassifier(
        embedding_dim=4, hidden_units=(16,), product_type=product_type, random_state=0, **SETTINGS
    ).fit(X, y)
    auc_lr = roc_auc_score(y_test, lr.predict_proba(X_test)[:, 1])
    auc_pnn = roc_auc_score(y_test, pnn.predict_proba(X_test)[:, 1])
    assert auc_pnn >= auc_lr + 0.1, (auc_pnn, auc_lr)
