"""FieldEmbedding: the fused table equals per-field lookups; the MLP input layout."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import Tensor
from torch.nn import functional as F

from skctr.nn.embedding import FieldEmbedding, LinearTerm, TensorBatch
from skctr.preprocessing.schema import DenseField, FeatureSchema, SequenceField, SparseField
from tests.gradients import assert_same_gradients

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


TWO_HISTORIES = FeatureSchema(
    sparse=(SparseField("a", 50), SparseField("b", 20)),
    sequence=(SequenceField("hist_a", 50, 5, shares="a"), SequenceField("tags", 30, 5)),
)


def _two_histories(n: int, rng: np.random.Generator) -> TensorBatch:
    lengths = rng.integers(0, 6, size=(n, 2))
    seqs = tuple(
        torch.as_tensor(rng.integers(3, high, size=(n, 5)) * (np.arange(5) < lengths[:, [j]]))
        for j, high in enumerate((50, 30))
    )
    sparse = np.c_[rng.integers(3, 50, n), rng.integers(3, 20, n)]
    return TensorBatch(torch.as_tensor(sparse), torch.zeros(n, 0), seqs, torch.as_tensor(lengths))


def _reference_gradient(emb: FieldEmbedding, batch: TensorBatch, grads: list[Tensor]) -> Tensor:
    """The table's gradient through separate F.embedding lookups, padding_idx and all."""
    weight, sparse = emb.table.weight.detach().clone().requires_grad_(), emb.table.sparse
    outs = [F.embedding(batch.sparse + emb.sparse_offsets, weight, sparse=sparse)]
    for j, codes in enumerate(batch.sequences):
        offset = emb.seq_offsets[j]
        outs.append(F.embedding(codes + offset, weight, padding_idx=offset, sparse=sparse))
    torch.autograd.backward(outs, grads)
    return weight.grad


@pytest.fixture(params=[True, False], ids=["sparse", "dense"])
def table_and_batch(request: pytest.FixtureRequest) -> tuple[FieldEmbedding, TensorBatch]:
    """A table with sparse or dense gradients, and 32 rows with two padded histories."""
    torch.manual_seed(0)
    emb = FieldEmbedding(TWO_HISTORIES, 4, sparse=request.param)
    return emb, _two_histories(32, np.random.default_rng(0))


def test_one_lookup_gives_the_vectors_and_the_summed_gradient_of_separate_lookups(
    table_and_batch,
):
    emb, batch = table_and_batch
    sparse = emb.table.sparse
    assert (batch.sequences[0] == 0).any() and (batch.sequences[1] == 0).any()  # padding
    found = emb.lookup(batch)
    torch.testing.assert_close(found[0], emb.sparse_embeddings(batch.sparse), rtol=0, atol=0)
    for j, codes in enumerate(batch.sequences):
        expected = emb.sequence_embeddings(j, codes)
        torch.testing.assert_close(found[1 + j], expected, rtol=0, atol=0)
    grads = [torch.randn_like(v) for v in found]
    torch.autograd.backward(found, grads)
    got = emb.table.weight.grad
    assert got.is_sparse == sparse
    reference = _reference_gradient(emb, batch, grads)
    if sparse:  # the same entries (padding left out), summed per row to the same values
        got, reference = got.coalesce(), reference.coalesce()
        assert torch.equal(got.indices(), reference.indices())
        got, reference = got.values(), reference.values()
    torch.testing.assert_close(got, reference)


def test_a_group_of_sequences_comes_side_by_side_item_by_item():
    torch.manual_seed(0)
    emb = FieldEmbedding(TWO_HISTORIES, 3)
    batch = _two_histories(8, np.random.default_rng(1))
    (group,) = emb.lookup(batch, [[0, 1]], sparse=False)
    assert group.shape == (8, 5, 6)
    torch.testing.assert_close(group[..., :3], emb.sequence_embeddings(0, batch.sequences[0]))
    torch.testing.assert_close(group[..., 3:], emb.sequence_embeddings(1, batch.sequences[1]))
    grad = torch.randn_like(group)
    group.backward(grad)
    # the sparse fields were not looked up: only the histories' real items have gradient
    zero_sparse = [torch.zeros(8, 2, 3)]
    reference = _reference_gradient(emb, batch, [*zero_sparse, grad[..., :3], grad[..., 3:]])
    got = emb.table.weight.grad.coalesce()
    history_rows = set(got.indices()[0].tolist())
    real = {int(c) + emb.seq_offsets[j] for j, s in enumerate(batch.sequences) for c in s[s != 0]}
    assert history_rows == real
    torch.testing.assert_close(got.to_dense(), reference.to_dense())


