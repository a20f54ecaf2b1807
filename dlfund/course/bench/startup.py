"""Where a notebook's time goes before it teaches anything: ``dlfund bench --suite startup``.

Each lecture and solution notebook is executed in a fresh kernel, as ``dlfund run`` and the tests do,
one after another (never two at once, so the times are not inflated by sharing the cores), and its
time is split into

- **kernel**: starting the Jupyter kernel until it answers;
- **setup**: the first code cell, ``import dlfund`` and ``dlfund.setup(...)`` (which imports torch);
- **imports**: the cells that only import (the libraries a notebook needs, Lightning among them);
- **work**: every other cell, the lesson itself.

The rows are :class:`~dlfund.course.bench.common.Row` like the other suites': ``ours`` is the start-up
(kernel + setup + imports), ``reference`` the whole notebook and ``ratio`` the share of start-up. Two
reference rows measure a bare kernel's ``import torch`` and ``import lightning``.
"""

from __future__ import annotations

import ast
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from dlfund.course import manifest
from dlfund.course.bench.common import Row
from dlfund.course.runner import kernel_environment, unit_notebooks

__all__ = ["NotebookProfile", "bare_import_seconds", "imports_only", "profile_notebook", "rows", "run"]


@dataclass(frozen=True)
class NotebookProfile:
    """Seconds spent by one notebook in each phase (see the module docstring)."""

    name: str
    kernel_s: float
    setup_s: float
    imports_s: float
    work_s: float

    @property
    def startup_s(self) -> float:
        return self.kernel_s + self.setup_s + self.imports_s

    @property
    def total_s(self) -> float:
        return self.startup_s + self.work_s


def imports_only(source: str) -> bool:
    """True for a code cell whose statements are all imports (comments and blank lines aside)."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return bool(body) and all(isinstance(node, ast.Import | ast.ImportFrom) for node in body)


def _timed_cells(nb: nbformat.NotebookNode, folder: Path | None, tier: str, timeout: int) -> tuple[float, list[float]]:
    """Start a fresh kernel, execute every code cell of ``nb``; return the kernel's start-up and each cell's seconds."""
    saved = dict(os.environ)
    os.environ.update(kernel_environment(tier))  # the kernel inherits this process's environment
    resources = {"metadata": {"path": str(folder)}} if folder else {}
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        resources=resources,
    )
    try:
        start = time.perf_counter()
        with client.setup_kernel():
            kernel = time.perf_counter() - start
            cells = []
            for index, cell in enumerate(nb.cells):
                if cell.cell_type == "code":
                    t0 = time.perf_counter()
                    client.execute_cell(cell, index)
                    cells.append(time.perf_counter() - t0)
        return kernel, cells
    finally:
        os.environ.clear()
        os.environ.update(saved)


def profile_notebook(path: Path, name: str, *, tier: str = "smoke", timeout: int = 300) -> NotebookProfile:
    """Execute ``path`` in a fresh kernel (cwd: its folder) and time its phases; outputs are discarded."""
    nb = nbformat.read(str(path), as_version=4)
    kernel, seconds = _timed_cells(nb, path.parent, tier, timeout)
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    imports = sum(s for s, src in zip(seconds[1:], sources[1:]) if imports_only(src))
    work = sum(seconds[1:]) - imports
    return NotebookProfile(name, kernel, seconds[0] if seconds else 0.0, imports, work)


def bare_import_seconds(module: str, tier: str = "smoke") -> float:
    """Seconds of ``import module`` in a fresh kernel (after ``import torch``, unless the module is torch)."""
    cells = [
        nbformat.v4.new_code_cell("" if module == "torch" else "import torch"),
        nbformat.v4.new_code_cell(f"import {module}"),
    ]
    _, seconds = _timed_cells(nbformat.v4.new_notebook(cells=cells), None, tier, 300)
    return seconds[-1]


def run(
    tier: str = "smoke", units: Iterable[int | str] | None = None, *, progress: bool = True
) -> tuple[list[NotebookProfile], dict[str, float]]:
    """Profile every lecture and solution notebook of ``units`` (default: all), one at a time; also a bare
    kernel's ``import torch`` and ``import lightning``."""
    manifest.require_repo()
    chosen = manifest.UNITS if units is None else [manifest.get_unit(u) for u in units]
    profiles = []
    for unit in chosen:
        for name, _, path in unit_notebooks(unit):
            p = profile_notebook(path, f"{unit.dirname}/{name}", tier=tier)
            if progress:
                print(
                    f"{p.name:<56} kernel {p.kernel_s:4.1f}  setup {p.setup_s:4.1f}  imports {p.imports_s:4.1f}  "
                    f"work {p.work_s:5.1f} s",
                    flush=True,
                )
            profiles.append(p)
    bare = {module: bare_import_seconds(module, tier) for module in ("torch", "lightning")}
    return profiles, bare


def rows(profiles: list[NotebookProfile], bare: dict[str, float]) -> list[Row]:
    """One row per notebook, the course's totals, and the bare imports."""
    out = [
        Row(
            "start-up",
            p.name,
            "start-up s",
            p.startup_s,
            p.total_s,
            p.startup_s / p.total_s,
            f"kernel {p.kernel_s:.1f} + setup {p.setup_s:.1f} + imports {p.imports_s:.1f}; work {p.work_s:.1f}",
        )
        for p in profiles
    ]
    if profiles:
        totals = {k: sum(getattr(p, k) for p in profiles) for k in ("kernel_s", "setup_s", "imports_s", "work_s")}
        startup = totals["kernel_s"] + totals["setup_s"] + totals["imports_s"]
        whole = startup + totals["work_s"]
        out.append(
            Row(
                "start-up: course total",
                f"{len(profiles)} notebooks, one at a time",
                "start-up s",
                startup,
                whole,
                startup / whole,
                f"kernel {totals['kernel_s']:.0f} + setup {totals['setup_s']:.0f} + imports "
                f"{totals['imports_s']:.0f}; work {totals['work_s']:.0f}",
            )
        )
    for module, seconds in bare.items():
        out.append(
            Row(
                "start-up: bare import",
                f"import {module} in a fresh kernel" + ("" if module == "torch" else " (torch already imported)"),
                "s",
                seconds,
                float("nan"),
                float("nan"),
                "",
            )
        )
    return out
