"""The one training loop of skctr, shared by every classifier.

Batches are sliced from tensors built once per ``fit`` (no per-row ``Dataset``/collate),
embedding tables get sparse gradients and a lazy Adam (the rows a batch touches), and the
L2 penalty on embeddings covers the looked-up rows only (applied by :class:`LazyAdam`).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import log_loss, roc_auc_score
from torch import nn

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


@contextmanager
def torch_threads(n_jobs: int | None) -> Iterator[None]:
    """Run the block with ``n_jobs`` torch CPU threads (-1: all cores), then restore."""
    if n_jobs is None:
        yield
        return
    import os

    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1 if n_jobs == -1 else max(n_jobs, 1))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class TrainState:
    """What survives between calls to :func:`train`: optimisers and the epoch count."""

    optimizers: list[torch.optim.Optimizer]
    epochs_done: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def make_optimizers(core: nn.Module, learning_rate: float) -> list[torch.optim.Optimizer]:
    """Lazy Adam for sparse-gradient embedding tables, Adam for every other parameter."""
    sparse_params, dense_params = [], []
    for module in core.modules():
        for _name, p in module.named_parameters(recurse=False):
            is_sparse = isinstance(module, nn.Embedding) and module.sparse
            (sparse_params if is_sparse else dense_params).append(p)
    optimizers: list[torch.optim.Optimizer] = []
    if dense_params:
        optimizers.append(torch.optim.Adam(dense_params, lr=learning_rate))
    if sparse_params:
        optimizers.append(LazyAdam(sparse_params, lr=learning_rate))
    return optimizers


#: Most rows per forward pass in :func:`predict_logits`.
PREDICT_CHUNK = 4096
#: Every forward pass of :func:`predict_logits` has a multiple of this many rows (the last
#: one is padded), so a row's prediction does not depend on how many other rows are scored
#: with it: float32 matrix kernels pick another summation order for a handful of rows (a
#: single row goes through a matrix-vector kernel) than for a block of hundreds.
PREDICT_PAD = 256


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
    was_training = core.training
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
        core.train(was_training)
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
    weighted mean binary cross-entropy of the logits, plus the L2 penalty on the
    embedding rows the batch looks up. With
    ``val`` the loop records the validation log-loss and AUC, stops after
    ``n_iter_no_change`` epochs without improvement and restores the best weights. A
    non-finite training loss stops training, restores the weights of the last good epoch
    and warns. ``KeyboardInterrupt`` stops training the same way, keeping the best
    weights seen so far.

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
    targets = torch.as_tensor(y, dtype=torch.float32)
    weights = torch.as_tensor(sample_weight, dtype=torch.float32)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    best_loss, best_state, stale = math.inf, None, 0
    good_state = copy.deepcopy(core.state_dict())
    progress = None
    if config.verbose:
        from tqdm.auto import tqdm

        progress = tqdm
    try:
        for _ in range(config.max_epochs):
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
                for opt in state.optimizers:
                    if isinstance(opt, LazyAdam):  # the L2 penalty, averaged over the batch
                        for group in opt.param_groups:
                            group["l2"] = config.l2_embedding / len(rows)
                    opt.step()
                total += loss.detach().double().cpu() * len(rows)
            train_loss = float(total) / max(n, 1)
            record: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss}
            if not math.isfinite(train_loss):
                core.load_state_dict(good_state)
                warnings.warn(
                    f"{config.owner}: the training loss became non-finite in epoch {epoch}; "
                    "training stopped and the weights of the last finite epoch were kept. "
                    "The learning_rate is probably too high, or the dense inputs are extreme.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                break
            state.epochs_done = epoch
            if val is not None:
                record.update(_validation_metrics(core, val))
            record["time"] = time.perf_counter() - started
            state.history.append(record)
            if config.verbose:
                print(
                    f"{config.owner} epoch {epoch}: "
                    + ", ".join(f"{k}={v:.4f}" for k, v in record.items() if k != "epoch")
                )
            if val is None:
                good_state = copy.deepcopy(core.state_dict())
                continue
            if record["val_logloss"] < best_loss - config.tol:
                best_loss, stale = record["val_logloss"], 0
                best_state = copy.deepcopy(core.state_dict())
                good_state = best_state
            else:
                stale += 1
                if stale >= config.n_iter_no_change:
                    break
    except KeyboardInterrupt:
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
    core.eval()
    return state
