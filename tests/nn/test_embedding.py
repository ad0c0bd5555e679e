"""FieldEmbedding: the fused table equals per-field lookups; the MLP input layout."""

from __future__ import annotations

import numpy as np
import torch

from skctr.nn.embedding import FieldEmbedding, LinearTerm, TensorBatch
from skctr.preprocessing.schema import DenseField, FeatureSchema, SequenceField, SparseField

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


def test_fields_and_deep_gives_categorical_vectors_then_raw_dense_values():
    torch.manual_seed(0)
    emb = FieldEmbedding(SCHEMA, 3).eval()
    batch = _batch(5, np.random.default_rng(3))
    fields, deep = emb.fields_and_deep(batch)
    torch.testing.assert_close(fields, emb(batch))
    assert deep.shape == (5, emb.deep_dim) == (5, 3 * 3 + 1)
    expected = torch.cat([fields[:, 0], fields[:, 1], fields[:, 3], batch.dense], dim=1)
    torch.testing.assert_close(deep, expected)


def test_mlp_input_without_dense_fields_is_the_flattened_vectors():
    schema = FeatureSchema(sparse=(SparseField("a", 50), SparseField("b", 20)))
    emb = FieldEmbedding(schema, 4)
    batch = TensorBatch(
        torch.tensor([[3, 4], [5, 6]]), torch.zeros(2, 0), (), torch.zeros(2, 0, dtype=torch.long)
    )
    fields, deep = emb.fields_and_deep(batch)
    assert emb.deep_dim == 8
    torch.testing.assert_close(deep, fields.flatten(1))


def test_without_dense_fields_the_vectors_skip_them_and_the_mlp_input_keeps_them():
    torch.manual_seed(0)
    full = FieldEmbedding(SCHEMA, 3).eval()
    torch.manual_seed(0)
    lean = FieldEmbedding(SCHEMA, 3, dense_fields=False).eval()
    lean.table.load_state_dict(full.table.state_dict())
    batch = _batch(5, np.random.default_rng(4))
    assert (full.num_fields, lean.num_fields) == (4, 3)
    fields, deep = lean.fields_and_deep(batch)
    full_fields, full_deep = full.fields_and_deep(batch)
    torch.testing.assert_close(fields, full_fields[:, [0, 1, 3]])  # the dense vector dropped
    torch.testing.assert_close(deep, full_deep)  # the MLP still reads the dense value
    assert lean.deep_dim == full.deep_dim and lean.dense_weight.numel() == 0
    # the deep input alone is the same, with or without the dense vectors
    torch.testing.assert_close(lean.deep_input(batch), full_deep)
    torch.testing.assert_close(full.deep_input(batch), full_deep)


def test_field_blocks_are_the_non_empty_pieces_of_the_fields_in_order():
    torch.manual_seed(0)
    emb = FieldEmbedding(SCHEMA, 3)
    batch = _batch(5, np.random.default_rng(6))
    fields = emb(batch)
    blocks = emb.field_blocks(batch)
    assert [b.shape[1] for b in blocks] == [2, 1, 1]  # sparse, dense, pooled sequence
    torch.testing.assert_close(torch.cat(blocks, dim=1), fields)
    got, deep = emb.fields_and_deep(batch, as_blocks=True, field_blocks=True)
    torch.testing.assert_close(torch.cat(got, dim=1), fields)
    torch.testing.assert_close(torch.cat(deep, dim=1), emb.deep_input(batch))
    no_dense = FieldEmbedding(SCHEMA, 3, dense_fields=False)
    assert [b.shape[1] for b in no_dense.field_blocks(batch)] == [2, 1]


