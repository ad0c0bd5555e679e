#!/usr/bin/env python
"""Training and prediction speed of skctr next to DeepCTR-Torch 0.3.0, in one command.

Run from the repository root, after ``bash benchmarks/peer_env.sh`` (which creates
``.venv-peer/`` with the peer)::

    python benchmarks/speed.py                       # 200,000 rows, ~15 min on 2 cores
    python benchmarks/speed.py --n 1000000 --models deepfm

The data and the peer's side come from the team's reference harness
``../shared/bench/peer_deepctr_torch.py`` (``--peer-script``): Criteo-shaped rows (13
dense, 26 categorical fields with cardinalities from 10 to 100,000, a candidate item and a
behaviour history of up to 50 items for DIN) with a planted logistic label, split 80/20
with ``train_test_split(random_state=2020)``. The harness runs the peer exactly as its
README does (LabelEncoder + MinMaxScaler, one epoch, embedding 16, MLP (256, 128), Adam
1e-3) in fresh subprocesses and measures the machine (GEMM rate, the MLP-only ceiling).

skctr gets the same rows and split, encoded by ``CTRFeatureTransformer`` (timed apart, as
the peer's preprocessing is; without missing indicators, so both models get the same 39
inputs), and trains each model with the same settings for one epoch
with no early stopping, each run in a fresh subprocess. Reported per run: training and
prediction samples/s (wall time of ``fit`` / ``predict_proba`` on the encoded rows), peak
RSS, test AUC and log-loss. Also measured for skctr: the single-row ``predict_proba``
latency of a fitted ``Pipeline`` (raw one-row DataFrame in, probability out; p50 / p99),
and DeepFM's time per training step as the vocabulary of each field grows from 10,000 to
10,000,000 rows (it should not grow: a step touches only the rows of its batch).

Writes ``benchmarks/results/speed.json``, ``docs/benchmarks/speed.md``, ``.rst`` and a bar
chart ``docs/benchmarks/speed.svg``. Times on a small shared machine vary; every ratio is
taken within one run, and a run disturbed by other processes is repeated.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import (
    add_worker_arguments,
    environment,
    import_optimiser_machinery,
    log,
    markdown_to_rst,
    measured_run,
    run_subprocess,
    versions_of,
    worker_main,
    write_outputs,  # the benchmarks folder is the script's sys.path[0]
)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_PEER_SCRIPT = os.path.join(
    os.path.dirname(ROOT), "shared", "bench", "peer_deepctr_torch.py"
)
PEER_NAME = "DeepCTR-Torch 0.3.0"

#: skctr classifier and its settings for each model the peer harness runs. Where the two
#: libraries' defaults differ in the model's structure, skctr is set to the peer's
#: structure (AutoInt with its MLP, DIN's attention MLP sizes, the 26 categorical fields
#: alone in AutoInt's attention and xDeepFM's CIN) so both do the same work.
MODELS = {
    "deepfm": ("DeepFMClassifier", {}),
    "dcn": ("DCNClassifier", {"cross_num": 2}),
    "autoint": ("AutoIntClassifier", {"hidden_units": (256, 128), "interact_dense": False}),
    "din": ("DINClassifier", {"att_hidden_units": (64, 16)}),
    "xdeepfm": ("XDeepFMClassifier", {"cin_layer_sizes": (256, 128), "interact_dense": False}),
}
VOCAB_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
DEFAULT_ROWS = 200_000


def _peer_module(path: str):
    """Import the reference harness (numpy only at import time) for its data generator."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("peer_harness", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- workers
