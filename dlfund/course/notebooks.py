"""Reading and executing the course notebooks."""

from __future__ import annotations

import ast
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