def test_mlp_input_as_blocks_are_the_non_empty_pieces_in_order():
    torch.manual_seed(0)
    emb = FieldEmbedding(SCHEMA, 3).eval()
    batch = _batch(5, np.random.default_rng(5))
    _, deep = emb.fields_and_deep(batch)
    _, blocks = emb.fields_and_deep(batch, as_blocks=True)
    assert [b.shape[1] for b in blocks] == [6, 3, 1]  # sparse, pooled sequence, dense
    torch.testing.assert_close(torch.cat(blocks, dim=1), deep)
    torch.testing.assert_close(torch.cat(emb.deep_input(batch, as_blocks=True), dim=1), deep)
    no_dense = FeatureSchema(sparse=(SparseField("a", 50),))
    codes = TensorBatch(
        torch.tensor([[3], [4]]), torch.zeros(2, 0), (), torch.zeros(2, 0, dtype=torch.long)
    )
    blocks = FieldEmbedding(no_dense, 4).deep_input(codes, as_blocks=True)
    assert [b.shape for b in blocks] == [(2, 4)]  # the empty pieces are left out


def test_without_shared_rows_a_history_looks_up_rows_of_its_own():
    torch.manual_seed(0)
    emb = FieldEmbedding(SCHEMA, 3, shared_rows=False).eval()
    assert emb.num_rows == 50 + 20 + 50
    batch = _batch(8, np.random.default_rng(2))
    out = emb(batch)
    w = emb.table.weight
    for i in range(8):
        torch.testing.assert_close(out[i, 0], w[batch.sparse[i, 0]])
        n = int(batch.lengths[i, 0])
        pooled = w[70 + batch.sequences[0][i, :n]].mean(0) if n else torch.zeros(3)
        torch.testing.assert_close(out[i, 3], pooled)


def test_linear_term_weighs_an_item_as_candidate_and_as_history_separately():
    lin = LinearTerm(SCHEMA)
    batch = _batch(16, np.random.default_rng(3))
    item = int(batch.sparse[0, 0])
    with torch.no_grad():  # only the candidate's weight of this item is set
        lin.weights.table.weight[item] = 1.0
    out = lin(batch)
    in_history = (batch.sequences[0] == item).any(1)
    as_candidate = batch.sparse[:, 0] == item
    # rows with the item only in their history are untouched; candidates get the weight
    assert in_history[~as_candidate].any()
    torch.testing.assert_close(out[~as_candidate], torch.zeros(int((~as_candidate).sum())))
    torch.testing.assert_close(out[as_candidate], torch.ones(int(as_candidate.sum())))


def test_own_rows_of_a_history_follow_its_sparse_field_vocabulary():
    # the history's codes come from field a's vocabulary, whatever its own vocab_size says
    schema = FeatureSchema(
        sparse=(SparseField("a", 50),), sequence=(SequenceField("hist_a", 10, 2, shares="a"),)
    )
    emb = FieldEmbedding(schema, 2, shared_rows=False)
    assert emb.num_rows == 100
    batch = TensorBatch(
        torch.tensor([[3]]), torch.zeros(1, 0), (torch.tensor([[49, 40]]),), torch.tensor([[2]])
    )
    torch.testing.assert_close(emb(batch)[0, 1], emb.table.weight[[99, 90]].mean(0))


def test_a_state_saved_with_shared_first_order_rows_loads_with_the_same_outputs():
    torch.manual_seed(0)
    old = FieldEmbedding(SCHEMA, 1, init_std=0.5)  # the layout before histories had own rows
    new = FieldEmbedding(SCHEMA, 1, shared_rows=False)
    new.load_state_dict(old.state_dict())
    batch = _batch(16, np.random.default_rng(5))
    torch.testing.assert_close(new(batch), old(batch))
    assert new.table.weight.shape[0] == 120


def test_a_state_with_unused_dense_vectors_loads_into_an_embedding_without_them():
    torch.manual_seed(0)
    old = FieldEmbedding(SCHEMA, 3)  # Deep & Cross and Wide & Deep held these, unread
    new = FieldEmbedding(SCHEMA, 3, dense_fields=False)
    new.load_state_dict(old.state_dict())
    batch = _batch(6, np.random.default_rng(6))
    torch.testing.assert_close(new.deep_input(batch), old.deep_input(batch))
