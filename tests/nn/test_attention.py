"""Tests of skctr.nn.attention against explicit per-pair / per-head loops."""

import math

import pytest
import torch

from skctr.nn import AFMAttention, InteractingLayer, LocalActivationUnit, attention
from tests.gradients import assert_same_gradients


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def rand(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def naive_pairs(num_fields):
    return [(i, j) for i in range(num_fields) for j in range(i + 1, num_fields)]


def naive_softmax(values):
    exps = [math.exp(v) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


# ------------------------------------------------------------------ AFM
@pytest.mark.parametrize(("shape", "attention_dim"), [((3, 3, 4), 2), ((4, 5, 2), 6)])
def test_afm_attention_matches_pair_loop(shape, attention_dim):
    b, f, k = shape
    layer = AFMAttention(k, attention_dim=attention_dim).double().eval()
    x = rand(*shape)
    w, bias = layer.projection.weight, layer.projection.bias
    h = layer.score.weight[0]
    pairs = naive_pairs(f)
    expected_pooled = torch.zeros(b, k, dtype=torch.float64)
    expected_weights = torch.zeros(b, len(pairs), dtype=torch.float64)
    with torch.no_grad():
        for r in range(b):
            products = [x[r, i] * x[r, j] for i, j in pairs]
            logits = []
            for e in products:
                logit = 0.0
                for a in range(len(h)):
                    hidden = max(torch.dot(w[a], e).item() + bias[a].item(), 0.0)
                    logit += h[a].item() * hidden
                logits.append(logit)
            weights = naive_softmax(logits)
            for p, e in enumerate(products):
                expected_pooled[r] += weights[p] * e
                expected_weights[r, p] = weights[p]
    pooled, weights = layer(x)
    assert pooled.shape == (b, k) and weights.shape == (b, len(pairs))
    torch.testing.assert_close(pooled, expected_pooled, atol=1e-5, rtol=0)
    torch.testing.assert_close(weights, expected_weights, atol=1e-5, rtol=0)


def test_afm_attention_backward_and_dropout():
    layer = AFMAttention(4, attention_dim=3, dropout=0.5)
    x = torch.randn(6, 4, 4, requires_grad=True)
    pooled, _ = layer(x)
    pooled.sum().backward()
    assert x.grad is not None
    assert all(p.grad is not None for p in layer.parameters())
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"embedding_dim": 4, "attention_dim": 0}, "attention_dim"),
        ({"embedding_dim": 4, "dropout": 1.2}, "dropout"),
    ],
)
def test_afm_attention_invalid(kwargs, name):
    with pytest.raises(ValueError, match=name):
        AFMAttention(**kwargs)


# ------------------------------------------------------------------ AutoInt
def naive_interacting(x, layer):
    b, f, _ = x.shape
    d, heads = layer.attention_dim, layer.num_heads
    out = torch.zeros(b, f, heads * d, dtype=x.dtype)
    for head in range(heads):
        rows = slice(head * d, (head + 1) * d)
        wq, wk, wv = (m.weight[rows] for m in (layer.query, layer.key, layer.value))
        for r in range(b):
            q = [wq @ x[r, m] for m in range(f)]
            k = [wk @ x[r, m] for m in range(f)]
            v = [wv @ x[r, m] for m in range(f)]
            for m in range(f):
                scores = [torch.dot(q[m], k[n]).item() for n in range(f)]
                if layer.scaled:
                    scores = [s / math.sqrt(d) for s in scores]
                alpha = naive_softmax(scores)
                out[r, m, rows] = sum(alpha[n] * v[n] for n in range(f))
    if layer.residual is not None:
        for r in range(b):
            for m in range(f):
                out[r, m] += layer.residual.weight @ x[r, m]
    return torch.clamp(out, min=0)


