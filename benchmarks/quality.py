#!/usr/bin/env python
"""Quality of every skctr classifier *with its defaults* next to what a user would pick instead.

Run from the repository root, after ``pip install -e '.[bench]'`` (LightGBM) and
``bash benchmarks/peer_env.sh`` (which creates ``.venv-peer/`` with the peer)::

    python benchmarks/quality.py            # about 65 min on 2 busy cores; --no-peer: less

Each skctr classifier is built with its default parameters, given only the column kinds
(``features=CTRFeatureTransformer(sparse_features=..., dense_features=...,
sequence_features=...)``), a seed and one torch thread, and compared with:

* one-hot logistic regression: scikit-learn's ``LogisticRegression`` on
  ``OneHotEncoder(handle_unknown="ignore")`` columns, standardised dense columns (median
  imputed, with missing indicators) and bag-of-items sequences (each row's items averaged),
  its ``C`` chosen by log-loss on an inner stratified 20 % split of the training rows, then
  refitted on all of them;
* on data with dense columns, the same one-hot LR with the signed log1p of every dense
  column (the transform skctr's encoder applies to heavy-tailed ones): a reference for how
  much of the difference comes from the encoding of the dense columns;
* LightGBM with its default parameters (one thread), categorical columns as the
  ``category`` dtype, early-stopped (50 rounds) on an inner stratified 10 % split;
* DeepCTR-Torch 0.3.0 where it has the model, with its defaults (model, embedding size 4,
  ``"adam"``, batch size 256) on the same encoded input as skctr (see ``benchmarks/models.py``).
  The peer trains one epoch unless told otherwise and has no early stopping of its own, so it
  gets skctr's, as it was before the smaller steps at a plateau: 10 % stratified validation
  rows, at most 100 epochs (the cap of skctr's ``max_epochs='auto'``), stop after 2 without
  a better validation log-loss, best weights restored. skctr's going on from the best epoch
  with smaller steps is one of its defaults, which the peer does not have.

Protocols:

* ``criteo_8k`` and ``avazu_9k``: all rows (train + dev + test), repeated stratified k-fold
  (``--folds`` x ``--repeats``, 3 x 2 by default): their own test files (about 400 rows) are
  too small to rank models;
* ``movielens``: ml-latest-small split by time (the latest 20 % of the ratings are the test
  rows), ``rating >= 4`` is a click, with ``genres`` and the user's earlier positive items
  (``hist_movieId``) as sequences; DIN attends to the history. "DeepFM (no history)" is
  DeepFM without ``hist_movieId``: the baseline DIN's history must beat. The one split is
  fitted ``--temporal-repeats`` times (4 by default), each with its own seed (as the k-fold
  sets' folds are), so the "± std" there is over seeds: a model's figures on this split
  move with its seed by up to about 0.01 AUC.

Metrics: AUC, log-loss and the expected calibration error (ECE: 15 equal-width bins of the
predicted probability, the bins' |mean prediction - click rate| weighted by their rows),
mean ± standard deviation over the folds.

Writes ``benchmarks/results/quality.json``, ``docs/benchmarks/quality.md`` and
``docs/benchmarks/quality.rst``. Every model run (all folds of one model on one dataset) is a
fresh subprocess, so a failure is recorded in the table and the run goes on.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time

from benchlib import (
    add_worker_arguments,
    build_peer_model,
    environment,
    import_optimiser_machinery,
    log,
    peer_inputs,
    read_encoded,
    rst_escape,
    run_subprocess,
    save_encoded,
    seed_everything,
    stub_requests,
    versions_of,
    worker_main,
    write_outputs,
)
from models import MODELS

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATASETS = ("criteo_8k", "avazu_9k", "movielens")
ECE_BINS = 15
PEER_MAX_EPOCHS = 100  # skctr's cap with early stopping (max_epochs='auto')
PEER_PATIENCE = 2
NO_HISTORY = "DeepFM (no history)"
ONEHOT_LR = "one-hot LR"
#: One-hot LR given skctr's default dense encoding (signed log1p, missing indicators): it
#: shows how much of skctr's margin over ONEHOT_LR is the encoding of the dense columns.
ONEHOT_LOG = "one-hot LR (log dense)"
LR_C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


# ----------------------------------------------------------------------------- data
def load_dataset(dataset: str) -> dict:
    """All rows of a dataset with its column kinds.

    Parameters
    ----------
    dataset : {"criteo_8k", "avazu_9k", "movielens"}
        Which dataset.

    Returns
    -------
    dict
        ``X`` (DataFrame), ``y`` (ndarray of 0/1), ``kinds`` (the CTRFeatureTransformer
        column arguments) and, for MovieLens, ``n_train`` (the temporal split: the first
        ``n_train`` rows are the training rows).
    """
    import numpy as np
    import pandas as pd

    from skctr.datasets import load_avazu_9k, load_criteo_8k, load_movielens

    if dataset == "movielens":
        parts = [load_movielens(split=s) for s in ("train", "test")]
        n_train = len(parts[0].target)
    else:
        loader = {"criteo_8k": load_criteo_8k, "avazu_9k": load_avazu_9k}[dataset]
        parts = [loader(split="all")]
        n_train = None
    first = parts[0]
    X = pd.concat([p.data for p in parts], ignore_index=True)
    y = np.concatenate([p.target.to_numpy() for p in parts]).astype(np.int64)
    kinds = {
        "sparse_features": list(first.sparse_features),
        "dense_features": list(first.dense_features) or None,
        "sequence_features": list(first.sequence_features) or None,
    }
    return {"X": X, "y": y, "kinds": kinds, "n_train": n_train}


def without_history(data: dict) -> dict:
    """The dataset without its behaviour-history columns (``hist_*``)."""
    X = data["X"].drop(columns=[c for c in data["X"].columns if c.startswith("hist_")])
    seqs = [c for c in data["kinds"]["sequence_features"] or [] if not c.startswith("hist_")]
    kinds = {**data["kinds"], "sequence_features": seqs or None}
    return {**data, "X": X, "kinds": kinds}


def folds_of(
    data: dict, n_splits: int, n_repeats: int, seed: int, temporal_repeats: int | None = None
) -> list[tuple]:
    """Training and test row indices of every fold.

    ``temporal_repeats`` (default: ``n_repeats``) is how many times MovieLens' one temporal
    split is listed.

    Returns
    -------
    list of (ndarray, ndarray)
        Repeated stratified k-fold over all rows, or MovieLens' one temporal split
        ``temporal_repeats`` times (each fold is fitted with its own seed, so these differ
        by seed alone).
    """
    import numpy as np
    from sklearn.model_selection import RepeatedStratifiedKFold

    if data["n_train"] is not None:
        n = len(data["y"])
        split = (np.arange(data["n_train"]), np.arange(data["n_train"], n))
        return [split] * (n_repeats if temporal_repeats is None else temporal_repeats)
    splitter = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    return list(splitter.split(np.zeros(len(data["y"])), data["y"]))


def scores(y_true, proba) -> dict:
    """AUC, log-loss and expected calibration error (ECE, :data:`ECE_BINS` equal bins).

    Parameters
    ----------
    y_true : array-like of shape (n,)
        0/1 labels.
    proba : array-like of shape (n,)
        Predicted click probabilities.

    Returns
    -------
    dict
        ``auc``, ``logloss``, ``ece``.
    """
    import numpy as np
    from sklearn.metrics import log_loss, roc_auc_score

    y = np.asarray(y_true, dtype=np.float64)
    p = np.clip(np.asarray(proba, dtype=np.float64).ravel(), 1e-7, 1 - 1e-7)
    bins = np.minimum((p * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    ece = 0.0
    for b in np.unique(bins):
        mask = bins == b
        ece += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return {
        "auc": float(roc_auc_score(y, p)),
        "logloss": float(log_loss(y, p, labels=[0, 1])),
        "ece": float(ece),
    }


def fold_context(spec: dict) -> tuple[dict, list]:
    """The dataset (without history for the no-history row) and its folds, in a worker."""
    data = load_dataset(spec["dataset"])
    folds = folds_of(data, spec["folds"], spec["repeats"], spec["seed"], spec["temporal_repeats"])
    if spec.get("model") == NO_HISTORY:
        data = without_history(data)
    return data, folds


# ----------------------------------------------------------------------------- workers
def worker_prepare(spec: dict) -> dict:
    """Encode every fold with CTRFeatureTransformer (column kinds only) for the peer.

    Returns
    -------
    dict
        Row counts, folds and the fields of the first fold.
    """
    from skctr import CTRFeatureTransformer

    full = load_dataset(spec["dataset"])
    folds = folds_of(full, spec["folds"], spec["repeats"], spec["seed"], spec["temporal_repeats"])
    variants = {"full": full}
    if full["kinds"]["sequence_features"] and any(
        c.startswith("hist_") for c in full["kinds"]["sequence_features"]
    ):
        variants["nohist"] = without_history(full)
    meta: dict = {}
    for variant, data in variants.items():
        for i, (tr, te) in enumerate(folds):
            encoder = CTRFeatureTransformer(**data["kinds"])
            X, y = data["X"], data["y"]
            train = encoder.fit_transform(X.iloc[tr])
            test = encoder.transform(X.iloc[te])
            base = os.path.join(spec["workdir"], f"{spec['dataset']}.{variant}.{i}")
            fold_meta = save_encoded(
                base, {"train": (train, y[tr]), "test": (test, y[te])}, encoder.schema_
            )
            if i == 0 and variant == "full":
                meta = {**fold_meta, "encoder": repr(encoder)}
    meta.update(
        dataset=spec["dataset"],
        n_rows=len(full["y"]),
        ctr=round(float(full["y"].mean()), 4),
        n_folds=len(folds),
        temporal=full["n_train"] is not None,
        variants=sorted(variants),
        has_dense=bool(full["kinds"]["dense_features"]),
    )
    return meta


def worker_skctr(spec: dict) -> dict:
    """Every fold of one skctr classifier with its defaults (only the column kinds given)."""
    import torch

    from skctr import CTRFeatureTransformer, estimators

    torch.set_num_threads(1)
    import_optimiser_machinery()
    data, folds = fold_context(spec)
    model = "DeepFM" if spec["model"] == NO_HISTORY else spec["model"]
    cls = getattr(estimators, next(m.skctr_class for m in MODELS if m.name == model))
    out = []
    for i, (tr, te) in enumerate(folds):
        seed_everything(spec["seed"] + i)
        clf = cls(
            features=CTRFeatureTransformer(**data["kinds"]),
            random_state=spec["seed"] + i,
            n_jobs=1,
        )
        start = time.perf_counter()
        clf.fit(data["X"].iloc[tr], data["y"][tr])
        fit_s = time.perf_counter() - start
        proba = clf.predict_proba(data["X"].iloc[te])[:, 1]
        out.append({**scores(data["y"][te], proba), "fit_s": fit_s, "epochs": len(clf.history_)})
    params = {k: repr(v) for k, v in cls().get_params().items() if k != "features"}
    return {"folds": out, "params": params}


def _onehot_lr(kinds: dict, C: float, log_dense: bool = False):
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, Normalizer, OneHotEncoder, StandardScaler

    as_str = FunctionTransformer(lambda X: X.astype(str), feature_names_out="one-to-one")
    parts = [
        (
            "sparse",
            make_pipeline(as_str, OneHotEncoder(handle_unknown="ignore")),
            kinds["sparse_features"],
        )
    ]
    if kinds["dense_features"]:
        dense = make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
        )
        if log_dense:  # the signed log1p skctr applies to heavy-tailed columns, on all
            signed_log = FunctionTransformer(lambda X: np.sign(X) * np.log1p(np.abs(X)))
            dense.steps.insert(0, ("log", signed_log))
        parts.append(("dense", dense, kinds["dense_features"]))
    for col in kinds["sequence_features"] or []:
        bag = CountVectorizer(
            analyzer=lambda items: [str(v) for v in items], binary=True, dtype=np.float64
        )
        parts.append((col, make_pipeline(bag, Normalizer(norm="l1")), col))
    return make_pipeline(
        ColumnTransformer(parts), LogisticRegression(C=C, solver="liblinear", max_iter=1000)
    )


def _lightgbm_frame(data: dict):
    import pandas as pd

    X = data["X"].copy()
    kinds = data["kinds"]
    for col in kinds["sparse_features"]:
        X[col] = X[col].astype(str).astype("category")
    for col in kinds["sequence_features"] or []:
        lists = X.pop(col)
        if col.startswith("hist_"):  # a tree cannot read a list of item ids: its length only
            X[f"{col}_len"] = lists.map(len)
        else:
            hot = pd.get_dummies(lists.explode()).groupby(level=0).max().reindex(X.index)
            X = X.join(hot.fillna(False).astype("int8").add_prefix(f"{col}="))
    return X


def worker_baseline(spec: dict) -> dict:
    """Every fold of one-hot LR (C tuned on an inner split) or early-stopped LightGBM."""
    import numpy as np
    from sklearn.metrics import log_loss
    from sklearn.model_selection import train_test_split

    data, folds = fold_context(spec)
    X, y = data["X"], data["y"]
    out = []
    if spec["model"] == "LightGBM":
        import lightgbm as lgb

        X = _lightgbm_frame(data)
    for i, (tr, te) in enumerate(folds):
        start = time.perf_counter()
        if spec["model"] in (ONEHOT_LR, ONEHOT_LOG):
            log_dense = spec["model"] == ONEHOT_LOG
            inner, val = train_test_split(tr, test_size=0.2, stratify=y[tr], random_state=i)

            losses = {}
            for C in LR_C_GRID:
                pipe = _onehot_lr(data["kinds"], C, log_dense).fit(X.iloc[inner], y[inner])
                losses[C] = log_loss(y[val], pipe.predict_proba(X.iloc[val])[:, 1])
            best = min(losses, key=losses.get)
            model = _onehot_lr(data["kinds"], best, log_dense).fit(X.iloc[tr], y[tr])
            extra = {"C": best}
        else:
            inner, val = train_test_split(tr, test_size=0.1, stratify=y[tr], random_state=i)
            model = lgb.LGBMClassifier(
                n_estimators=5000, n_jobs=1, random_state=spec["seed"] + i, verbose=-1
            )
            model.fit(
                X.iloc[inner],
                y[inner],
                eval_set=[(X.iloc[val], y[val])],
                callbacks=[lgb.early_stopping(50, verbose=False)],
            )
            extra = {"trees": int(model.best_iteration_)}
        fit_s = time.perf_counter() - start
        proba = model.predict_proba(X.iloc[te])[:, 1]
        out.append({**scores(y[te], proba), "fit_s": fit_s, **extra})
    return {"folds": out, "n_features": int(np.asarray(X.shape)[1])}


def worker_peer(spec: dict) -> dict:
    """Every fold of one DeepCTR-Torch model with its defaults, early-stopped like skctr
    (at the first plateau)."""
    import copy

    import numpy as np
    import torch
    from sklearn.metrics import log_loss
    from sklearn.model_selection import train_test_split

    stub_requests()
    import deepctr_torch

    torch.set_num_threads(1)
    import_optimiser_machinery()
    model = next(m for m in MODELS if m.name == spec["model"].replace(NO_HISTORY, "DeepFM"))
    variant = "nohist" if spec["model"] == NO_HISTORY else "full"
    out = []
    for i in range(spec["n_folds"]):
        seed_everything(spec["seed"] + i)
        base = os.path.join(spec["workdir"], f"{spec['dataset']}.{variant}.{i}")
        arrays, meta = read_encoded(base)
        columns, inputs = peer_inputs(arrays, meta, ("train", "test"), None)
        y = arrays["y_train"]
        fit_rows, val_rows = train_test_split(
            np.arange(len(y)), test_size=0.1, stratify=y, random_state=spec["seed"] + i
        )
        fit_in = {k: v[fit_rows] for k, v in inputs["train"].items()}
        val_in = {k: v[val_rows] for k, v in inputs["train"].items()}
        start = time.perf_counter()  # skctr's fit builds its network: so is the peer's timed
        net = build_peer_model(
            model.peer_class, columns, meta, {"seed": spec["seed"] + i, "device": "cpu"}
        )
        net.compile("adam", "binary_crossentropy")
        best, best_state, stale, epochs = np.inf, None, 0, 0
        for _ in range(PEER_MAX_EPOCHS):
            net.fit(fit_in, y[fit_rows].astype(np.float32), batch_size=256, epochs=1, verbose=0)
            epochs += 1
            loss = log_loss(y[val_rows], net.predict(val_in, 4096).ravel(), labels=[0, 1])
            if loss < best - 1e-4:
                best, best_state, stale = loss, copy.deepcopy(net.state_dict()), 0
            else:
                stale += 1
                if stale >= PEER_PATIENCE:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        fit_s = time.perf_counter() - start
        proba = net.predict(inputs["test"], 4096).ravel()
        out.append({**scores(arrays["y_test"], proba), "fit_s": fit_s, "epochs": epochs})
    return {"folds": out, "deepctr_torch": deepctr_torch.__version__}


WORKERS = {
    "prepare": worker_prepare,
    "skctr": worker_skctr,
    "baseline": worker_baseline,
    "peer": worker_peer,
}


# ----------------------------------------------------------------------------- driver
def summarise(folds: list[dict]) -> dict:
    """Mean and standard deviation of each metric over the folds."""
    out = {}
    for key in ("auc", "logloss", "ece", "fit_s", "epochs"):
        values = [f[key] for f in folds if key in f]
        if values:
            out[key] = statistics.fmean(values)
            out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


def plan(
    dataset: str, has_history: bool, peer: bool, has_dense: bool = False
) -> list[tuple[str, str, str]]:
    """The runs of one dataset: ``(row name, library, worker kind)``."""
    runs = [(ONEHOT_LR, "scikit-learn", "baseline")]
    if has_dense:
        runs.append((ONEHOT_LOG, "scikit-learn", "baseline"))
    runs.append(("LightGBM", "lightgbm", "baseline"))
    names = [m.name for m in MODELS]
    if has_history:
        names.insert(names.index("DIN") + 1, NO_HISTORY)
    for name in names:
        runs.append((name, "skctr", "skctr"))
    for name in names:
        spec = next(m for m in MODELS if m.name == name.replace(NO_HISTORY, "DeepFM"))
        if peer and spec.peer_class and not (spec.needs_history and not has_history):
            runs.append((name, "peer", "peer"))
    return runs


def cell(run: dict, key: str, digits: int = 4) -> str:
    """``mean ± std`` of a metric, or why there is none."""
    if "error" in run:
        return "error¹"
    if key not in run:
        return ""
    return f"{run[key]:.{digits}f} ± {run[key + '_std']:.{digits}f}"


def table(summary: dict, dataset: str) -> list[list[str]]:
    """Rows of one dataset's table, header first."""
    rows = [["model", "library", "AUC", "logloss", "ECE", "epochs / trees", "fit s"]]
    for run in summary["runs"]:
        if run["dataset"] != dataset:
            continue
        size = ""
        if "folds" in run:
            key = "trees" if "trees" in run["folds"][0] else "epochs" if "epochs" in run else ""
            if key:
                size = f"{statistics.fmean(f[key] for f in run['folds']):.1f}"
        rows.append(
            [
                run["model"],
                run["library"],
                cell(run, "auc"),
                cell(run, "logloss"),
                cell(run, "ece"),
                size,
                "" if "fit_s" not in run else f"{run['fit_s']:.1f}",
            ]
        )
    return rows


