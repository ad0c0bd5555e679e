"""The one training loop of skctr, shared by every classifier.

Batches are sliced from tensors built once per ``fit`` (no per-row ``Dataset``/collate),
embedding tables get sparse gradients and a lazy Adam (the rows a batch touches), and the
L2 penalty on embeddings covers the looked-up rows only (applied by :class:`LazyAdam`).
"""

from __future__ import annotations

import copy
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import log_loss, roc_auc_score
from torch import Tensor, nn

from ..nn.embedding import TensorBatch
from ..preprocessing.schema import EncodedBatch
from .optim import LazyAdam


def to_tensors(batch: EncodedBatch) -> TensorBatch:
    """Wrap an :class:`EncodedBatch`'s arrays as CPU tensors (zero-copy where possible)."""
    return TensorBatch(
        torch.from_numpy(np.ascontiguousarray(batch.sparse, dtype=np.int64)),
        torch.from_numpy(np.ascontiguousarray(batch.dense, dtype=np.float32)),
        tuple(torch.from_numpy(np.ascontiguousarray(s, dtype=np.int64)) for s in batch.sequences),
        torch.from_numpy(np.ascontiguousarray(batch.lengths, dtype=np.int64)),
    )


_threads_lock = threading.Lock()
_threads_users = 0
_threads_before = 0


@contextmanager
def torch_threads(n_jobs: int | None) -> Iterator[None]:
    """Run the block with ``n_jobs`` torch CPU threads (-1: all cores), then restore.

    Torch's thread count is global to the process; with blocks running at once in several
    Python threads (concurrent ``predict_proba`` calls) the count from before the first
    one is restored when the last one ends.
    """
    global _threads_users, _threads_before
    if n_jobs is None:
        yield
        return
    with _threads_lock:
        if _threads_users == 0:
            _threads_before = torch.get_num_threads()
        _threads_users += 1
        torch.set_num_threads(os.cpu_count() or 1 if n_jobs == -1 else max(n_jobs, 1))
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_before)


@dataclass
class TrainState:
    """What survives between calls to :func:`train`: optimisers and the epoch count."""

    optimizers: list[torch.optim.Optimizer]
    epochs_done: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    #: The step multiplier of each epoch that led to the weights the last call kept, in
    #: order: epochs undone by going back to a better epoch are not in it. Replaying it
    #: from a fresh start (``TrainConfig.refit_path``) retraces the same path.
    path: list[float] = field(default_factory=list)
    #: Whether the last call stopped on ``KeyboardInterrupt``.
    interrupted: bool = False
    #: The validation log-loss of the weights the last call kept (infinite without
    #: validation rows, or when no epoch was kept).
    val_logloss: float = math.inf


def make_optimizers(
    core: nn.Module, learning_rate: float, first_order_learning_rate: float | None = None
) -> list[torch.optim.Optimizer]:
    """Lazy Adam for sparse-gradient embedding tables, Adam for every other parameter.

    The dense Adam is torch's fused implementation where the parameters' device and dtype
    have one (one kernel per parameter instead of a dozen: 0.7 -> 0.2 ms per step for
    DeepFM's MLP on a CPU core), else the default one; both follow the same update rule.

    The parameters of every module whose ``first_order`` attribute is true (each
    :class:`~skctr.nn.embedding.LinearTerm`, Wide & Deep's cross weights; a custom core can
    mark its own) form a group of their own in either optimiser, with step
    ``first_order_learning_rate`` (``None``: the same as the rest) and
    ``group["first_order"] = True``.

    Parameters
    ----------
    core : torch.nn.Module
        The model.
    learning_rate : float
        Step of every parameter outside a first-order module.
    first_order_learning_rate : float, optional
        Step of the first-order modules' parameters (the estimators'
        ``linear_learning_rate``).

    Returns
    -------
    list of torch.optim.Optimizer
        Adam for the dense parameters and :class:`~skctr.training.optim.LazyAdam` for the
        sparse tables, each present only if it has parameters.
    """
    first_order = {
        id(p)
        for m in core.modules()
        if getattr(m, "first_order", False) is True  # a flag, not a submodule of that name
        for p in m.parameters()
    }
    params: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for module in core.modules():
        for _name, p in module.named_parameters(recurse=False):
            is_sparse = isinstance(module, nn.Embedding) and module.sparse
            params.setdefault((is_sparse, id(p) in first_order), []).append(p)

    def groups(is_sparse: bool) -> list[dict[str, Any]]:
        return [
            {"params": params[is_sparse, linear], "lr": learning_rate, "first_order": linear}
            for linear in (False, True)
            if (is_sparse, linear) in params
        ]

    optimizers: list[torch.optim.Optimizer] = []
    if dense := groups(False):
        try:
            adam = torch.optim.Adam(dense, lr=learning_rate, fused=True)
        except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device
            adam = torch.optim.Adam(dense, lr=learning_rate)
        optimizers.append(adam)
    if sparse := groups(True):
        optimizers.append(LazyAdam(sparse, lr=learning_rate))
    set_learning_rates(optimizers, learning_rate, first_order_learning_rate)
    return optimizers


