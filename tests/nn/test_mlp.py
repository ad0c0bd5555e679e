"""Tests of skctr.nn.MLP against an explicit per-unit reference."""

import pytest
import torch
from torch import nn

from skctr.nn import MLP, Dice
from skctr.nn.mlp import blocks_linear
from tests.gradients import assert_same_gradients


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def naive_linear(x, linear):
    """y[:, o] = sum_i x[:, i] W[o, i] + b[o], one output unit at a time."""
    out = torch.empty(x.shape[0], linear.out_features, dtype=x.dtype)
    for o in range(linear.out_features):
        acc = torch.zeros(x.shape[0], dtype=x.dtype) + linear.bias[o]
        for i in range(linear.in_features):
            acc = acc + x[:, i] * linear.weight[o, i]
        out[:, o] = acc
    return out


def naive_batch_norm_train(x, eps):
    out = torch.empty_like(x)
    for c in range(x.shape[1]):
        column = x[:, c]
        mu = column.sum() / column.numel()
        var = ((column - mu) ** 2).sum() / column.numel()
        out[:, c] = (column - mu) / torch.sqrt(var + eps)
    return out


def naive_mlp(x, mlp, batch_norm):
    """Rebuild the forward pass from the parameters, with ReLU written as max(v, 0)."""
    linears = [m for m in mlp.layers if isinstance(m, nn.Linear)]
    h = x
    for depth, linear in enumerate(linears):
        h = naive_linear(h, linear)
        is_hidden = depth < len(mlp.hidden_units)
        if is_hidden:
            if batch_norm:
                h = naive_batch_norm_train(h, 1e-5)
            h = torch.where(h > 0, h, torch.zeros_like(h))
    return h


@pytest.mark.parametrize(
    ("in_dim", "hidden", "output_dim", "batch_norm"),
    [
        (5, (4, 3), None, False),
        (5, (4, 3), 1, False),
        (6, (8,), 2, True),
        (3, (), 4, False),
    ],
)
def test_mlp_matches_naive(in_dim, hidden, output_dim, batch_norm):
    mlp = MLP(in_dim, hidden, batch_norm=batch_norm, output_dim=output_dim).double()
    x = torch.randn(7, in_dim, dtype=torch.float64)
    out = mlp(x)
    expected_width = output_dim or (hidden[-1] if hidden else in_dim)
    assert mlp.output_dim == expected_width
    assert out.shape == (7, expected_width)
    torch.testing.assert_close(out, naive_mlp(x, mlp, batch_norm), atol=1e-5, rtol=0)


def test_mlp_layer_order():
    mlp = MLP(4, (3, 2), dropout=0.5, batch_norm=True, activation="prelu", output_dim=1)
    kinds = [type(m) for m in mlp.layers]
    block = [nn.Linear, nn.BatchNorm1d, nn.PReLU, nn.Dropout]
    assert kinds == [*block, *block, nn.Linear]
    assert mlp.layers[2].weight.shape == (3,)


def test_mlp_dice_gets_layer_width():
    mlp = MLP(4, (6, 5), activation="dice")
    dices = [m for m in mlp.layers if isinstance(m, Dice)]
    assert [d.num_features for d in dices] == [6, 5]


def test_mlp_empty_hidden_units_is_identity():
    mlp = MLP(4, [])
    x = torch.randn(3, 4)
    assert mlp.output_dim == 4
    assert torch.equal(mlp(x), x)


def test_mlp_accepts_leading_axes():
    mlp = MLP(4, (5,), activation="tanh", output_dim=2).double()
    x = torch.randn(3, 6, 4, dtype=torch.float64)
    out = mlp(x)
    assert out.shape == (3, 6, 2)
    torch.testing.assert_close(out, mlp(x.reshape(18, 4)).reshape(3, 6, 2))


@pytest.mark.parametrize(
    ("hidden", "output_dim", "batch_norm", "widths", "leading"),
    [
        ((6, 3), 1, False, (4, 0, 2, 3), (7,)),
        ((5,), None, True, (2, 7), (7,)),
        ((), 2, False, (3, 1), (7,)),  # the single layer is the output layer
        ((), None, False, (3, 1), (7,)),  # identity: the blocks are concatenated
        ((4,), 1, False, (5, 1), (2, 3)),  # leading axes
    ],
)
def test_mlp_blocks_equal_their_concatenation(hidden, output_dim, batch_norm, widths, leading):
    mlp = MLP(sum(widths), hidden, batch_norm=batch_norm, output_dim=output_dim).double()
    blocks = [torch.randn(*leading, w, dtype=torch.float64) for w in widths]
    blocks[0].requires_grad_()  # the others, like raw dense values, need no gradient
    out = mlp(blocks)
    grad = torch.randn_like(out)
    params = [blocks[0], *mlp.parameters()]
    got = torch.autograd.grad(out, params, grad)
    whole = torch.cat([b.detach() for b in blocks], dim=-1)
    first = whole[..., : widths[0]].requires_grad_()
    expected = mlp(torch.cat([first, whole[..., widths[0] :]], dim=-1))
    torch.testing.assert_close(out, expected)
    want = torch.autograd.grad(expected, [first, *mlp.parameters()], grad)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("outputs", [1, 3, 8, 9])
