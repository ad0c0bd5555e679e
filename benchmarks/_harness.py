"""Pieces shared by the benchmark scripts: progress, machine facts, isolated worker runs.

Every benchmark here is one file that is both a driver and a worker: the driver imports
only the standard library and runs each measurement in a fresh subprocess of the same file
(``--worker SPEC --worker-out OUT``), so one model's memory or failure never touches the
next one, and the peer can run under its own interpreter.
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


def run_subprocess(script: str, python: str, spec: dict, workdir: str, timeout: float) -> dict:
    """Run one worker in a fresh process and measure it.

    Parameters
    ----------
    script : str
        The benchmark file; it runs the worker given ``--worker SPEC --worker-out OUT``.
    python : str
        Interpreter to run it with (the peer's for a peer spec).
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


def measured_run(
    script: str, python: str, spec: dict, workdir: str, args: argparse.Namespace
) -> dict:
    """Run one model, again while the machine was busy, and keep the quietest attempt.

    The scores do not change between attempts (fixed seeds); only the timing does, and
    other processes on a 2-core machine can inflate it several-fold.

    Parameters
    ----------
    script : str
        The benchmark file (see :func:`run_subprocess`).
    python : str
        Interpreter for the worker.
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
        result = run_subprocess(script, python, spec, workdir, args.timeout)
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
