"""The multi-layer perceptron used as the deep tower of every architecture."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from skctr._compat import autocast_product_dtype
from skctr.nn.activation import (
    _check_dropout,
    _check_int,
    _check_int_sequence,
    get_activation,
    is_plain,
)

__all__ = ["MLP"]


class MLP(nn.Module):
    """Fully connected tower: ``Linear -> [BatchNorm1d] -> activation -> [Dropout]`` per layer.

    Parameters
    ----------
    in_dim : int
        Width of the input.
    hidden_units : sequence of int
        Width of each hidden layer, e.g. ``(256, 128)``. May be empty: the module is then the
        identity, or a single ``Linear`` when ``output_dim`` is given.
    dropout : float, default=0.0
        Dropout probability after each hidden layer's activation, in ``[0, 1)``.
    batch_norm : bool, default=False
        Whether to put a ``BatchNorm1d`` between each hidden ``Linear`` and its activation.
    activation : str or callable, default="relu"
        Activation of the hidden layers; see :func:`skctr.nn.get_activation`.
    output_dim : int, optional
        If given, a final ``Linear`` (no activation, normalisation or dropout) maps the last
        hidden layer to this width, e.g. ``output_dim=1`` for a logit.

    Attributes
    ----------
    output_dim : int
        Width of the output: ``output_dim`` if given, else the last hidden width, else
        ``in_dim``.
    layers : torch.nn.Sequential
        The layers, in order.

    Notes
    -----
    Shapes: ``(B, in_dim) -> (B, output_dim)``. Any number of leading axes is accepted,
    ``(..., in_dim) -> (..., output_dim)``; they are flattened into one batch axis while the
    layers run, so batch normalisation and Dice take their statistics over all of them.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_units: Sequence[int],
        *,
        dropout: float = 0.0,
        batch_norm: bool = False,
        activation: str | Callable[[], nn.Module] = "relu",
        output_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.in_dim = _check_int("MLP", "in_dim", in_dim)
        self.hidden_units = _check_int_sequence("MLP", "hidden_units", hidden_units)
        dropout = _check_dropout("MLP", dropout)
        if not isinstance(batch_norm, bool):
            raise ValueError(f"MLP: batch_norm must be a bool, got {batch_norm!r}.")
        if output_dim is not None:
            output_dim = _check_int("MLP", "output_dim", output_dim)

        layers: list[nn.Module] = []
        width = self.in_dim
        for units in self.hidden_units:
            layers.append(nn.Linear(width, units))
            if batch_norm:
                layers.append(nn.BatchNorm1d(units))
            layers.append(get_activation(activation, num_features=units))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = units
        if output_dim is not None:
            layers.append(nn.Linear(width, output_dim))
            width = output_dim
        self.layers = nn.Sequential(*layers)
        self.output_dim: int = width

    def forward(self, x: Tensor | Sequence[Tensor]) -> Tensor:
        """Run the tower.

        Parameters
        ----------
        x : torch.Tensor of shape (B, in_dim) or (..., in_dim), or a sequence of them
            Input features, or their blocks in order (widths summing to ``in_dim``, the
            same leading axes): the same as their concatenation along the last axis,
            without building it. The first layer multiplies each block by its columns of
            the weight, so a block that needs no gradient (raw dense values) costs no
            input-gradient product, and odd total widths do not slow the products down.
            Blocks of different dtypes are promoted as concatenation would. A first layer
            that is a subclass of ``Linear`` or carries hooks gets the concatenation.

        Returns
        -------
        torch.Tensor of shape (B, output_dim) or (..., output_dim)
            Output of the last layer.
        """
        blocks = [x] if isinstance(x, Tensor) else [b for b in x if b.shape[-1]]
        shapes = [tuple(b.shape) for b in blocks]
        if sum(shape[-1] for shape in shapes) != self.in_dim:
            raise ValueError(
                f"MLP(in_dim={self.in_dim}) got input of shape {shapes}: its last axis "
                f"(summed over blocks) must have size {self.in_dim}."
            )
        leading = blocks[0].shape[:-1]
        if any(shape[:-1] != leading for shape in shapes):
            raise ValueError(
                f"MLP(in_dim={self.in_dim}) got blocks of shapes {shapes}: all but their "
                "last axes must agree."
            )
        if len(leading) != 1:
            blocks = [b.reshape(-1, b.shape[-1]) for b in blocks]
        layers = iter(self.layers)
        first = next(layers, None)
        h = linear_of_blocks(first, blocks)
        for layer in layers:
            h = layer(h)
        if len(leading) != 1:
            h = h.reshape(*leading, self.output_dim)
        return h


