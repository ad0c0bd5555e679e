"""Lazy (row-wise) Adam for embedding tables with sparse gradients."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


class LazyAdam(torch.optim.Optimizer):
    """Adam that updates only the embedding rows a batch touched.

    A batch of CTR data looks up a few thousand rows of tables that can hold millions, so
    a step must cost what the batch touches, not what the table holds. For a parameter
    with a sparse gradient (``nn.Embedding(..., sparse=True)``) each step:

    1. finds the distinct rows ``u`` the gradient names (one stable sort of the entries'
       row numbers) and sums the gradient of each, in the entries' order, with
       :func:`torch.nn.functional.embedding_bag` over the sorted entries (5x faster on CPU
       than ``index_add_``; for float32 and float64 on CPU the same sums; a table looked
       up several times in one step, as DIN's candidate and history are, simply
       contributes more entries);
    2. gathers those rows of the weights and of both moment estimates, applies the Adam
       update of :class:`torch.optim.Adam` (Kingma and Ba, 2015) to them (torch's fused
       Adam kernel where there is one: CUDA, and CPU from torch 2.4), and writes them back.

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
                summed = _row_sums(grad._values(), rows_cache)
                weights = p.index_select(0, rows)
                if group["l2"]:
                    decay = rows_cache.counts.to(weights.dtype).mul_(2.0 * group["l2"])
                    summed.addcmul_(weights, decay.view(-1, *([1] * (weights.dim() - 1))))
                exp_avg = state["exp_avg"].index_select(0, rows)
                exp_avg_sq = state["exp_avg_sq"].index_select(0, rows)
                _adam_update(weights, summed, exp_avg, exp_avg_sq, state["step"], group)
                state["exp_avg"].index_copy_(0, rows, exp_avg)
                state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
                p.index_copy_(0, rows, weights)
                # a sum is non-finite if an element is: one reduction, 10x cheaper than
                # isfinite(weights).all() (in at least float32, so that half-precision
                # weights do not overflow it)
                total = weights.sum(dtype=torch.promote_types(weights.dtype, torch.float32))
                self._finite = self._finite.to(p.device) & torch.isfinite(total)
        return loss


#: (device type, dtype) pairs for which ``torch._fused_adam_`` has no kernel: the plain update runs.
_NO_FUSED_ADAM: set[tuple[str, torch.dtype]] = set()