def targets(summary: dict, dataset: str) -> list[str]:
    """The issue's targets on one dataset, checked on the means."""
    runs = {(r["model"], r["library"]): r for r in summary["runs"] if r["dataset"] == dataset}
    lr, gbm = runs.get((ONEHOT_LR, "scikit-learn")), runs.get(("LightGBM", "lightgbm"))
    ours = {m: r for (m, lib), r in runs.items() if lib == "skctr" and "auc" in r}
    if not lr or "auc" not in lr or not ours:
        return ["targets not checked: a baseline or every skctr run failed"]
    lines = []
    for name, ref in ((ONEHOT_LR, lr), (ONEHOT_LOG, runs.get((ONEHOT_LOG, "scikit-learn")))):
        if not ref or "auc" not in ref:
            continue
        beat = [
            m for m, r in ours.items() if r["auc"] >= ref["auc"] and r["logloss"] <= ref["logloss"]
        ]
        miss = [m for m in ours if m not in beat]
        lines.append(
            f"At or above {name} (AUC {ref['auc']:.4f}, logloss {ref['logloss']:.4f}) on both: "
            f"{len(beat)} of {len(ours)} skctr models"
            + (f"; below on AUC or logloss: {', '.join(miss)}" if miss else "")
            + "."
        )
    best = max(ours, key=lambda m: ours[m]["auc"])
    if gbm and "auc" in gbm:
        verdict = "above" if ours[best]["auc"] > gbm["auc"] else "not above"
        lines.append(
            f"Best skctr model: {best} (AUC {ours[best]['auc']:.4f}), {verdict} LightGBM "
            f"(AUC {gbm['auc']:.4f})."
        )
    if "DIN" in ours and NO_HISTORY in ours:
        din, base = ours["DIN"]["auc"], ours[NO_HISTORY]["auc"]
        lines.append(
            f"DIN with the history: AUC {din:.4f}, {'above' if din > base else 'not above'} "
            f"DeepFM without it ({base:.4f})."
        )
    return lines


