"""xDeepFM: the core and what the CIN learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skctr.cores.xdeepfm import XDeepFM
from skctr.estimators import FMClassifier, LRClassifier, XDeepFMClassifier
from tests.cores.planted import SCHEMA, SIGN_SETTINGS, sign_data, sign_test_auc, tiny_batch

SETTINGS = SIGN_SETTINGS


@pytest.mark.parametrize(
    ("layer_sizes", "split_half", "cin_dim"),
    [((6, 4), True, 7), ((6, 4), False, 10), ((5,), True, 5)],
)
def test_core_output_shape(layer_sizes, split_half, cin_dim):
    core = XDeepFM(
        SCHEMA,
        embedding_dim=3,
        hidden_units=(8,),
        cin_layer_sizes=layer_sizes,
        cin_split_half=split_half,
        cin_activation="relu",
    )
    assert core.cin.num_fields == SCHEMA.num_fields
    assert core.cin_head.in_features == cin_dim
    assert core(tiny_batch()).shape == (6,)


def test_logit_is_linear_plus_cin_plus_mlp():
    core = XDeepFM(SCHEMA, embedding_dim=3, hidden_units=(8,), cin_layer_sizes=(4, 4)).eval()
    batch = tiny_batch()
    fields = core.embedding(batch)
    expected = (
        core.linear(batch)
        + core.cin_head(core.cin(fields)).squeeze(-1)
        + core.mlp(core.embedding.fields_and_deep(batch)[1]).squeeze(-1)
    )
    torch.testing.assert_close(core(batch), expected)


def test_uneven_cin_layers_with_split_half_are_refused():
    with pytest.raises(ValueError, match="even"):
        XDeepFMClassifier(cin_layer_sizes=(5, 4), max_epochs=1).fit(*sign_data(50, 0, 2))


def test_deterministic():
    X, y = sign_data(500, 0, order=2)
    params = dict(embedding_dim=3, hidden_units=(8,), cin_layer_sizes=(4, 4), **SETTINGS)
    a = XDeepFMClassifier(**params).fit(X, y).predict_proba(X)
    b = XDeepFMClassifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_cin_learns_a_three_way_interaction_lr_and_fm_cannot():
    # no MLP: the explicit part (linear + CIN) alone must find the third-order effect
    lr = sign_test_auc(LRClassifier(**SETTINGS), order=3)
    fm = sign_test_auc(FMClassifier(embedding_dim=4, **SETTINGS), order=3)
    cin = sign_test_auc(
        XDeepFMClassifier(embedding_dim=4, hidden_units=(), cin_layer_sizes=(16, 16), **SETTINGS),
        order=3,
    )
    assert max(lr, fm) < 0.56, (lr, fm)
    assert cin >= lr + 0.3, (cin, lr)


def test_interact_dense_false_keeps_dense_fields_out_of_the_cin():
    core = XDeepFM(SCHEMA, embedding_dim=3, cin_layer_sizes=(4, 2), interact_dense=False)
    assert core.cin.num_fields == SCHEMA.num_fields - len(SCHEMA.dense)
    core.eval()
    batch = tiny_batch()
    moved = batch._replace(dense=batch.dense + 1.0)
    torch.testing.assert_close(core.cin(core.embedding(batch)), core.cin(core.embedding(moved)))
    assert not torch.allclose(core(batch), core(moved))