def set_learning_rates(
    optimizers: list[torch.optim.Optimizer],
    learning_rate: float,
    first_order_learning_rate: float | None = None,
) -> None:
    """Set the steps of optimisers made by :func:`make_optimizers` (as it does)."""
    if first_order_learning_rate is None:
        first_order_learning_rate = learning_rate
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            linear = group.get("first_order", False)
            group["lr"] = first_order_learning_rate if linear else learning_rate


#: Most rows per forward pass in :func:`predict_logits`.
PREDICT_CHUNK = 4096
#: Every forward pass of :func:`predict_logits` has a multiple of this many rows (the last
#: one is padded), so a row's prediction does not depend on how many other rows are scored
#: with it: float32 matrix kernels pick another summation order for a single row (a
#: matrix-vector kernel) than for a block. From 8 rows on, every model gave the same bits
#: as in a block of 4096 here (tests/test_estimators.py checks 32; DIN's attention unit pads
#: its own item count likewise); 32 rather than 256 makes scoring one row 3x faster
#: (DeepFM: 2.1 -> 0.7 ms).
PREDICT_PAD = 32


@torch.no_grad()
def predict_logits(
    core: nn.Module, data: TensorBatch, chunk: int = PREDICT_CHUNK, pad: int = PREDICT_PAD
) -> np.ndarray:
    """Logits of every row, in eval mode, in chunks on the core's device.

    Parameters
    ----------
    core : nn.Module
        Maps a :class:`TensorBatch` to logits of shape (B,).
    data : TensorBatch
        The rows (CPU tensors).
    chunk : int, default=PREDICT_CHUNK
        Most rows per forward pass (a multiple of ``pad``).
    pad : int, default=PREDICT_PAD
        The last pass is padded with copies of the first row to a multiple of ``pad`` rows,
        so every pass runs the same matrix kernels and a row's result is bit-identical
        whichever rows come with it (checked on CPU by the tests).

    Returns
    -------
    ndarray of shape (n,), float64
        The logits.
    """
    n = data.num_rows
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    # a core already in eval mode (any fitted model) is not touched: calls from several
    # threads at once must not flip shared module state under each other
    was_training = core.training
    if was_training:
        core.eval()
    device = next(core.parameters()).device
    out = []
    try:
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            if (stop - start) % pad == 0:
                part = data.slice(start, stop)
            else:
                rows = torch.zeros(-(-(stop - start) // pad) * pad, dtype=torch.long)
                rows[: stop - start] = torch.arange(start, stop)
                part = data.index(rows)
            out.append(core(part.to(device))[: stop - start].float().cpu())
    finally:
        if was_training:
            core.train()
    return torch.cat(out).double().numpy()


@dataclass
class TrainConfig:
    """Settings of one call to :func:`train` (taken from the estimator's parameters)."""

    batch_size: int
    max_epochs: int
    l2_embedding: float
    n_iter_no_change: int
    verbose: int
    device: torch.device
    owner: str
    tol: float = 1e-4
    #: Largest joint L2 norm of the gradients of one step; larger ones are scaled down.
    clip_grad_norm: float | None = None
    #: Called with each epoch's history record once the epoch is recorded.
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None
    #: With early stopping: how many times a plateau of the validation loss restores the
    #: best weights and multiplies every step by ``step_decay`` instead of stopping.
    step_decays: int = 0
    step_decay: float = 0.2
    #: A refit (no validation rows): one pass per entry of an earlier call's
    #: ``TrainState.path``, every step multiplied by it (``max_epochs`` is then ignored);
    #: each record is marked ``"refit": True``.
    refit_path: Sequence[float] | None = None
    #: Entries added to every epoch's record (``{"linear": True}`` for the epochs of a
    #: linear fallback).
    marks: Mapping[str, Any] = field(default_factory=dict)


def clip_gradients(core: nn.Module, max_norm: float) -> None:
    """Scale the gradients of ``core`` so that their joint L2 norm is at most ``max_norm``.

    Unlike :func:`torch.nn.utils.clip_grad_norm_` it handles the sparse gradients of
    embedding tables (rows looked up twice in a batch count once, summed). It runs without
    a host-device synchronisation.

    Parameters
    ----------
    core : nn.Module
        The module whose parameters' ``.grad`` are scaled in place.
    max_norm : float
        The bound on the L2 norm of all gradients together.
    """
    grads = [p.grad for p in core.parameters() if p.grad is not None]
    if not grads:
        return
    squares = [(g.coalesce().values() if g.is_sparse else g).float().pow(2).sum() for g in grads]
    factor = (max_norm / (torch.stack(squares).sum().sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(factor.to(g.dtype))


#: Most training rows over which :func:`refresh_running_statistics` averages.
STATISTICS_ROWS = 8_192


def _normalising_modules(core: nn.Module) -> list[nn.Module]:
    """The modules of ``core`` that keep running batch statistics for evaluation: those
    with batch normalisation's protocol (``reset_running_stats`` and a ``momentum`` that
    None turns into a plain average), as ``nn.BatchNorm*``, the instance norms that
    track statistics and :class:`~skctr.nn.Dice` have."""
    return [
        m
        for m in core.modules()
        if callable(getattr(m, "reset_running_stats", None))
        and hasattr(m, "momentum")
        and getattr(m, "track_running_stats", True)
    ]


@torch.no_grad()
def refresh_running_statistics(
    core: nn.Module, data: TensorBatch, rows: Tensor, batch_size: int, device: torch.device
) -> bool:
    """Re-estimate the running statistics of every batch-normalising module at the current
    weights.

    Batch normalisation and :class:`~skctr.nn.Dice` evaluate with running averages of the
    batch statistics seen in training. Those averages lag behind weights that are still
    moving: on a few thousand rows an epoch is a few dozen steps, the exponential average
    spans about ten of them, and the statistics it ends with belong to weights of half an
    epoch before, which shifts every gate and biases the predictions. As in "precise batch
    normalisation" (Wu and Johnson, 2021) and stochastic weight averaging, the statistics
    are recomputed instead: reset, then the plain average over batches of ``rows`` passed
    forward in training mode (no gradient) with the weights fixed.

    Parameters
    ----------
    core : nn.Module
        The model; modules without running statistics are left alone.
    data : TensorBatch
        The training rows.
    rows : LongTensor
        Which rows to pass, in order (up to :data:`STATISTICS_ROWS` of them are used).
    batch_size : int
        Rows per forward pass: the training batch size, whose batch statistics the
        averages stand for.
    device : torch.device
        Where the batches go.

    Returns
    -------
    bool
        Whether ``core`` had any such module.
    """
    modules = _normalising_modules(core)
    if not modules:
        return False
    rows = rows[:STATISTICS_ROWS]
    starts = list(range(0, len(rows), batch_size))
    if len(starts) > 1 and len(rows) - starts[-1] < 2:  # a 1-row batch has no variance
        starts.pop()
    momenta = [m.momentum for m in modules]
    was_training = core.training
    try:
        for m in modules:
            m.reset_running_stats()
            m.momentum = None  # the plain average of the batches below
        core.train()
        for start in starts:
            core(data.index(rows[start : start + batch_size]).to(device))
    finally:
        for m, momentum in zip(modules, momenta, strict=True):
            m.momentum = momentum
        core.train(was_training)
    return True


def _all_finite(core: nn.Module, optimizers: list[torch.optim.Optimizer]) -> bool:
    """Whether every floating-point weight and buffer of ``core`` is finite.

    The tables a :class:`LazyAdam` updates are not scanned (that would cost their whole
    size every epoch): the optimiser checks each row it writes.
    """
    lazy = [opt for opt in optimizers if isinstance(opt, LazyAdam)]
    skip = {id(p) for opt in lazy for group in opt.param_groups for p in group["params"]}
    tensors = [*core.parameters(), *core.buffers()]
    dense_ok = all(
        bool(torch.isfinite(t).all())
        for t in tensors
        if t.is_floating_point() and id(t) not in skip
    )
    rows_ok = [opt.rows_finite() for opt in lazy]  # read (and reset) every flag
    return dense_ok and all(rows_ok)


def _validation_metrics(
    core: nn.Module, val: tuple[TensorBatch, np.ndarray, np.ndarray]
) -> dict[str, float]:
    data, y, w = val
    logits = predict_logits(core, data)
    proba = 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))
    metrics = {"val_logloss": float(log_loss(y, proba, sample_weight=w, labels=[0, 1]))}
    metrics["val_auc"] = (
        float(roc_auc_score(y, proba, sample_weight=w)) if len(np.unique(y)) == 2 else math.nan
    )
    return metrics


def train(
    core: nn.Module,
    data: TensorBatch,
    y: np.ndarray,
    sample_weight: np.ndarray,
    state: TrainState,
    config: TrainConfig,
    generator: torch.Generator,
    val: tuple[TensorBatch, np.ndarray, np.ndarray] | None = None,
) -> TrainState:
    """Train ``core`` for up to ``config.max_epochs`` epochs.

    Each epoch shuffles the rows with ``generator`` and takes one Adam step per batch on the
    weighted mean binary cross-entropy of the logits (its gradient clipped to
    ``config.clip_grad_norm`` when set), plus the L2 penalty on the embedding rows the
    batch looks up, which :class:`LazyAdam` adds to those rows' gradient. After each epoch's
    steps the running statistics of batch normalisation and Dice are re-estimated at the
    epoch's final weights (:func:`refresh_running_statistics`, over the first rows of the
    epoch's order), so that validation, and the weights kept, use statistics of those
    weights rather than an average lagging behind them. With ``val`` the
    loop records the validation log-loss and AUC, and after ``n_iter_no_change`` epochs
    without improvement either goes back to the best epoch's weights (Adam's moments are
    kept) and goes on with every step multiplied by ``config.step_decay`` (at most
    ``config.step_decays`` times, and only while the previous steps found a better epoch;
    each record's ``step_scale`` says by how much the steps were multiplied), or stops and
    restores the best weights. The optimisers' steps are what they were before the call
    when it returns. A non-finite training loss (or weights) stops training, restores the
    weights of the last good epoch and warns.
    ``KeyboardInterrupt`` stops training the same way, keeping the best weights seen so
    far. ``config.on_epoch_end`` is called with each recorded epoch (checkpoints).
    ``state.path`` is left with the step multiplier of each epoch behind the weights kept;
    a refit (``config.refit_path``, no ``val``) replays such a path, one pass per entry.

    Parameters
    ----------
    core : nn.Module
        Maps a :class:`TensorBatch` to logits of shape (B,).
    data : TensorBatch
        Training rows (CPU tensors; batches are moved to ``config.device``).
    y : ndarray of shape (n,)
        0/1 targets.
    sample_weight : ndarray of shape (n,)
        Row weights.
    state : TrainState
        Optimisers and history, updated in place and returned.
    config : TrainConfig
        Loop settings.
    generator : torch.Generator
        Source of the shuffling.
    val : (TensorBatch, ndarray, ndarray), optional
        Validation rows, targets and weights.

    Returns
    -------
    TrainState
        ``state``, with the new epochs in ``state.history``.
    """
    n = data.num_rows
    state.interrupted = False
    targets = torch.as_tensor(y, dtype=torch.float32)
    weights = torch.as_tensor(sample_weight, dtype=torch.float32)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    best_loss, best_state, stale = math.inf, None, 0
    decays, decayed_at, scale = 0, None, 1.0  # decayed_at: the epoch of the last reduction
    steps = [[group["lr"] for group in opt.param_groups] for opt in state.optimizers]
    good_state, good_epoch = copy.deepcopy(core.state_dict()), state.epochs_done
    scales = list(config.refit_path) if config.refit_path is not None else None
    if scales is not None and val is not None:
        raise ValueError("train: a refit_path is replayed without validation rows.")
    path: list[float] = []  # the scales of the epochs behind the current weights
    best_path: list[float] = []
    progress = None
    if config.verbose:
        from tqdm.auto import tqdm

        progress = tqdm
    try:
        for index in range(config.max_epochs if scales is None else len(scales)):
            if scales is not None and scales[index] != scale:
                scale = scales[index]
                _scale_steps(state.optimizers, steps, scale)
            epoch = state.epochs_done + 1
            started = time.perf_counter()
            core.train()
            order = torch.randperm(n, generator=generator)
            total = torch.zeros((), dtype=torch.float64)
            starts = range(0, n, config.batch_size)
            if progress is not None:
                starts = progress(starts, desc=f"{config.owner} epoch {epoch}", leave=False)
            for start in starts:
                rows = order[start : start + config.batch_size]
                batch = data.index(rows).to(config.device)
                yb = targets[rows].to(config.device)
                wb = weights[rows].to(config.device)
                logits = core(batch)
                loss = (loss_fn(logits, yb) * wb).mean()
                for opt in state.optimizers:
                    opt.zero_grad(set_to_none=True)
                loss.backward()
                if config.clip_grad_norm is not None:
                    clip_gradients(core, config.clip_grad_norm)
                for opt in state.optimizers:
                    if isinstance(opt, LazyAdam):  # the L2 penalty, averaged over the batch
                        for group in opt.param_groups:
                            group["l2"] = config.l2_embedding / len(rows)
                    opt.step()
                total += loss.detach().double().cpu() * len(rows)
            train_loss = float(total) / max(n, 1)
            refresh_running_statistics(core, data, order, config.batch_size, config.device)
            record: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss}
            if not (math.isfinite(train_loss) and _all_finite(core, state.optimizers)):
                core.load_state_dict(good_state)
                warnings.warn(
                    f"{config.owner}: the training loss or the weights became non-finite in "
                    f"epoch {epoch}; training stopped and the model keeps the weights after "
                    f"epoch {good_epoch} (0: the initial weights). The learning_rate is "
                    "probably too high: lower it, or set clip_grad_norm (e.g. 1.0) to bound "
                    "each step.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                break
            state.epochs_done = epoch
            path.append(scale)
            if val is not None:
                record.update(_validation_metrics(core, val))
            if val is not None or scales is not None:
                record["step_scale"] = scale
            if scales is not None:
                record["refit"] = True
            record.update(config.marks)
            record["time"] = time.perf_counter() - started
            state.history.append(record)
            if config.verbose:
                print(
                    f"{config.owner} epoch {epoch}: "
                    + ", ".join(f"{k}={v:.4f}" for k, v in record.items() if k != "epoch")
                )
            if config.on_epoch_end is not None:
                config.on_epoch_end(record)
            if val is None:
                good_state, good_epoch = copy.deepcopy(core.state_dict()), epoch
                continue
            if record["val_logloss"] < best_loss - config.tol:
                best_loss, stale = record["val_logloss"], 0
                best_state = copy.deepcopy(core.state_dict())
                good_state, good_epoch = best_state, epoch
                best_path = list(path)
            else:
                stale += 1
                if stale >= config.n_iter_no_change:
                    # reduce again only if the smaller steps found a better epoch
                    if decays >= config.step_decays or (
                        decayed_at is not None and good_epoch <= decayed_at
                    ):
                        break
                    # a plateau: go on from the best epoch with smaller steps
                    core.load_state_dict(best_state if best_state is not None else good_state)
                    path = list(best_path)
                    scale *= config.step_decay
                    _scale_steps(state.optimizers, steps, scale)
                    decays, decayed_at, stale = decays + 1, epoch, 0
                    if config.verbose:
                        print(
                            f"{config.owner}: no better epoch for {config.n_iter_no_change} "
                            f"epochs; back to the best one, steps x {scale:g}"
                        )
    except KeyboardInterrupt:
        state.interrupted = True
        warnings.warn(
            f"{config.owner}: training interrupted in epoch {state.epochs_done + 1}; "
            "the model keeps the best weights seen so far.",
            RuntimeWarning,
            stacklevel=3,
        )
        core.load_state_dict(best_state if best_state is not None else good_state)
    else:
        if best_state is not None:
            core.load_state_dict(best_state)
    finally:
        _scale_steps(state.optimizers, steps, 1.0)  # the steps the call was given
    state.path = best_path if best_state is not None else path
    state.val_logloss = best_loss if best_state is not None else math.inf
    core.eval()
    return state


def _scale_steps(
    optimizers: list[torch.optim.Optimizer], steps: list[list[float]], scale: float
) -> None:
    """Set each param group's step to ``scale`` times its entry of ``steps``."""
    for opt, lrs in zip(optimizers, steps, strict=True):
        for group, lr in zip(opt.param_groups, lrs, strict=True):
            group["lr"] = lr * scale
