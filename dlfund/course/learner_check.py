"""``dlfund check``: run the learner's exercise notebooks headless and say, per exercise, where they stand.

Each notebook is read from the workspace and executed in a fresh kernel (its folder as the working
directory, the learner's tier, a time limit per cell); the executed copy goes to
``runs/check/<unit>/<name>.ipynb``. The learner's notebook is never written. Outcomes:

- **passed**: every cell ran, the exercise's check included;
- **not yet**: the check raised :class:`~dlfund.checks._core.CheckFailed`; its message says which mistake,
  what was expected and what was found;
- **not started**: the notebook's code is still the generated stubs (nothing is executed then), or a stub
  still raises ``NotImplementedError``;
- **error**: the learner's code raised, or a cell ran past its time limit: the cell, the line, the exception;
- **no check**: the cell calling the exercise's check is missing, so nothing could pass.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from tqdm.auto import tqdm

from dlfund.course import edits, manifest, runner, workspace
from dlfund.utils.io import atomic_write_text

STATUSES = ("passed", "not yet", "not started", "error", "no check")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
CELL_FRAME = re.compile(r"Cell In\[(\d+)\], line (\d+)")


@dataclass(frozen=True)
class Outcome:
    status: str
    message: str = ""


@dataclass(frozen=True)
class Item:
    """One exercise to check: its unit, name and the learner's file."""

    unit: manifest.Unit
    exercise: manifest.Exercise
    path: Path
    base_code: str | None
    """The code fingerprint of the version copied into the workspace (``None``: unknown)."""

    @property
    def key(self) -> str:
        return f"{self.unit.dirname}/{self.exercise.name}"


def missing_checks(nb: dict[str, Any], exercise: manifest.Exercise) -> list[str]:
    """The exercise's check calls (``unit01.early_stopping``) that no code cell makes."""
    code = "\n".join(
        "".join(c["source"]) if isinstance(c.get("source"), list) else str(c.get("source", ""))
        for c in nb["cells"]
        if c.get("cell_type") == "code"
    )
    return [name for name in exercise.checks if not re.search(rf"\b{re.escape(name)}\s*\(", code)]


def _source_line(cell: Any, line: int) -> str:
    lines = str(cell.source).splitlines()
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _frames(cell: Any) -> list[tuple[int, int]]:
    """``(execution count, line)`` of every notebook-cell frame in ``cell``'s error traceback."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            text = ANSI.sub("", "\n".join(out.get("traceback", [])))
            return [(int(a), int(b)) for a, b in CELL_FRAME.findall(text)]
    return []


def classify(
    ename: str, evalue: str, cell: Any, number: int, cells: dict[int, tuple[int, Any]], started: bool
) -> Outcome:
    """The outcome for a cell (code cell ``number``) that raised ``ename: evalue``; ``cells`` maps
    execution counts to (code cell number, cell), to point at the learner's line."""
    first = evalue.strip().splitlines()[0] if evalue.strip() else ""
    where = ""
    frames = [(cells[count], line) for count, line in _frames(cell) if count in cells]
    if ename == "CheckFailed":
        theirs = [f for f in frames if f[0][0] != number]
        if theirs:
            (n, c), line = theirs[-1]
            where = f" (raised in code cell {n}, line {line}: `{_source_line(c, line)}`)"
        stub = "is not implemented yet" in evalue
        return Outcome("not started" if stub and not started else "not yet", evalue.strip() + where)
    if ename == "NotImplementedError":
        return Outcome(
            "not started" if not started else "not yet",
            f"code cell {number}: a stub still raises NotImplementedError" + (f" (hint: {first})" if first else ""),
        )
    if frames:
        (n, c), line = frames[-1]
        where = f"code cell {n}, line {line}: `{_source_line(c, line)}`"
    else:
        where = f"code cell {number}"
    return Outcome("error", f"{where}: {ename}: {first}")


def execute(item: Item, nb: Any, out: Path, *, tier: str, timeout: int, desc: str = "") -> Outcome:
    """Run ``nb`` (the learner's notebook, already read) cell by cell; write the executed copy to ``out``."""
    env = {**os.environ, **runner.kernel_environment(tier)}
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        extra_arguments=runner.KERNEL_ARGUMENTS,
        resources={"metadata": {"path": str(item.path.parent)}},
    )
    started = item.base_code is None or edits.code_fingerprint(nb) != item.base_code
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    by_count: dict[int, tuple[int, Any]] = {}
    outcome = Outcome("passed")
    try:
        with client.setup_kernel(env=env):
            for number, (index, cell) in enumerate(tqdm(code, desc=desc, unit="cell", leave=False), start=1):
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    outcome = Outcome(
                        "error",
                        f"code cell {number} did not finish within {timeout} s (an endless loop?); "
                        "`dlfund check --timeout SECONDS` changes the limit",
                    )
                    break
                except CellExecutionError as err:
                    if cell.execution_count:
                        by_count[cell.execution_count] = (number, cell)
                    outcome = classify(err.ename, err.evalue, cell, number, by_count, started)
                    break
                except DeadKernelError:
                    outcome = Outcome("error", f"code cell {number}: the kernel died (out of memory?)")
                    break
                if cell.execution_count:
                    by_count[cell.execution_count] = (number, cell)
    finally:
        nb.metadata.setdefault("dlfund", {})["check"] = {"status": outcome.status, "tier": tier}
        atomic_write_text(out, nbformat.writes(nb))
    return outcome


