"""DIN: the core, its history handling and what the attention learns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from skctr.cores.din import DIN
from skctr.estimators import DINClassifier, LRClassifier
from skctr.nn.embedding import TensorBatch
from skctr.preprocessing.schema import DenseField, FeatureSchema, SequenceField, SparseField
from tests.gradients import assert_same_gradients

SCHEMA = FeatureSchema(
    sparse=(SparseField("user", 9), SparseField("item_id", 12), SparseField("cate_id", 6)),
    dense=(DenseField("price"),),
    sequence=(
        SequenceField("hist_item_id", 12, 5, shares="item_id"),
        SequenceField("tags", 8, 3),
        SequenceField("hist_cate_id", 6, 5, shares="cate_id"),
    ),
)
SETTINGS = dict(
    max_epochs=8,
    learning_rate=0.02,
    batch_size=128,
    early_stopping=False,
    n_jobs=1,
    random_state=0,
)
SMALL = dict(embedding_dim=8, hidden_units=(32,), att_hidden_units=(16,))


def _batch(n: int = 6) -> TensorBatch:
    g = torch.Generator().manual_seed(0)
    return TensorBatch(
        torch.stack([torch.randint(3, high, (n,), generator=g) for high in (9, 12, 6)], dim=1),
        torch.randn(n, 1, generator=g),
        (
            torch.randint(3, 12, (n, 5), generator=g),
            torch.randint(3, 8, (n, 3), generator=g),
            torch.randint(3, 6, (n, 5), generator=g),
        ),
        torch.tensor([[5, 3, 5], [2, 0, 2], [0, 1, 0], [1, 3, 1], [4, 2, 4], [3, 3, 3]]),
    )


def _history_data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Users with 3-8 past items; a click is likely when the candidate item was in the history
    (p = 0.9), less when only its category was (0.5), rare otherwise (0.1)."""
    rng = np.random.default_rng(seed)
    n_items, n_cates = 100, 10
    rows, y = [], []
    for _ in range(n):
        hist = rng.choice(n_items, size=rng.integers(3, 9), replace=False)
        item = int(rng.choice(hist)) if rng.random() < 1 / 3 else int(rng.integers(n_items))
        p = 0.9 if item in hist else 0.5 if item % n_cates in hist % n_cates else 0.1
        rows.append((item, item % n_cates, hist.tolist(), (hist % n_cates).tolist()))
        y.append(int(rng.random() < p))
    X = pd.DataFrame(rows, columns=["item_id", "cate_id", "hist_item_id", "hist_cate_id"])
    return X, np.array(y)


def _test_auc(clf) -> float:
    # 4000 rows: with 2000 the attention's AUC varied from 0.69 to 0.80 across seeds
    X, y = _history_data(4000, 0)
    X_test, y_test = _history_data(1000, 1)
    return roc_auc_score(y_test, clf.fit(X, y).predict_proba(X_test)[:, 1])


def test_core_output_shape_and_default_histories():
    core = DIN(SCHEMA, embedding_dim=3, hidden_units=(8,))
    assert core.candidates == [1, 2] and core.histories == [0, 2]
    assert core.attention.embedding_dim == 6  # item_id and cate_id attended jointly
    assert core.mlp.in_dim == 6 * 3 + 1  # six categorical fields of width 3, one dense value
    assert core(_batch()).shape == (6,)


def test_one_history_and_padding_is_ignored():
    core = DIN(SCHEMA, embedding_dim=3, hidden_units=(8,), history_features=("cate_id",)).eval()
    assert core.candidates == [2] and core.histories == [2]
    batch = _batch()
    padded = batch.sequences[2].clone()
    for row, length in enumerate(batch.lengths[:, 2].tolist()):
        padded[row, length:] = 4  # change only the padding
    noisy = TensorBatch(batch.sparse, batch.dense, (*batch.sequences[:2], padded), batch.lengths)
    torch.testing.assert_close(core(batch), core(noisy))


