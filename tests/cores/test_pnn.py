"""PNN: the core's product layer and what the model learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from skctr.cores.pnn import PNN
from skctr.estimators import LRClassifier, PNNClassifier
from skctr.nn.embedding import TensorBatch
from skctr.preprocessing.schema import FeatureSchema, SparseField
from tests.cores.planted import SCHEMA, interaction_data, tiny_batch

SETTINGS = dict(max_epochs=5, learning_rate=0.01, batch_size=128, early_stopping=False)


@pytest.mark.parametrize(("product_type", "n_products"), [("inner", 6), ("outer", 6), ("both", 12)])
def test_core_output_shape(product_type, n_products):
    core = PNN(SCHEMA, embedding_dim=3, hidden_units=(8,), product_type=product_type)
    # three categorical fields of width 3, one raw dense value, the products
    assert core.mlp.in_dim == 3 * 3 + 1 + n_products
    assert core(tiny_batch(min_length=1)).shape == (6,)


@pytest.mark.parametrize("kernel_type", ["mat", "vec", "num"])
def test_outer_kernel_types(kernel_type):
    core = PNN(SCHEMA, embedding_dim=3, product_type="outer", kernel_type=kernel_type)
    assert core.outer.kernel_type == kernel_type
    assert torch.isfinite(core(tiny_batch(min_length=1))).all()


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
    X, y = interaction_data(400, 0)
    params = dict(embedding_dim=3, hidden_units=(8,), product_type="both", random_state=3)
    a = PNNClassifier(**params, **SETTINGS).fit(X, y).predict_proba(X)
    b = PNNClassifier(**params, **SETTINGS).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("product_type", ["inner", "outer"])
def test_learns_a_pairwise_interaction_lr_cannot(product_type):
    X, y = interaction_data(2000, 0)
    X_test, y_test = interaction_data(1000, 1)
    lr = LRClassifier(random_state=0, **SETTINGS).fit(X, y)
    pnn = PNNClassifier(
        embedding_dim=4, hidden_units=(16,), product_type=product_type, random_state=0, **SETTINGS
    ).fit(X, y)
    auc_lr = roc_auc_score(y_test, lr.predict_proba(X_test)[:, 1])
    auc_pnn = roc_auc_score(y_test, pnn.predict_proba(X_test)[:, 1])
    assert auc_pnn >= auc_lr + 0.1, (auc_pnn, auc_lr)
