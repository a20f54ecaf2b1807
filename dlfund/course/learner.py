"""The learner's commands: ``dlfund start`` (a workspace of their own), ``dlfund check`` and
``dlfund progress`` (see :mod:`dlfund.course.progress`), and where ``dlfund lab`` opens."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dlfund.course import edits, exercises, learner_check, manifest, progress, runner, workspace
from dlfund.course.config import pick_tier


def course_files() -> list[workspace.CourseFile]:
    """Every lecture and exercise notebook, as the workspace holds them: ``NN-slug/<name>.ipynb``.

    An exercise's course version is what its solution generates now; an exercise in ``units/`` that a
    learner edited (see :mod:`dlfund.course.edits`) becomes their starting point.
    """
    files = []
    for unit in manifest.UNITS:
        for nb in unit.notebooks:
            path = unit.notebook_path(nb.name)
            text = path.read_text(encoding="utf-8")
            files.append(workspace.CourseFile(f"{unit.dirname}/{nb.name}.ipynb", text, manifest.display_path(path)))
    for t in exercises.targets(manifest.UNITS):
        text = t.expected()
        theirs = None
        if t.target.exists() and t.target.read_text(encoding="utf-8") != text and t.edited():
            theirs = t.target.read_text(encoding="utf-8")
        rel = workspace.exercise_rel(t.unit, t.exercise.name)
        files.append(workspace.CourseFile(rel, text, manifest.display_path(t.target), theirs))
    return files


def cmd_start(args: argparse.Namespace) -> int:
    ws = workspace.prepare(args.path)
    fresh = workspace.find(ws) is None
    for line in workspace.sync(ws, course_files()):
        print(line)
    if fresh:
        print("your workspace is ready: `dlfund lab` opens it; `dlfund check 1` checks unit 1's exercises")
    if workspace.resolve(None) != ws:
        print(f"other commands find it with --path {ws} or DLFUND_WORKSPACE={ws}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    ws = workspace.require(args.path)
    if args.timeout is not None and args.timeout <= 0:
        raise workspace.WorkspaceError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    items = learner_check.items_for(ws, args.exercise)
    tier = pick_tier(args.tier)
    timeout = args.timeout or runner.CELL_TIMEOUT_S[tier]
    print(f"checking {len(items)} exercise(s) in {ws} (the saved notebooks; {tier} tier, ≤ {timeout} s per cell)")
    width = max(len(i.exercise.name) for i in items)

    def show(item: learner_check.Item, outcome: learner_check.Outcome) -> None:
        text = f"  {item.unit.number:02d} {item.exercise.name:<{width}}  {outcome.status}"
        print(text + (f": {outcome.message}" if outcome.message and outcome.status != "passed" else ""), flush=True)
        text = item.path.read_text(encoding="utf-8", errors="replace") if item.path.is_file() else None
        code = edits.code_digest_of(text) if text is not None else None
        progress.record_exercise(ws, item.key, outcome.status, outcome.message, code)

    results, interrupted = learner_check.check_all(items, tier=tier, timeout=timeout, on_result=show)
    for line in learner_check.summary(results, items, interrupted):
        print(line)
    if any(o.status not in ("passed", "not started", "no check") for _, o in results):
        print(f"executed copies (with every output and error): {manifest.display_path(manifest.RUNS_DIR / 'check')}/")
    if interrupted:
        return 130
    return 0 if len(results) == len(items) and all(o.status == "passed" for _, o in results) else 1


def lab_root() -> tuple[Path, str]:
    """Where ``dlfund lab`` opens JupyterLab, and a line saying why."""
    ws = workspace.find()
    if ws is not None:
        return ws, f"starting JupyterLab in your workspace {ws}"
    return manifest.require_repo(), (
        f"no workspace yet ({workspace.resolve()}): starting JupyterLab on the course. "
        "`dlfund start` makes a workspace of your own, where nothing you write is overwritten"
    )


def add_parsers(sub: Any) -> None:
    s = sub.add_parser(
        "start",
        help="create or update your workspace: your own copies of the notebooks, never overwritten",
        description="Copy the lecture and exercise notebooks into your workspace (default: workspace/ in the "
        "course, or $DLFUND_WORKSPACE). Run it again after a course update: notebooks you have not touched "
        "are updated, and one you changed gets the new version beside it (name.v2.ipynb).",
    )
    s.add_argument("--path", help="where (default: $DLFUND_WORKSPACE, else workspace/ in the course)")
    s.set_defaults(func=cmd_start)

    s = sub.add_parser(
        "check",
        help="check your exercises in the workspace: passed / not yet / not started / error",
        description="Execute your saved exercise notebooks headless (your notebooks are only read; the "
        "executed copies go to runs/check/) and say, per exercise, whether its check passed and if not, why. "
        "Exit status 0 only when every exercise asked for passed.",
    )
    s.add_argument("exercise", nargs="?", metavar="UNIT[/EXERCISE]", help="e.g. 1, 1/ex02 or perceptron (default: all)")
    s.add_argument("--path", help="the workspace (default: $DLFUND_WORKSPACE, else workspace/ in the course)")
    s.add_argument("--tier", choices=manifest.TIERS, help="default: $DLFUND_TIER, else full with CUDA, smoke without")
    s.add_argument("--timeout", type=int, help="seconds a cell may run (default: 300 in the smoke tier, 1800 in full)")
    s.set_defaults(func=cmd_check)

    progress.add_parser(sub)
