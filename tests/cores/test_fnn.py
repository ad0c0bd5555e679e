"""FNN: the core, the FM pre-training stage and what it learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import skctr.base
import skctr.estimators
from skctr.cores.fnn import FNN
from skctr.cores.linear import FactorizationMachineModel
from skctr.estimators import FNNClassifier, LRClassifier
from tests.cores.planted import SCHEMA, interaction_data, tiny_batch

SETTINGS = dict(max_epochs=5, learning_rate=0.01, batch_size=128, early_stopping=False)


def test_core_output_shape():
    core = FNN(SCHEMA, embedding_dim=3, hidden_units=(8,))
    assert core.mlp.in_dim == 1 + 4 * (3 + 1)
    assert core(tiny_batch(min_length=1)).shape == (6,)


def test_core_has_the_fm_layout():
    fm = FactorizationMachineModel(SCHEMA, embedding_dim=3)
    core = FNN(SCHEMA, embedding_dim=3)
    core.linear.load_state_dict(fm.linear.state_dict())
    core.embedding.load_state_dict(fm.embedding.state_dict())


@pytest.mark.parametrize("pretrain_fm", [True, False])
def test_initial_weights_are_the_trained_fm(monkeypatch, pretrain_fm):
    trained_fms, initial_states = [], []
    pretrain_train, main_train = skctr.estimators.train, skctr.base.train

    def record_fm(core, *args, **kwargs):
        out = pretrain_train(core, *args, **kwargs)
        trained_fms.append(core)
        return out

    def record_start(core, *args, **kwargs):
        initial_states.append({k: v.clone() for k, v in core.state_dict().items()})
        return main_train(core, *args, **kwargs)

    monkeypatch.setattr(skctr.estimators, "train", record_fm)
    monkeypatch.setattr(skctr.base, "train", record_start)
    X, y = interaction_data(500, 0)
    FNNClassifier(
        embedding_dim=3, hidden_units=(8,), pretrain_fm=pretrain_fm, random_state=0, **SETTINGS
    ).fit(X, y)

    assert len(initial_states) == 1
    assert len(trained_fms) == int(pretrain_fm)
    if pretrain_fm:
        fm, start = trained_fms[0], initial_states[0]
        assert isinstance(fm, FactorizationMachineModel)
        for name, value in fm.state_dict().items():  # linear.* and embedding.*
            if name.startswith(("linear.", "embedding.")):
                torch.testing.assert_close(start[name], value, rtol=0, atol=0)
        # the FM did train: its vectors moved away from the random initialisation
        assert fm.embedding.table.weight.abs().max() > 0.05


def test_deterministic():
    X, y = interaction_data(400, 0)
    params = dict(embedding_dim=3, hidden_units=(8,), random_state=3, **SETTINGS)
    a = FNNClassifier(**params).fit(X, y).predict_proba(X)
    b = FNNClassifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_learns_a_pairwise_interaction_lr_cannot():
    X, y = interaction_data(2000, 0)
    X_test, y_test = interaction_data(1000, 1)
    lr = LRClassifier(random_state=0, **SETTINGS).fit(X, y)
    fnn = FNNClassifier(embedding_dim=4, hidden_units=(16,), random_state=0, **SETTINGS).fit(X, y)
    auc_lr = roc_auc_score(y_test, lr.predict_proba(X_test)[:, 1])
    auc_fnn = roc_auc_score(y_test, fnn.predict_proba(X_test)[:, 1])
    assert auc_fnn >= auc_lr + 0.1, (auc_fnn, auc_lr)
