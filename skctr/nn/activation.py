"""Activation functions: the data-adaptive Dice unit and a name-to-module factory.

Also holds the small argument checks shared by every module of :mod:`skctr.nn`
(this is the lowest module of the package, imported by all the others).
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from skctr._compat import autocast_off

__all__ = ["ACTIVATIONS", "Dice", "get_activation"]

#: Names accepted by :func:`get_activation` (and by the estimators' ``activation`` parameter).
ACTIVATIONS: tuple[str, ...] = (
    "relu",
    "prelu",
    "dice",
    "sigmoid",
    "tanh",
    "identity",
    "linear",
    "leaky_relu",
    "gelu",
)

_Backward = Callable[..., Any]


def first_order_backward(backward: _Backward) -> _Backward:
    """Mark a custom autograd Function's hand-written ``backward`` as having no second derivative.

    Autograd runs ``backward`` without recording a graph unless ``create_graph=True``; this
    refuses that case with an error naming the function, and runs ``backward`` with autocast
    off, in the dtypes its forward saved (a backward called inside an autocast region would
    otherwise mix them). (``torch``'s
    ``once_differentiable`` raises only when the gradient it returns depends on the incoming
    one; with a constant incoming gradient, as from ``out.sum()``, it lets the second
    derivative silently count as zero, so a gradient penalty would get no gradient through
    the layer.)

    Parameters
    ----------
    backward : callable
        The ``backward(ctx, *grads)`` staticmethod body.

    Returns
    -------
    callable
        ``backward``, refusing ``create_graph=True``.
    """

    @functools.wraps(backward)
    def checked(ctx: Any, *grads: Any) -> Any:
        if torch.is_grad_enabled():
            raise RuntimeError(
                f"{type(ctx).__name__}: skctr's hand-written backward has no second "
                "derivative; backward with create_graph=True (double backward, a gradient "
                "penalty) is not supported through this layer."
            )
        device = next((g.device.type for g in grads if g is not None), "cpu")
        with autocast_off(device):
            return backward(ctx, *grads)

    return checked


def is_plain(module: nn.Module | None, kind: type[nn.Module]) -> bool:
    """Whether a caller may compute ``module``'s function another way.

    Parameters
    ----------
    module : torch.nn.Module or None
        The module.
    kind : type
        The class it must be exactly (not a subclass).

    Returns
    -------
    bool
        True when ``module`` is a ``kind`` with no hooks of its own (forward, forward-pre,
        backward, backward-pre) and no global module hooks are registered, so that
        computing its function without calling it skips nothing a user attached.
    """
    if type(module) is not kind:
        return False
    own = (
        module._forward_hooks,
        module._forward_pre_hooks,
        module._backward_hooks,
        module._backward_pre_hooks,
    )
    hooks = nn.modules.module
    global_hooks = (
        hooks._global_forward_hooks,
        hooks._global_forward_pre_hooks,
        hooks._global_backward_hooks,
        hooks._global_backward_pre_hooks,
    )
    return not any(own) and not any(global_hooks)


_ELEMENTWISE: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
    "linear": nn.Identity,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
}


# --------------------------------------------------------------------------------------------
# Shared argument checks (private; used across skctr.nn)
# --------------------------------------------------------------------------------------------
def _check_int(owner: str, name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= minimum``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{owner}: {name} must be {what}, got {value!r}.")
    return int(value)


def _check_int_sequence(owner: str, name: str, value: object) -> tuple[int, ...]:
    """Return ``value`` as a tuple of positive ints, else raise ValueError."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, range)):
        raise ValueError(
            f"{owner}: {name} must be a sequence of positive ints such as (256, 128), "
            f"got {value!r}."
        )
    for item in value:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral) or item < 1:
            raise ValueError(
                f"{owner}: {name} must be a sequence of positive ints such as (256, 128), "
                f"got {value!r} (bad entry {item!r})."
            )
    return tuple(int(item) for item in value)