def worker_prepare(spec: dict) -> dict:
    """Generate the rows, split them like the peer, encode them with CTRFeatureTransformer.

    Saves the encoded train and test batches (and the raw test rows for the latency run).
    """
    import pickle

    from sklearn.model_selection import train_test_split

    from skctr import CTRFeatureTransformer

    peer = _peer_module(spec["peer_script"])
    data, _diag, _prob, _ = peer.generate_dataset(spec["n"], spec["seed"], with_sequence=True)
    train, test = train_test_split(data, test_size=0.2, random_state=peer.SPLIT_SEED)
    out: dict = {"n_train": len(train), "n_test": len(test)}
    kinds = {
        "tabular": {"sparse_features": peer.SPARSE, "dense_features": peer.DENSE},
        "din": {
            "sparse_features": [*peer.SPARSE, "item_id", "cate_id"],
            "dense_features": peer.DENSE,
            "sequence_features": {"hist_item_id": "item_id", "hist_cate_id": "cate_id"},
            "maxlen": peer.SEQ_MAXLEN,
        },
    }
    for kind, columns in kinds.items():
        if kind == "din" and "din" not in spec["models"]:
            continue
        # no missing indicators: the same 13 dense + 26 categorical inputs as the peer's
        transformer = CTRFeatureTransformer(**columns, missing_indicator=False)
        started = time.perf_counter()
        encoded_train = transformer.fit_transform(train)
        out[f"{kind}_fit_transform_s"] = round(time.perf_counter() - started, 2)
        encoded_test = transformer.transform(test)
        with open(os.path.join(spec["workdir"], f"{kind}.pkl"), "wb") as fh:
            pickle.dump(
                {
                    "train": encoded_train,
                    "test": encoded_test,
                    "y_train": train["label"].to_numpy(),
                    "y_test": test["label"].to_numpy(),
                },
                fh,
                protocol=5,
            )
        out[f"{kind}_embedding_rows"] = int(
            sum(f.vocab_size for f in encoded_train.schema.sparse)
            + sum(f.vocab_size for f in encoded_train.schema.sequence if f.shares is None)
        )
    test[[*peer.DENSE, *peer.SPARSE]].iloc[:2000].to_pickle(
        os.path.join(spec["workdir"], "raw_test.pkl")
    )
    train[[*peer.DENSE, *peer.SPARSE, "label"]].iloc[:50_000].to_pickle(
        os.path.join(spec["workdir"], "raw_train.pkl")
    )
    out["columns"] = {"dense": len(peer.DENSE), "sparse": len(peer.SPARSE)}
    return out


def _settings(spec: dict) -> dict:
    # the peer's settings; every weight at one step, as in the peer (skctr's first-order
    # weights would take 3x by default: linear_learning_rate, where the model has it)
    return {
        "embedding_dim": spec["embedding_dim"],
        "hidden_units": tuple(spec["hidden_units"]),
        "learning_rate": spec["learning_rate"],
        "linear_learning_rate": spec["learning_rate"],
        "batch_size": spec["batch_size"],
        "max_epochs": 1,
        "early_stopping": False,
        "random_state": spec["seed"],
    }


