"""Reading and executing the course notebooks."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import nbformat


def read(path: str | Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def code_cells(nb: nbformat.NotebookNode) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def definitions(path: str | Path, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Execute only the imports, functions and classes a notebook defines, and return them.

    Parity tests use this to compare the version a notebook builds step by step with the library's
    version, without running the notebook's training cells. ``names`` limits what is returned and
    raises a clear error when the notebook does not define one of them.
    """
    nb = read(path)
    keep = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    namespace: dict[str, Any] = {"__name__": f"notebook:{Path(path).stem}"}
    for i, source in enumerate(code_cells(nb)):
        if source.lstrip().startswith(("%", "!")):
            continue
        tree = ast.parse(source, filename=f"{path} (code cell {i})")
        tree.body = [node for node in tree.body if isinstance(node, keep)]
        exec(compile(tree, f"{path} (code cell {i})", "exec"), namespace)
    if names is None:
        return namespace
    missing = [n for n in names if n not in namespace]
    if missing:
        raise KeyError(f"{path} does not define {', '.join(missing)}")
    return {n: namespace[n] for n in names}


INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
"""Matplotlib's backend inside a Jupyter kernel: ``plt.show()`` becomes an image output of the cell. Every
kernel the course starts (``dlfund run``, the tests, the book) gets it; a headless backend (Agg) is only
for processes without a kernel."""

IMAGE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")


def figure_calls(source: str) -> int:
    """How many ``plt.show()`` calls a code cell makes outside function bodies (each should give an image)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return 0
    count = 0
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue  # a definition shows nothing until it is called
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "show"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "plt"
        ):
            count += 1
        stack.extend(ast.iter_child_nodes(node))
    return count


def images(outputs: list[Any]) -> int:
    """How many figures a cell's outputs hold."""
    return sum(
        1
        for out in outputs
        if out.get("output_type") in ("display_data", "execute_result")
        and any(kind in out.get("data", {}) for kind in IMAGE_TYPES)
    )


def missing_figure(source: str, outputs: list[Any]) -> str | None:
    """Why a cell shows fewer figures than it has ``plt.show()`` calls; ``None`` when it shows them all."""
    calls, shown = figure_calls(source), images(outputs)
    if shown >= calls:
        return None
    return (
        f"the cell calls plt.show() {calls} time(s) but its outputs hold {shown} image(s): is matplotlib's backend "
        f"headless inside the kernel? (MPLBACKEND={os.environ.get('MPLBACKEND', 'unset')}; a kernel needs "
        f"{INLINE_BACKEND})"
    )


def missing_figures(nb: nbformat.NotebookNode) -> list[str]:
    """One line per code cell of an executed notebook that calls ``plt.show()`` and shows no figure."""
    problems = []
    for number, cell in enumerate((c for c in nb.cells if c.cell_type == "code"), start=1):
        why = missing_figure(cell.source, cell.get("outputs", []))
        if why:
            problems.append(f"code cell {number}: {why}")
    return problems