@pytest.mark.parametrize("use_residual", [True, False])
@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize(
    ("shape", "attention_dim", "num_heads"), [((2, 3, 4), 2, 2), ((3, 5, 6), 4, 3)]
)
def test_interacting_layer_matches_per_head_loop(
    shape, attention_dim, num_heads, use_residual, scaled
):
    layer = InteractingLayer(
        shape[2],
        attention_dim=attention_dim,
        num_heads=num_heads,
        use_residual=use_residual,
        scaled=scaled,
    ).double()
    x = rand(*shape)
    out = layer(x)
    assert layer.output_dim == attention_dim * num_heads
    assert out.shape == (shape[0], shape[1], layer.output_dim)
    with torch.no_grad():
        expected = naive_interacting(x, layer)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("use_residual", [True, False])
@pytest.mark.parametrize("scaled", [False, True])
def test_interacting_layer_gradients_match_autograd_of_the_formula(use_residual, scaled):
    # the layer's hand-written attention backward against autograd through the plain formula
    layer = InteractingLayer(
        4, attention_dim=3, num_heads=2, use_residual=use_residual, scaled=scaled
    ).double()
    x = rand(3, 5, 4).requires_grad_(True)

    def reference(x):
        def heads(t):
            return t.view(3, 5, 2, 3).transpose(1, 2)

        q, k, v = heads(layer.query(x)), heads(layer.key(x)), heads(layer.value(x))
        scores = q @ k.transpose(-1, -2) / (math.sqrt(3) if scaled else 1.0)
        out = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(3, 5, 6)
        return torch.relu(out + layer.residual(x) if use_residual else out)

    weight = rand(3, 5, 6)
    params = [x, *layer.parameters()]
    got = torch.autograd.grad((layer(x) * weight).sum(), params)
    want = torch.autograd.grad((reference(x) * weight).sum(), params)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_interacting_function_gradcheck(scale, residual):
    # 3 rows of 4 fields, 2 heads of width 2, inputs of width 3 (feature-major)
    x_t = rand(3, 12).requires_grad_(True)
    weight = rand((4 if residual else 3) * 4, 3).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x, w: attention._Interacting.apply(x, w, 2, 2, 3, scale, residual), (x_t, weight)
    )


def test_interacting_layer_of_zero_rows():
    layer = InteractingLayer(4, attention_dim=3, num_heads=2)
    x = torch.randn(0, 5, 4, requires_grad=True)
    out = layer(x)
    assert out.shape == (0, 5, 6)
    out.sum().backward()
    assert x.grad.shape == (0, 5, 4)


def test_interacting_layer_under_autocast():
    # autocast runs the projections in bf16; the attention then runs in bf16 throughout
    # (its softmax accumulating in float32) and its backward gets matching dtypes
    layer = InteractingLayer(4, attention_dim=3, num_heads=2)
    x = torch.randn(3, 5, 4)
    reference = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, atol=0.05, rtol=0.05)
    out.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in layer.parameters())


def test_interacting_layer_backward_inside_autocast_after_a_float32_forward():
    layer = InteractingLayer(4, attention_dim=3, num_heads=2)
    x = torch.randn(3, 5, 4, requires_grad=True)
    out = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # backward runs in the saved dtype
        out.sum().backward()
    assert x.grad.dtype == torch.float32


def test_interacting_layer_on_the_meta_device():
    layer = InteractingLayer(4, attention_dim=3, num_heads=2).to("meta")
    assert layer(torch.empty(3, 5, 4, device="meta")).shape == (3, 5, 6)


def test_interacting_layers_stack_and_backward():
    first = InteractingLayer(4, attention_dim=3, num_heads=2)
    second = InteractingLayer(first.output_dim, attention_dim=3, num_heads=2)
    x = torch.randn(2, 5, 4, requires_grad=True)
    second(first(x)).sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"embedding_dim": 4, "attention_dim": -2}, "attention_dim"),
        ({"embedding_dim": 4, "num_heads": 0}, "num_heads"),
        ({"embedding_dim": 4, "use_residual": None}, "use_residual"),
        ({"embedding_dim": 4, "scaled": 1}, "scaled"),
    ],
)
def test_interacting_layer_invalid(kwargs, name):
    with pytest.raises(ValueError, match=name):
        InteractingLayer(**kwargs)