def _check_index(
    owner: str, name: str, index: object, size: int, length: int | None = None
) -> None:
    """Raise a ValueError unless ``index`` is a 1-D int32/int64 tensor (of ``length``
    entries, when given) whose entries lie in ``[0, size)``. The range is checked for CPU
    tensors only (on a GPU it would cost a synchronisation)."""
    ok = (
        isinstance(index, torch.Tensor)
        and index.dim() == 1
        and index.dtype in (torch.int32, torch.int64)
        and (length is None or index.shape[0] == length)
    )
    if not ok:
        what = (
            f"{index.dtype} of shape {tuple(index.shape)}"
            if isinstance(index, torch.Tensor)
            else type(index).__name__
        )
        shape = f"({length},)" if length is not None else "(N,)"
        raise ValueError(
            f"{owner}: {name} must be a 1-D int32 or int64 tensor of shape {shape}, got {what}."
        )
    if index.device.type == "cpu" and index.numel():
        low, high = int(index.min()), int(index.max())
        if low < 0 or high >= size:
            raise ValueError(
                f"{owner}: {name} must lie in [0, {size}), got values from {low} to {high}."
            )


def _check_dropout(owner: str, value: object, name: str = "dropout") -> float:
    """Return ``value`` as a float in ``[0, 1)``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}: {name} must be a float in [0, 1), got {value!r}.")
    return float(value)


def _check_choice(owner: str, name: str, value: object, allowed: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise ValueError."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{owner}: {name} must be one of {tuple(allowed)}, got {value!r}.")
    return value


# --------------------------------------------------------------------------------------------
# Dice
# --------------------------------------------------------------------------------------------
class _DiceBatchStats(torch.autograd.Function):
    """Dice with batch statistics, ``(N, C) -> (N, C)``, with a closed-form backward.

    With ``z = (x - mean) / sqrt(var + eps)`` (per column, biased variance), ``p = sigmoid(z)``
    and ``y = x * (alpha + (1 - alpha) p)``, the gradient through the batch statistics is
    the one of batch normalisation with weight ``1 - alpha``: for
    ``h = g x p (1 - p)``, ``dL/dx = g (alpha + (1 - alpha) p) + (1 - alpha)
    (h - mean(h) - z mean(h z)) / sqrt(var + eps)`` and ``dL/dalpha = sum(g x (1 - p))``.
    The normalisation and its gradient are torch's batch-normalisation kernels (one fused
    pass each way after the column statistics, numerically stable), and every other step
    is one pass over the ``(N, C)`` activations: about five forward and eight backward,
    where autograd's generic graph for the same maths takes several times more.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, alpha: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
        # one dtype for the kernels (under autocast x is bfloat16 and alpha float32): the
        # wider, as the written-out formula's type promotion gave
        dtype = torch.promote_types(x.dtype, alpha.dtype)
        x, alpha = x.to(dtype), alpha.to(dtype)
        z, mean, inv_std = torch.native_batch_norm(x, None, None, None, None, True, 0.0, eps)
        p = z.sigmoid_()
        gate = torch.addcmul(alpha, p, 1.0 - alpha)  # alpha + (1 - alpha) p
        out = x * gate
        # the biased batch variance, for the running average only (relative error about
        # 1e-6 in float32, larger for variances far below eps, which evaluation adds back)
        var = inv_std.pow(-2).sub_(eps).clamp_(min=0.0)
        ctx.save_for_backward(x, p, gate, alpha, mean, inv_std)
        ctx.eps = eps
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    @first_order_backward
    def backward(
        ctx: Any, grad: Tensor, _grad_mean: Tensor, _grad_var: Tensor
    ) -> tuple[Tensor, Tensor, None]:
        x, p, gate, alpha, mean, inv_std = ctx.saved_tensors
        grad = grad.to(x.dtype)
        gx = grad * x
        gxp = gx * p
        grad_alpha = gx.sum(dim=0) - gxp.sum(dim=0)  # sum g x (1 - p)
        h = torch.addcmul(gxp, gxp, p, value=-1.0)  # g x p (1 - p): the gradient of z
        grad_x, _, _ = torch.ops.aten.native_batch_norm_backward(
            h, x, 1.0 - alpha, None, None, mean, inv_std, True, ctx.eps, [True, False, False]
        )
        return grad_x.addcmul_(grad, gate), grad_alpha, None