def worker_skctr(spec: dict) -> dict:
    """Train one skctr model for one epoch on the encoded rows; time fit and predict."""
    import pickle

    import numpy as np
    import torch
    from sklearn.metrics import log_loss, roc_auc_score

    import skctr

    torch.set_num_threads(spec["threads"])
    import_optimiser_machinery()
    kind = "din" if spec["model"] == "din" else "tabular"
    with open(os.path.join(spec["workdir"], f"{kind}.pkl"), "rb") as fh:
        data = pickle.load(fh)
    class_name, extra = MODELS[spec["model"]]
    cls = getattr(skctr, class_name)
    settings = _settings(spec)
    if "linear_learning_rate" not in cls().get_params():  # a model without a first-order term
        del settings["linear_learning_rate"]
    clf = cls(**{**settings, **extra})
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    clf.fit(data["train"], data["y_train"])
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    proba = clf.predict_proba(data["test"])[:, 1]
    predict_s = time.perf_counter() - started
    n_train, n_test = len(data["y_train"]), len(data["y_test"])
    steps = -(-n_train // spec["batch_size"])
    return {
        "fit_s": round(fit_s, 3),
        "train_samples_per_s": round(n_train / fit_s, 1),
        "ms_per_step": round(1000 * fit_s / steps, 2),
        "predict_s": round(predict_s, 3),
        "predict_samples_per_s": round(n_test / predict_s, 1),
        "test_auc": round(float(roc_auc_score(data["y_test"], proba)), 5),
        "test_logloss": round(float(log_loss(data["y_test"], np.clip(proba, 1e-7, 1 - 1e-7))), 5),
        "peak_rss_before_fit_mib": round(rss_before, 1),
        "threads": torch.get_num_threads(),
    }


def worker_latency(spec: dict) -> dict:
    """p50 / p99 of ``predict_proba`` on one raw row through a fitted Pipeline."""
    import numpy as np
    import pandas as pd
    import torch
    from sklearn.pipeline import make_pipeline

    from skctr import CTRFeatureTransformer, DeepFMClassifier

    torch.set_num_threads(spec["threads"])
    peer = _peer_module(spec["peer_script"])
    train = pd.read_pickle(os.path.join(spec["workdir"], "raw_train.pkl"))
    test = pd.read_pickle(os.path.join(spec["workdir"], "raw_test.pkl"))
    pipe = make_pipeline(
        CTRFeatureTransformer(sparse_features=peer.SPARSE, dense_features=peer.DENSE),
        DeepFMClassifier(**_settings(spec)),
    )
    pipe.fit(train.drop(columns="label"), train["label"].to_numpy())
    rows = [test.iloc[[i]] for i in range(len(test))]
    for row in rows[:50]:  # warm-up
        pipe.predict_proba(row)
    times = []
    for row in rows:
        started = time.perf_counter()
        pipe.predict_proba(row)
        times.append(time.perf_counter() - started)
    ms = 1000 * np.asarray(times)
    return {
        "calls": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "threads": torch.get_num_threads(),
    }


def worker_vocab(spec: dict) -> dict:
    """DeepFM's time per training step with fields of ``vocab`` rows each."""
    import numpy as np
    import torch

    from skctr import DeepFMClassifier
    from skctr.preprocessing.schema import (
        NUM_RESERVED,
        DenseField,
        EncodedBatch,
        FeatureSchema,
        SparseField,
    )

    torch.set_num_threads(spec["threads"])
    vocab, n_fields, n_rows = spec["vocab"], spec["vocab_fields"], spec["vocab_rows"]
    rng = np.random.default_rng(0)
    schema = FeatureSchema(
        sparse=tuple(SparseField(f"c{i}", vocab) for i in range(n_fields)),
        dense=(DenseField("x"),),
    )
    batch = EncodedBatch(
        sparse=rng.integers(NUM_RESERVED, vocab, size=(n_rows, n_fields)),
        dense=rng.normal(size=(n_rows, 1)).astype(np.float32),
        schema=schema,
    )
    y = (rng.random(n_rows) < 0.25).astype(np.int64)
    # two epochs: the first also allocates (and first touches) Adam's moment tables, once
    clf = DeepFMClassifier(**{**_settings(spec), "max_epochs": 2})
    started = time.perf_counter()
    clf.fit(batch, y)
    fit_s = time.perf_counter() - started
    steps = -(-n_rows // spec["batch_size"])
    return {
        "vocab_per_field": vocab,
        "fields": n_fields,
        "table_mib": round(n_fields * vocab * (spec["embedding_dim"] + 1) * 4 / 2**20, 1),
        "ms_per_step": round(1000 * clf.history_[-1]["time"] / steps, 2),
        "ms_per_step_first_epoch": round(1000 * clf.history_[0]["time"] / steps, 2),
        "fit_s_with_allocation": round(fit_s, 2),
        "threads": torch.get_num_threads(),
    }


WORKERS = {
    "prepare": worker_prepare,
    "skctr": worker_skctr,
    "latency": worker_latency,
    "vocab": worker_vocab,
}


# ----------------------------------------------------------------------------- driver
def run_peer(args: argparse.Namespace, models: list[str], workdir: str) -> dict:
    """Run the reference harness under the peer's interpreter; return its results JSON."""
    out = os.path.join(workdir, "peer.json")
    cmd = [
        args.peer_python,
        args.peer_script,
        "--n",
        str(args.n),
        "--seed",
        str(args.seed),
        "--models",
        ",".join(models),
        "--deepfm-batch-sizes",
        args.deepfm_batch_sizes,
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
        "--no-profile",
        "--out",
        out,
    ]
    log("== peer: " + " ".join(shlex.quote(c) for c in cmd))
    with open(os.path.join(workdir, "peer.log"), "w") as fh:
        subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False, timeout=7200)
    if not os.path.exists(out):
        with open(os.path.join(workdir, "peer.log")) as fh:
            return {"error": fh.read()[-1000:]}
    with open(out) as fh:
        return json.load(fh)


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded, or None when either is missing."""
    if not a or not b:
        return None
    return round(a / b, 2)


def table_rows(summary: dict) -> list[list[str]]:
    """One table row per (model, batch size)."""
    peer = {(r["model"], r["batch_size"]): r for r in summary["peer"].get("models", [])}
    rows = []
    for run in summary["runs"]:
        key = (run["model"], run["batch_size"])
        p = peer.get(key, {})
        if "error" in run:
            rows.append([run["model"], str(run["batch_size"]), "error: " + run["error"][:80]])
            continue
        rows.append(
            [
                run["model"],
                str(run["batch_size"]),
                f"{run['train_samples_per_s']:,.0f}",
                f"{p.get('train_samples_per_s', 0):,.0f}",
                f"**{ratio(run['train_samples_per_s'], p.get('train_samples_per_s'))}x**",
                f"{run['predict_samples_per_s']:,.0f}",
                f"{p.get('predict_samples_per_s', 0):,.0f}",
                f"**{ratio(run['predict_samples_per_s'], p.get('predict_samples_per_s'))}x**",
                f"{run['peak_rss_mib']:,.0f} / {p.get('peak_rss_mib', 0):,.0f}",
                f"{run['test_auc']:.4f} / {p.get('test_auc', float('nan')):.4f}",
                f"{run['test_logloss']:.4f} / {p.get('test_logloss', float('nan')):.4f}",
            ]
        )
    return rows


HEADER = [
    "model",
    "batch",
    "skctr train/s",
    "peer train/s",
    "train ratio",
    "skctr predict/s",
    "peer predict/s",
    "predict ratio",
    "peak RSS MiB skctr / peer",
    "test AUC skctr / peer",
    "test logloss skctr / peer",
]


def _if_timed(label: str, seconds: float | None) -> str:
    """``label`` and the seconds, or nothing for a part the run did not time (no DIN)."""
    return "" if seconds is None else f"{label}{seconds} s"


def to_markdown(summary: dict) -> str:
    """The report as Markdown."""
    env, cfg = summary["environment"], summary["config"]
    lines = [
        f"# Speed: skctr vs {PEER_NAME}"
        + ("" if cfg["n"] == DEFAULT_ROWS else f", {cfg['n']:,} rows"),
        "",
        "Produced by `" + summary["command"] + "` in "
        f"{summary['total_wall_s'] / 60:.1f} min on {summary['date']}.",
        "",
        f"- Machine: {env['cpu']}, {env['cpu_count']} cores, {env['mem_total_gib']} GiB; "
        f"{cfg['threads']} torch threads per run, each run in a fresh process.",
        f"- skctr side: {env['skctr']}. Peer side: {env['peer']}.",
        f"- Data: {cfg['n']:,} Criteo-shaped rows from the reference harness (seed "
        f"{cfg['seed']}), 80/20 split; {summary['prepare'].get('n_train', 0):,} training rows. "
        "One epoch, embedding 16, MLP (256, 128), Adam 1e-3, no early stopping. "
        "Each library encodes the rows its own way (timed apart, see below).",
        "- Throughput is rows / wall time of `fit` (or `predict_proba`) on encoded rows; "
        "skctr's `fit` includes building the model and its optimisers (the peer builds them "
        "before its timer), not the one-time import torch does for its first optimiser in "
        "a process (about 2 s, excluded on both sides). "
        "Peak RSS is the process's high-water mark (data, model, training).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summary)]
    machine = summary["peer"].get("machine", {})
    ceiling = {c["batch_size"]: c["samples_per_s"] for c in machine.get("mlp_ceiling", [])}
    lines += ["", "## Against the machine's limit", ""]
    if ceiling:
        lines.append(
            "The reference harness measured the DeepFM MLP alone (forward, backward and Adam "
            "on pre-gathered inputs, no embeddings) in the peer's process: "
            + ", ".join(f"{v:,.0f} samples/s at batch {k}" for k, v in sorted(ceiling.items()))
            + f"; GEMM peak {machine.get('peak_gflops')} GFLOP/s."
        )
        for run in summary["runs"]:
            if run["model"] == "deepfm" and "error" not in run and run["batch_size"] in ceiling:
                share = run["train_samples_per_s"] / ceiling[run["batch_size"]]
                lines.append(
                    f"- DeepFM at batch {run['batch_size']}: {100 * share:.0f} % of that ceiling."
                )
    prep = summary["prepare"]
    peer_prep = summary["peer"].get("timing_s", {})
    lines += [
        "",
        "## Encoding",
        "",
        f"- skctr `CTRFeatureTransformer.fit_transform` on the {prep.get('n_train', 0):,} "
        f"training rows: {prep.get('tabular_fit_transform_s')} s (vocabularies with "
        "out-of-vocabulary and missing codes, standardised dense values)"
        + _if_timed(
            "; with the DIN columns (two `|`-joined histories): ",
            prep.get("din_fit_transform_s"),
        )
        + ".",
        f"- Peer README preprocessing (fillna + LabelEncoder + MinMaxScaler) on all "
        f"{cfg['n']:,} rows: {peer_prep.get('preprocess_criteo_readme')} s"
        + _if_timed("; its DIN sequences: ", peer_prep.get("preprocess_sequence"))
        + ".",
        "- `benchmarks/transformer_speed.py --rows 1000000` compares the two encoders on "
        "the same rows.",
    ]
    lat = summary.get("latency", {})
    if "p50_ms" in lat:
        lines += [
            "",
            "## Serving one row",
            "",
            f"`predict_proba` on a one-row raw DataFrame through a fitted "
            f"`Pipeline(CTRFeatureTransformer, DeepFMClassifier)`, {lat['calls']} calls: "
            f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms ({lat['threads']} threads).",
        ]
    vocab = summary.get("vocab", [])
    if vocab:
        lines += [
            "",
            "## Step time against vocabulary size",
            "",
            "DeepFM, batch {}, {} sparse fields of the given size plus one dense field, "
            "random codes; the time of one training step, mean over the second epoch of {:,} "
            "rows (the first epoch also allocates Adam's moment tables, once per fit; its mean "
            "is in the last column):".format(
                cfg["batch_size_vocab"], cfg["vocab_fields"], cfg["vocab_rows"]
            ),
            "",
            "| rows per field | table MiB | ms per step | first epoch |",
            "|---|---|---|---|",
        ]
        for v in vocab:
            if "error" in v:
                lines.append(f"| {v.get('vocab_per_field')} | | error: {v['error'][:80]} |")
            else:
                lines.append(
                    f"| {v['vocab_per_field']:,} | {v['table_mib']:,} | {v['ms_per_step']} "
                    f"| {v['ms_per_step_first_epoch']} |"
                )
    lines += ["", "![throughput per model](speed.svg)", ""]
    return "\n".join(lines) + "\n"


def to_svg(summary: dict) -> str:
    """A grouped horizontal bar chart of training samples/s, skctr vs the peer."""
    peer = {(r["model"], r["batch_size"]): r for r in summary["peer"].get("models", [])}
    bars = []
    for run in summary["runs"]:
        if "error" in run:
            continue
        p = peer.get((run["model"], run["batch_size"]), {})
        label = f"{run['model']} @{run['batch_size']}"
        bars.append((label, run["train_samples_per_s"], p.get("train_samples_per_s", 0.0)))
    top = max([max(s, p) for _, s, p in bars] + [1.0])
    width, left, bar_h = 640, 130, 12
    height = 40 + len(bars) * (2 * bar_h + 10)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        '<text x="10" y="16" font-size="13">Training samples/s (1 epoch, 2 threads): '
        '<tspan fill="#1f77b4">skctr</tspan> vs <tspan fill="#999">DeepCTR-Torch</tspan>'
        "</text>",
    ]
    y = 30
    for label, ours, theirs in bars:
        out.append(f'<text x="10" y="{y + bar_h + 3}">{label}</text>')
        for value, colour, dy in ((ours, "#1f77b4", 0), (theirs, "#999", bar_h)):
            w = (width - left - 80) * value / top
            out.append(
                f'<rect x="{left}" y="{y + dy}" width="{w:.1f}" height="{bar_h - 1}" '
                f'fill="{colour}"/>'
            )
            out.append(f'<text x="{left + w + 4:.1f}" y="{y + dy + bar_h - 2}">{value:,.0f}</text>')
        y += 2 * bar_h + 10
    out.append("</svg>")
    return "\n".join(out) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=DEFAULT_ROWS, help="rows to generate")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--deepfm-batch-sizes", default="4096,1024")
    parser.add_argument("--batch-size", type=int, default=4096, help="for the other models")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer-script", default=DEFAULT_PEER_SCRIPT)
    parser.add_argument("--peer-python", default=os.path.join(ROOT, ".venv-peer", "bin", "python"))
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--vocab-sizes", default=",".join(str(v) for v in VOCAB_SIZES))
    parser.add_argument("--vocab-fields", type=int, default=2)
    parser.add_argument("--vocab-rows", type=int, default=200_000)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--busy-threshold", type=float, default=0.2)
    parser.add_argument("--busy-retries", type=int, default=2)
    parser.add_argument("--out-dir", default=None, help="default: benchmarks/results + docs")
    add_worker_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write the JSON, Markdown, reStructuredText and SVG outputs."""
    args = parse_args(argv)
    if args.worker:
        worker_main(WORKERS, args.worker, args.worker_out)
        return
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(models) - set(MODELS)
    if unknown:
        sys.exit(f"unknown models: {sorted(unknown)}; choose from {list(MODELS)}")
    if not os.path.exists(args.peer_script):
        sys.exit(f"{args.peer_script} not found: pass --peer-script")
    peer_ok = not args.no_peer and os.path.exists(args.peer_python)
    if not args.no_peer and not peer_ok:
        sys.exit(f"{args.peer_python} not found: run `bash benchmarks/peer_env.sh` first")
    started = time.perf_counter()
    summary: dict = {
        "command": "python "
        + " ".join(shlex.quote(a) for a in ["benchmarks/speed.py", *(argv or sys.argv[1:])]),
        "date": datetime.date.today().isoformat(),
        "environment": {
            **environment(),
            "skctr": versions_of(sys.executable, ("skctr", "torch", "scikit-learn", "pandas")),
            "peer": versions_of(args.peer_python, ("deepctr-torch", "torch"))
            if peer_ok
            else "not run",
        },
        "config": {
            "n": args.n,
            "seed": args.seed,
            "models": models,
            "threads": args.threads,
            "vocab_fields": args.vocab_fields,
            "vocab_rows": args.vocab_rows,
            "batch_size_vocab": 4096,
        },
        "runs": [],
    }
    workdir = tempfile.mkdtemp(prefix="skctr_speed_")
    script = os.path.abspath(__file__)
    base = {
        "workdir": workdir,
        "threads": args.threads,
        "seed": args.seed,
        "peer_script": os.path.abspath(args.peer_script),
        "embedding_dim": 16,
        "hidden_units": [256, 128],
        "learning_rate": 1e-3,
        "models": models,
        "n": args.n,
    }
    try:
        log(f"== encoding {args.n:,} rows with CTRFeatureTransformer ...")
        summary["prepare"] = run_subprocess(
            sys.executable, script, {**base, "kind": "prepare"}, workdir, args.timeout
        )
        if "error" in summary["prepare"]:
            sys.exit("preparation failed: " + summary["prepare"]["error"])
        log("   " + json.dumps(summary["prepare"]))
        summary["peer"] = run_peer(args, models, workdir) if peer_ok else {}
        for model in models:
            sizes = (
                [int(b) for b in args.deepfm_batch_sizes.split(",")]
                if model == "deepfm"
                else [args.batch_size]
            )
            for batch_size in sizes:
                spec = {**base, "kind": "skctr", "model": model, "batch_size": batch_size}
                run = {"model": model, "batch_size": batch_size}
                run.update(measured_run(sys.executable, script, spec, workdir, args))
                summary["runs"].append(run)
                log(f"   {model} @{batch_size}: " + json.dumps(run))
        spec = {**base, "kind": "latency", "model": "latency", "batch_size": 4096}
        summary["latency"] = measured_run(sys.executable, script, spec, workdir, args)
        log("   latency: " + json.dumps(summary["latency"]))
        summary["vocab"] = []
        for vocab in [int(v) for v in args.vocab_sizes.split(",") if v]:
            spec = {
                **base,
                "kind": "vocab",
                "model": f"vocab{vocab}",
                "vocab": vocab,
                "vocab_fields": args.vocab_fields,
                "vocab_rows": args.vocab_rows,
                "batch_size": 4096,
            }
            result = measured_run(sys.executable, script, spec, workdir, args)
            summary["vocab"].append(result)
            log(f"   vocab {vocab}: " + json.dumps(result))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary["total_wall_s"] = round(time.perf_counter() - started, 1)
    results_dir = args.out_dir or os.path.join(HERE, "results")
    docs_dir = args.out_dir or os.path.join(ROOT, "docs", "benchmarks")
    markdown = to_markdown(summary)
    write_outputs(
        [
            (os.path.join(results_dir, "speed.json"), json.dumps(summary, indent=1) + "\n"),
            (os.path.join(docs_dir, "speed.md"), markdown),
            (os.path.join(docs_dir, "speed.rst"), markdown_to_rst(markdown)),
            (os.path.join(docs_dir, "speed.svg"), to_svg(summary)),
        ]
    )
    log(markdown)


if __name__ == "__main__":
    main()