def test_blocks_linear_equals_linear_of_the_concatenation_with_its_gradients(outputs):
    # up to 8 outputs the weight gradient is computed as g^T x (_NarrowLinear)
    blocks = [torch.randn(6, w, dtype=torch.float64, requires_grad=True) for w in (4, 2)]
    weight = torch.randn(outputs, 6, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(outputs, dtype=torch.float64, requires_grad=True)
    inputs = (*blocks, weight, bias)
    out = blocks_linear(blocks, weight, bias)
    expected = nn.functional.linear(torch.cat(blocks, dim=1), weight, bias)
    assert_same_gradients(out, expected, inputs)
    assert torch.autograd.gradgradcheck(lambda a, b, w, c: blocks_linear([a, b], w, c), inputs)
    with torch.no_grad():
        torch.testing.assert_close(blocks_linear(blocks, weight, bias), expected)


def test_mlp_rejects_blocks_of_the_wrong_total_width_or_leading_axes():
    with pytest.raises(ValueError, match=r"in_dim=5.*summed over blocks"):
        MLP(5, (3,))([torch.randn(2, 3), torch.randn(2, 3)])
    with pytest.raises(ValueError, match="in_dim=5"):
        MLP(5, (3,))([])
    with pytest.raises(ValueError, match="in_dim=5"):
        MLP(5, (3,))([torch.randn(2, 4)])
    with pytest.raises(ValueError, match="all but their last axes must agree"):
        MLP(5, (3,))([torch.randn(1, 3), torch.randn(6, 2)])  # would broadcast
    with pytest.raises(ValueError, match="all but their last axes must agree"):
        MLP(5, (3,))([torch.randn(2, 3, 3), torch.randn(3, 2, 2)])  # would mix rows


def test_mlp_blocks_of_mixed_dtypes_are_promoted_like_a_concatenation():
    mlp = MLP(5, (3,), output_dim=1).double()
    blocks = [torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 2)]
    out = mlp(blocks)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, mlp(torch.cat(blocks, dim=1)))


def test_mlp_blocks_under_autocast_equal_their_concatenation_under_autocast():
    # the first layer adds the later blocks' products in place, except where autocast gives
    # its output another dtype than theirs
    mlp = MLP(5, (3,), output_dim=1)
    blocks = [torch.randn(4, 3), torch.randn(4, 2)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, expected = mlp(blocks), mlp(torch.cat(blocks, dim=1))
    assert out.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected, atol=0.02, rtol=0.02)


def test_mlp_blocks_run_a_hooked_first_layer_through_its_forward():
    mlp = MLP(5, (3,), output_dim=1)
    calls = []
    mlp.layers[0].register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    blocks = [torch.randn(4, 3), torch.randn(4, 2)]
    torch.testing.assert_close(mlp(blocks), mlp(torch.cat(blocks, dim=1)))
    assert calls == [(4, 5), (4, 5)]  # the hook saw the concatenated input both times


def test_mlp_dropout_active_only_in_training():
    mlp = MLP(8, (64,), dropout=0.5)
    x = torch.randn(16, 8)
    mlp.eval()
    assert torch.equal(mlp(x), mlp(x))
    mlp.train()
    assert not torch.equal(mlp(x), mlp(x))


def test_mlp_backward():
    mlp = MLP(5, (4, 3), batch_norm=True, activation="dice", dropout=0.1, output_dim=1)
    x = torch.randn(8, 5, requires_grad=True)
    mlp(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in mlp.parameters())


def test_mlp_rejects_wrong_input_width():
    with pytest.raises(ValueError, match="in_dim=5"):
        MLP(5, (3,))(torch.randn(2, 4))


@pytest.mark.parametrize(
    ("args", "kwargs", "name"),
    [
        ((0, (3,)), {}, "in_dim"),
        ((True, (3,)), {}, "in_dim"),
        ((4, (3, 0)), {}, "hidden_units"),
        ((4, "64"), {}, "hidden_units"),
        ((4, 64), {}, "hidden_units"),
        ((4, (3,)), {"dropout": 1.0}, "dropout"),
        ((4, (3,)), {"dropout": -0.1}, "dropout"),
        ((4, (3,)), {"batch_norm": 1}, "batch_norm"),
        ((4, (3,)), {"output_dim": 0}, "output_dim"),
        ((4, (3,)), {"activation": "swish"}, "swish"),
    ],
)
def test_mlp_invalid_arguments(args, kwargs, name):
    with pytest.raises(ValueError, match=name):
        MLP(*args, **kwargs)