def test_attended_history_replaces_the_pooled_one():
    core = DIN(SCHEMA, embedding_dim=3, hidden_units=(8,), history_features=["item_id"]).eval()
    batch = _batch()
    emb = core.embedding
    sparse = emb.sparse_embeddings(batch.sparse)
    attended = core.attention(
        sparse[:, 1], emb.sequence_embeddings(0, batch.sequences[0]), batch.lengths[:, 0]
    )
    pooled = emb.pooled_sequences(batch)
    deep = torch.cat([sparse.flatten(1), attended, pooled[:, 1:].flatten(1), batch.dense], dim=1)
    torch.testing.assert_close(core(batch), core.mlp(deep).squeeze(-1))


def _odd_batches() -> list[TensorBatch]:
    """Edge cases of the history lengths: none, every row empty, negative and above
    maxlen (all positions), and no rows at all."""
    batch = _batch()
    lengths = batch.lengths.clone()
    lengths[0, 0], lengths[1, 2], lengths[3, 0], lengths[3, 2] = -2, 0, 9, 7
    empty = TensorBatch(
        batch.sparse[:0], batch.dense[:0], tuple(s[:0] for s in batch.sequences), lengths[:0]
    )
    return [
        batch,
        batch._replace(lengths=torch.zeros_like(batch.lengths)),
        batch._replace(lengths=lengths),
        empty,
    ]


@pytest.mark.parametrize("hooked", ["attention", "unit"])
@pytest.mark.parametrize("training", [True, False])
def test_packed_history_gives_the_logits_and_gradients_of_the_padded_one(training, hooked):
    # a hooked pooling or unit is called as it is, on the padded keys: the reference
    torch.manual_seed(0)
    core = DIN(SCHEMA, embedding_dim=3, hidden_units=(8,)).double().train(training)
    reference = DIN(SCHEMA, embedding_dim=3, hidden_units=(8,)).double().train(training)
    reference.load_state_dict(core.state_dict())
    module = reference.attention if hooked == "attention" else reference.attention.unit
    module.register_forward_hook(lambda module, args, out: None)
    for batch in _odd_batches():
        batch = batch._replace(dense=batch.dense.double())
        grad = torch.randn(batch.num_rows, dtype=torch.float64)
        got, want = core(batch), reference(batch)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
        assert_same_gradients(
            got, want, list(core.parameters()), grad, list(reference.parameters())
        )


def test_without_history_it_is_embedding_plus_mlp():
    schema = FeatureSchema(sparse=(SparseField("a", 5),), dense=(DenseField("x"),))
    core = DIN(schema, embedding_dim=3, hidden_units=(4,))
    assert core.attention is None and core.histories == []
    batch = TensorBatch(
        torch.tensor([[3], [4]]), torch.randn(2, 1), (), torch.zeros(2, 0, dtype=torch.long)
    )
    assert core(batch).shape == (2,)
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.arange(40) % 2
    assert DINClassifier(max_epochs=1).fit(X, y).predict_proba(X).shape == (40, 2)


def test_unknown_history_feature_names_it_and_lists_what_exists():
    with pytest.raises(ValueError, match=r"\['user'\].*hist_item_id.*item_id"):
        DIN(SCHEMA, history_features=("item_id", "user"))
    X, y = _history_data(30, 0)
    with pytest.raises(ValueError, match="'price'"):
        DINClassifier(history_features=["price"], max_epochs=1).fit(X, y)


def test_histories_with_different_maxlen_are_refused():
    schema = FeatureSchema(
        sparse=(SparseField("item_id", 5), SparseField("cate_id", 4)),
        sequence=(
            SequenceField("hist_item_id", 5, 6, shares="item_id"),
            SequenceField("hist_cate_id", 4, 3, shares="cate_id"),
        ),
    )
    with pytest.raises(ValueError, match="same maxlen"):
        DIN(schema)
    assert DIN(schema, history_features=["cate_id"]).histories == [1]


def test_deterministic():
    X, y = _history_data(500, 0)
    a = DINClassifier(**SMALL, **SETTINGS).fit(X, y).predict_proba(X)
    b = DINClassifier(**SMALL, **SETTINGS).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_learns_whether_the_candidate_is_in_the_history():
    lr = _test_auc(LRClassifier(**SETTINGS))
    no_attention = _test_auc(DINClassifier(history_features=(), **SMALL, **SETTINGS))
    din = _test_auc(DINClassifier(**SMALL, **SETTINGS))
    assert lr < 0.56
    assert din >= lr + 0.2, (din, lr)
    assert din >= no_attention + 0.1, (din, no_attention)