def protocol(summary: dict, dataset: str) -> str:
    """One sentence on how the dataset was split."""
    meta = summary["datasets"].get(dataset, {})
    if "n_rows" not in meta:
        return "preparation failed"
    if meta.get("temporal"):
        return (
            f"{meta['n_train']:,} training / {meta['n_test']:,} test rows, split by time; "
            f"the one split fitted with {meta['n_folds']} seeds: mean ± std over the seeds"
        )
    cfg = summary["config"]
    return (
        f"{meta['n_rows']:,} rows (click rate {meta['ctr']:.3f}), {cfg['folds']}-fold "
        f"stratified cross-validation repeated {cfg['repeats']} times: mean ± std over "
        f"{meta['n_folds']} folds"
    )


INTRO = [
    "Every skctr classifier with its default parameters, given only the column kinds, "
    "next to a one-hot logistic regression (C tuned on an inner split; where there are "
    "dense columns also with the signed log1p of each, as skctr's encoder does), LightGBM "
    "(early-stopped on an inner split) and DeepCTR-Torch 0.3.0 with its defaults (model, "
    "embedding size 4, Adam 1e-3, batch 256), early-stopped like skctr (at the first "
    "plateau: without skctr's smaller steps). See "
    "``benchmarks/quality.py`` for the details, and the defaults page for why the defaults "
    "are what they are.",
    "ECE: expected calibration error over 15 equal-width probability bins (0 = perfectly "
    "calibrated). Fit seconds are the mean per fold, one torch thread, on a shared 2-core "
    "machine: indicative only.",
]


