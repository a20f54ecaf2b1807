"""Generate the learner's exercise notebooks from the solution notebooks.

A solution notebook ``solutions/<unit>/<name>.ipynb`` is the single source of an exercise. Every
region of a code cell from a line ``# BEGIN SOLUTION`` (optionally ``# BEGIN SOLUTION hint: ...``)
to a line ``# END SOLUTION`` is replaced by ``raise NotImplementedError("<hint>")`` at the
indentation of the BEGIN line; outputs and execution counts are cleared. The result is written to
``units/<unit>/exercises/<name>.ipynb``; ``check()`` reports generated notebooks that are stale.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from dlfund.course import edits, manifest
from dlfund.utils.io import atomic_write_text

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?:\s+hint:\s*(?P<hint>.*?))?\s*$")
END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
DEFAULT_HINT = "your code here"
GENERATED_NOTE = (
    "*This notebook is generated from `solutions/{unit}/{name}.ipynb` by `dlfund exercises build`: "
    "edit the solution, not this file.*"
)


class SolutionFormatError(ValueError):
    """A solution notebook's BEGIN/END SOLUTION markers are malformed."""


def stub_source(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace each solution region in ``source``; return the new source and the number of regions."""
    out: list[str] = []
    regions = 0
    inside: tuple[int, str] | None = None  # (line number, stub line)
    for lineno, line in enumerate(source.splitlines(), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if inside:
                raise SolutionFormatError(
                    f"{where}, line {lineno}: BEGIN SOLUTION inside the region begun on line {inside[0]}"
                )
            hint = (begin.group("hint") or DEFAULT_HINT).strip()
            inside = (
                lineno,
                f"{begin.group('indent')}raise NotImplementedError({json.dumps(hint, ensure_ascii=False)})",
            )
        elif end:
            if not inside:
                raise SolutionFormatError(f"{where}, line {lineno}: END SOLUTION without a BEGIN SOLUTION")
            out.append(inside[1])
            regions += 1
            inside = None
        elif not inside:
            out.append(line)
    if inside:
        raise SolutionFormatError(f"{where}: BEGIN SOLUTION on line {inside[0]} has no END SOLUTION")
    return "\n".join(out), regions


def make_exercise(solution: nbformat.NotebookNode, unit: str, name: str) -> nbformat.NotebookNode:
    """The learner's notebook for one solution notebook (raises if it has no solution region)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {k: v for k, v in solution.metadata.items() if k in ("kernelspec", "language_info")}
    total = 0
    for index, cell in enumerate(solution.cells):
        if cell.cell_type == "code":
            source, n = stub_source(cell.source, where=f"{unit}/{name} code cell {index}")
            total += n
            new = nbformat.v4.new_code_cell(source)
            if cell.metadata.get("tags"):
                new.metadata["tags"] = list(cell.metadata["tags"])
        elif cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(cell.source)
        else:
            new = nbformat.v4.new_raw_cell(cell.source)
        new.pop("id", None)
        nb.cells.append(new)
    if total == 0:
        raise SolutionFormatError(
            f"solutions/{unit}/{name}.ipynb has no '# BEGIN SOLUTION' region: nothing for the learner to do"
        )
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(GENERATED_NOTE.format(unit=unit, name=name)))
    for cell in nb.cells:
        cell.pop("id", None)
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


@dataclass(frozen=True)
class Target:
    unit: manifest.Unit
    exercise: manifest.Exercise

    @property
    def source(self) -> Path:
        return self.unit.solution_path(self.exercise.name)

    @property
    def target(self) -> Path:
        return self.unit.exercise_path(self.exercise.name)

    def expected(self, *, stamped: bool = True) -> str:
        """The notebook's text as generated now; ``stamped=False``: without the fingerprint, as notebooks
        were generated before there was one (such a file is not counted as edited)."""
        if not self.source.exists():
            raise FileNotFoundError(
                f"the manifest lists exercise {self.exercise.name!r} of unit {self.unit.number}, "
                f"but its solution {manifest.display_path(self.source)} does not exist"
            )
        solution = nbformat.read(str(self.source), as_version=4)
        nb = make_exercise(solution, self.unit.dirname, self.exercise.name)
        if stamped:
            edits.stamp(nb)  # lets a later build tell a learner's edits from an old generation
        return render(nb)

    def edited(self) -> bool:
        """Whether someone edited the generated notebook (see :mod:`dlfund.course.edits`)."""
        current = self.target.read_text(encoding="utf-8")
        return edits.edited(current) and current != self.expected(stamped=False)


def targets(units: tuple[manifest.Unit, ...] = manifest.UNITS) -> list[Target]:
    return [Target(u, e) for u in units for e in u.exercises]


def build(units: tuple[manifest.Unit, ...] = manifest.UNITS) -> list[Path]:
    """(Re)write every generated exercise notebook; return the ones that changed.

    A missing solution does not stop the others from being built; the error lists all of them. A
    notebook that someone edited (its cells no longer match the fingerprint written when it was generated,
    see :mod:`dlfund.course.edits`) is never overwritten: the others are built, then
    :class:`~dlfund.course.edits.KeptEdits` says which were kept and how to move them to a workspace.
    """
    changed, missing, kept = [], [], []
    for t in targets(units):
        try:
            text = t.expected()
        except FileNotFoundError as err:
            missing.append(str(err))
            continue
        if not t.target.exists() or t.target.read_text(encoding="utf-8") != text:
            if t.target.exists() and t.edited():
                kept.append(t.target)
                continue
            atomic_write_text(t.target, text)
            changed.append(t.target)
    if kept:
        raise edits.KeptEdits(_kept_message(kept), changed)
    if missing:
        raise FileNotFoundError("\n".join(missing))
    return changed


def _kept_message(kept: list[Path]) -> str:
    kept_line = "has edits (it no longer matches what was generated): kept as it is"
    lines = [f"{manifest.display_path(p)} {kept_line}" for p in kept]
    lines.append(
        "to keep that work, run `dlfund start`: it copies an edited exercise into your workspace as your "
        "starting point (do your exercises there: nothing overwrites it); then delete the file here and run "
        "`dlfund exercises build` again"
    )
    return "\n".join(lines)


def stale(units: tuple[manifest.Unit, ...] = manifest.UNITS) -> list[str]:
    """Generated notebooks that are missing or differ from what their solution generates."""
    problems = []
    for t in targets(units):
        rel = manifest.display_path(t.target)
        if not t.target.exists():
            problems.append(f"{rel} is missing (run `dlfund exercises build`)")
        elif t.target.read_text(encoding="utf-8") != t.expected():
            problems.append(
                f"{rel} differs from what {manifest.display_path(t.source)} generates "
                "(edit the solution, then run `dlfund exercises build`)"
            )
    return problems
