"""Lazy (row-wise) Adam for embedding tables with sparse gradients."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

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

    With ``l2 > 0`` each looked-up occurrence of a row also adds ``l2 * ||w_row||^2`` to the
    objective: the gradient ``2 * l2 * count_row * w_row`` is added to the rows' summed
    gradient here, on the distinct rows, rather than through autograd on every looked-up
    vector. The row a sequence's padding looks up (its vectors are masked out by every
    pooling) is decayed like any other.

    Rows the batch did not touch keep their weights and moments ("lazy" Adam); the bias
    corrections use the optimiser's step count, as in :class:`torch.optim.SparseAdam`. The
    result is what :class:`torch.optim.Adam` would do to the touched rows alone, without
    :class:`torch.optim.SparseAdam`'s coalescing of the whole gradient into a new sparse
    tensor. When several tables are looked up with the same codes (the embedding and the
    first-order weights of DeepFM, when no history shares a sparse field's codes: the
    first-order weights give a history rows of its own), the distinct rows are found once
    per step.

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
    l2 : float, default=0.0
        L2 penalty per looked-up occurrence of a row (see above). The training loop sets
        it each step to ``l2_embedding / batch_rows``, so the penalty is averaged over
        the batch.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        l2: float = 0.0,
    ) -> None:
        if not lr > 0.0:
            raise ValueError(f"LazyAdam: lr must be > 0, got {lr!r}.")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"LazyAdam: betas must lie in [0, 1), got {betas!r}.")
        if not eps >= 0.0:
            raise ValueError(f"LazyAdam: eps must be >= 0, got {eps!r}.")
        if not l2 >= 0.0:
            raise ValueError(f"LazyAdam: l2 must be >= 0, got {l2!r}.")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "l2": l2})
        self._finite = torch.ones((), dtype=torch.bool)

    def rows_finite(self) -> bool:
        """Whether every row written since the last call is finite; resets the record.

        The check runs on the rows each step writes, as a tensor flag (no
        synchronisation per step), so a table whose rows turn NaN or infinite is noticed
        without scanning the table.

        Returns
        -------
        bool
            False if some step wrote a non-finite weight.
        """
        finite = bool(self._finite)
        self._finite = torch.ones((), dtype=torch.bool)
        return finite

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
        rows_cache: _Rows | None = None
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
                rows_cache = _distinct_rows(grad, rows_cache)
                rows = rows_cache.rows
                if rows.numel() == 0:
                    continue
                summed = grad._values().new_zeros((rows.numel(), *p.shape[1:]))
                summed.index_add_(0, rows_cache.inverse, grad._values())
                weights = p.index_select(0, rows)
                if group["l2"]:
                    decay = rows_cache.counts.to(weights.dtype).mul_(2.0 * group["l2"])
                    summed.addcmul_(weights, decay.view(-1, *([1] * (weights.dim() - 1))))
                exp_avg = state["exp_avg"].index_select(0, rows)
                exp_avg_sq = state["exp_avg_sq"].index_select(0, rows)
                exp_avg.lerp_(summed, 1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(summed, summed, value=1.0 - beta2)
                bias1 = 1.0 - beta1 ** state["step"]
                bias2 = 1.0 - beta2 ** state["step"]
                denom = exp_avg_sq.sqrt().div_(math.sqrt(bias2)).add_(group["eps"])
                weights.addcdiv_(exp_avg, denom, value=-group["lr"] / bias1)
                state["exp_avg"].index_copy_(0, rows, exp_avg)
                state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
                p.index_copy_(0, rows, weights)
                self._finite = self._finite.to(p.device) & torch.isfinite(weights).all()
        return loss


class _Rows(NamedTuple):
    """The distinct rows a sparse gradient names (see :func:`_distinct_rows`)."""

    table_rows: int  # rows of the table the gradient is for
    indices: Tensor  # the gradient's row indices, one per entry
    rows: Tensor  # the distinct rows, sorted
    inverse: Tensor  # position in ``rows`` of each entry
    counts: Tensor  # entries per distinct row


def _distinct_rows(grad: Tensor, cache: _Rows | None) -> _Rows:
    """The distinct rows of a sparse gradient, where each entry goes, and their counts.

    ``cache`` holds the previous gradient's answer; if this gradient names the same indices
    in the same order (tables looked up with the same codes), ``torch.unique`` is skipped.
    """
    indices = grad._indices()[0]
    # a table of another size (a history's own first-order rows) is looked up with other codes
    if (
        cache is not None
        and cache.table_rows == grad.shape[0]
        and cache.indices.shape == indices.shape
    ):
        if cache.indices is indices or torch.equal(cache.indices, indices):
            return cache
    # sorting 32-bit keys takes about half the time of 64-bit ones (same result)
    narrow = grad.shape[0] <= torch.iinfo(torch.int32).max
    keys = indices.to(torch.int32) if narrow else indices
    rows, inverse, counts = torch.unique(keys, return_inverse=True, return_counts=True)
    return _Rows(grad.shape[0], indices, rows.long(), inverse, counts)
