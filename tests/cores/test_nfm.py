"""NFM: the core and what the model learns."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from skctr.cores.nfm import NFM
from skctr.estimators import LRClassifier, NFMClassifier
from skctr.nn import FactorizationMachine
from tests.cores.planted import SCHEMA, interaction_data, tiny_batch

SETTINGS = dict(max_epochs=5, learning_rate=0.01, batch_size=128, early_stopping=False)


def test_core_output_shape():
    core = NFM(SCHEMA, embedding_dim=3, hidden_units=(8,), bi_dropout=0.5)
    assert core.mlp.in_dim == 3
    batch = tiny_batch(min_length=1)
    assert core(batch).shape == (6,)
    # the interaction part starts at zero: an untrained NFM is its linear part
    torch.testing.assert_close(core(batch), core.linear(batch))


def test_without_hidden_layers_it_is_a_weighted_fm():
    core = NFM(SCHEMA, embedding_dim=3, hidden_units=()).eval()
    with torch.no_grad():
        core.mlp.layers[0].weight.fill_(1.0)
        core.mlp.layers[0].bias.zero_()
        batch = tiny_batch(min_length=1)
        expected = core.linear(batch) + FactorizationMachine()(core.embedding(batch))
        torch.testing.assert_close(core(batch), expected)


def test_bi_dropout_only_in_training():
    core = NFM(SCHEMA, embedding_dim=3, hidden_units=(8,), bi_dropout=0.5)
    torch.manual_seed(0)
    torch.nn.init.normal_(core.embedding.table.weight)  # interactions big enough to see
    torch.nn.init.normal_(core.mlp.layers[-1].weight)  # and not multiplied by zero
    batch = tiny_batch(min_length=1)
    train_out = core.train()(batch)
    eval_out = core.eval()(batch)
    assert not torch.equal(train_out, eval_out)
    torch.testing.assert_close(core(batch), eval_out)


def test_deterministic():
    X, y = interaction_data(400, 0)
    params = dict(embedding_dim=3, hidden_units=(8,), bi_dropout=0.3, random_state=3)
    a = NFMClassifier(**params, **SETTINGS).fit(X, y).predict_proba(X)
    b = NFMClassifier(**params, **SETTINGS).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_learns_a_pairwise_interaction_lr_cannot():
    X, y = interaction_data(2000, 0)
    X_test, y_test = interaction_data(1000, 1)
    lr = LRClassifier(random_state=0, **SETTINGS).fit(X, y)
    nfm = NFMClassifier(embedding_dim=4, hidden_units=(16,), random_state=0, **SETTINGS).fit(X, y)
    auc_lr = roc_auc_score(y_test, lr.predict_proba(X_test)[:, 1])
    auc_nfm = roc_auc_score(y_test, nfm.predict_proba(X_test)[:, 1])
    assert auc_nfm >= auc_lr + 0.1, (auc_nfm, auc_lr)