# ------------------------------------------------------------------ DIN local activation unit
def naive_lau_scores(unit, query, keys, mask=None):
    """Score each (row, step) on its own; the unit must be in eval mode or use row-wise ops."""
    b, t, _ = keys.shape
    scores = torch.zeros(b, t, dtype=keys.dtype)
    for r in range(b):
        for s in range(t):
            if mask is not None and not mask[r, s]:
                continue
            k, q = keys[r, s], query[r]
            features = torch.cat([k, q, k - q, k * q]).unsqueeze(0)
            scores[r, s] = unit.mlp(features)[0, 0]
    return scores


@pytest.mark.parametrize("activation", ["dice", "relu", "sigmoid"])
@pytest.mark.parametrize(("b", "t", "k"), [(3, 4, 2), (2, 6, 5)])
def test_local_activation_unit_matches_item_loop(b, t, k, activation):
    unit = LocalActivationUnit(k, hidden_units=(6, 3), activation=activation).double()
    unit.eval()  # Dice uses running statistics: every item is scored independently
    query, keys = rand(b, k), rand(b, t, k)
    mask = torch.rand(b, t) > 0.4
    with torch.no_grad():
        torch.testing.assert_close(
            unit(query, keys), naive_lau_scores(unit, query, keys), atol=1e-5, rtol=0
        )
        torch.testing.assert_close(
            unit(query, keys, mask), naive_lau_scores(unit, query, keys, mask), atol=1e-5, rtol=0
        )


def test_local_activation_unit_training_stats_ignore_padding():
    unit = LocalActivationUnit(3, hidden_units=(5,), activation="dice").double()
    query, keys = rand(4, 3), rand(4, 5, 3)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]]).bool()
    scores = unit(query, keys, mask)
    assert torch.all(scores[~mask] == 0)
    # in training mode Dice's batch statistics come from the real items only
    other = keys.clone()
    other[~mask] = 1e3 * rand(int((~mask).sum()), 3)
    torch.testing.assert_close(unit(query, other, mask), scores, atol=1e-12, rtol=0)
    # ... and equal the statistics of the real items scored as one flat batch
    rows, steps = mask.nonzero(as_tuple=True)
    k, q = keys[rows, steps], query[rows]
    flat = unit.mlp(torch.cat([k, q, k - q, k * q], dim=1)).squeeze(1)
    torch.testing.assert_close(scores[rows, steps], flat, atol=1e-12, rtol=0)


def test_local_activation_unit_all_padding_and_backward():
    unit = LocalActivationUnit(3, hidden_units=(4,))
    query = torch.randn(2, 3, requires_grad=True)
    keys = torch.randn(2, 4, 3, requires_grad=True)
    empty = torch.zeros(2, 4, dtype=torch.bool)
    assert torch.equal(unit(query, keys, empty), torch.zeros(2, 4))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]).bool()
    unit(query, keys, mask).sum().backward()
    assert query.grad is not None and keys.grad is not None
    assert torch.all(keys.grad[~mask] == 0)


def test_local_activation_unit_invalid():
    with pytest.raises(ValueError, match="embedding_dim"):
        LocalActivationUnit(0)
    with pytest.raises(ValueError, match="hidden_units"):
        LocalActivationUnit(4, hidden_units=(0,))
    with pytest.raises(ValueError, match="dropout"):
        LocalActivationUnit(4, dropout=1.0)
    with pytest.raises(ValueError, match="embedding_dim=4"):
        LocalActivationUnit(4)(torch.randn(2, 3), torch.randn(2, 5, 3))


def test_local_activation_unit_folded_first_layer_has_the_literal_gradients():
    unit = LocalActivationUnit(4, hidden_units=(6, 3), activation="relu").double()
    query = rand(3, 4).requires_grad_()
    keys = rand(3, 5, 4).requires_grad_()
    params = (query, keys, *unit.parameters())
    ours = torch.autograd.grad(unit(query, keys).square().sum(), params)
    q = query.unsqueeze(1).expand_as(keys)
    literal = unit.mlp(torch.cat([keys, q, keys - q, keys * q], dim=-1)).squeeze(-1)
    reference = torch.autograd.grad(literal.square().sum(), params)
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b)


