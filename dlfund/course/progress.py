"""``dlfund progress``: how far the learner is, unit by unit, and what to do next.

Stored in ``progress.json`` in the workspace, written atomically: ``dlfund check`` records each exercise's
result, the quiz and the exam record their scores. A corrupted or hand-broken file is kept aside as
``progress.json.bad-<time>`` with one line saying so, and progress starts afresh from what the files
show. This module must stay light (no torch, no nbformat): ``dlfund progress`` answers in well under 2 s.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dlfund.course import edits, manifest, workspace
from dlfund.utils.io import atomic_write_json

FILE = "progress.json"
SECTIONS = ("exercises", "quizzes")


def now() -> str:
    return datetime.now().isoformat(timespec="seconds")


def load(ws: Path) -> dict[str, Any]:
    """``{"exercises": {"01-perceptron/ex01-early-stopping": {...}}, "quizzes": {"1": {...}, "exam": {...}}}``."""
    data = workspace.read_json(ws / FILE, "the progress file") or {}
    out: dict[str, Any] = {"version": 1}
    for section in SECTIONS:
        value = data.get(section, {})
        out[section] = {k: v for k, v in value.items() if isinstance(v, dict)} if isinstance(value, dict) else {}
    return out


def save(ws: Path, data: dict[str, Any]) -> None:
    atomic_write_json(ws / FILE, data)


def record_exercise(ws: Path, key: str, status: str, message: str, code_sha256: str | None) -> None:
    """Record one ``dlfund check`` result (``key``: ``"01-perceptron/ex01-early-stopping"``)."""
    data = load(ws)
    data["exercises"][key] = {"status": status, "message": message, "code_sha256": code_sha256 or "", "at": now()}
    save(ws, data)


def record_quiz(key: str, score: float, passed: bool, complete: bool) -> str | None:
    """Record a quiz (``key``: the unit number) or exam (``"exam"``) attempt in the workspace, if there
    is one; return a line to show, or ``None``. Never raises: a quiz must not fail over its bookkeeping."""
    ws = workspace.find()
    if ws is None:
        return None
    try:
        data = load(ws)
        old = data["quizzes"].get(key, {})
        best = max(score, float(old.get("best", 0.0))) if complete else float(old.get("best", 0.0))
        data["quizzes"][key] = {
            "best": best,
            "passed": bool(old.get("passed")) or passed,
            "attempts": int(old.get("attempts", 0)) + 1,
            "last": score,
            "at": now(),
        }
        save(ws, data)
    except (OSError, ValueError, TypeError) as err:
        return f"(the score could not be recorded in {ws / FILE}: {err})"
    return f"recorded in your progress: {ws / FILE} (see `dlfund progress`)"


@dataclass
class UnitProgress:
    unit: manifest.Unit
    lectures_done: list[str] = field(default_factory=list)
    lectures_todo: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)
    quiz: dict[str, Any] = field(default_factory=dict)
    last: float = 0.0
    newer: list[str] = field(default_factory=list)


def _executed(nb: dict[str, Any] | None) -> bool:
    code = [c for c in (nb or {}).get("cells", []) if c.get("cell_type") == "code"]
    return bool(code) and all(c.get("execution_count") for c in code)


def _stamp(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return 0.0


def unit_progress(ws: Path, unit: manifest.Unit, data: dict[str, Any], state: dict[str, Any]) -> UnitProgress:
    p = UnitProgress(unit)
    folder = workspace.unit_folder(ws, unit)
    if folder.is_dir():  # a notebook the learner changed (not one just copied) is activity
        for f in folder.glob("*.ipynb"):
            copied = state["files"].get(f"{unit.dirname}/{f.name}", {}).get("sha256")
            if copied != workspace.sha256(f.read_text(encoding="utf-8", errors="replace")):
                p.last = max(p.last, f.stat().st_mtime)
    for nb in unit.notebooks:
        runs = glob.glob(str(manifest.RUNS_DIR / unit.dirname / "executed" / f"{glob.escape(nb.name)}.*.ipynb"))
        done = bool(runs) or _executed(workspace.read_notebook(folder / f"{nb.name}.ipynb"))
        (p.lectures_done if done else p.lectures_todo).append(nb.name)
    for ex in unit.exercises:
        rel = workspace.exercise_rel(unit, ex.name)
        text = (ws / rel).read_text(encoding="utf-8", errors="replace") if (ws / rel).is_file() else None
        code = edits.code_digest_of(text) if text is not None else None
        result = data["exercises"].get(rel.removesuffix(".ipynb"), {})
        p.last = max(p.last, _stamp(result.get("at", "")))
        base = state["files"].get(rel, {}).get("code_sha256")
        if result.get("status") == "passed" and code is not None and result.get("code_sha256") == code:
            p.passed.append(ex.name)
        elif text is not None and code != base:
            p.started.append(ex.name)
        else:
            p.not_started.append(ex.name)
        newer = state["newer"].get(rel)
        if newer and (ws / newer).exists():
            p.newer.append(newer)
    p.quiz = data["quizzes"].get(str(unit.number), {})
    p.last = max(p.last, _stamp(p.quiz.get("at", "")))
    return p


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "—"


def _quiz(q: dict[str, Any]) -> str:
    if not q:
        return "not taken"
    best = q.get("best", 0.0)
    if not isinstance(best, (int, float)):
        return "?"
    return f"{float(best):.0%} {'passed' if q.get('passed') else 'not passed'}"


def next_step(rows: list[UnitProgress], exam: dict[str, Any]) -> str:
    for p in rows:
        u = p.unit
        if p.lectures_todo:
            return f"lecture {u.dirname}/{p.lectures_todo[0]}.ipynb: open it with `dlfund lab` and run it"
        todo = [e.name for e in u.exercises if e.name not in p.passed]
        if todo:
            where = f"{u.dirname}/{todo[0]}.ipynb"
            return f"exercise {where}: do it in `dlfund lab`, then `dlfund check {u.number}/{todo[0]}`"
        if not p.quiz.get("passed"):
            return f"the quiz of unit {u.number}: `dlfund quiz --unit {u.number}`"
    if not exam.get("passed"):
        return "the final exam: `dlfund exam`"
    return "nothing: you have done the whole course. Well done!"


def report(ws: Path) -> str:
    data = load(ws)
    state = workspace.load_state(ws)
    rows = [unit_progress(ws, u, data, state) for u in manifest.UNITS]
    width = max(len(f"{u.number:02d} {u.title}") for u in manifest.UNITS)
    lines = [
        f"progress in {ws}",
        f"{'unit':<{width}}  {'lectures run':>12}  {'exercises passed':>16} {'started':>7} {'to do':>5}  "
        f"{'quiz (best)':<16} last activity",
    ]
    for p in rows:
        lectures = f"{len(p.lectures_done)}/{len(p.unit.notebooks)}"
        exercises = f"{len(p.passed)}/{len(p.unit.exercises)}"
        lines.append(
            f"{f'{p.unit.number:02d} {p.unit.title}':<{width}}  {lectures:>12}  "
            f"{exercises:>16} {len(p.started):>7} {len(p.not_started):>5}  "
            f"{_quiz(p.quiz):<16} {_when(p.last)}"
        )
    exam = data["quizzes"].get("exam", {})
    lines.append(f"final exam: {_quiz(exam)}")
    for p in rows:
        for newer in p.newer:
            base = newer.rsplit(".v", 1)[0]
            lines.append(
                f"note: the course updated {base}.ipynb; you had started it, so the new version is beside it: {newer}"
            )
    lines.append(f"next: {next_step(rows, exam)}")
    return "\n".join(lines)


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "progress",
        help="how far you are: lectures run, exercises passed, quiz scores, and what to do next",
        description="Show your progress, unit by unit, from your workspace (see `dlfund start`).",
    )
    s.add_argument("--path", help="the workspace (default: $DLFUND_WORKSPACE, else workspace/ in the course)")
    s.set_defaults(func=cmd_progress)


def cmd_progress(args: argparse.Namespace) -> int:
    print(report(workspace.require(args.path)))
    return 0


def main(argv: list[str]) -> int:
    """``dlfund progress``, without the rest of the command line (which imports torch)."""
    p = argparse.ArgumentParser(prog="dlfund")
    add_parser(p.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = p.parse_args(argv)
    try:
        return int(args.func(args))
    except (workspace.WorkspaceError, OSError) as err:
        print(f"dlfund: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
