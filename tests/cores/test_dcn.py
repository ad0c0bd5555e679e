"""DCN: the core and what the cross network learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skctr.cores.dcn import DCN
from skctr.estimators import DCNClassifier, LRClassifier
from tests.cores.planted import SCHEMA, SIGN_SETTINGS, sign_data, sign_test_auc, tiny_batch
from tests.gradients import assert_same_gradients

SETTINGS = SIGN_SETTINGS


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
    d = 3 * 3 + 1  # a, b and hist_a vectors of width 3, then the raw dense value
    assert core.cross.in_dim == d and core.cross.num_layers == 3
    assert core.head.in_features == d + (hidden_units[-1] if hidden_units else 0)
    assert core(tiny_batch()).shape == (6,)


def test_cross_only_logit_is_a_linear_map_of_the_cross_output():
    core = DCN(SCHEMA, embedding_dim=3, hidden_units=()).eval()
    batch = tiny_batch()
    x0 = core.embedding.fields_and_deep(batch)[1]
    torch.testing.assert_close(core(batch), core.head(core.cross(x0)).squeeze(-1))


@pytest.mark.parametrize("hidden_units", [(8, 4), ()])
def test_vector_logit_without_building_x0_and_x_l_equals_the_head_of_both(hidden_units):
    torch.manual_seed(0)
    core = DCN(SCHEMA, embedding_dim=3, hidden_units=hidden_units, cross_num=3).double()
    with torch.no_grad():
        core.cross.bias.uniform_(-1, 1)
        core.head.bias.fill_(0.3)
    batch = tiny_batch(8)
    batch = batch._replace(dense=batch.dense.double())
    params = [p for p in core.parameters() if p.numel()]  # (not the empty dense vectors)
    fast = core(batch)
    x0 = core.embedding.fields_and_deep(batch)[1]
    deep = [] if core.mlp is None else [core.mlp(x0)]
    literal = core.head(torch.cat([core.cross(x0), *deep], dim=1)).squeeze(-1)
    assert_same_gradients(fast, literal, params)
    # a hooked head gets its own forward on [x_L, MLP(x0)]: the same logits
    core.head.register_forward_hook(lambda module, inputs, output: output)
    torch.testing.assert_close(core(batch), fast)


def test_deterministic():
    X, y = sign_data(500, 0, order=2)
    params = dict(embedding_dim=3, hidden_units=(8,), dropout=0.2, **SETTINGS)
    a = DCNClassifier(**params).fit(X, y).predict_proba(X)
    b = DCNClassifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_cross_network_learns_pairwise_interactions_lr_cannot():
    lr = sign_test_auc(LRClassifier(**SETTINGS), order=2)
    dcn = sign_test_auc(DCNClassifier(embedding_dim=4, hidden_units=(), **SETTINGS), order=2)
    assert lr < 0.56
    assert dcn >= lr + 0.2, (dcn, lr)


def test_matrix_cross_network_learns_a_three_way_interaction():
    lr = sign_test_auc(LRClassifier(**SETTINGS), order=3)
    dcn = sign_test_auc(
        DCNClassifier(
            embedding_dim=4, hidden_units=(), cross_parameterization="matrix", **SETTINGS
        ),
        order=3,
    )
    assert dcn >= lr + 0.3, (dcn, lr)


def test_a_hooked_cross_network_runs_its_forward_and_autocast_keeps_the_cross_term():
    torch.manual_seed(0)
    core = DCN(SCHEMA, embedding_dim=3, hidden_units=(8,), cross_num=2).eval()
    batch = tiny_batch(8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = core(batch)
    calls = []
    core.cross.register_forward_hook(lambda module, inputs, output: calls.append(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        literal = core(batch)  # through cross(x0) and the head's own product
    assert calls == [1]
    # the same logits up to bfloat16 rounding (the fast path runs its recurrence in float32)
    torch.testing.assert_close(fast.float(), literal.float(), atol=0.02, rtol=0.02)
