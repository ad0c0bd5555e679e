"""Tests of skctr.nn.sequence against explicit per-row masked pooling."""

import math

import pytest
import torch

from skctr.nn import AttentionSequencePooling, LocalActivationUnit, SequencePooling, sequence_mask
from tests.gradients import assert_same_gradients


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def rand(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def random_lengths(batch, maxlen):
    lengths = torch.randint(0, maxlen + 1, (batch,))
    lengths[0] = 0  # always one empty row
    lengths[-1] = maxlen  # and one full row
    return lengths


# ------------------------------------------------------------------ sequence_mask
def test_sequence_mask_matches_loop():
    lengths = torch.tensor([0, 2, 5, 7, -1])
    mask = sequence_mask(lengths, 5)
    assert mask.dtype == torch.bool and mask.shape == (5, 5)
    for r, length in enumerate(lengths.tolist()):
        for t in range(5):
            assert bool(mask[r, t]) == (t < length)


def test_sequence_mask_invalid():
    with pytest.raises(ValueError, match="maxlen"):
        sequence_mask(torch.tensor([1]), -1)
    with pytest.raises(ValueError, match="lengths"):
        sequence_mask(torch.tensor([[1]]), 3)


# ------------------------------------------------------------------ SequencePooling
def naive_pool(seq, lengths, mode, weights=None):
    b, _, k = seq.shape
    out = torch.zeros(b, k, dtype=seq.dtype)
    for r in range(b):
        length = int(lengths[r])
        items = []
        for t in range(length):
            w = 1.0 if weights is None else weights[r, t]
            items.append(seq[r, t] * w)
        if not items:
            continue  # an empty row pools to zeros
        if mode == "sum":
            out[r] = sum(items)
        elif mode == "mean":
            out[r] = sum(items) / length
        else:
            for c in range(k):
                out[r, c] = max(item[c] for item in items)
    return out


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("mode", ["mean", "sum", "max"])
@pytest.mark.parametrize(("b", "t", "k"), [(4, 3, 2), (6, 7, 5)])
def test_sequence_pooling_matches_row_loop(b, t, k, mode, weighted):
    seq = rand(b, t, k)
    lengths = random_lengths(b, t)
    weights = rand(b, t).abs() if weighted else None
    out = SequencePooling(mode)(seq, lengths, weights)
    assert out.shape == (b, k)
    torch.testing.assert_close(out, naive_pool(seq, lengths, mode, weights), atol=1e-5, rtol=0)
    assert torch.all(out[0] == 0)


@pytest.mark.parametrize("mode", ["mean", "sum", "max"])
def test_sequence_pooling_ignores_padding_values(mode):
    seq = rand(5, 6, 3)
    lengths = torch.tensor([0, 1, 3, 6, 2])
    weights = rand(5, 6)
    layer = SequencePooling(mode)
    reference = layer(seq, lengths, weights)
    padding = ~sequence_mask(lengths, 6)
    for fill in (1e6, -math.inf, math.nan):
        other_seq, other_weights = seq.clone(), weights.clone()
        other_seq[padding] = fill
        other_weights[padding] = fill
        torch.testing.assert_close(layer(other_seq, lengths, other_weights), reference)


@pytest.mark.parametrize("mode", ["mean", "sum", "max"])
def test_sequence_pooling_empty_rows_give_zeros_and_finite_grads(mode):
    seq = torch.randn(3, 4, 2, requires_grad=True)
    lengths = torch.tensor([0, 0, 2])
    out = SequencePooling(mode)(seq, lengths)
    assert torch.equal(out[:2], torch.zeros(2, 2))
    out.sum().backward()
    assert torch.isfinite(seq.grad).all()
    assert torch.all(seq.grad[:2] == 0) and torch.all(seq.grad[2, 2:] == 0)


def test_sequence_pooling_invalid():
    with pytest.raises(ValueError, match="mode"):
        SequencePooling("median")
    with pytest.raises(ValueError, match="weights"):
        SequencePooling()(torch.randn(2, 3, 4), torch.tensor([1, 2]), torch.ones(2, 4))
    with pytest.raises(ValueError, match="lengths"):
        SequencePooling()(torch.randn(2, 3, 4), torch.tensor([1, 2, 3]))


# ------------------------------------------------------------------ AttentionSequencePooling
def naive_attention_pool(layer, query, keys, lengths):
    """Score the real items one by one, (optionally) softmax them, and sum."""
    b, t, k = keys.shape
    pooled = torch.zeros(b, k, dtype=keys.dtype)
    weights = torch.zeros(b, t, dtype=keys.dtype)
    for r in range(b):
        length = int(lengths[r])
        scores = []
        for s in range(length):
            key, q = keys[r, s], query[r]
            features = torch.cat([key, q, key - q, key * q]).unsqueeze(0)
            scores.append(layer.unit.mlp(features)[0, 0].item())
        if layer.weight_normalization and scores:
            exps = [math.exp(v - max(scores)) for v in scores]
            scores = [e / sum(exps) for e in exps]
        for s, score in enumerate(scores):
            weights[r, s] = score
            pooled[r] += score * keys[r, s]
    return pooled, weights


@pytest.mark.parametrize("weight_normalization", [False, True])
@pytest.mark.parametrize(("b", "t", "k"), [(4, 3, 2), (5, 6, 4)])
def test_attention_sequence_pooling_matches_row_loop(b, t, k, weight_normalization):
    layer = AttentionSequencePooling(
        k, hidden_units=(6, 3), weight_normalization=weight_normalization
    ).double()
    layer.eval()  # Dice with running statistics: items are scored independently
    query, keys = rand(b, k), rand(b, t, k)
    lengths = random_lengths(b, t)
    with torch.no_grad():
        pooled, weights = layer(query, keys, lengths, return_scores=True)
        expected_pooled, expected_weights = naive_attention_pool(layer, query, keys, lengths)
        torch.testing.assert_close(pooled, expected_pooled, atol=1e-5, rtol=0)
        torch.testing.assert_close(weights, expected_weights, atol=1e-5, rtol=0)
        torch.testing.assert_close(layer(query, keys, lengths), pooled)
        torch.testing.assert_close(layer.attention_weights(query, keys, lengths), weights)
    assert torch.all(pooled[0] == 0) and torch.all(weights[0] == 0)
    if weight_normalization:
        nonempty = lengths > 0
        torch.testing.assert_close(
            weights[nonempty].sum(1), torch.ones(int(nonempty.sum()), dtype=torch.float64)
        )


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("weight_normalization", [False, True])
def test_attention_sequence_pooling_ignores_padding_values(weight_normalization, training):
    layer = AttentionSequencePooling(
        3, hidden_units=(4,), weight_normalization=weight_normalization
    )
    layer.double().train(training)
    query, keys = rand(4, 3), rand(4, 5, 3)
    lengths = torch.tensor([0, 2, 5, 1])
    reference = layer(query, keys, lengths)
    padding = ~sequence_mask(lengths, 5)
    for fill in (1e4, math.nan):
        other = keys.clone()
        other[padding] = fill
        torch.testing.assert_close(layer(query, other, lengths), reference, atol=1e-12, rtol=0)


@pytest.mark.parametrize("weight_normalization", [False, True])
def test_attention_sequence_pooling_backward_with_empty_rows(weight_normalization):
    layer = AttentionSequencePooling(
        3, hidden_units=(4,), weight_normalization=weight_normalization
    )
    query = torch.randn(3, 3, requires_grad=True)
    keys = torch.randn(3, 4, 3, requires_grad=True)
    lengths = torch.tensor([0, 4, 2])
    pooled = layer(query, keys, lengths)
    assert pooled.shape == (3, 3)
    assert torch.equal(pooled[0], torch.zeros(3))
    pooled.sum().backward()
    assert torch.isfinite(query.grad).all() and torch.isfinite(keys.grad).all()
    assert torch.all(keys.grad[0] == 0)


class _MaskBlindUnit(torch.nn.Module):
    """A scorer (the pooling's public ``unit``) that scores padding positions too."""

    def __init__(self, unit):
        super().__init__()
        self.inner = unit

    def forward(self, query, keys, mask):
        return 1.0 + self.inner(query, keys, mask)


class _MaskBlindPooling(AttentionSequencePooling):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.unit = _MaskBlindUnit(self.unit)


@pytest.mark.parametrize("cls", [AttentionSequencePooling, _MaskBlindPooling])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("weight_normalization", [False, True])
def test_attention_sequence_pooling_gradients_equal_those_of_masking_the_keys(
    weight_normalization, training, cls
):
    # the pooling reads the real items alone: the gradients of zeroing the padding and
    # summing every position, also when the padding holds huge or NaN values (a unit of
    # another class is called on the padded keys)
    layer = cls(3, hidden_units=(4,), weight_normalization=weight_normalization)
    layer.double().train(training)
    query, keys = rand(4, 3), rand(4, 5, 3)
    lengths = torch.tensor([0, 2, 5, 1])
    padding = ~sequence_mask(lengths, 5)
    for fill in (None, 1e4, math.nan):
        k = keys.clone()
        if fill is not None:
            k[padding] = fill
        k.requires_grad_()
        q = query.clone().requires_grad_()
        grad = torch.randn(4, 3, dtype=torch.float64)
        got = torch.autograd.grad(layer(q, k, lengths), [q, k, *layer.parameters()], grad)
        mask = ~padding
        scores = layer.unit(q, k, mask)
        if weight_normalization:
            scores = torch.softmax(scores.masked_fill(padding, -torch.inf), dim=1)
        weights = scores.masked_fill(padding, 0)
        clean = k.masked_fill(padding.unsqueeze(-1), 0)
        literal = torch.bmm(weights.unsqueeze(1), clean).squeeze(1)
        want = torch.autograd.grad(literal, [q, k, *layer.parameters()], grad)
        assert torch.all(got[1][padding] == 0)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("weight_normalization", [False, True])
def test_attention_sequence_pooling_of_packed_items_equals_that_of_the_padded_keys(
    weight_normalization, training
):
    layer = AttentionSequencePooling(
        3, hidden_units=(4,), weight_normalization=weight_normalization
    )
    layer.double().train(training)
    query, keys = rand(5, 3).requires_grad_(), rand(5, 4, 3).requires_grad_()
    lengths = torch.tensor([0, 2, 4, 1, 3])
    rows, steps = sequence_mask(lengths, 4).nonzero(as_tuple=True)
    items = keys[rows, steps]
    padded = layer(query, keys, lengths)
    packed = layer.pool_items(query, items, rows)
    assert torch.all(packed[0] == 0)
    assert_same_gradients(packed, padded, (query, keys, *layer.parameters()))


def test_attention_sequence_pooling_of_packed_items_in_eval_does_not_depend_on_other_rows():
    torch.manual_seed(0)
    layer = AttentionSequencePooling(16, hidden_units=(32, 8)).eval()
    query, keys = torch.randn(300, 16), torch.randn(300, 20, 16)
    lengths = torch.randint(0, 21, (300,))
    rows, steps = sequence_mask(lengths, 20).nonzero(as_tuple=True)
    with torch.no_grad():
        full = layer.pool_items(query, keys[rows, steps], rows)
        for part in (slice(0, 1), slice(7, 9), slice(40, 237)):
            sub = lengths[part]
            r, t = sequence_mask(sub, 20).nonzero(as_tuple=True)
            got = layer.pool_items(query[part], keys[part][r, t], r)
            torch.testing.assert_close(got, full[part], rtol=0, atol=0)


class _SilentUnit(LocalActivationUnit):
    def forward(self, query, keys, mask=None):
        return torch.zeros(keys.shape[:2], dtype=keys.dtype)


def test_packed_items_need_a_plain_unit():
    query, items, rows = torch.randn(2, 3), torch.randn(4, 3), torch.tensor([0, 0, 1, 1])
    hooked = AttentionSequencePooling(3, hidden_units=(4,))
    hooked.unit.register_forward_hook(lambda module, args, out: out * 0)
    subclassed = AttentionSequencePooling(3, hidden_units=(4,))
    subclassed.unit = _SilentUnit(3, hidden_units=(4,))
    for layer in (hooked, subclassed):
        with pytest.raises(ValueError, match="pool_items scores items with a plain"):
            layer.pool_items(query, items, rows)
        # on padded keys the pooling calls the unit as it is: its zero scores pool to zero
        keys, lengths = items.view(2, 2, 3), torch.tensor([2, 2])
        assert torch.equal(layer(query, keys, lengths), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="rows must be a 1-D int32 or int64 tensor"):
        AttentionSequencePooling(3, hidden_units=(4,)).pool_items(query, items, rows.bool())


def test_attention_sequence_pooling_under_autocast():
    # the unit's scores come in autocast's dtype; the weighted sum keeps the keys' float32
    layer = AttentionSequencePooling(4, hidden_units=(6,), weight_normalization=True)
    query, keys = torch.randn(3, 4, requires_grad=True), torch.randn(3, 5, 4)
    lengths = torch.tensor([2, 5, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pooled = layer(query, keys, lengths)
    torch.testing.assert_close(pooled.float(), layer(query, keys, lengths), atol=0.05, rtol=0.05)
    pooled.float().square().sum().backward()
    assert torch.isfinite(query.grad).all()


def test_attention_sequence_pooling_invalid():
    with pytest.raises(ValueError, match="weight_normalization"):
        AttentionSequencePooling(4, weight_normalization="softmax")
    with pytest.raises(ValueError, match="embedding_dim"):
        AttentionSequencePooling(0)
    with pytest.raises(ValueError, match="lengths"):
        AttentionSequencePooling(4)(torch.randn(2, 4), torch.randn(2, 3, 4), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"query of shape \(2, 4\)"):
        AttentionSequencePooling(4)(torch.randn(3, 4), torch.randn(2, 3, 4), torch.tensor([1, 2]))
