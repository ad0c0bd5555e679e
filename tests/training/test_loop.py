"""The training loop: sparse updates touch only the batch's rows; fast paths match a reference."""

from __future__ import annotations

import numpy as np
import torch

from skctr.nn.embedding import FieldEmbedding, LinearTerm, TensorBatch
from skctr.preprocessing.schema import DenseField, FeatureSchema, SequenceField, SparseField
from skctr.training.loop import (
    TrainConfig,
    TrainState,
    embedding_penalty,
    make_optimizers,
    predict_logits,
    train,
)

SCHEMA = FeatureSchema(
    sparse=(SparseField("a", 50), SparseField("b", 20)),
    dense=(DenseField("d"),),
    sequence=(SequenceField("hist_a", 50, 4, shares="a"),),
)


def _batch(n: int, rng: np.random.Generator, high: int = 10) -> TensorBatch:
    lengths = rng.integers(0, 5, size=(n, 1))
    seq = rng.integers(3, high, size=(n, 4)) * (np.arange(4) < lengths)
    return TensorBatch(
        torch.as_tensor(np.c_[rng.integers(3, high, n), rng.integers(3, high, n)]),
        torch.as_tensor(rng.normal(size=(n, 1)), dtype=torch.float32),
        (torch.as_tensor(seq),),
        torch.as_tensor(lengths),
    )


class _Core(torch.nn.Module):
    def __init__(self, schema):
        super().__init__()
        self.emb = FieldEmbedding(schema, 4)
        self.linear = LinearTerm(schema)

    def forward(self, batch):
        return self.linear(batch) + self.emb(batch).sum(dim=(1, 2))


def _config(**kw):
    base = dict(
        batch_size=16, max_epochs=1, l2_embedding=1e-3, n_iter_no_change=2, verbose=0,
        device=torch.device("cpu"), owner="test",
    )
    return TrainConfig(**{**base, **kw})


def test_untouched_embedding_rows_are_not_updated():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    core = _Core(SCHEMA)
    data = _batch(64, rng, high=10)  # codes 3..9 only: rows >= 10 of each field stay untouched
    before = core.emb.table.weight.detach().clone()
    y = (rng.random(64) > 0.5).astype(np.float32)
    state = TrainState(make_optimizers(core, 1e-2))
    train(core, data, y, np.ones(64), state, _config(), torch.Generator().manual_seed(0))
    after = core.emb.table.weight.detach()
    changed = (after != before).any(dim=1)
    a_rows, b_rows = np.arange(0, 50), np.arange(50, 70)
    assert changed[a_rows[3:10]].all() and changed[b_rows[3:10]].all()
    assert not changed[a_rows[10:]].any() and not changed[b_rows[10:]].any()
    assert not changed[a_rows[:3]].any()  # padding rows get no gradient, not even L2


def test_penalty_is_the_batch_mean_of_squared_looked_up_vectors():
    torch.manual_seed(0)
    emb = FieldEmbedding(SCHEMA, 3)
    batch = _batch(8, np.random.default_rng(1))
    emb.train()
    emb(batch)
    got = embedding_penalty(emb)
    codes = batch.sparse + emb.sparse_offsets
    expected = emb.table.weight[codes].pow(2).sum() / 8
    seq = batch.sequences[0]
    expected += (emb.table.weight[seq].pow(2).sum(-1) * (seq != 0)).sum() / 8
    torch.testing.assert_close(got, expected)
    assert embedding_penalty(emb) is None  # reset after reading


def test_fused_lookup_equals_per_field_lookup():
    torch.manual_seed(0)
    emb = FieldEmbedding(SCHEMA, 3).eval()
    batch = _batch(8, np.random.default_rng(2))
    out = emb(batch)
    w = emb.table.weight
    for i in range(8):
        torch.testing.assert_close(out[i, 0], w[batch.sparse[i, 0]])
        torch.testing.assert_close(out[i, 1], w[50 + batch.sparse[i, 1]])
        torch.testing.assert_close(out[i, 2], batch.dense[i, 0] * emb.dense_weight[0])
        n = int(batch.lengths[i, 0])
        pooled = w[batch.sequences[0][i, :n]].mean(0) if n else torch.zeros(3)
        torch.testing.assert_close(out[i, 3], pooled)  # shares field a's rows


def test_early_stopping_restores_the_best_epoch():
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    core = _Core(SCHEMA)
    data, val = _batch(256, rng), _batch(64, rng)
    y, yv = rng.integers(0, 2, 256).astype(np.float32), rng.integers(0, 2, 64).astype(np.float32)
    state = TrainState(make_optimizers(core, 0.05))
    train(
        core, data, y, np.ones(256), state, _config(max_epochs=15, n_iter_no_change=3),
        torch.Generator().manual_seed(0), (val, yv, np.ones(64)),
    )
    losses = [h["val_logloss"] for h in state.history]
    from sklearn.metrics import log_loss

    p = 1 / (1 + np.exp(-predict_logits(core, val)))
    assert abs(log_loss(yv, p) - min(losses)) < 1e-6
