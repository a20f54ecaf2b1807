"""Run a unit headless: execute its lecture and solution notebooks, then summarise what they measured."""

from __future__ import annotations

import json
import os
import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from tqdm.auto import tqdm

from dlfund.course import manifest, notebooks
from dlfund.course.results import fmt, load, result_path, stale_reason
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
    items = [i for i in unit_notebooks(unit) if only is None or i[0] == only]
    if not items:
        raise KeyError(f"unit {unit.number} has no notebook {only!r}")
    current = {
        name for name, _, path in items if skip_current and stale_reason(unit, name, path, tier, skip_current) is None
    }
    todo = [i for i in items if i[0] not in current]
    warm = WarmKernel(todo[0][2].parent, env) if todo else None
    runs = []
    for n, (name, kind, path) in enumerate(items, start=1):
        run = NotebookRun(unit, name, kind)
        if name in current:
            run.status = "current"
            reference = load(unit, name, tier) or {}
            run.metrics = reference.get("metrics", {})
            run.wall_s = float(reference.get("provenance", {}).get("wall_s", 0.0))
            tqdm.write(f"= {name:<32} recorded result is current ({reference['provenance']['commit']}), skipped")
            runs.append(run)
            continue
        mine = warm
        following = todo[todo.index((name, kind, path)) + 1 :]
        warm = WarmKernel(following[0][2].parent, env) if following else None  # starts beside this notebook
        run.executed = manifest.RUNS_DIR / unit.dirname / "executed" / f"{name}.{tier}.ipynb"
        start = time.perf_counter()
        try:
            execute(path, run.executed, tier=tier, desc=f"[{n}/{len(items)}] {name}", env=env, warm=mine)
            blank = notebooks.missing_figures(notebooks.read(run.executed))
            run.status = "FAILED" if blank else "ok"
            run.error = f"{len(blank)} figure(s) missing; {blank[0]}" if blank else ""
        except Exception as err:  # collect and go on with the next notebook
            run.status = "FAILED"
            run.error = _error_summary(err)
        except BaseException:  # Ctrl-C: leave no kernel behind
            for kernel in (mine, warm):
                if kernel is not None:
                    kernel.shutdown()
            raise
        if mine is not None:
            mine.shutdown()  # a no-op when execute took it and stopped it
        run.wall_s = time.perf_counter() - start
        own = result_path(manifest.RUNS_DIR / "results", unit, name, tier)
        if run.status == "ok" and own.exists() and own.stat().st_mtime >= time.time() - run.wall_s - 1:
            run.metrics = json.loads(own.read_text(encoding="utf-8"))["metrics"]
        mark = "✓" if run.status == "ok" else "✗"
        budget = unit.budget(name, tier)
        over = f"  (over its {budget} s budget)" if run.wall_s > budget else ""
        tqdm.write(f"{mark} {name:<32} {run.wall_s:6.1f} s{over}" + (f"  {run.error}" if run.error else ""))
        runs.append(run)
    return runs


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
