"""Tests of skctr.nn.activation: Dice against explicit per-feature loops, and the factory."""

import math

import pytest
import torch
from torch import nn

from skctr.nn import (
    ACTIVATIONS,
    CIN,
    Dice,
    FactorizationMachine,
    InteractingLayer,
    get_activation,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def naive_dice(x2d, alpha, mean=None, var=None, eps=1e-8):
    """Dice on (N, C) rows with explicit loops; batch statistics unless mean/var given."""
    n, c = x2d.shape
    out = torch.empty_like(x2d)
    for f in range(c):
        column = [x2d[r, f].item() for r in range(n)]
        if mean is None:
            mu = sum(column) / n
            sigma2 = sum((v - mu) ** 2 for v in column) / n
        else:
            mu, sigma2 = mean[f].item(), var[f].item()
        for r in range(n):
            s = column[r]
            p = 1.0 / (1.0 + math.exp(-(s - mu) / math.sqrt(sigma2 + eps)))
            out[r, f] = p * s + (1.0 - p) * alpha[f].item() * s
    return out


@pytest.mark.parametrize("shape", [(6, 3), (17, 5)])
def test_dice_2d_training_matches_naive(shape):
    dice = Dice(shape[1]).double()
    with torch.no_grad():
        dice.alpha.uniform_(-1, 1)
    x = torch.randn(*shape, dtype=torch.float64) * 2 + 0.5
    out = dice(x)
    torch.testing.assert_close(out, naive_dice(x, dice.alpha), atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", [(3, 4, 2), (5, 2, 6)])
def test_dice_3d_normalises_over_batch_and_time(shape):
    b, t, c = shape
    dice = Dice(c, dim=3).double()
    with torch.no_grad():
        dice.alpha.uniform_(-1, 1)
    x = torch.randn(*shape, dtype=torch.float64)
    out = dice(x)
    expected = naive_dice(x.reshape(b * t, c), dice.alpha).reshape(b, t, c)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_dice_running_stats_and_eval_mode():
    dice = Dice(3).double()
    with torch.no_grad():
        dice.alpha.fill_(0.3)
    batches = [torch.randn(8, 3, dtype=torch.float64) * 3 + 1 for _ in range(13)]
    mean = torch.zeros(3, dtype=torch.float64)
    var = torch.ones(3, dtype=torch.float64)
    for t, x in enumerate(batches, start=1):
        dice(x)
        n = x.shape[0]
        weight = max(0.1, 1 / t)  # plain average of the first 10 batches, then EMA
        for f in range(3):
            column = [x[r, f].item() for r in range(n)]
            mu = sum(column) / n
            unbiased = sum((v - mu) ** 2 for v in column) / (n - 1)
            mean[f] = (1 - weight) * mean[f] + weight * mu
            var[f] = (1 - weight) * var[f] + weight * unbiased
        if t == 10:  # the first 10 batches: exactly their average
            stacked = torch.stack(batches[:10])
            torch.testing.assert_close(dice.running_mean, stacked.mean(dim=1).mean(dim=0))
    assert int(dice.num_batches_tracked) == 13
    torch.testing.assert_close(dice.running_mean, mean, atol=1e-10, rtol=0)
    torch.testing.assert_close(dice.running_var, var, atol=1e-10, rtol=0)

    dice.eval()
    snapshot = dice.running_mean.clone()
    x = torch.randn(5, 3, dtype=torch.float64)
    out = dice(x)
    expected = naive_dice(x, dice.alpha, mean=mean, var=var)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    # eval output of a row does not depend on the other rows of the batch
    torch.testing.assert_close(dice(x[:1]), out[:1], atol=1e-12, rtol=0)
    # and eval mode leaves the running statistics alone
    assert torch.equal(dice.running_mean, snapshot)


def test_dice_without_momentum_averages_every_batch_since_a_reset():
    dice = Dice(3, momentum=None).double()
    for _ in range(3):  # statistics that the reset must forget
        dice(torch.randn(8, 3, dtype=torch.float64) + 5)
    dice.reset_running_stats()
    assert int(dice.num_batches_tracked) == 0
    torch.testing.assert_close(dice.running_mean, torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(dice.running_var, torch.ones(3, dtype=torch.float64))
    batches = [torch.randn(8, 3, dtype=torch.float64) * 2 - 1 for _ in range(25)]
    for x in batches:
        dice(x)
    stacked = torch.stack(batches)  # (25, 8, 3): the plain average, also past 1 / 0.1 batches
    torch.testing.assert_close(dice.running_mean, stacked.mean(dim=1).mean(dim=0))
    torch.testing.assert_close(dice.running_var, stacked.var(dim=1).mean(dim=0))
    assert "momentum=None" in repr(dice)


def test_dice_single_row_training_does_not_raise_nor_update_stats():
    dice = Dice(4)
    out = dice(torch.randn(1, 4))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(dice.running_mean, torch.zeros(4))
    torch.testing.assert_close(dice.running_var, torch.ones(4))


def test_dice_backward_reaches_input_and_alpha():
    dice = Dice(4, dim=3)
    x = torch.randn(3, 5, 4, requires_grad=True)
    dice(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert dice.alpha.grad is not None and dice.alpha.grad.abs().sum() > 0


def test_dice_rejects_wrong_rank_or_width():
    with pytest.raises(ValueError, match="dim=2"):
        Dice(4)(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="C=4"):
        Dice(4, dim=3)(torch.randn(2, 3, 5))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_features": 0}, "num_features"),
        ({"num_features": 2.5}, "num_features"),
        ({"num_features": 3, "dim": 4}, "dim"),
        ({"num_features": 3, "eps": 0.0}, "eps"),
        ({"num_features": 3, "momentum": 1.5}, "momentum"),
        ({"num_features": 3, "momentum": True}, "momentum"),
    ],
)
def test_dice_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Dice(**kwargs)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("relu", nn.ReLU),
        ("prelu", nn.PReLU),
        ("dice", Dice),
        ("sigmoid", nn.Sigmoid),
        ("tanh", nn.Tanh),
        ("identity", nn.Identity),
        ("linear", nn.Identity),
        ("leaky_relu", nn.LeakyReLU),
        ("gelu", nn.GELU),
    ],
)
def test_get_activation_names(name, cls):
    assert name in ACTIVATIONS
    module = get_activation(name, num_features=7)
    assert isinstance(module, cls)
    assert module(torch.randn(4, 7)).shape == (4, 7)
    # each call builds a fresh module
    assert get_activation(name, num_features=7) is not module