class Dice(nn.Module):
    r"""Dice: the data-adaptive activation of the Deep Interest Network.

    .. math::

        p(s) = \sigma\left(\frac{s - E[s]}{\sqrt{Var[s] + \epsilon}}\right), \qquad
        f(s) = p(s)\, s + (1 - p(s))\, \alpha\, s

    with one learnable :math:`\alpha` per feature (initialised to 0, so Dice starts as a
    smoothed ReLU). :math:`E[s]` and :math:`Var[s]` are the per-feature batch mean and (biased)
    variance in training mode, as in batch normalisation, and running averages of them in
    evaluation mode: the plain average of the first ``1 / momentum`` batches, then an
    exponential average, so that a model trained for a few steps only is not evaluated with
    statistics still close to their initial 0 and 1.

    Parameters
    ----------
    num_features : int
        Number of features ``C`` (the size of the last input axis).
    dim : {2, 3}, default=2
        Rank of the input: 2 for ``(batch, C)``, 3 for ``(batch, T, C)``. With 3, the statistics
        of each feature are taken over both the batch and the ``T`` axis.
    eps : float, default=1e-8
        Added to the variance for numerical stability.
    momentum : float or None, default=0.1
        Weight of the current batch in the running averages (as in ``nn.BatchNorm1d``);
        batch ``t`` gets weight ``max(momentum, 1 / t)``. None: the plain average of every
        batch since the last :meth:`reset_running_stats` (``nn.BatchNorm1d``'s cumulative
        average), which is how the training loop re-estimates the statistics of the
        weights it keeps.

    Attributes
    ----------
    alpha : torch.nn.Parameter of shape (num_features,)
        Slope of the "off" part, learnt per feature.
    running_mean : torch.Tensor of shape (num_features,)
        Running average of the batch means, used in evaluation mode.
    running_var : torch.Tensor of shape (num_features,)
        Running average of the (unbiased) batch variances, used in evaluation mode.
    num_batches_tracked : torch.Tensor of shape (), dtype long
        Number of batches averaged into the running statistics.

    Notes
    -----
    Shapes: ``(B, C) -> (B, C)`` with ``dim=2``; ``(B, T, C) -> (B, T, C)`` with ``dim=3``.

    The statistics are computed here rather than by ``nn.BatchNorm1d`` so that a training
    batch of a single row does not raise: its normalised value is 0, so ``p = 0.5``, and the
    running averages are only updated from batches of at least two rows.

    References
    ----------
    .. [1] Zhou, G., Zhu, X., Song, C., Fan, Y., Zhu, H., Ma, X., Yan, Y., Jin, J., Li, H.
       and Gai, K. "Deep Interest Network for Click-Through Rate Prediction." KDD 2018.
    """

    running_mean: Tensor
    running_var: Tensor
    num_batches_tracked: Tensor

    def __init__(
        self, num_features: int, dim: int = 2, eps: float = 1e-8, momentum: float | None = 0.1
    ) -> None:
        super().__init__()
        self.num_features = _check_int("Dice", "num_features", num_features)
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim not in (2, 3):
            raise ValueError(f"Dice: dim must be 2 or 3, got {dim!r}.")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or eps <= 0:
            raise ValueError(f"Dice: eps must be a positive float, got {eps!r}.")
        if momentum is not None and (
            isinstance(momentum, bool)
            or not isinstance(momentum, numbers.Real)
            or not 0.0 <= momentum <= 1.0
        ):
            raise ValueError(f"Dice: momentum must be a float in [0, 1] or None, got {momentum!r}.")
        self.dim = int(dim)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.alpha = nn.Parameter(torch.zeros(self.num_features))
        self.register_buffer("running_mean", torch.zeros(self.num_features))
        self.register_buffer("running_var", torch.ones(self.num_features))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def reset_running_stats(self) -> None:
        """Forget the running statistics (mean 0, variance 1, no batch tracked)."""
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def forward(self, x: Tensor) -> Tensor:
        """Apply Dice.

        Parameters
        ----------
        x : torch.Tensor of shape (B, C) or (B, T, C)
            Pre-activations; the rank must equal ``dim``.

        Returns
        -------
        torch.Tensor
            Same shape as ``x``.
        """
        if x.dim() != self.dim or x.shape[-1] != self.num_features:
            expected = "(batch, C)" if self.dim == 2 else "(batch, T, C)"
            raise ValueError(
                f"Dice(num_features={self.num_features}, dim={self.dim}) expects input of shape "
                f"{expected} with C={self.num_features}, got {tuple(x.shape)}."
            )
        flat = x.reshape(-1, self.num_features)
        n = flat.shape[0]
        if self.training and n > 0:
            out, mean, var = _DiceBatchStats.apply(flat, self.alpha, self.eps)
            if n > 1:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    # a tensor, not a Python float: no host-device sync on a GPU; in the
                    # buffers' dtype (under autocast the batch statistics may be bfloat16)
                    stats_dtype = self.running_mean.dtype
                    count = self.num_batches_tracked.to(stats_dtype)
                    weight = count.reciprocal()
                    if self.momentum is not None:
                        weight = weight.clamp(min=self.momentum)
                    self.running_mean.lerp_(mean.to(stats_dtype), weight)
                    self.running_var.lerp_((var * (n / (n - 1))).to(stats_dtype), weight)
            return out.view(x.shape)
        p = torch.sigmoid((x - self.running_mean) * torch.rsqrt(self.running_var + self.eps))
        return x * (p + (1.0 - p) * self.alpha)

    def extra_repr(self) -> str:
        """Return the constructor arguments shown by ``repr(module)``."""
        return f"{self.num_features}, dim={self.dim}, eps={self.eps}, momentum={self.momentum}"