def linear_of_blocks(layer: nn.Module | None, blocks: list[Tensor]) -> Tensor:
    """``layer`` applied to the concatenation of ``blocks`` along the last axis, without
    building it when ``layer`` is a plain ``Linear`` (:func:`blocks_linear`).

    The first layer of :class:`MLP` and Deep & Cross's output layer use it. A subclass of
    ``Linear`` or a hooked layer gets the concatenation through its own forward.

    Parameters
    ----------
    layer : torch.nn.Module or None
        The layer; None for the identity (the concatenation itself).
    blocks : list of torch.Tensor of shape (B, D_j)
        The pieces of the input, in order.

    Returns
    -------
    torch.Tensor
        ``layer(torch.cat(blocks, dim=-1))``.
    """
    if len(blocks) == 1 or not is_plain(layer, nn.Linear):
        h = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-1)
        return h if layer is None else layer(h)
    return blocks_linear(blocks, layer.weight, layer.bias)


#: A linear map with at most this many outputs takes its weight gradient from
#: :class:`_NarrowLinear` (see there).
_NARROW_OUTPUTS = 8


class _NarrowLinear(torch.autograd.Function):
    """``F.linear(x, weight)`` for a weight of a few rows, whose weight gradient is
    computed as ``g^T x``.

    Autograd computes it as ``(x^T g)^T``, and for 2 to 8 output columns the CPU matrix
    kernels take 3-6x longer on that orientation (batch 4,096, 416 inputs, 3 outputs:
    1.9 against 0.5 ms; equal at 1 output and from 16 on). The input gradient is
    ``g W``, as autograd's. Both are plain products, so a second derivative works.
    """

    @staticmethod
    def forward(x: Tensor, weight: Tensor) -> Tensor:
        return nn.functional.linear(x, weight)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor], output: Tensor) -> None:
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        grad_weight = grad.t() @ x if ctx.needs_input_grad[1] else None
        return grad_x, grad_weight


def blocks_linear(blocks: list[Tensor], weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear(torch.cat(blocks, dim=-1), weight, bias)`` without the concatenation.

    Each block meets its columns of ``weight`` (one split, whose gradient is one
    concatenation), the later ones added in place where the dtypes agree. A weight of at
    most 8 rows (DCN's cross projections) takes its gradient as ``g^T x`` per block,
    outside autocast: several times faster there on a CPU (see ``_NarrowLinear``).

    Parameters
    ----------
    blocks : list of torch.Tensor of shape (B, D_j)
        The pieces of the input, in order.
    weight : torch.Tensor of shape (out, sum of D_j)
        The weight.
    bias : torch.Tensor of shape (out,), optional
        The bias.

    Returns
    -------
    torch.Tensor of shape (B, out)
    """
    dtype = functools.reduce(torch.promote_types, (b.dtype for b in blocks))
    blocks = [b.to(dtype) for b in blocks]  # as concatenating them would
    weights = weight.split([b.shape[-1] for b in blocks], dim=1)
    narrow = weight.shape[0] <= _NARROW_OUTPUTS and torch.is_grad_enabled()
    if narrow and autocast_product_dtype(blocks[0]) is None and blocks[0].dim() == 2:
        parts = [_NarrowLinear.apply(b, w) for b, w in zip(blocks, weights, strict=True)]
        h = functools.reduce(torch.add, parts)
        return h if bias is None else h + bias
    h = nn.functional.linear(blocks[0], weights[0], bias)
    for block, part in zip(blocks[1:], weights[1:], strict=True):
        h = add_product(h, block, part.t())
    return h


def add_product(h: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``h + a @ b``, in place in ``h`` where the dtypes agree (not so under autocast): no
    copy of ``h``, and autograd keeps none (``addmm``'s gradient does not need it)."""
    if h.dtype == a.dtype == b.dtype:
        return h.addmm_(a, b)
    return torch.addmm(h, a, b)