def to_markdown(summary: dict) -> str:
    """The results as a Markdown page."""
    lines = ["# Quality with default parameters", ""]
    lines += ["Produced by:", "", "```bash", summary["command"], "```", ""]
    lines += [f"- {s.replace('``', '`')}" for s in INTRO + summary["header"]]
    for dataset in summary["config"]["datasets"]:
        lines += ["", f"## {dataset}", "", protocol(summary, dataset) + ".", ""]
        rows = table(summary, dataset)
        lines.append("| " + " | ".join(rows[0]) + " |")
        lines.append("|---|---" + "|---:" * (len(rows[0]) - 2) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        lines += [""] + [f"- {t}" for t in targets(summary, dataset)]
    errors = [r for r in summary["runs"] if "error" in r]
    if errors:
        lines += ["", "¹ Errors (full tracebacks in `benchmarks/results/quality.json`):", ""]
        lines += [
            f"- {r['library']} {r['model']} on {r['dataset']}: {r['error'].splitlines()[0][:300]}"
            for r in errors
        ]
    return "\n".join(lines) + "\n"


def to_rst(summary: dict) -> str:
    """The same page as reStructuredText for Sphinx."""

    def text(sentence: str) -> str:
        parts = sentence.split("``")
        return "".join(f"``{p}``" if i % 2 else rst_escape(p) for i, p in enumerate(parts))

    title = "Quality with default parameters"
    lines = [title, "=" * len(title), "", "Produced by:", "", ".. code-block:: bash", ""]
    lines += [f"   {summary['command']}", ""]
    lines += [f"- {text(s)}" for s in INTRO + summary["header"]]
    for dataset in summary["config"]["datasets"]:
        lines += ["", dataset, "-" * len(dataset), "", text(protocol(summary, dataset)) + ".", ""]
        lines += [".. list-table::", "   :header-rows: 1", "   :widths: auto", ""]
        for row in table(summary, dataset):
            lines.append(f"   * - {rst_escape(row[0])}")
            lines += [f"     - {rst_escape(c)}" if c else "     -" for c in row[1:]]
        lines += [""] + [f"- {text(t)}" for t in targets(summary, dataset)]
    errors = [r for r in summary["runs"] if "error" in r]
    if errors:
        lines += ["", "¹ Errors (full tracebacks in ``benchmarks/results/quality.json``):", ""]
        lines += [
            f"- {rst_escape(r['library'] + ' ' + r['model'] + ' on ' + r['dataset'])}: "
            f"{rst_escape(r['error'].splitlines()[0][:300])}"
            for r in errors
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--datasets", default=",".join(DATASETS), help="comma list out of %(default)s"
    )
    parser.add_argument("--models", default="", help="comma list of row names (default: all)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--temporal-repeats",
        type=int,
        default=4,
        help="fits (seeds) of MovieLens' one temporal split (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peer-python",
        default=os.path.join(ROOT, ".venv-peer", "bin", "python"),
        help="interpreter with deepctr-torch 0.3.0 (see benchmarks/peer_env.sh)",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip DeepCTR-Torch")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per model run")
    parser.add_argument("--json", default=os.path.join(HERE, "results", "quality.json"))
    parser.add_argument(
        "--markdown", default=os.path.join(ROOT, "docs", "benchmarks", "quality.md")
    )
    parser.add_argument("--rst", default=os.path.join(ROOT, "docs", "benchmarks", "quality.rst"))
    add_worker_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write the JSON, Markdown and reStructuredText outputs."""
    args = parse_args(argv)
    if args.worker:
        worker_main(WORKERS, args.worker, args.worker_out)
        return
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    only = {m.strip() for m in args.models.split(",") if m.strip()}
    if set(datasets) - set(DATASETS):
        sys.exit(f"unknown datasets: {sorted(set(datasets) - set(DATASETS))}")
    peer = not args.no_peer
    try:
        import lightgbm  # noqa: F401  (a benchmark-only dependency)
    except ImportError:
        sys.exit("lightgbm is needed for the LightGBM rows: pip install -e '.[bench]'")
    if peer and not os.path.exists(args.peer_python):
        sys.exit(
            f"{args.peer_python} not found: run `bash benchmarks/peer_env.sh` or pass --no-peer"
        )
    started = time.perf_counter()
    packages = ("skctr", "torch", "scikit-learn", "lightgbm", "pandas")
    summary: dict = {
        "command": "python "
        + " ".join(shlex.quote(a) for a in ["benchmarks/quality.py", *(argv or sys.argv[1:])]),
        "date": datetime.date.today().isoformat(),
        "environment": {
            **environment(),
            "skctr": versions_of(sys.executable, packages),
            "peer": versions_of(args.peer_python, ("deepctr-torch", "torch"))
            if peer
            else "not run",
        },
        "config": {
            "datasets": datasets,
            "folds": args.folds,
            "repeats": args.repeats,
            "temporal_repeats": args.temporal_repeats,
            "seed": args.seed,
            "threads": 1,
            "ece_bins": ECE_BINS,
            "lr_c_grid": list(LR_C_GRID),
            "peer_max_epochs": PEER_MAX_EPOCHS,
            "peer_patience": PEER_PATIENCE,
        },
        "datasets": {},
        "runs": [],
    }
    workdir = tempfile.mkdtemp(prefix="skctr_quality_bench_")
    base = {"workdir": workdir, "threads": 1, "folds": args.folds, "repeats": args.repeats}
    base["temporal_repeats"] = args.temporal_repeats
    base["seed"] = args.seed
    try:
        for dataset in datasets:
            log(f"== {dataset}: folds and encodings ...")
            meta = run_subprocess(
                sys.executable,
                __file__,
                {**base, "dataset": dataset, "kind": "prepare"},
                workdir,
                args.timeout,
            )
            summary["datasets"][dataset] = meta
            if "error" in meta:
                log(f"   preparation failed: {meta['error']}")
                continue
            runs = plan(dataset, "nohist" in meta["variants"], peer, meta["has_dense"])
            for name, library, kind in runs:
                if only and name not in only:
                    continue
                python = args.peer_python if kind == "peer" else sys.executable
                spec = {**base, "dataset": dataset, "model": name, "kind": kind}
                spec["n_folds"] = meta["n_folds"]
                result = run_subprocess(python, __file__, spec, workdir, args.timeout)
                record = {"dataset": dataset, "model": name, "library": library, **result}
                if "folds" in result:
                    record.update(summarise(result["folds"]))
                summary["runs"].append(record)
                status = (
                    f"ERROR {record['error'][:200]}"
                    if "error" in record
                    else f"AUC {cell(record, 'auc')}  logloss {cell(record, 'logloss')}  "
                    f"ECE {cell(record, 'ece')}"
                )
                log(f"   {name:20s} {library:12s} {status}  ({record['wall_s']:.0f} s)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary["total_wall_s"] = round(time.perf_counter() - started, 1)
    env = summary["environment"]
    summary["header"] = [
        f"Machine: {env['cpu']}, {env['cpu_count']} cores shared with other work, "
        f"{env['mem_total_gib']} GiB RAM, {env['os']}; run on {summary['date']}, "
        f"{summary['total_wall_s'] / 60:.1f} min in all.",
        f"Versions: {env['skctr']}; peer: {env['peer']}.",
    ]
    write_outputs(
        [
            (args.json, json.dumps(summary, indent=1) + "\n"),
            (args.markdown, to_markdown(summary)),
            (args.rst, to_rst(summary)),
        ]
    )
    log(f"total {summary['total_wall_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
