"""Run a unit headless: execute its lecture and solution notebooks, then summarise what they measured."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from tqdm.auto import tqdm

from dlfund.course import manifest, notebooks
from dlfund.course.results import fmt, load, result_path, result_tier, stale_reason
from dlfund.utils.device import device_name, pick_device
from dlfund.utils.io import atomic_write_text
from dlfund.utils.provenance import git_commit

CELL_TIMEOUT_S = {"smoke": 300, "full": 1800}


@dataclass
class NotebookRun:
    unit: manifest.Unit
    name: str
    kind: str  # "lecture" or "solution"
    status: str = "not run"
    wall_s: float = 0.0
    error: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    executed: Path | None = None


def unit_notebooks(unit: manifest.Unit) -> list[tuple[str, str, Path]]:
    """(name, kind, path) of every notebook ``dlfund run`` executes for a unit, in course order."""
    items = [(nb.name, "lecture", unit.notebook_path(nb.name)) for nb in unit.notebooks]
    items += [(ex.name, "solution", unit.solution_path(ex.name)) for ex in unit.exercises]
    return items


KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]  # no transport warnings


class WarmKernel:
    """A fresh kernel for the *next* notebook, started in a background thread while the current one runs.

    Starting a kernel and importing torch take about 1.5 s per notebook on a 2-core machine; done beside
    the previous notebook they cost nothing in wall time. It is still a fresh process per notebook: the
    only thing done in it before the notebook is ``import torch`` (silently, no execution count), so no
    state of one notebook reaches another. If anything fails here, the notebook gets a kernel the usual way.
    """

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._start, args=(cwd, env), daemon=True)
        self._thread.start()

    def _start(self, cwd: Path, env: dict[str, str]) -> None:
        try:
            self.km.start_kernel(cwd=str(cwd), env={**os.environ, **env}, extra_arguments=KERNEL_ARGUMENTS)
            kc = self.km.client()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=60)
                reply = kc.execute_interactive("import torch", silent=True, store_history=False, timeout=120)
                if reply["content"]["status"] != "ok":
                    raise RuntimeError(f"warming the kernel up failed: {reply['content']}")
            finally:
                kc.stop_channels()
        except Exception as err:  # the notebook then starts its own kernel
            self.error = err

    def take(self) -> KernelManager | None:
        """The started kernel's manager (the caller shuts it down), or ``None`` if it could not start."""
        self._thread.join()
        if self.error is not None:
            self.shutdown()
            return None
        return self.km

    def shutdown(self) -> None:
        self._thread.join()
        if self.km.has_kernel:
            self.km.shutdown_kernel(now=True)


