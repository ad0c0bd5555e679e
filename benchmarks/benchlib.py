"""Pieces shared by the benchmark scripts (``models.py``, ``quality.py``).

Standard library only at import time: the same file is imported by the drivers, by the
skctr workers and by the DeepCTR-Torch workers, which run in the peer's own virtual
environment where skctr is not installed. Each script is both a driver and a worker: the
driver starts ``python <script> --worker SPEC --worker-out OUT`` in a fresh process per
run (:func:`run_subprocess`) and the worker answers with :func:`worker_main`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
import traceback
import types
from collections.abc import Callable

PEER_NAME = "DeepCTR-Torch 0.3.0"


def log(*parts: object) -> None:
    """Print progress to stderr.

    Parameters
    ----------
    *parts : object
        What to print, space-separated.
    """
    print(*parts, file=sys.stderr, flush=True)


def cpu_model() -> str:
    """The CPU model name of this machine.

    Returns
    -------
    str
        The ``model name`` line of ``/proc/cpuinfo``, or the machine type.
    """
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def busy_jiffies() -> int:
    """CPU time spent busy by the whole machine since boot.

    Returns
    -------
    int
        Busy clock ticks (all states but idle and iowait) summed over every CPU.
    """
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]


def set_threads(threads: int) -> None:
    """Fix the thread count of every math library before torch is imported.

    Parameters
    ----------
    threads : int
        Threads for torch, OpenMP and MKL.
    """
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch.

    Parameters
    ----------
    seed : int
        The seed.
    """
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the global RNG, which library code may draw from
    torch.manual_seed(seed)


def import_optimiser_machinery() -> None:
    """Pay torch's one-off cost of a process's first optimiser before any timer starts.

    Building the first ``torch.optim`` optimiser of a process imports ``torch._dynamo``
    (1-2 s on a 2-core machine); later ones cost nothing. Both libraries pay it once per
    process, and DeepCTR-Torch pays it in ``compile()``, before a call to ``fit`` can be
    timed; calling this first in every worker keeps it out of both sides' figures.
    """
    import torch

    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])