def test_an_unused_lookup_adds_nothing_to_the_gradient():
    emb = FieldEmbedding(TWO_HISTORIES, 3)
    batch = _two_histories(8, np.random.default_rng(2))
    _, hist, _ = emb.lookup(batch)
    hist.sum().backward()  # only the first history is used
    rows = set(emb.table.weight.grad.coalesce().indices()[0].tolist())
    s = batch.sequences[0]
    assert rows == {int(c) + emb.seq_offsets[0] for c in s[s != 0]}


def test_the_sparse_lookup_has_no_second_derivative_and_a_dense_table_keeps_one():
    batch = _two_histories(4, np.random.default_rng(3))
    for sparse in (True, False):
        emb = FieldEmbedding(TWO_HISTORIES, 3, sparse=sparse)
        found = emb.lookup(batch)
        loss = sum((v**2).sum() for v in found)
        if sparse:
            with pytest.raises(RuntimeError, match="no second derivative"):
                torch.autograd.grad(loss, emb.table.weight, create_graph=True)
        else:
            (grad,) = torch.autograd.grad(loss, emb.table.weight, create_graph=True)
            assert grad.requires_grad


def test_a_lookup_of_positions_gives_those_items_packed_and_their_gradient(table_and_batch):
    emb, batch = table_and_batch
    real = (torch.arange(5) < batch.lengths.amin(1, keepdim=True)).reshape(-1).nonzero()[:, 0]
    (padded,) = emb.lookup(batch, [[0, 1]], sparse=False)
    _, packed = emb.lookup(batch, [[0, 1]], positions=[real])
    assert packed.shape == (len(real), 8)
    torch.testing.assert_close(packed, padded.reshape(-1, 8)[real], rtol=0, atol=0)
    # the padded lookup's items at those positions: the same gradient for the table
    assert_same_gradients(packed, padded.reshape(-1, 8)[real], [emb.table.weight])


def test_the_lookup_gradient_raises_no_warning():
    # torch warns about sparse tensors built without invariant checks unless the switch is
    # set explicitly (2.11 and 2.12 even with check_invariants=False)
    emb = FieldEmbedding(TWO_HISTORIES, 3)
    batch = _two_histories(8, np.random.default_rng(6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sum(v.sum() for v in emb.lookup(batch)).backward()
    assert emb.table.weight.grad.is_sparse


def test_lookup_edge_cases():
    emb = FieldEmbedding(TWO_HISTORIES, 3)
    batch = _two_histories(6, np.random.default_rng(4))
    # no rows
    empty = emb.lookup(
        TensorBatch(*(t[:0] for t in batch[:2]), tuple(s[:0] for s in batch[2]), batch.lengths[:0])
    )
    assert [v.shape for v in empty] == [(0, 2, 3), (0, 5, 3), (0, 5, 3)]
    # every history empty: the gradient holds the sparse fields' entries only
    padded = batch._replace(sequences=tuple(torch.zeros_like(s) for s in batch.sequences))
    sum(v.sum() for v in emb.lookup(padded)).backward()
    rows = emb.table.weight.grad.coalesce().indices()[0]
    assert set(rows.tolist()) == set((batch.sparse + emb.sparse_offsets).flatten().tolist())
    # a frozen table
    emb.table.weight.requires_grad_(False)
    assert all(not v.requires_grad for v in emb.lookup(batch))
    # groups must hold sequences of one maxlen
    with pytest.raises(ValueError, match="at least one sequence"):
        emb.lookup(batch, [[]])
    # one entry of positions per group, each None or 1-D integers
    with pytest.raises(ValueError, match="one entry .* per group; got 1 entries for 2 groups"):
        emb.lookup(batch, [[0], [1]], positions=[None])
    with pytest.raises(ValueError, match="positions needs a sequence .* got a tensor for 1 groups"):
        emb.lookup(batch, [[0]], positions=torch.tensor([0, 1]))
    mask = torch.ones(6 * 5, dtype=torch.bool)
    for where in (torch.zeros(3), mask, torch.zeros(3, 1, dtype=torch.long)):
        with pytest.raises(ValueError, match="positions must be a 1-D int32 or int64 tensor"):
            emb.lookup(batch, [[0]], positions=[where])
    with pytest.raises(
        ValueError, match=r"positions must lie in \[0, 30\), got values from 0 to 30"
    ):
        emb.lookup(batch, [[0]], positions=[torch.tensor([0, 30])])
    (int32,) = emb.lookup(
        batch, [[0]], sparse=False, positions=[torch.tensor([7, 2], dtype=torch.int32)]
    )
    torch.testing.assert_close(
        int32, emb.lookup(batch, [[0]], sparse=False)[0].reshape(30, 3)[[7, 2]]
    )