def execute(
    path: Path,
    out: Path,
    *,
    tier: str,
    desc: str,
    env: dict[str, str] | None = None,
    warm: WarmKernel | None = None,
    progress: bool = True,
) -> None:
    """Execute ``path`` cell by cell in a fresh kernel (cwd: its folder) with a progress bar; save to ``out``.

    ``warm``: a kernel already started for this notebook (:class:`WarmKernel`). The executed copy is
    written even when a cell fails, so the error can be read in context, and says where its outputs come
    from in ``metadata["dlfund"]`` (:func:`provenance_of`).
    """
    nb = nbformat.read(str(path), as_version=4)
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})  # the kernel inherits this process's environment
    km = warm.take() if warm is not None else None
    client = NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT_S[tier],
        kernel_name="python3",
        extra_arguments=KERNEL_ARGUMENTS,
        resources={"metadata": {"path": str(path.parent)}},
    )
    started, error = time.perf_counter(), None
    try:
        with client.setup_kernel():
            code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
            for index, cell in tqdm(code, desc=desc, unit="cell", leave=False, disable=not progress):
                client.execute_cell(cell, index)
    except BaseException as err:
        error = _error_summary(err) if isinstance(err, Exception) else "interrupted"
        raise
    finally:
        if km is not None and km.has_kernel:  # a kernel we passed in is ours to stop
            km.shutdown_kernel(now=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        nb.metadata["dlfund"] = {
            "tier": tier,
            "device": device_name(pick_device()),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit(),
            "wall_s": round(time.perf_counter() - started, 1),
            **({"error": error} if error else {}),
        }
        atomic_write_text(out, nbformat.writes(nb))


def provenance_of(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """Where an executed copy's outputs come from (tier, device, date, commit, wall_s, and error when a
    cell failed), as :func:`execute` recorded it; ``{}`` for a copy executed before it recorded this."""
    return dict(nb.metadata.get("dlfund", {}))


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _error_summary(err: BaseException) -> str:
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename and isinstance(evalue, str):  # a cell raised: its exception, first line of the message
        first = next((line.strip() for line in ANSI.sub("", evalue).splitlines() if line.strip()), "")
        return f"{ename}: {first}"[:300] if first else ename
    text = ANSI.sub("", str(err)).strip().splitlines()
    # nbclient's message ends with the exception line: keep it and the cell's first line for context
    tail = [line for line in text if line.strip()][-1:] if text else []
    return tail[0][:300] if tail else "".join(traceback.format_exception_only(type(err), err)).strip()


def kernel_environment(tier: str, *, record: bool = False) -> dict[str, str]:
    """What a headless notebook run sets for its kernel: the tier, figures as image outputs (whatever the
    shell's ``MPLBACKEND``), no network, and (maintainers) recording."""
    env = {"DLFUND_TIER": tier, "MPLBACKEND": notebooks.INLINE_BACKEND, "DLFUND_NO_NETWORK": "1"}
    if record:
        env["DLFUND_RECORD"] = "1"
    return env


def _execute_job(source: str, out: str, tier: str, env: dict[str, str]) -> tuple[str | None, float]:
    """Execute one notebook in a worker process: (the error summary or ``None``, wall seconds)."""
    start = time.perf_counter()
    try:
        execute(Path(source), Path(out), tier=tier, desc=Path(source).stem, env=env, progress=False)
    except Exception as err:  # the executed copy holds the error in context; report it and go on
        return _error_summary(err), time.perf_counter() - start
    return None, time.perf_counter() - start


def parallel_environment(env: dict[str, str], jobs: int) -> dict[str, str]:
    """``env`` for ``jobs`` kernels at once: each gets its share of the cores as compute threads (as in the
    tests), and ``DLFUND_JOBS`` tells the results' provenance that the machine was shared."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    return {**env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "DLFUND_JOBS": str(jobs)}


def execute_many(
    todo: list[tuple[Path, Path]], *, tier: str, env: dict[str, str], jobs: int
) -> Iterator[tuple[int, str | None, float]]:
    """Execute the notebooks ``todo`` (source, executed copy) ``jobs`` at a time, each in a worker process
    with a fresh kernel; yield ``(index in todo, error or None, wall seconds)`` as each one finishes.

    A worker that dies (out of memory, killed) fails its notebook with a message and the others go on. The
    caller orders ``todo``: submitting the longest notebooks first finishes the whole set soonest."""
    if not todo:
        return
    env = parallel_environment(env, jobs)
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds threads
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
    try:
        futures = {}
        for index, (source, out) in enumerate(todo):
            out.parent.mkdir(parents=True, exist_ok=True)
            futures[pool.submit(_execute_job, str(source), str(out), tier, env)] = index
        for future in as_completed(futures):
            try:
                error, wall_s = future.result()
            except Exception as err:  # the worker process itself stopped
                error, wall_s = f"the process executing it stopped: {err!r}", 0.0
            yield futures[future], error, wall_s
    finally:  # also on Ctrl-C: cancel what has not started; running workers stop their kernels
        pool.shutdown(wait=True, cancel_futures=True)


def _plan(
    unit: manifest.Unit, tier: str, only: str | None, skip_current: str | None
) -> tuple[list[tuple[str, str, Path]], set[str]]:
    """The notebooks of ``unit`` to consider (all, or ``only``) and the names of those whose committed result
    is current for the device type ``skip_current`` (none when it is ``None``)."""
    items = [i for i in unit_notebooks(unit) if only is None or i[0] == only]
    if not items:
        raise KeyError(f"unit {unit.number} has no notebook {only!r}")
    label = result_tier(tier, skip_current or "")
    current = {
        name for name, _, path in items if skip_current and stale_reason(unit, name, path, label, skip_current) is None
    }
    return items, current


def _current(unit: manifest.Unit, name: str, kind: str, tier: str, device_type: str) -> NotebookRun:
    """A notebook not run again: its committed result stands in for the run."""
    run = NotebookRun(unit, name, kind, status="current")
    reference = load(unit, name, result_tier(tier, device_type)) or {}
    run.metrics = reference.get("metrics", {})
    run.wall_s = float(reference.get("provenance", {}).get("wall_s", 0.0))
    tqdm.write(f"= {name:<32} recorded result is current ({reference['provenance']['commit']}), skipped")
    return run


def _executed_path(unit: manifest.Unit, name: str, tier: str) -> Path:
    return manifest.RUNS_DIR / unit.dirname / "executed" / f"{name}.{tier}.ipynb"


def _finish(run: NotebookRun, tier: str, error: str | None, wall_s: float, prefix: str = "") -> None:
    """Judge an executed notebook (a failed cell, or a figure that showed nothing), read what it measured,
    and print its line."""
    run.wall_s = wall_s
    if error is None:
        blank = notebooks.missing_figures(notebooks.read(run.executed)) if run.executed else []
        run.status = "FAILED" if blank else "ok"
        run.error = f"{len(blank)} figure(s) missing; {blank[0]}" if blank else ""
    else:
        run.status, run.error = "FAILED", error
    label = result_tier(tier, pick_device().type)
    own = result_path(manifest.RUNS_DIR / "results", run.unit, run.name, label)
    if run.status == "ok" and own.exists() and own.stat().st_mtime >= time.time() - run.wall_s - 1:
        run.metrics = json.loads(own.read_text(encoding="utf-8"))["metrics"]
    mark = "✓" if run.status == "ok" else "✗"
    budget = run.unit.budget(run.name, tier)
    over = f"  (over its {budget} s budget)" if run.wall_s > budget else ""
    tqdm.write(f"{mark} {prefix}{run.name:<32} {run.wall_s:6.1f} s{over}" + (f"  {run.error}" if run.error else ""))


def run_unit(
    unit: manifest.Unit, tier: str, *, record: bool = False, only: str | None = None, skip_current: str | None = None
) -> list[NotebookRun]:
    """Execute every lecture and solution notebook of ``unit``; failures are collected, not fatal.

    Each notebook runs in a fresh kernel; the next notebook's kernel starts while the current one runs
    (:class:`WarmKernel`). With ``skip_current`` set to a device type ("cuda", "cpu"), notebooks whose
    committed result is current for it (:func:`dlfund.course.results.stale_reason`) are not run again: a
    long recording run can be resumed where it stopped.
    """
    manifest.require_repo()
    env = kernel_environment(tier, record=record)
    items, current = _plan(unit, tier, only, skip_current)
    todo = [i for i in items if i[0] not in current]
    warm = WarmKernel(todo[0][2].parent, env) if todo else None
    runs = []
    for n, (name, kind, path) in enumerate(items, start=1):
        if name in current:
            runs.append(_current(unit, name, kind, tier, skip_current or ""))
            continue
        run = NotebookRun(unit, name, kind, executed=_executed_path(unit, name, tier))
        mine = warm
        following = todo[todo.index((name, kind, path)) + 1 :]
        warm = WarmKernel(following[0][2].parent, env) if following else None  # starts beside this notebook
        start, error = time.perf_counter(), None
        try:
            execute(path, run.executed, tier=tier, desc=f"[{n}/{len(items)}] {name}", env=env, warm=mine)
        except Exception as err:  # collect and go on with the next notebook
            error = _error_summary(err)
        except BaseException:  # Ctrl-C: leave no kernel behind
            for kernel in (mine, warm):
                if kernel is not None:
                    kernel.shutdown()
            raise
        if mine is not None:
            mine.shutdown()  # a no-op when execute took it and stopped it
        _finish(run, tier, error, time.perf_counter() - start)
        runs.append(run)
    return runs


def run_parallel(
    units: list[manifest.Unit],
    tier: str,
    *,
    jobs: int,
    record: bool = False,
    only: str | None = None,
    skip_current: str | None = None,
) -> list[list[NotebookRun]]:
    """Execute the lecture and solution notebooks of ``units`` ``jobs`` at a time (:func:`execute_many`):
    one list of runs per unit, in course order. Failures are collected, not fatal.

    The notebooks with the largest budget start first. Several kernels share the machine's cores (each
    gets its share as compute threads) and, on a GPU machine, the device; a notebook's time is then longer
    than alone, and a recorded result says how many ran at once (``concurrent_notebooks``)."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, found {jobs}")
    manifest.require_repo()
    env = kernel_environment(tier, record=record)
    per_unit: list[list[NotebookRun]] = []
    todo: list[tuple[NotebookRun, Path]] = []
    for unit in units:
        items, current = _plan(unit, tier, only, skip_current)
        runs = []
        for name, kind, path in items:
            if name in current:
                runs.append(_current(unit, name, kind, tier, skip_current or ""))
            else:
                runs.append(NotebookRun(unit, name, kind, executed=_executed_path(unit, name, tier)))
                todo.append((runs[-1], path))
        per_unit.append(runs)
    todo.sort(key=lambda item: -item[0].unit.budget(item[0].name, tier))
    threads = parallel_environment({}, jobs)["OMP_NUM_THREADS"]
    tqdm.write(f"{len(todo)} notebook(s) to run, {jobs} at a time ({threads} compute thread(s) each)")
    pairs = [(path, run.executed) for run, path in todo]
    for done, (index, error, wall_s) in enumerate(execute_many(pairs, tier=tier, env=env, jobs=jobs), start=1):
        run = todo[index][0]
        _finish(run, tier, error, wall_s, prefix=f"[{done}/{len(todo)}] {run.unit.dirname}/")
    return per_unit