def stub_requests() -> None:
    """Put a stand-in ``requests`` module in place before DeepCTR-Torch is imported.

    DeepCTR-Torch imports ``requests`` only to ask PyPI for a newer version in a background
    thread; the peer's environment has no ``requests``, and the benchmark stays offline. The
    stand-in's ``get`` raises, which the peer's version check catches.
    """
    if "requests" in sys.modules:
        return
    module = types.ModuleType("requests")

    def get(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled by the skctr benchmarks")

    module.get = get
    module.codes = types.SimpleNamespace(ok=200)
    sys.modules["requests"] = module


def run_subprocess(python: str, script: str, spec: dict, workdir: str, timeout: float) -> dict:
    """Run one worker in a fresh process and measure it.

    Parameters
    ----------
    python : str
        Interpreter to run ``script`` with (the peer's for a peer spec).
    script : str
        The benchmark file; it runs the worker when given ``--worker SPEC --worker-out OUT``.
    spec : dict
        The worker spec.
    workdir : str
        Scratch folder for the spec, result and log files.
    timeout : float
        Seconds before the worker is killed and the run recorded as an error.

    Returns
    -------
    dict
        The worker's result plus ``wall_s`` (the whole subprocess) and ``foreign_cpu``, the
        share of the machine's CPU used by other processes meanwhile (0 = a quiet machine).
    """
    tag = "-".join(str(spec.get(k, "")) for k in ("kind", "dataset", "model")).strip("-")
    spec_path = os.path.join(workdir, f"{tag}.spec.json")
    out_path = os.path.join(workdir, f"{tag}.out.json")
    log_path = os.path.join(workdir, f"{tag}.log")
    with open(spec_path, "w") as fh:
        json.dump(spec, fh)
    env = dict(os.environ, PYTHONHASHSEED="0")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(spec.get("threads", 2))
    cmd = [python, os.path.abspath(script), "--worker", spec_path, "--worker-out", out_path]
    busy0, usage0, start = (
        busy_jiffies(),
        resource.getrusage(resource.RUSAGE_CHILDREN),
        (time.perf_counter()),
    )
    try:
        with open(log_path, "w") as logfh:
            proc = subprocess.run(
                cmd, stdout=logfh, stderr=subprocess.STDOUT, env=env, timeout=timeout, check=False
            )
        returncode = proc.returncode
    except subprocess.TimeoutExpired:
        returncode = None
    wall = time.perf_counter() - start
    usage1, busy1 = resource.getrusage(resource.RUSAGE_CHILDREN), busy_jiffies()
    own = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    machine = (busy1 - busy0) / os.sysconf("SC_CLK_TCK")
    foreign = max(0.0, machine - own) / ((os.cpu_count() or 1) * wall)
    if returncode is None:
        result = {"error": f"timeout after {timeout:.0f} s"}
    elif os.path.exists(out_path):
        with open(out_path) as fh:
            result = json.load(fh)
    else:
        with open(log_path) as fh:
            tail = fh.read()[-500:]
        result = {"error": f"worker exited with code {returncode}: {tail.strip()}"}
    result["wall_s"] = round(wall, 2)
    result["foreign_cpu"] = round(foreign, 3)
    return result


def versions_of(python: str, packages: tuple[str, ...]) -> str:
    """Versions of python and of some packages, as seen by another interpreter.

    Asked in a subprocess, so that the driver itself imports neither torch nor skctr (a
    large driver would carry its peak RSS into every child's ``ru_maxrss``).

    Parameters
    ----------
    python : str
        The interpreter.
    packages : tuple of str
        Distribution names.

    Returns
    -------
    str
        ``"python X, torch Y, ..."``, or why it could not be found.
    """
    code = (
        "import sys, importlib.metadata as m; "
        f"print(', '.join(['python ' + sys.version.split()[0]] + "
        f"[p + ' ' + m.version(p) for p in {list(packages)!r}]))"
    )
    try:
        out = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=120, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({type(exc).__name__})"
    return out.stdout.strip()


def fmt(value: float | None, digits: int) -> str:
    """A number for the table, or an empty cell.

    Parameters
    ----------
    value : float or None
        The number.
    digits : int
        Decimals.

    Returns
    -------
    str
        The formatted number, or an empty string for None.
    """
    return "" if value is None else f"{value:.{digits}f}"


def rst_escape(text: str) -> str:
    """Escape the characters reStructuredText would read as markup.

    Parameters
    ----------
    text : str
        Plain text.

    Returns
    -------
    str
        The text, safe inside a paragraph or a table cell.
    """
    for char in ("\\", "*", "`", "|", "_"):
        text = text.replace(char, "\\" + char)
    return text


def worker_main(workers: dict[str, Callable[[dict], dict]], spec_path: str, out_path: str) -> None:
    """Run one worker and write its result (or its error) as JSON.

    Parameters
    ----------
    workers : dict of str to callable
        The script's workers; the spec's ``kind`` picks one.
    spec_path : str
        JSON file with the spec.
    out_path : str
        Where the result goes.
    """
    with open(spec_path) as fh:
        spec = json.load(fh)
    set_threads(spec.get("threads", 2))
    try:
        result = workers[spec["kind"]](spec)
    except Exception as exc:  # recorded, so that the driver goes on with the next run
        result = {
            "error": f"{type(exc).__name__}: {exc}".strip()[:500],
            "traceback": traceback.format_exc()[-4000:],
        }
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    with open(out_path, "w") as fh:
        json.dump(result, fh)


def save_encoded(base: str, parts: dict, schema) -> dict:
    """Save encoded rows (``EncodedBatch`` per part) where both libraries can read them.

    Parameters
    ----------
    base : str
        Path prefix: ``<base>.npz``, ``<base>.schema.pkl`` and ``<base>.meta.json``.
    parts : dict of str to (EncodedBatch, ndarray)
        Rows and 0/1 targets of each part (``"train"``, ``"test"``).
    schema : FeatureSchema
        The fitted encoder's schema.

    Returns
    -------
    dict
        The meta data: row counts, positive rates, the fields with their vocabulary sizes.
    """
    import pickle

    import numpy as np

    arrays = {}
    meta: dict = {}
    for part, (batch, y) in parts.items():
        arrays[f"y_{part}"] = np.asarray(y, dtype=np.int64)
        arrays[f"sparse_{part}"] = batch.sparse
        arrays[f"dense_{part}"] = batch.dense
        arrays[f"lengths_{part}"] = batch.lengths
        for i, seq in enumerate(batch.sequences):
            arrays[f"seq{i}_{part}"] = seq
        meta[f"n_{part}"] = len(batch)
        meta[f"ctr_{part}"] = round(float(arrays[f"y_{part}"].mean()), 4)
    np.savez(base + ".npz", **arrays)
    with open(base + ".schema.pkl", "wb") as fh:
        pickle.dump(schema, fh)
    meta.update(
        sparse=[[f.name, f.vocab_size] for f in schema.sparse],
        dense=[f.name for f in schema.dense],
        sequence=[[f.name, f.vocab_size, f.maxlen, f.shares] for f in schema.sequence],
    )
    with open(base + ".meta.json", "w") as fh:
        json.dump(meta, fh)
    return meta


def read_encoded(base: str) -> tuple[dict, dict]:
    """The arrays and meta data written by :func:`save_encoded`.

    Parameters
    ----------
    base : str
        Path prefix.

    Returns
    -------
    arrays : dict of str to ndarray
        The contents of ``<base>.npz``.
    meta : dict
        The contents of ``<base>.meta.json``.
    """
    import numpy as np

    with np.load(base + ".npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    with open(base + ".meta.json") as fh:
        meta = json.load(fh)
    return arrays, meta


def peer_inputs(
    arrays: dict, meta: dict, parts: tuple[str, ...], embedding_dim: int | None
) -> tuple[list, dict]:
    """DeepCTR-Torch feature columns and model inputs for saved encoded rows.

    Sparse codes become ``SparseFeat``, dense values ``DenseFeat`` and sequences
    ``VarLenSparseFeat`` with mean pooling; a sequence sharing a sparse column's vocabulary
    (``hist_movieId`` with ``movieId``) shares its table (``embedding_name``) and carries its
    length column, which the peer's DIN needs. Imports the peer: call it in a peer worker.

    Parameters
    ----------
    arrays : dict of str to ndarray
        From :func:`read_encoded`.
    meta : dict
        From :func:`read_encoded`.
    parts : tuple of str
        Which parts to build inputs for (``"train"``, ``"test"``).
    embedding_dim : int or None
        Embedding size of every column; None keeps the peer's default (4).

    Returns
    -------
    columns : list
        The feature columns.
    inputs : dict of str to dict
        Per part, the peer's ``{column name: array}`` input.
    """
    stub_requests()
    from deepctr_torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat

    size = {} if embedding_dim is None else {"embedding_dim": embedding_dim}
    columns: list = []
    inputs: dict[str, dict] = {part: {} for part in parts}
    vocab = dict(meta["sparse"])
    for j, (name, n) in enumerate(meta["sparse"]):
        columns.append(SparseFeat(name, vocabulary_size=n, **size))
        for part in parts:
            inputs[part][name] = arrays[f"sparse_{part}"][:, j]
    for j, name in enumerate(meta["dense"]):
        columns.append(DenseFeat(name, 1))
        for part in parts:
            inputs[part][name] = arrays[f"dense_{part}"][:, j]
    for i, (name, n, maxlen, shares) in enumerate(meta["sequence"]):
        length_name = f"{name}__length" if shares else None
        feat = SparseFeat(
            name,
            vocabulary_size=vocab[shares] if shares else n,
            embedding_name=shares or name,
            **size,
        )
        columns.append(
            VarLenSparseFeat(feat, maxlen=maxlen, combiner="mean", length_name=length_name)
        )
        for part in parts:
            inputs[part][name] = arrays[f"seq{i}_{part}"]
            if length_name:
                inputs[part][length_name] = arrays[f"lengths_{part}"][:, i]
    return columns, inputs


def build_peer_model(peer_class: str, columns: list, meta: dict, kwargs: dict):
    """A DeepCTR-Torch model: ``(linear, dnn)`` columns, or DIN's history names.

    Parameters
    ----------
    peer_class : str
        Name in ``deepctr_torch.models``.
    columns : list
        From :func:`peer_inputs`.
    meta : dict
        The dataset's meta data (DIN's history: the sparse columns a sequence shares).
    kwargs : dict
        Keyword arguments of the model (seed, device, ...).

    Returns
    -------
    torch.nn.Module
        The peer's model, not yet compiled.
    """
    stub_requests()
    from deepctr_torch import models as peer_models

    cls = getattr(peer_models, peer_class)
    if peer_class == "DIN":
        return cls(columns, [s[3] for s in meta["sequence"] if s[3]], **kwargs)
    if peer_class in ("PNN", "MLR"):
        return cls(columns, **kwargs)
    return cls(columns, columns, **kwargs)


def environment() -> dict:
    """The machine the benchmark ran on.

    Returns
    -------
    dict
        ``cpu``, ``cpu_count``, ``mem_total_gib`` and ``os``.
    """
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "mem_total_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
    }


def measured_run(
    python: str, script: str, spec: dict, workdir: str, args: argparse.Namespace
) -> dict:
    """Run one model, again while the machine was busy, and keep the quietest attempt.

    The scores do not change between attempts (fixed seeds); only the timing does, and
    other processes on a 2-core machine can inflate it several-fold.

    Parameters
    ----------
    python : str
        Interpreter for the worker.
    script : str
        The benchmark file that runs the worker.
    spec : dict
        The worker spec.
    workdir : str
        Scratch folder.
    args : argparse.Namespace
        ``timeout``, ``busy_threshold`` and ``busy_retries``.

    Returns
    -------
    dict
        The result of the attempt with the smallest ``foreign_cpu``; with several attempts,
        ``attempts`` lists each one's ``fit_s``, ``wall_s`` and ``foreign_cpu``.
    """
    attempts = []
    while True:
        result = run_subprocess(python, script, spec, workdir, args.timeout)
        attempts.append(result)
        busy = result["foreign_cpu"] > args.busy_threshold
        if "error" in result or not busy or len(attempts) > args.busy_retries:
            break
        log(
            f"   {spec['model']:8s} {spec['kind']:5s} other processes used "
            f"{100 * result['foreign_cpu']:.0f} % of the CPU: running it again"
        )
    best = min(attempts, key=lambda r: r["foreign_cpu"])
    if len(attempts) > 1:
        best["attempts"] = [
            {k: a.get(k) for k in ("fit_s", "wall_s", "foreign_cpu")} for a in attempts
        ]
    return best


def markdown_to_rst(markdown: str) -> str:
    """Turn a benchmark's Markdown page into reStructuredText for the Sphinx docs.

    Handles what the benchmark pages use: ``#`` and ``##`` headings, bullet lists,
    paragraphs, pipe tables (as ``list-table``), images and inline code.

    Parameters
    ----------
    markdown : str
        The page.

    Returns
    -------
    str
        The same page in reStructuredText.
    """
    import re

    def inline(text: str) -> str:
        return re.sub(r"`([^`]+)`", r"``\1``", text)

    out: list[str] = []
    table: list[list[str]] = []

    def flush_table() -> None:
        if not table:
            return
        out.extend([".. list-table::", "   :header-rows: 1", ""])
        for row in table:
            out.append(f"   * - {inline(row[0])}")
            out.extend(f"     - {inline(cell)}" if cell else "     -" for cell in row[1:])
        out.append("")
        table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                table.append(cells)
            continue
        flush_table()
        image = re.fullmatch(r"!\[([^\]]*)\]\(([^)]+)\)", line.strip())
        if line.startswith("## "):
            title = inline(line[3:])
            out.extend([title, "-" * len(title)])
        elif line.startswith("# "):
            title = inline(line[2:])
            out.extend([title, "=" * len(title)])
        elif image:
            out.extend([f".. image:: {image.group(2)}", f"   :alt: {image.group(1)}"])
        else:
            out.append(inline(line))
    flush_table()
    return "\n".join(out).rstrip() + "\n"


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """The hidden ``--worker SPEC --worker-out OUT`` options every benchmark script takes.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The script's parser.
    """
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)


def write_outputs(outputs: list[tuple[str, str]]) -> None:
    """Write each ``(path, text)``, creating folders, and say where.

    Parameters
    ----------
    outputs : list of (str, str)
        File paths and their contents.
    """
    for path, text in outputs:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(text)
        log(f"wrote {path}")