def check_one(item: Item, *, tier: str, timeout: int, desc: str = "") -> Outcome:
    """Check one exercise (module docstring). The learner's file is only read."""
    source = manifest.display_path(item.unit.exercise_path(item.exercise.name))
    if not item.path.is_file():
        return Outcome("not started", f"{item.path} is missing: `dlfund start` copies it again")
    text = item.path.read_text(encoding="utf-8", errors="replace")
    nb_json = edits.parse(text)
    if nb_json is None:
        why = "not valid notebook JSON"
        return Outcome("error", f"{item.path.name} is not a notebook ({why}): restore it from {source}")
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except (nbformat.ValidationError, ValueError, KeyError, TypeError, AttributeError) as err:
        reason = str(err).splitlines()[0][:100]
        return Outcome("error", f"{item.path.name} is not a valid notebook ({reason}): restore it from {source}")
    missing = missing_checks(nb_json, item.exercise)
    if missing:
        calls = ", ".join(f"dlfund.checks.{name}(...)" for name in missing)
        return Outcome("no check", f"no check ran: the cell calling {calls} is missing (copy it back from {source})")
    if item.base_code is not None and edits.code_fingerprint(nb_json) == item.base_code:
        return Outcome("not started", "the code is still the exercise's stubs")
    out = manifest.RUNS_DIR / "check" / item.unit.dirname / f"{item.exercise.name}.ipynb"
    return execute(item, nb, out, tier=tier, timeout=timeout, desc=desc)


def check_all(
    items: list[Item],
    *,
    tier: str,
    timeout: int,
    on_result: Callable[[Item, Outcome], None],
    check: Callable[..., Outcome] | None = None,
) -> tuple[list[tuple[Item, Outcome]], bool]:
    """Check ``items`` in order, calling ``on_result`` after each; return the results and whether Ctrl-C
    stopped the run (the results so far are kept; the interrupted exercise is not recorded)."""
    results: list[tuple[Item, Outcome]] = []
    try:
        for n, item in enumerate(items, start=1):
            desc = f"[{n}/{len(items)}] {item.exercise.name}"
            outcome = (check or check_one)(item, tier=tier, timeout=timeout, desc=desc)
            results.append((item, outcome))
            on_result(item, outcome)
    except KeyboardInterrupt:
        return results, True
    return results, False


def summary(results: list[tuple[Item, Outcome]], items: list[Item], interrupted: bool) -> list[str]:
    lines = []
    units: dict[int, list[Outcome]] = {}
    for item, outcome in results:
        units.setdefault(item.unit.number, []).append(outcome)
    for item in items:
        units.setdefault(item.unit.number, [])
    asked = {u: sum(i.unit.number == u for i in items) for u in units}
    for number, outcomes in units.items():
        passed = sum(o.status == "passed" for o in outcomes)
        lines.append(f"unit {number}: {passed}/{asked[number]} exercises passed")
    if interrupted:
        lines.append(f"interrupted: {len(results)} of {len(items)} exercise(s) checked; the others were not run")
    return lines


def items_for(ws: Path, spec: str | None) -> list[Item]:
    """The exercises named by ``spec`` (``None``: all; ``"1"``; ``"1/ex02"``; ``"perceptron/ex02-random-init"``)."""
    state = workspace.load_state(ws)
    unit_key, _, name = (spec or "").partition("/")
    try:
        units = [manifest.get_unit(unit_key)] if unit_key else list(manifest.UNITS)
    except KeyError as err:
        raise workspace.WorkspaceError(err.args[0]) from None
    items = []
    for u in units:
        exercises = [e for e in u.exercises if not name or e.name == name or e.name.startswith(name + "-")]
        if name and not exercises:
            raise workspace.WorkspaceError(
                f"unit {u.number} has no exercise {name!r}; its exercises: {', '.join(e.name for e in u.exercises)}"
            )
        for e in exercises:
            rel = workspace.exercise_rel(u, e.name)
            base = state["files"].get(rel, {}).get("code_sha256") or None
            items.append(Item(u, e, ws / rel, base))
    return items
