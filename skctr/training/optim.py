"""Lazy (row-wise) Adam for embedding tables with sparse gradients."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


class LazyAdam(torch.optim.Optimizer):
    """Adam that updates only the embedding rows a batch touched.

    A batch of CTR data looks up a few thousand rows of tables that can hold millions, so
    a step must cost what the batch touches, not what the table holds. For a parameter
    with a sparse gradient (``nn.Embedding(..., sparse=True)``) each step:

    1. finds the distinct rows ``u`` the gradient names and sums the gradient of each
       (``torch.unique`` + ``index_add_``; a table looked up several times in one step, as
       DIN's candidate and history are, simply contributes more entries);
    2. gathers those rows of the weights and of both moment estimates, applies the Adam
       update of :class:`torch.optim.Adam` (Kingma and Ba, 2015) to them, and writes them
       back.

    Rows the batch did not touch keep their weights and moments ("lazy" Adam); the bias
    corrections use the optimiser's step count, as in :class:`torch.optim.SparseAdam`. The
    result is what :class:`torch.optim.Adam` would do to the touched rows alone, without
    :class:`torch.optim.SparseAdam`'s coalescing of the whole gradient into a new sparse
    tensor. When several tables are looked up with the same codes (the embedding and the
    first-order weights of DeepFM), the distinct rows are found once per step.

    Parameters
    ----------
    params : iterable of Tensor or dict
        Parameters whose gradients are sparse (dense gradients are refused).
    lr : float, default=1e-3
        Learning rate.
    betas : (float, float), default=(0.9, 0.999)
        Decay rates of the first and second moment estimates.
    eps : float, default=1e-8
        Added to the denominator.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if not lr > 0.0:
            raise ValueError(f"LazyAdam: lr must be > 0, got {lr!r}.")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"LazyAdam: betas must lie in [0, 1), got {betas!r}.")
        if not eps >= 0.0:
            raise ValueError(f"LazyAdam: eps must be >= 0, got {eps!r}.")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        """Update the rows each parameter's sparse gradient touches.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss.

        Returns
        -------
        The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        rows_cache: tuple[Tensor, Tensor, Tensor] | None = None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if not grad.is_sparse:
                    raise RuntimeError(
                        "LazyAdam updates sparse gradients only; use torch.optim.Adam for "
                        "parameters with dense gradients."
                    )
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                rows, summed, rows_cache = _distinct_rows(grad, rows_cache)
                if rows.numel() == 0:
                    continue
                exp_avg = state["exp_avg"].index_select(0, rows)
                exp_avg_sq = state["exp_avg_sq"].index_select(0, rows)
                exp_avg.lerp_(summed, 1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(summed, summed, value=1.0 - beta2)
                bias1 = 1.0 - beta1 ** state["step"]
                bias2 = 1.0 - beta2 ** state["step"]
                denom = exp_avg_sq.sqrt().div_(math.sqrt(bias2)).add_(group["eps"])
                weights = p.index_select(0, rows)
                weights.addcdiv_(exp_avg, denom, value=-group["lr"] / bias1)
                state["exp_avg"].index_copy_(0, rows, exp_avg)
                state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
                p.index_copy_(0, rows, weights)
        return loss


def _distinct_rows(
    grad: Tensor, cache: tuple[Tensor, Tensor, Tensor] | None
) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
    """The distinct rows of a sparse gradient and the summed gradient of each.

    ``cache`` holds the previous gradient's (indices, rows, inverse); if this gradient
    names the same indices in the same order, the ``torch.unique`` is reused.
    """
    indices = grad._indices()[0]
    values = grad._values()
    if grad.is_coalesced():
        return indices, values, (indices, indices, torch.arange(indices.numel()))
    if cache is not None and cache[0].shape == indices.shape and torch.equal(cache[0], indices):
        rows, inverse = cache[1], cache[2]
    else:
        rows, inverse = torch.unique(indices, return_inverse=True)
    summed = values.new_zeros((rows.numel(), *values.shape[1:])).index_add_(0, inverse, values)
    return rows, summed, (indices, rows, inverse)