def test_get_activation_covers_all_names():
    for name in ACTIVATIONS:
        assert isinstance(get_activation(name, num_features=3), nn.Module)


def test_get_activation_per_feature_parameters():
    assert get_activation("prelu", num_features=5).weight.shape == (5,)
    assert get_activation("dice", num_features=5).alpha.shape == (5,)


def test_get_activation_unknown_name_lists_allowed_values():
    with pytest.raises(ValueError, match="swish") as info:
        get_activation("swish")
    for name in ACTIVATIONS:
        assert name in str(info.value)


@pytest.mark.parametrize("name", ["dice", "prelu"])
def test_get_activation_requires_num_features(name):
    with pytest.raises(ValueError, match="num_features"):
        get_activation(name)


def test_get_activation_callables():
    assert isinstance(get_activation(nn.SiLU), nn.SiLU)
    assert isinstance(get_activation(lambda: nn.Hardtanh(-2, 2)), nn.Hardtanh)
    with pytest.raises(TypeError, match="instance"):
        get_activation(nn.ReLU())
    with pytest.raises(TypeError, match=r"nn\.Module"):
        get_activation(lambda: 3)
    with pytest.raises(TypeError):
        get_activation(3)


def _autograd_dice(x, alpha, eps):
    """Dice with batch statistics written as plain tensor maths, for autograd."""
    mean = x.mean(dim=0)
    var = ((x - mean) ** 2).mean(dim=0)
    p = torch.sigmoid((x - mean) / torch.sqrt(var + eps))
    return x * (p + (1.0 - p) * alpha)


@pytest.mark.parametrize("shape", [(2, 3), (9, 4), (64, 16)])
def test_dice_closed_form_gradient_equals_autograd_and_finite_differences(shape):
    dice = Dice(shape[1], eps=1e-5).double()
    with torch.no_grad():
        dice.alpha.uniform_(-1, 1)
    x = (torch.randn(*shape, dtype=torch.float64) * 3 + 1).requires_grad_()
    grad = torch.randn(*shape, dtype=torch.float64)
    ours = torch.autograd.grad(dice(x), (x, dice.alpha), grad)
    ref = torch.autograd.grad(_autograd_dice(x, dice.alpha, 1e-5), (x, dice.alpha), grad)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b)
    from skctr.nn.activation import _DiceBatchStats

    alpha = dice.alpha.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x, a: _DiceBatchStats.apply(x, a, 1e-5)[0], (x, alpha))


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        pytest.param(lambda: Dice(6), (5, 6), id="dice"),
        pytest.param(FactorizationMachine, (5, 4, 6), id="fm"),
        pytest.param(lambda: CIN(4, layer_sizes=(4,)), (5, 4, 6), id="cin"),
        pytest.param(lambda: InteractingLayer(6, 2, 2), (5, 4, 6), id="interacting"),
    ],
)
def test_hand_written_backwards_refuse_second_derivatives(layer, shape):
    # the incoming gradient of out.sum() is a constant: torch's once_differentiable would
    # let the second derivative count as zero without a word
    module = layer()
    x = torch.randn(*shape, requires_grad=True)
    (grad,) = torch.autograd.grad(module(x).sum(), x)  # first order works
    assert grad.shape == x.shape
    with pytest.raises(RuntimeError, match="no second derivative"):
        torch.autograd.grad(module(x).sum(), x, create_graph=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_dice_trains_on_an_input_of_another_dtype_than_its_alpha(dtype):
    # under autocast the pre-activations come in bfloat16 while alpha stays float32; the
    # kernels run in the wider dtype, like the formula's type promotion
    torch.manual_seed(0)
    dice = Dice(4)
    with torch.no_grad():
        dice.alpha.uniform_(-0.5, 0.5)
    x = torch.randn(64, 4, dtype=dtype, requires_grad=True)
    out = dice(x)
    out.square().sum().backward()
    reference = Dice(4).double()
    reference.alpha.data.copy_(dice.alpha.data)
    wide = x.detach().double().requires_grad_()
    expected = reference(wide)
    expected.square().sum().backward()
    assert out.dtype == torch.promote_types(dtype, torch.float32)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x.grad.double(), wide.grad.to(dtype).double(), atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(dice.alpha.grad.double(), reference.alpha.grad, atol=1e-3, rtol=1e-3)
