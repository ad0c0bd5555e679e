#!/usr/bin/env python
"""Quality and fit time of every skctr classifier next to DeepCTR-Torch 0.3.0, in one command.

Run from the repository root, after ``bash benchmarks/peer_env.sh`` (which creates
``.venv-peer/`` with the peer)::

    python benchmarks/models.py

Each of the 13 skctr classifiers, and the DeepCTR-Torch model of the same name where the peer
has one, is trained on three real samples bundled with skctr:

* ``criteo_8k``: train + dev rows (7,609) against the test rows (391);
* ``avazu_9k``: train + dev rows (8,567) against the test rows (432);
* ``movielens``: ml-latest-small split by time (80,668 / 20,168 rows), with the ``genres``
  and ``hist_movieId`` sequences; DIN attends to ``hist_movieId`` as the history of
  ``movieId``.

Both libraries get the *same* input: skctr's ``CTRFeatureTransformer`` is fitted once per
dataset on the training rows, in a subprocess, and its output (integer codes, scaled dense
values, right-padded sequences with their lengths) is saved to a scratch folder. skctr
models read it as an ``EncodedBatch``; the peer reads the same arrays through its
``SparseFeat`` / ``DenseFeat`` / ``VarLenSparseFeat`` (mean pooling) columns. Settings shared
by both: embedding size 8, MLP (256, 128) wherever a model has one, Adam with learning
rate 1e-3, batch size 256, a fixed number of epochs (3) with no early stopping, 2 torch
threads, fixed seeds. Every model run happens in a fresh subprocess (the peer in its own
virtual environment's python), so one failure (recorded in the table) never stops the run.

Writes ``benchmarks/results/models.json``, ``docs/benchmarks/models.md`` and
``docs/benchmarks/models.rst`` (the same tables for Sphinx).

This file is both the driver and the worker. The driver imports only the standard library;
the worker imports skctr (``--worker`` with a ``skctr`` spec, run by this python) or
DeepCTR-Torch (a ``peer`` spec, run by the peer's python, where skctr is not installed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field

from benchlib import (
    PEER_NAME,
    add_worker_arguments,
    build_peer_model,
    environment,
    fmt,
    import_optimiser_machinery,
    log,
    measured_run,
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

EMBEDDING_DIM = 8
HIDDEN_UNITS = (256, 128)
LEARNING_RATE = 1e-3
BATCH_SIZE = 256
PREDICT_BATCH_SIZE = 4096
DATASETS = ("criteo_8k", "avazu_9k", "movielens")
PREPROCESSING = (
    "skctr's CTRFeatureTransformer, fitted on the training rows, for both libraries: "
    "integer codes (0 padding, 1 unseen, 2 missing), dense values log1p-transformed and "
    "standardised (Criteo), sequences right-padded with their lengths"
)


@dataclass(frozen=True)
class ModelSpec:
    """One row of the benchmark: a skctr classifier and the peer's model of the same kind.

    Parameters
    ----------
    name : str
        Row label.
    skctr_class : str
        Name of the class in :mod:`skctr.estimators`.
    skctr_params : dict
        Parameters of the skctr classifier beyond the shared ones set by the benchmark
        (embedding size, MLP, learning rate, batch size, epochs, seed, threads).
    peer_class : str or None
        Name of the class in ``deepctr_torch.models``; None where the peer has no such model.
    peer_params : dict
        Keyword arguments of the peer model beyond its feature columns, seed and device.
    needs_history : bool
        The peer model cannot run without a behaviour sequence (DIN).
    """

    name: str
    skctr_class: str
    skctr_params: dict = field(default_factory=dict)
    peer_class: str | None = None
    peer_params: dict = field(default_factory=dict)
    needs_history: bool = False


MLP = {"dnn_hidden_units": HIDDEN_UNITS}

#: The models, in the order of ``skctr.all_classifiers()``. Where a library's default
#: differs from the other's, both are set to one value (e.g. the CIN sizes, the AutoInt
#: attention width, DIN's attention MLP); regularisation and initialisation stay at each
#: library's own defaults.
MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("LR", "LRClassifier"),
    ModelSpec("FM", "FMClassifier"),
    ModelSpec("DeepFM", "DeepFMClassifier", {}, "DeepFM", MLP),
    ModelSpec(
        "DCN",
        "DCNClassifier",
        {"cross_num": 2, "cross_parameterization": "vector"},
        "DCN",
        {**MLP, "cross_num": 2, "cross_parameterization": "vector"},
    ),
    ModelSpec(
        "DIN",
        "DINClassifier",
        {"activation": "relu", "att_hidden_units": (80, 40), "att_activation": "dice"},
        "DIN",
        {**MLP, "dnn_activation": "relu", "att_hidden_size": (80, 40), "att_activation": "Dice"},
        needs_history=True,
    ),
    ModelSpec(
        "xDeepFM",
        "XDeepFMClassifier",
        {
            "cin_layer_sizes": (128, 128),
            "cin_split_half": True,
            "cin_activation": "identity",
            "interact_dense": False,
        },
        "xDeepFM",
        {**MLP, "cin_layer_size": (128, 128), "cin_split_half": True, "cin_activation": "linear"},
    ),
    ModelSpec(
        "AutoInt",
        "AutoIntClassifier",
        {
            "hidden_units": HIDDEN_UNITS,
            "att_layer_num": 3,
            "att_head_num": 2,
            "att_embedding_dim": EMBEDDING_DIM // 2,
            "att_res": True,
            "interact_dense": False,
        },
        "AutoInt",
        {**MLP, "att_layer_num": 3, "att_head_num": 2, "att_res": True},
    ),
    ModelSpec("FNN", "FNNClassifier"),
    ModelSpec(
        "PNN",
        "PNNClassifier",
        {"product_type": "inner"},
        "PNN",
        {**MLP, "use_inner": True, "use_outter": False},
    ),
    ModelSpec("WDL", "WDLClassifier", {}, "WDL", MLP),
    ModelSpec("MLR", "MLRClassifier", {"region_num": 4}, "MLR", {"region_num": 4}),
    ModelSpec("NFM", "NFMClassifier", {"bi_dropout": 0.0}, "NFM", {**MLP, "bi_dropout": 0.0}),
    ModelSpec("AFM", "AFMClassifier", {"attention_dim": 8}, "AFM", {"attention_factor": 8}),
)

NOTES = (
    "AutoInt runs as AutoInt+ on both sides (MLP (256, 128) next to 3 attention layers of "
    "2 heads × 4 = 8 units, the peer's only layout).",
    "DIN: MLP with ReLU, attention MLP (80, 40) with Dice on both sides. On Criteo and Avazu "
    "there is no behaviour history: skctr's DIN is then an embedding + MLP network and the "
    "peer's DIN cannot be built (n/a).",
    "xDeepFM: CIN (128, 128), split half, no activation on both sides. The CIN and "
    "AutoInt's attention layers see the categorical fields only on both sides "
    "(interact_dense=False, the peer's only layout; skctr's default, True, also makes the "
    "dense columns fields: on Criteo 51 fields instead of 26, 2-4x the interaction work); "
    "the dense columns reach the MLP.",
    "FNN pre-trains a factorization machine for 2 epochs before its 3 epochs (skctr's default "
    "recipe); its fit time includes that stage.",
    "LR, FM and FNN have no DeepCTR-Torch 0.3.0 counterpart (n/a).",
    "Regularisation and initialisation are each library's defaults: skctr puts L2 1e-6 on the "
    "embedding rows a batch looks up; the peer puts L2 1e-5 on all embedding and linear "
    "weights each step.",
    "The peer's sequences: VarLenSparseFeat(combiner='mean'); hist_movieId shares movieId's "
    "table (embedding_name) and carries its length column (DIN needs one); genres is masked "
    "on the padding code 0.",
    "The Criteo and Avazu test sets have about 400 rows: their AUC differences of a few "
    "points are within noise.",
    "Peer errors are the peer's own and are left as they are: its AFM refuses dense columns "
    "(Criteo); its xDeepFM and AutoInt size their layers by the number of embedding tables, "
    "so a sequence sharing a table (hist_movieId with movieId) breaks them (MovieLens).",
    "At 3 epochs and learning rate 1e-3 the models whose signal sits mostly in the embedding "
    "tables (LR, FM, MLR, AFM) are far from converged; skctr updates only the rows a batch "
    "touches (lazy Adam), the peer every row at every step (dense Adam, whose momentum keeps "
    "moving rows between their occurrences).",
)


# ----------------------------------------------------------------------------- helpers
def scores(y_true, proba) -> dict:
    """Test AUC and log-loss.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary labels.
    proba : array-like of shape (n_samples,)
        Predicted probabilities of the positive class.

    Returns
    -------
    dict
        ``auc`` and ``logloss``, rounded to 5 decimals.
    """
    import numpy as np
    from sklearn.metrics import log_loss, roc_auc_score

    proba = np.clip(np.asarray(proba, dtype=np.float64).ravel(), 1e-7, 1 - 1e-7)
    return {
        "auc": round(float(roc_auc_score(y_true, proba)), 5),
        "logloss": round(float(log_loss(y_true, proba, labels=[0, 1])), 5),
    }


# ----------------------------------------------------------------------------- workers
def load_split(dataset: str):
    """Raw training and test rows of a benchmark dataset, with the encoder to fit on them.

    Parameters
    ----------
    dataset : {"criteo_8k", "avazu_9k", "movielens"}
        Which dataset.

    Returns
    -------
    X_train, y_train, X_test, y_test : DataFrame, Series, DataFrame, Series
        The rows.
    encoder : CTRFeatureTransformer
        Unfitted, with the dataset's columns declared.
    """
    import pandas as pd

    from skctr import CTRFeatureTransformer
    from skctr.datasets import load_avazu_9k, load_criteo_8k, load_movielens

    if dataset == "movielens":
        train = load_movielens(split="train")
        test = load_movielens(split="test")
        encoder = CTRFeatureTransformer(
            sparse_features=train.sparse_features,
            sequence_features=train.sequence_features,
            maxlen={"genres": 10, "hist_movieId": 50},
        )
        return train.data, train.target, test.data, test.target, encoder
    loader = {"criteo_8k": load_criteo_8k, "avazu_9k": load_avazu_9k}[dataset]
    parts = [loader(split=s) for s in ("train", "dev")]
    test = loader(split="test")
    X_train = pd.concat([p.data for p in parts], ignore_index=True)
    y_train = pd.concat([p.target for p in parts], ignore_index=True)
    encoder = CTRFeatureTransformer(
        sparse_features=test.sparse_features,
        dense_features=test.dense_features or None,
        log_transform=bool(test.dense_features),
    )
    return X_train, y_train, test.data, test.target, encoder


def worker_prepare(spec: dict) -> dict:
    """Encode one dataset with CTRFeatureTransformer and save the arrays both libraries read.

    Parameters
    ----------
    spec : dict
        ``dataset`` and ``workdir`` (where ``<dataset>.npz``, ``<dataset>.schema.pkl`` and
        ``<dataset>.meta.json`` are written).

    Returns
    -------
    dict
        Row counts, positive rates and the field list (the meta data).
    """
    X_train, y_train, X_test, y_test, encoder = load_split(spec["dataset"])
    start = time.perf_counter()
    train = encoder.fit_transform(X_train)
    test = encoder.transform(X_test)
    encode_s = time.perf_counter() - start
    base = os.path.join(spec["workdir"], spec["dataset"])
    meta = save_encoded(base, {"train": (train, y_train), "test": (test, y_test)}, encoder.schema_)
    meta.update(dataset=spec["dataset"], encode_s=round(encode_s, 2), encoder=repr(encoder))
    with open(base + ".meta.json", "w") as fh:
        json.dump(meta, fh)
    return meta


def read_arrays(spec: dict) -> tuple[dict, dict]:
    """The saved arrays and meta data of a dataset.

    Parameters
    ----------
    spec : dict
        ``dataset`` and ``workdir``.

    Returns
    -------
    arrays : dict of str to ndarray
        The contents of ``<dataset>.npz``.
    meta : dict
        The contents of ``<dataset>.meta.json``.
    """
    return read_encoded(os.path.join(spec["workdir"], spec["dataset"]))


def worker_skctr(spec: dict) -> dict:
    """Train and score one skctr classifier on the saved encoding.

    Parameters
    ----------
    spec : dict
        ``dataset``, ``workdir``, ``model`` (a :data:`MODELS` name), ``epochs``, ``seed``
        and ``threads``.

    Returns
    -------
    dict
        ``auc``, ``logloss``, ``fit_s``, ``predict_s``, the per-epoch training loss and the
        classifier's parameters.
    """
    import pickle

    import torch

    from skctr import estimators
    from skctr.preprocessing.schema import EncodedBatch

    torch.set_num_threads(spec["threads"])
    import_optimiser_machinery()
    seed_everything(spec["seed"])
    arrays, _ = read_arrays(spec)
    with open(os.path.join(spec["workdir"], spec["dataset"] + ".schema.pkl"), "rb") as fh:
        schema = pickle.load(fh)

    def batch(part: str) -> EncodedBatch:
        return EncodedBatch(
            schema=schema,
            sparse=arrays[f"sparse_{part}"],
            dense=arrays[f"dense_{part}"],
            sequences=tuple(arrays[f"seq{i}_{part}"] for i in range(len(schema.sequence))),
            lengths=arrays[f"lengths_{part}"],
        )

    model = next(m for m in MODELS if m.name == spec["model"])
    cls = getattr(estimators, model.skctr_class)
    accepted = cls().get_params()
    params = {
        "learning_rate": LEARNING_RATE,
        "batch_size": BATCH_SIZE,
        "max_epochs": spec["epochs"],
        "early_stopping": False,
        "random_state": spec["seed"],
        "n_jobs": spec["threads"],
    }
    for name, value in (
        ("embedding_dim", EMBEDDING_DIM),
        ("hidden_units", HIDDEN_UNITS),
        ("linear_learning_rate", LEARNING_RATE),  # one step for every weight, as the peer
    ):
        if name in accepted:
            params[name] = value
    params.update(model.skctr_params)
    if model.name == "DIN" and any(s.shares for s in schema.sequence):
        params["history_features"] = tuple(s.shares for s in schema.sequence if s.shares)
    clf = cls(**params)
    train, test = batch("train"), batch("test")
    start, cpu = time.perf_counter(), time.process_time()
    clf.fit(train, arrays["y_train"])
    fit_s, fit_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    proba = clf.predict_proba(test)[:, 1]
    predict_s = time.perf_counter() - start
    return {
        **scores(arrays["y_test"], proba),
        "fit_s": round(fit_s, 2),
        "fit_cpu_s": round(fit_cpu_s, 2),
        "predict_s": round(predict_s, 3),
        "train_loss": [round(float(h["train_loss"]), 5) for h in clf.history_],
        "params": {k: repr(v) for k, v in clf.get_params().items() if k != "features"},
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def worker_peer(spec: dict) -> dict:
    """Train and score one DeepCTR-Torch model on the saved encoding.

    Parameters
    ----------
    spec : dict
        ``dataset``, ``workdir``, ``model`` (a :data:`MODELS` name), ``epochs``, ``seed``
        and ``threads``.

    Returns
    -------
    dict
        ``auc``, ``logloss``, ``fit_s``, ``predict_s`` and the per-epoch training loss.
    """
    import numpy as np
    import torch

    stub_requests()
    import deepctr_torch

    torch.set_num_threads(spec["threads"])
    import_optimiser_machinery()
    seed_everything(spec["seed"])
    arrays, meta = read_arrays(spec)
    model = next(m for m in MODELS if m.name == spec["model"])
    columns, inputs = peer_inputs(arrays, meta, ("train", "test"), EMBEDDING_DIM)
    kwargs = {**model.peer_params, "seed": spec["seed"], "device": "cpu"}
    # skctr's fit builds its network and optimiser: the peer's are timed with its fit too
    start, cpu = time.perf_counter(), time.process_time()
    net = build_peer_model(model.peer_class, columns, meta, kwargs)
    net.compile(torch.optim.Adam(net.parameters(), lr=LEARNING_RATE), "binary_crossentropy")
    history = net.fit(
        inputs["train"],
        arrays["y_train"].astype(np.float32),
        batch_size=BATCH_SIZE,
        epochs=spec["epochs"],
        verbose=0,
        shuffle=True,
    )
    fit_s, fit_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    proba = net.predict(inputs["test"], batch_size=PREDICT_BATCH_SIZE)
    predict_s = time.perf_counter() - start
    return {
        **scores(arrays["y_test"], proba),
        "fit_s": round(fit_s, 2),
        "fit_cpu_s": round(fit_cpu_s, 2),
        "predict_s": round(predict_s, 3),
        "train_loss": [round(float(v), 5) for v in history.history.get("loss", [])],
        "params": {k: repr(v) for k, v in kwargs.items()},
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "deepctr_torch": deepctr_torch.__version__,
    }


WORKERS = {"prepare": worker_prepare, "skctr": worker_skctr, "peer": worker_peer}


# ----------------------------------------------------------------------------- driver
def table_rows(summary: dict, dataset: str) -> list[list[str]]:
    """Cells of one dataset's table, header first.

    Parameters
    ----------
    summary : dict
        The results.
    dataset : str
        Which dataset.

    Returns
    -------
    list of list of str
        One row per model: name, AUC, logloss and fit seconds, each for skctr then the peer.
    """
    rows = [
        [
            "model",
            "AUC skctr",
            "AUC peer",
            "logloss skctr",
            "logloss peer",
            "fit s skctr",
            "fit s peer",
        ]
    ]
    runs = {(r["library"], r["model"]): r for r in summary["runs"] if r["dataset"] == dataset}
    for spec in MODELS:
        if spec.name not in summary["config"]["models"]:
            continue
        cells: dict[str, list[str]] = {}
        for library in ("skctr", "peer"):
            run = runs.get((library, spec.name))
            if library == "peer" and spec.peer_class is None:
                cells[library] = ["n/a", "", ""]
            elif run is None:
                cells[library] = ["not run", "", ""]
            elif "skipped" in run:
                cells[library] = ["n/a", "", ""]
            elif "error" in run:
                cells[library] = ["error¹", "", ""]
            else:
                busy = run["foreign_cpu"] > summary["config"]["busy_threshold"]
                cells[library] = [
                    fmt(run["auc"], 4),
                    fmt(run["logloss"], 4),
                    fmt(run["fit_s"], 1) + ("²" if busy else ""),
                ]
        rows.append([spec.name] + [cells[lib][k] for k in range(3) for lib in ("skctr", "peer")])
    return rows


def header_lines(summary: dict) -> list[str]:
    """The paragraph that says how the numbers were made, as plain sentences.

    Parameters
    ----------
    summary : dict
        The results.

    Returns
    -------
    list of str
        One entry per bullet point.
    """
    env, cfg = summary["environment"], summary["config"]
    return [
        f"Machine: {env['cpu']}, {env['cpu_count']} cores, {env['mem_total_gib']} GiB RAM, "
        f"{env['os']}; run on {summary['date']}, {summary['total_wall_s'] / 60:.1f} min "
        "in all.",
        f"skctr side: {env['skctr']}. Peer side: {env['peer']}. {cfg['threads']} torch "
        f"threads per run, seed {cfg['seed']}, every model in a fresh subprocess.",
        f"Settings for both: embedding size {cfg['embedding_dim']}, MLP "
        f"{tuple(cfg['hidden_units'])} wherever the model has one, Adam (learning rate "
        f"{cfg['learning_rate']}), batch size {cfg['batch_size']}, {cfg['epochs']} "
        f"epoch{'s' if cfg['epochs'] != 1 else ''}, no early stopping.",
        f"Input for both: {cfg['preprocessing']}.",
        "Fit time is the wall time of ``fit`` on the already encoded rows (its CPU time is "
        "in the JSON as ``fit_cpu_s``). Times are indicative: this is a small shared machine. "
        f"A run during which other processes used more than {100 * cfg['busy_threshold']:.0f} "
        f"% of the CPU was repeated up to {cfg['busy_retries']} times and the quietest attempt "
        "kept; ² marks a time still measured on a busy machine, inflated, often several-fold "
        f"({summary['n_busy']} of {summary['n_timed']} runs; median share of the CPU used by "
        f"other processes {100 * summary['median_foreign_cpu']:.0f} %).",
    ]


def dataset_title(summary: dict, dataset: str) -> str:
    """Section title of one dataset.

    Parameters
    ----------
    summary : dict
        The results.
    dataset : str
        Which dataset.

    Returns
    -------
    str
        The name with the row counts.
    """
    meta = summary["datasets"].get(dataset, {})
    if "n_train" not in meta:
        return f"{dataset} (preparation failed)"
    split = "temporal split" if dataset == "movielens" else "train + dev vs test"
    return f"{dataset}: {meta['n_train']:,} train / {meta['n_test']:,} test rows ({split})"


def error_lines(summary: dict) -> list[str]:
    """One line per failed run.

    Parameters
    ----------
    summary : dict
        The results.

    Returns
    -------
    list of str
        ``library model on dataset: error``.
    """
    return [
        f"{r['library']} {r['model']} on {r['dataset']}: {r['error'].splitlines()[0][:300]}"
        for r in summary["runs"]
        if "error" in r
    ]


def to_markdown(summary: dict) -> str:
    """The results as a Markdown page.

    Parameters
    ----------
    summary : dict
        The results.

    Returns
    -------
    str
        The page.
    """
    lines = [f"# Models: skctr vs {PEER_NAME}", ""]
    lines += ["Produced by:", "", "```bash", summary["command"], "```", ""]
    lines += [f"- {s.replace('``', '`')}" for s in header_lines(summary)]
    for dataset in summary["config"]["datasets"]:
        lines += ["", f"## {dataset_title(summary, dataset)}", ""]
        rows = table_rows(summary, dataset)
        lines.append("| " + " | ".join(rows[0]) + " |")
        lines.append("|---" + "|---:" * (len(rows[0]) - 1) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    lines += ["", "## Notes", ""]
    lines += [f"- {n}" for n in NOTES]
    errors = error_lines(summary)
    if errors:
        lines += ["", "¹ Errors (full tracebacks in `benchmarks/results/models.json`):", ""]
        lines += [f"- {e}" for e in errors]
    return "\n".join(lines) + "\n"


def to_rst(summary: dict) -> str:
    """The results as a reStructuredText page for Sphinx (the same content as the Markdown).

    Parameters
    ----------
    summary : dict
        The results.

    Returns
    -------
    str
        The page.
    """
    title = f"Models: skctr vs {PEER_NAME}"
    lines = [title, "=" * len(title), "", "Produced by:", "", ".. code-block:: bash", ""]
    lines += [f"   {summary['command']}", ""]
    for sentence in header_lines(summary):
        parts = sentence.split("``")
        text = "".join(f"``{p}``" if i % 2 else rst_escape(p) for i, p in enumerate(parts))
        lines.append(f"- {text}")
    for dataset in summary["config"]["datasets"]:
        heading = rst_escape(dataset_title(summary, dataset))
        lines += ["", heading, "-" * len(heading), ""]
        rows = table_rows(summary, dataset)
        lines += [".. list-table::", "   :header-rows: 1", "   :widths: auto", ""]
        for row in rows:
            lines.append(f"   * - {rst_escape(row[0])}")
            lines += [f"     - {rst_escape(c)}" if c else "     -" for c in row[1:]]
    lines += ["", "Notes", "-----", ""]
    lines += [f"- {rst_escape(n)}" for n in NOTES]
    errors = error_lines(summary)
    if errors:
        lines += ["", "¹ Errors (full tracebacks in ``benchmarks/results/models.json``):", ""]
        lines += [f"- {rst_escape(e)}" for e in errors]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options.

    Parameters
    ----------
    argv : list of str, optional
        Arguments; ``sys.argv[1:]`` when None.

    Returns
    -------
    argparse.Namespace
        The options.
    """
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--datasets", default=",".join(DATASETS), help="comma list out of %(default)s"
    )
    parser.add_argument(
        "--models", default=",".join(m.name for m in MODELS), help="comma list out of %(default)s"
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--peer-python",
        default=os.path.join(ROOT, ".venv-peer", "bin", "python"),
        help="interpreter with deepctr-torch 0.3.0 (see benchmarks/peer_env.sh)",
    )
    parser.add_argument("--no-peer", action="store_true", help="run skctr only")
    parser.add_argument(
        "--timeout",
        type=float,
        default=1200,
        help="seconds before one model run is killed (recorded as an error)",
    )
    parser.add_argument(
        "--busy-threshold",
        type=float,
        default=0.2,
        help="share of the CPU used by other processes above which a run's time is suspect",
    )
    parser.add_argument(
        "--busy-retries",
        type=int,
        default=2,
        help="times a run is repeated while the machine was busy; the quietest is kept",
    )
    parser.add_argument("--json", default=os.path.join(HERE, "results", "models.json"))
    parser.add_argument("--markdown", default=os.path.join(ROOT, "docs", "benchmarks", "models.md"))
    parser.add_argument("--rst", default=os.path.join(ROOT, "docs", "benchmarks", "models.rst"))
    add_worker_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the whole benchmark and write the JSON, Markdown and reStructuredText outputs.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments; ``sys.argv[1:]`` when None.
    """
    args = parse_args(argv)
    if args.worker:
        worker_main(WORKERS, args.worker, args.worker_out)
        return
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = (set(datasets) - set(DATASETS)) | (set(names) - {m.name for m in MODELS})
    if unknown:
        sys.exit(f"unknown datasets or models: {sorted(unknown)}")
    models = [m for m in MODELS if m.name in names]
    peer_ok = not args.no_peer and os.path.exists(args.peer_python)
    if not args.no_peer and not peer_ok:
        sys.exit(
            f"{args.peer_python} not found: run `bash benchmarks/peer_env.sh` first, "
            "or pass --peer-python or --no-peer"
        )

    started = time.perf_counter()
    summary: dict = {
        "command": "python "
        + " ".join(shlex.quote(a) for a in ["benchmarks/models.py", *(argv or sys.argv[1:])]),
        "date": datetime.date.today().isoformat(),
        "environment": {
            **environment(),
            "skctr": versions_of(sys.executable, ("skctr", "torch", "scikit-learn", "pandas")),
            "peer": (
                versions_of(args.peer_python, ("deepctr-torch", "torch", "scikit-learn"))
                if peer_ok
                else "not run"
            ),
        },
        "config": {
            "datasets": datasets,
            "models": [m.name for m in models],
            "epochs": args.epochs,
            "seed": args.seed,
            "threads": args.threads,
            "embedding_dim": EMBEDDING_DIM,
            "hidden_units": list(HIDDEN_UNITS),
            "learning_rate": LEARNING_RATE,
            "batch_size": BATCH_SIZE,
            "early_stopping": False,
            "busy_threshold": args.busy_threshold,
            "busy_retries": args.busy_retries,
            "preprocessing": PREPROCESSING,
            "models_detail": [
                {
                    "name": m.name,
                    "skctr": m.skctr_class,
                    "skctr_params": repr(m.skctr_params),
                    "peer": m.peer_class,
                    "peer_params": repr(m.peer_params),
                }
                for m in models
            ],
            "notes": list(NOTES),
        },
        "datasets": {},
        "runs": [],
    }
    workdir = tempfile.mkdtemp(prefix="skctr_models_bench_")
    try:
        for dataset in datasets:
            log(f"== {dataset}: encoding with CTRFeatureTransformer ...")
            base = {"dataset": dataset, "workdir": workdir, "threads": args.threads}
            meta = run_subprocess(
                sys.executable, __file__, {**base, "kind": "prepare"}, workdir, args.timeout
            )
            summary["datasets"][dataset] = meta
            if "error" in meta:
                log(f"   preparation failed: {meta['error']}")
                continue
            has_history = any(s[3] for s in meta["sequence"])
            for model in models:
                spec = {**base, "model": model.name, "epochs": args.epochs, "seed": args.seed}
                plan = [("skctr", sys.executable)]
                if peer_ok and model.peer_class:
                    plan.append(("peer", args.peer_python))
                for library, python in plan:
                    record = {"dataset": dataset, "model": model.name, "library": library}
                    if library == "peer" and model.needs_history and not has_history:
                        record["skipped"] = "needs a behaviour sequence; this dataset has none"
                    else:
                        record.update(
                            measured_run(python, __file__, {**spec, "kind": library}, workdir, args)
                        )
                    summary["runs"].append(record)
                    if "skipped" in record:
                        continue
                    status = (
                        f"ERROR {record['error'][:200]}"
                        if "error" in record
                        else f"AUC {record['auc']:.4f}  logloss {record['logloss']:.4f}  "
                        f"fit {record['fit_s']:.1f} s"
                    )
                    log(
                        f"   {model.name:8s} {library:5s} {status}  "
                        f"(wall {record['wall_s']:.1f} s, foreign CPU "
                        f"{100 * record['foreign_cpu']:.0f} %)"
                    )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    foreign = sorted(r["foreign_cpu"] for r in summary["runs"] if "foreign_cpu" in r) or [0.0]
    summary["max_foreign_cpu"] = foreign[-1]
    summary["n_timed"] = sum("fit_s" in r for r in summary["runs"])
    summary["n_busy"] = sum(
        "fit_s" in r and r["foreign_cpu"] > args.busy_threshold for r in summary["runs"]
    )
    summary["median_foreign_cpu"] = foreign[len(foreign) // 2]
    summary["total_wall_s"] = round(time.perf_counter() - started, 1)
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
