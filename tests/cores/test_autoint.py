"""AutoInt: the core and what the self-attention layers learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skctr.cores.autoint import AutoInt
from skctr.estimators import AutoIntClassifier, LRClassifier
from tests.cores.planted import SCHEMA, SIGN_SETTINGS, sign_data, sign_test_auc, tiny_batch

SETTINGS = SIGN_SETTINGS


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
    assert core(tiny_batch()).shape == (6,)


def test_autoint_plus_adds_the_mlp_logit():
    core = AutoInt(SCHEMA, embedding_dim=3, hidden_units=(8,), att_layer_num=1).eval()
    batch = tiny_batch()
    fields = core.embedding(batch)
    attention = core.head(core.interacting(fields).flatten(1)).squeeze(-1)
    deep = core.mlp(core.embedding.fields_and_deep(batch)[1]).squeeze(-1)
    torch.testing.assert_close(core(batch), attention + deep)


def test_default_is_autoint_plus_and_empty_hidden_units_is_plain_autoint():
    assert AutoIntClassifier().hidden_units == (256, 128)
    assert AutoInt(SCHEMA).mlp is not None
    assert AutoInt(SCHEMA, hidden_units=()).mlp is None


def test_deterministic():
    X, y = sign_data(500, 0, order=2)
    params = dict(embedding_dim=3, att_layer_num=2, att_embedding_dim=4, **SETTINGS)
    a = AutoIntClassifier(**params).fit(X, y).predict_proba(X)
    b = AutoIntClassifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("order", [2, 3])
def test_attention_learns_interactions_lr_cannot(order):
    lr = sign_test_auc(LRClassifier(**SETTINGS), order=order)
    autoint = sign_test_auc(
        AutoIntClassifier(embedding_dim=4, att_layer_num=2, att_embedding_dim=4, **SETTINGS),
        order=order,
    )
    assert lr < 0.56
    assert autoint >= lr + 0.25, (autoint, lr)


def test_interact_dense_false_keeps_dense_fields_out_of_the_attention():
    core = AutoInt(SCHEMA, embedding_dim=3, hidden_units=(8,), interact_dense=False).eval()
    assert core.embedding.num_fields == SCHEMA.num_fields - len(SCHEMA.dense)
    assert core.head.in_features == core.embedding.num_fields * 16
    batch = tiny_batch()
    moved = batch._replace(dense=batch.dense + 1.0)
    attention = core.head(core.interacting(core.embedding(batch)).flatten(1))
    torch.testing.assert_close(
        attention, core.head(core.interacting(core.embedding(moved)).flatten(1))
    )
    assert not torch.allclose(core(batch), core(moved))  # the MLP still sees them


def test_interact_dense_false_without_an_mlp_is_refused():
    with pytest.raises(ValueError, match=r"interact_dense=False needs hidden_units.*'x'"):
        AutoInt(SCHEMA, hidden_units=(), interact_dense=False)