def _adam_update(
    weights: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: int,
    group: dict[str, Any],
) -> None:
    """One Adam step on gathered rows, in place: torch's fused kernel, or the same maths."""
    beta1, beta2 = group["betas"]
    key = (weights.device.type, weights.dtype)
    fused = getattr(torch, "_fused_adam_", None)
    if fused is not None and key not in _NO_FUSED_ADAM:
        try:
            fused(
                [weights],
                [grad],
                [exp_avg],
                [exp_avg_sq],
                [],
                [torch.full((), float(step), dtype=torch.float32, device=weights.device)],
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=0.0,
                eps=group["eps"],
                amsgrad=False,
                maximize=False,
            )
            return
        except NotImplementedError:  # no kernel for this device and dtype (CPU: torch < 2.4)
            _NO_FUSED_ADAM.add(key)
    exp_avg.lerp_(grad, 1.0 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    bias1 = 1.0 - beta1**step
    bias2 = 1.0 - beta2**step
    denom = exp_avg_sq.sqrt().div_(math.sqrt(bias2)).add_(group["eps"])
    weights.addcdiv_(exp_avg, denom, value=-group["lr"] / bias1)


class _Rows(NamedTuple):
    """The distinct rows a sparse gradient names (see :func:`_distinct_rows`)."""

    table_rows: int  # rows of the table the gradient is for
    indices: Tensor  # the gradient's row indices, one per entry
    rows: Tensor  # the distinct rows, sorted
    order: Tensor  # the entries grouped by row, in their own order within a row
    starts: Tensor  # where each distinct row's entries begin in ``order``
    counts: Tensor  # entries per distinct row


def _distinct_rows(grad: Tensor, cache: _Rows | None) -> _Rows:
    """The distinct rows of a sparse gradient, its entries grouped by row, and their counts.

    ``cache`` holds the previous gradient's answer; if this gradient names the same indices
    in the same order (tables looked up with the same codes), the sort is skipped.
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
    # stable: a row's entries keep their order, so its sum is what index_add_ would give
    sorted_keys, order = _stable_sort(keys, grad.shape[0])
    rows, counts = torch.unique_consecutive(sorted_keys, return_counts=True)
    starts = counts.cumsum(0).sub_(counts)
    return _Rows(grad.shape[0], indices, rows.long(), order, starts, counts)


#: torch sorts 1-d integer tensors of at least this many elements with a parallel radix
#: sort, smaller ones with a comparison sort that took 1.1 ms for the 26,624 keys of a
#: DeepFM batch of 1,024 rows, against 0.34 ms for the same keys padded to this length.
_RADIX_SORT_MIN = 32_768
#: From this many keys on, padding them to ``_RADIX_SORT_MIN`` is the faster sort (on one
#: thread as on two; at 8,192 keys it is faster on two threads only).
_PAD_SORT_FROM = 16_384
#: The radix sort comes with FBGEMM, which torch's x86-64 builds have (not its ARM ones,
#: where padding would only lengthen the comparison sort).
_RADIX_ON_THIS_CPU = "fbgemm" in torch.backends.quantized.supported_engines


def _stable_sort(keys: Tensor, table_rows: int | None = None) -> tuple[Tensor, Tensor]:
    """``torch.sort(keys, stable=True)`` of a 1-d tensor of row numbers, the fastest way
    on a CPU for its size.

    - Fewer than 16,384 keys (or fewer than 32,768 of a table of at most 65,536 rows):
      numpy's stable sort of 16-bit keys, a radix sort, once for the low 16 bits of the
      row numbers and, for a table of more rows, once more for the high 16 bits (a least
      significant digit radix sort): 0.1 against 0.64 ms for the 11,000 keys of a batch
      of 256 MovieLens rows with their histories.
    - Up to 32,768 keys otherwise: padded to reach torch's radix sort (the padding holds
      the dtype's largest value, which no row number reaches, so it sorts last and is cut
      off).
    - From 32,768 keys on: torch's own (radix) sort.

    Each gives the same result: the keys in order and, for equal keys, their positions
    in order. ``table_rows`` bounds the row numbers; without it (or for a table of
    ``2**32`` rows or more) the numpy path is not taken.
    """
    n = keys.numel()
    cpu = keys.device.type == "cpu"
    small = n < _PAD_SORT_FROM or (table_rows is not None and table_rows <= _ONE_DIGIT)
    if cpu and small and n < _RADIX_SORT_MIN and table_rows is not None and table_rows <= 2**32:
        return _digit_sort(keys, table_rows)
    if not (cpu and _RADIX_ON_THIS_CPU and _PAD_SORT_FROM <= n < _RADIX_SORT_MIN):
        return torch.sort(keys, stable=True)
    padded = keys.new_full((_RADIX_SORT_MIN,), torch.iinfo(keys.dtype).max)
    padded[:n] = keys
    sorted_keys, order = torch.sort(padded, stable=True)
    return sorted_keys[:n], order[:n]


#: Row numbers below this fit one 16-bit digit (one pass of :func:`_digit_sort`).
_ONE_DIGIT = 2**16


def _digit_sort(keys: Tensor, table_rows: int) -> tuple[Tensor, Tensor]:
    """Stable sort of CPU row numbers below ``table_rows`` (at most ``2**32``) by 16-bit
    digits, least significant first, with numpy's stable sort (a radix sort for 16-bit
    keys)."""
    values = keys.numpy()
    order = np.argsort(values.astype(np.uint16), kind="stable")
    if table_rows > _ONE_DIGIT:
        high = (values[order] >> 16).astype(np.uint16)
        order = order[np.argsort(high, kind="stable")]
    return torch.from_numpy(values[order]), torch.from_numpy(order)


def _row_sums(values: Tensor, rows: _Rows) -> Tensor:
    """Each distinct row's sum of its gradient entries, shape ``(len(rows.rows), ...)``.

    An embedding bag over the entries, one bag per row (torch's bag kernel is vectorised
    and threaded on CPU, where ``index_add_`` is neither).
    """
    flat = values.reshape(values.shape[0], -1)
    summed = F.embedding_bag(rows.order, flat, rows.starts, mode="sum")
    return summed.view(-1, *values.shape[1:])