# --------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------
def get_activation(
    name: str | Callable[[], nn.Module], num_features: int | None = None
) -> nn.Module:
    """Build a fresh activation module from its name or from a factory.

    Parameters
    ----------
    name : str or callable
        One of :data:`ACTIVATIONS` (``"relu"``, ``"prelu"``, ``"dice"``, ``"sigmoid"``,
        ``"tanh"``, ``"identity"`` / ``"linear"``, ``"leaky_relu"``, ``"gelu"``), or a callable
        taking no argument and returning an ``nn.Module`` (typically an ``nn.Module`` class such
        as ``torch.nn.SiLU``). A module *instance* is refused, since reusing it in several
        layers would silently share its parameters.
    num_features : int, optional
        Width of the layer the activation follows. Required by ``"dice"`` (one ``alpha`` and
        one pair of statistics per feature) and ``"prelu"`` (one slope per feature); ignored
        otherwise.

    Returns
    -------
    torch.nn.Module
        A new module. ``"dice"`` gives ``Dice(num_features, dim=2)``, which expects
        ``(batch, num_features)`` input; ``"prelu"`` gives ``nn.PReLU(num_features)``, whose
        channel axis is axis 1. Every other name gives an element-wise module.

    Raises
    ------
    ValueError
        If ``name`` is an unknown string, or if ``num_features`` is missing for ``"dice"`` or
        ``"prelu"``.
    TypeError
        If ``name`` is neither a string nor a callable returning an ``nn.Module``.
    """
    if isinstance(name, str):
        if name not in ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {name!r}: expected one of {ACTIVATIONS}, or a callable "
                "returning an nn.Module (e.g. torch.nn.SiLU)."
            )
        if name in ("dice", "prelu"):
            if num_features is None:
                raise ValueError(
                    f"activation={name!r} learns one parameter per feature, so num_features "
                    "must be given."
                )
            width = _check_int("get_activation", "num_features", num_features)
            return Dice(width) if name == "dice" else nn.PReLU(num_parameters=width)
        return _ELEMENTWISE[name]()
    if isinstance(name, nn.Module):
        raise TypeError(
            f"activation must be a name or a callable building a new module, got the module "
            f"instance {name!r}; pass its class (e.g. {type(name).__name__}) instead so that "
            "each layer gets its own module."
        )
    if callable(name):
        module = name()
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"activation callable {name!r} must return an nn.Module, "
                f"got {type(module).__name__}."
            )
        return module
    raise TypeError(
        f"activation must be one of {ACTIVATIONS} or a callable returning an nn.Module, "
        f"got {name!r}."
    )
