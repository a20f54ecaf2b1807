"""The library's layers, as ARCHITECTURE.md draws them: imports only go down, never in a circle.

The layer table is read from ARCHITECTURE.md itself, so the note and the code cannot disagree. Every
import in ``dlfund/`` counts, wherever it stands (module level, inside a function, under
``TYPE_CHECKING``): an import that goes up a layer or closes a cycle fails here with its file and line.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from dlfund.course import manifest

PACKAGE = manifest.ROOT / "dlfund"
NOTE = manifest.ROOT / "ARCHITECTURE.md"
MAX_LAZY = 10


def layers() -> dict[str, int]:
    """``{"dlfund.utils": 0, ...}`` from the note's table rows ``| 0 · core | `dlfund.utils` | ... |``."""
    found = {}
    for line in NOTE.read_text(encoding="utf-8").splitlines():
        row = re.match(r"^\|\s*(\d+)\s*·[^|]*\|([^|]*)\|", line)
        if row:
            for name in re.findall(r"`(dlfund(?:\.\w+)?)`", row.group(2)):
                found[name] = int(row.group(1))
    assert found, "ARCHITECTURE.md has no layer table (rows like '| 0 · core | `dlfund.utils` | ... |')"
    return found


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(manifest.ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    in_function: bool
    commented: bool


def imports(mods: dict[str, Path] | None = None) -> list[Import]:
    mods = mods or modules()
    found = []
    for name, path in mods.items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        tree = ast.parse(text)
        in_function = {
            id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}:{node.lineno}: relative import; write it absolute"
                base = node.module or ""
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            near = lines[max(0, node.lineno - 4) : node.end_lineno]
            commented = any("#" in line for line in near)
            for target in targets:
                while target not in mods and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in mods and target != name:
                    found.append(Import(name, target, node.lineno, id(node) in in_function, commented))
    return found


def layer_of(module: str, table: dict[str, int]) -> int:
    if module == "dlfund":
        return table["dlfund"]
    best = max(
        (p for p in table if p != "dlfund" and (module == p or module.startswith(p + "."))), key=len, default=None
    )
    assert best is not None, f"{module} belongs to no layer: add its package to ARCHITECTURE.md's table"
    return table[best]


def test_every_package_has_a_layer():
    table = layers()
    for module in modules():
        layer_of(module, table)


def upward(found: list[Import], table: dict[str, int]) -> list[str]:
    return [
        f"{i.source} (line {i.line}, layer {layer_of(i.source, table)}) imports {i.target} "
        f"(layer {layer_of(i.target, table)})"
        for i in found
        if layer_of(i.target, table) > layer_of(i.source, table)
    ]


def test_no_import_goes_up_a_layer():
    bad = upward(imports(), layers())
    assert not bad, "imports that go up a layer:\n" + "\n".join(bad)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    edges: dict[str, set[str]] = {}
    for i in imports():
        edges.setdefault(i.source, set()).add(i.target)
    assert not cycles(edges), f"import cycles: {cycles(edges)}"


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_inside_functions_are_few_and_say_why():
    lazy = [i for i in imports() if i.in_function]
    silent = [f"{i.source} line {i.line} imports {i.target}" for i in lazy if not i.commented]
    assert not silent, "an import inside a function needs a comment saying why it is not at the top:\n" + "\n".join(
        silent
    )
    assert len(lazy) <= MAX_LAZY, f"{len(lazy)} imports inside functions (at most {MAX_LAZY}): " + ", ".join(
        f"{i.source}->{i.target}" for i in lazy
    )


def test_a_bad_import_would_be_caught(tmp_path):
    """Plant bad imports in a copy of a bottom-layer module: the checks above must see them."""
    original = (PACKAGE / "utils" / "io.py").read_text(encoding="utf-8")
    planted = tmp_path / "io.py"
    mods = {**modules(), "dlfund.utils.io": planted}
    planted.write_text("from dlfund.course import manifest\n" + original, encoding="utf-8")
    assert upward(imports(mods), layers()) == [
        "dlfund.utils.io (line 1, layer 0) imports dlfund.course.manifest (layer 7)"
    ]
    planted.write_text("from .net import block_network\n" + original, encoding="utf-8")
    with pytest.raises(AssertionError, match="relative import"):
        imports(mods)