def summary(runs: list[NotebookRun], tier: str) -> str:
    """A plain-text table of what each notebook measured."""
    lines = [f"summary ({tier} tier):"]
    width = max((len(r.name) for r in runs), default=10)
    for r in runs:
        scalars = {k: v for k, v in r.metrics.items() if not isinstance(v, (list, dict))}
        shown = ", ".join(f"{k}={fmt(v)}" for k, v in list(scalars.items())[:5])
        lines.append(f"  {r.status:<6} {r.name:<{width}} {r.wall_s:6.1f} s  {shown or r.error}")
    ok = sum(r.status == "ok" for r in runs)
    current = sum(r.status == "current" for r in runs)
    total = sum(r.wall_s for r in runs if r.status != "current")
    if current:
        lines.append(f"{current} notebook(s) skipped: their recorded results are current (times shown as recorded)")
    lines.append(
        f"{ok}/{len(runs) - current} notebooks ran, {total:.0f} s in all; executed copies in "
        f"{manifest.display_path(manifest.RUNS_DIR / runs[0].unit.dirname / 'executed')}/"
        if runs
        else "nothing ran"
    )
    return "\n".join(lines)


def course_summary(per_unit: list[list[NotebookRun]], tier: str) -> str:
    """One line per unit of a multi-unit run: notebooks run, failed and skipped, and the time spent."""
    lines = [f"course summary ({tier} tier):", f"  {'unit':<28} {'ran':>4} {'failed':>6} {'current':>7} {'time':>8}"]
    for runs in per_unit:
        if not runs:
            continue
        ran = [r for r in runs if r.status != "current"]
        failed = [r.name for r in ran if r.status != "ok"]
        spent = sum(r.wall_s for r in ran)
        lines.append(
            f"  {runs[0].unit.dirname:<28} {len(ran):>4} {len(failed):>6} "
            f"{len(runs) - len(ran):>7} {spent:>7.0f}s" + (f"  failed: {', '.join(failed)}" if failed else "")
        )
    spent = sum(r.wall_s for runs in per_unit for r in runs if r.status != "current")
    lines.append(f"  {'total':<28} {'':>4} {'':>6} {'':>7} {spent:>7.0f}s")
    return "\n".join(lines)