def test_local_activation_unit_eval_scores_do_not_depend_on_the_other_rows():
    torch.manual_seed(0)
    unit = LocalActivationUnit(32, hidden_units=(64, 16), activation="dice").eval()
    query, keys = torch.randn(4096, 32), torch.randn(4096, 50, 32)
    mask = torch.arange(50) < torch.randint(0, 51, (4096, 1))
    full = unit(query, keys, mask)
    for rows in (slice(0, 1), slice(5, 9), slice(3, 1003), slice(100, 2177)):
        torch.testing.assert_close(
            unit(query[rows], keys[rows], mask[rows]), full[rows], rtol=0, atol=0
        )


def test_local_activation_unit_with_a_mask_runs_under_autocast():
    # the scores of the real items come out in autocast's dtype; padding gets 0 in it too
    unit = LocalActivationUnit(4, hidden_units=(6,))
    query = torch.randn(3, 4, requires_grad=True)
    keys = torch.randn(3, 5, 4)
    mask = torch.arange(5) < torch.tensor([[2], [5], [0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = unit(query, keys, mask)
    assert scores.dtype == torch.bfloat16
    assert torch.all(scores[~mask] == 0)
    torch.testing.assert_close(scores.float(), unit(query, keys, mask), atol=0.05, rtol=0.05)
    scores.float().square().sum().backward()  # through Dice's kernels, in mixed dtypes
    assert query.grad is not None and unit.mlp.layers[0].weight.grad is not None


@pytest.mark.parametrize("training", [True, False])
def test_local_activation_unit_scores_packed_items_as_forward_scores_them(training):
    # score_items is forward without the padded layout: the same scores for the real items
    # (Dice's training statistics are over the same items), and the same gradients
    unit = LocalActivationUnit(3, hidden_units=(5, 2)).double().train(training)
    query, keys = rand(4, 3).requires_grad_(), rand(4, 6, 3).requires_grad_()
    mask = torch.arange(6) < torch.tensor([[2], [6], [0], [3]])
    rows, steps = mask.nonzero(as_tuple=True)
    padded = unit(query, keys, mask)
    packed = unit.score_items(query, keys[rows, steps], rows)
    assert_same_gradients(packed, padded[rows, steps], (query, keys, *unit.parameters()))
    assert unit.score_items(query, keys[rows[:0], steps[:0]], rows[:0]).shape == (0,)


def test_local_activation_unit_packed_items_invalid():
    unit = LocalActivationUnit(3, hidden_units=(4,))
    query, items = torch.randn(2, 3), torch.randn(5, 3)
    with pytest.raises(ValueError, match=r"items \(N, 3\)"):
        unit.score_items(query, torch.randn(5, 4), torch.zeros(5, dtype=torch.long))
    bad_rows = [
        torch.zeros(5),  # floats
        torch.zeros(5, dtype=torch.bool),  # a mask, not indices
        torch.zeros(4, dtype=torch.long),  # not one per item
        torch.zeros(5, 1, dtype=torch.long),
    ]
    for rows in bad_rows:
        with pytest.raises(
            ValueError, match=r"rows must be a 1-D int32 or int64 tensor of shape \(5,\)"
        ):
            unit.score_items(query, items, rows)
    for rows in ([0, 1, 2, 1, 0], [0, 0, 0, 0, -1]):  # the query has rows 0 and 1
        with pytest.raises(ValueError, match=r"rows must lie in \[0, 2\)"):
            unit.score_items(query, items, torch.tensor(rows))
    # int32 indices are fine
    assert unit.score_items(
        query, items, torch.tensor([0, 1, 1, 0, 0], dtype=torch.int32)
    ).shape == (5,)
