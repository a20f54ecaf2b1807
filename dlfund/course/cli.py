"""The ``dlfund`` command line: list units, run them headless, open JupyterLab, fetch data, build; and the
learner's own commands (start, check, progress: :mod:`dlfund.course.learner`)."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from packaging.requirements import Requirement

from dlfund import data
from dlfund.course import book, docs, edits, exercises, learner, manifest, runner, workspace
from dlfund.course.bench import SUITES
from dlfund.course.config import environment_line, pick_tier
from dlfund.course.quiz import BankError, exam, quiz
from dlfund.course.settings import explain
from dlfund.data import DataUnavailableError
from dlfund.utils.device import device_name, pick_device

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: no TOML reader in the standard library; only the installed metadata is read
    tomllib = None


def requirements() -> list[tuple[Requirement, str | None]]:
    """What ``dlfund`` requires, each with the extra that asks for it (``None``: always needed): from the
    installed distribution's metadata, else (run from a checkout on ``PYTHONPATH``, as on the offline GPU
    machine) from the checkout's own pyproject.toml."""
    try:
        lines = md.requires("dlfund") or []
    except md.PackageNotFoundError:
        lines = _pyproject_requirements(manifest.ROOT / "pyproject.toml")
    out = []
    for line in lines:
        req = Requirement(line)
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", str(req.marker or ""))
        out.append((req, extra.group(1) if extra else None))
    return out


def _pyproject_requirements(path: Path) -> list[str]:
    """pyproject.toml's dependencies in the metadata's form (an optional one marked ``extra == "NAME"``)."""
    if not path.is_file() or tomllib is None:
        raise UsageError(
            f"dlfund is not installed as a package and {path} cannot be read here, so its requirements are unknown: "
            "run `pip install -e .` in the course repository"
        )
    project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    lines = list(project.get("dependencies", []))
    for extra, deps in project.get("optional-dependencies", {}).items():
        for dep in deps:
            req = Requirement(dep)
            marker = f'extra == "{extra}"' if req.marker is None else f'({req.marker}) and extra == "{extra}"'
            req.marker = None
            lines.append(f"{req}; {marker}")
    return lines


class UsageError(Exception):
    """A mistake in what the user asked for; printed without a traceback, exit status 2."""


def _unit(key: str) -> manifest.Unit:
    try:
        return manifest.get_unit(key)
    except KeyError as err:
        raise UsageError(err.args[0]) from None


def cmd_units(args: argparse.Namespace) -> int:
    if args.settings is not None:
        return print_settings(_unit(args.settings))
    print(f"{'#':>2}  {'unit':<44} {'notebooks':>9} {'exercises':>9} {'smoke':>7} {'full':>7}  data")
    for u in manifest.UNITS:
        print(
            f"{u.number:>2}  {u.title:<44} {len(u.notebooks):>9} {len(u.exercises):>9} "
            f"{u.smoke_s:>6}s {u.full_s:>6}s  {', '.join(u.datasets)}"
        )
    print("\nrun one with `dlfund run N`; budgets are upper bounds (smoke: 2-core CPU, full: one GPU)")
    return 0


def print_settings(unit: manifest.Unit) -> int:
    """Every setting of a unit: its value in each tier and what it means."""
    smoke, full = (explain(unit.tier_settings(t)) for t in manifest.TIERS)
    print(f"unit {unit.number:02d} · {unit.title}: settings (smoke: 2-core CPU, full: one GPU)")
    width = max(len(name) for name, _, _ in smoke)
    print(f"  {'setting':<{width}}  {'smoke':>14}  {'full':>14}  meaning")
    for (name, small, text), (_, large, _) in zip(smoke, full):
        print(f"  {name:<{width}}  {_show(small):>14}  {_show(large):>14}  {text}")
    print(
        f"\na notebook reads them as cfg.<setting> (a group: cfg.<group>.<setting>); they are defined in "
        f"dlfund/course/settings/unit{unit.number:02d}.py"
    )
    return 0


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_show(v) for v in value)
    if value is None:
        return "None"
    return f"{value:g}" if isinstance(value, float) else str(value)


def cmd_run(args: argparse.Namespace) -> int:
    if args.all == (args.unit is not None):
        raise UsageError("give one unit number (e.g. `dlfund run 1`) or --all")
    units = list(manifest.UNITS) if args.all else [_unit(args.unit)]
    if args.all and args.notebook:
        raise UsageError("--notebook names a notebook of one unit: give the unit instead of --all")
    if args.jobs < 1:
        raise UsageError(f"--jobs is the number of notebooks run at once: at least 1, found {args.jobs}")
    tier = pick_tier(args.tier)
    skip = pick_device().type if args.skip_current else None
    per_unit = []
    started = time.perf_counter()
    if args.jobs > 1:
        names = [u.dirname for u in units]
        print(f"{', '.join(names) if len(names) < 4 else f'{len(names)} units'} · {tier} tier · {args.jobs} at a time")
        data.fetch(sorted({d for u in units for d in u.datasets}))
        per_unit = runner.run_parallel(
            units, tier, jobs=args.jobs, record=args.record, only=args.notebook, skip_current=skip
        )
        for runs in per_unit:
            print(runner.summary(runs, tier))
    else:
        for u in units:
            budget = u.smoke_s if tier == "smoke" else u.full_s
            print(f"unit {u.number:02d} · {u.title} · {tier} tier · budget {budget} s")
            data.fetch(list(u.datasets))
            runs = runner.run_unit(u, tier, record=args.record, only=args.notebook, skip_current=skip)
            print(runner.summary(runs, tier))
            per_unit.append(runs)
    if len(per_unit) > 1 or args.jobs > 1:
        print(runner.course_summary(per_unit, tier))
    if args.jobs > 1:
        print(f"wall time {time.perf_counter() - started:.0f} s with {args.jobs} notebooks at a time")
    failed = sum(r.status not in ("ok", "current") for runs in per_unit for r in runs)
    return 1 if failed else 0


def cmd_lab(args: argparse.Namespace) -> int:
    root, why = learner.lab_root()
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", *args.extra]
    if os.geteuid() == 0 and "--allow-root" not in cmd:
        cmd.append("--allow-root")
        print("running as root: passing --allow-root to JupyterLab (which otherwise refuses to start)")
    print(f"{why}: " + " ".join(cmd))
    return subprocess.call(cmd, cwd=root)


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def cmd_env(args: argparse.Namespace) -> int:
    device = pick_device()
    print(environment_line(device))
    bad = 0
    for req, extra in requirements():
        version = _version(req.name)
        fits = version is not None and req.specifier.contains(version, prereleases=True)
        if extra is None:
            bad += not fits
            mark = "OK  " if fits else "FAIL"
            why = "missing: pip install -e ." if version is None else f"needs {req.specifier}: pip install -e ."
        else:
            mark = "OK  " if fits else "skip"
            why = f"not installed (extra [{extra}])" if version is None else f"needs {req.specifier} (extra [{extra}])"
        print(f"{mark} {req.name:<14} {version if fits else why}")
    print(f"OK   device         {device} — {device_name(device)}")
    if torch.cuda.is_available():
        print(f"OK   bf16           {'supported' if torch.cuda.is_bf16_supported() else 'not supported'}")
    for row in data.status():
        mark = "OK  " if row.verified else ("FAIL" if row.cached else "----")
        bad += row.cached and not row.verified
        print(f"{mark} data {row.name:<18} {row.detail}")
    return 1 if bad else 0


def cmd_data(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, ds in data.DATASETS.items():
            print(f"{name:<20} {ds.title}  [{ds.license}]")
        return 0
    if args.all == bool(args.names):
        raise UsageError("give dataset names (see `dlfund data list`) or --all")
    try:
        data.fetch(None if args.all else args.names)
    except KeyError as err:
        raise UsageError(err.args[0]) from None
    return 0


def cmd_exercises(args: argparse.Namespace) -> int:
    if args.check:
        problems = exercises.stale()
        for p in problems:
            print(f"stale: {p}")
        return 1 if problems else 0
    try:
        changed = exercises.build()
    except edits.KeptEdits as err:  # the others were written; say which, then what was kept and why
        for path in err.written:
            print(f"wrote {manifest.display_path(path)}")
        print(f"dlfund: {err}", file=sys.stderr)
        return 1
    for path in changed:
        print(f"wrote {manifest.display_path(path)}")
    print(f"{len(changed)} exercise notebook(s) written, {len(exercises.targets()) - len(changed)} already current")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    if args.check:
        problems = exercises.stale() + docs.stale()
        for p in problems:
            print(f"stale: {p}")
        return 1 if problems else 0
    changed = exercises.build() + docs.build()
    for path in changed:
        print(f"wrote {manifest.display_path(path)}")
    print(f"{len(changed)} generated file(s) written")
    return 0


def cmd_book(args: argparse.Namespace) -> int:
    index = book.build(quiet=not args.verbose, execute=not args.no_execute, jobs=args.jobs)
    print(f"book built: {index}")
    return 0


def _answer_reader() -> Callable[[str], str]:
    """``input``; when stdin is not a terminal, also echo each answer, so piped runs read like a transcript."""
    if sys.stdin is not None and sys.stdin.isatty():
        return input

    def read(prompt: str) -> str:
        line = input(prompt)
        print(line)
        return line

    return read


def _take(run: Callable[..., Any]) -> int:
    if sys.stdin is not None and hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(errors="replace")  # bytes that are not text become "?"-like marks, re-asked
    try:
        report = run(input_fn=_answer_reader())
    except (BankError, KeyError) as err:  # a broken bank file, or a unit without questions
        raise UsageError(err.args[0] if isinstance(err, KeyError) else str(err)) from None
    except (ValueError, OSError) as err:  # --name, --out or --feedback, checked before the first question
        raise UsageError(str(err)) from None
    return report.exit_code


def cmd_quiz(args: argparse.Namespace) -> int:
    unit = _unit(args.unit).number
    return _take(
        lambda input_fn: quiz(
            unit, name=args.name, seed=args.seed, out_dir=args.out, input_fn=input_fn, feedback_path=args.feedback
        )
    )


def cmd_exam(args: argparse.Namespace) -> int:
    if args.questions < 1:
        raise UsageError(f"--questions must be at least 1, got {args.questions}")
    return _take(
        lambda input_fn: exam(
            name=args.name,
            seed=args.seed,
            questions=args.questions,
            out_dir=args.out,
            input_fn=input_fn,
            feedback_path=args.feedback,
        )
    )


def cmd_bench(args: argparse.Namespace) -> int:
    # The suites import most of the library (models, training loops, peft, perf): seconds that the
    # other commands should not pay.
    from dlfund.course.bench import common, fast_training, reference, startup

    device = pick_device()
    start = time.perf_counter()
    if args.suite == "startup":
        if args.tier != "smoke":
            raise UsageError("the start-up suite runs the notebooks in the smoke tier: leave out --tier")
        profiles, bare = startup.run("smoke", args.units or None)
        rows = startup.rows(profiles, bare)
        print(common.table(rows))
        if args.record:
            if args.units:
                raise UsageError("--record writes the whole course's profile: leave out --units")
            print("recorded " + common.record("startup", rows, "smoke", device, time.perf_counter() - start))
        return 0
    if args.units:
        raise UsageError("--units selects notebooks for --suite startup only")
    if args.suite == "fast-training":
        rows = fast_training.run(args.tier, device)
        print(common.table(rows))
        if args.record:
            print("recorded " + fast_training.record(rows, args.tier, device, time.perf_counter() - start))
        return 0
    rows = reference.run(args.tier, device)
    print(reference.table(rows))
    if args.record:
        print("recorded " + reference.record(rows, args.tier, device, time.perf_counter() - start))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dlfund", description="dlfund: a deep-learning course that runs, offline.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "units",
        help="list the course's units, or one unit's settings",
        description="List the course's units; with --settings N, every setting of unit N in both "
        "tiers and what it means.",
    )
    s.add_argument("--settings", metavar="UNIT", help="print the settings of this unit (number or slug)")
    s.set_defaults(func=cmd_units)

    s = sub.add_parser(
        "run",
        help="run a unit's notebooks headless and print what they measured",
        description="Execute every lecture and solution notebook of a unit in a fresh kernel, "
        "with a progress bar; executed copies go to runs/<unit>/executed/.",
    )
    s.add_argument("unit", nargs="?", help="unit number or slug, e.g. 1 or perceptron")
    s.add_argument("--all", action="store_true", help="run every unit")
    s.add_argument("--tier", choices=manifest.TIERS, help="default: $DLFUND_TIER, else full with CUDA, smoke without")
    s.add_argument("--notebook", help="run only this notebook of the unit")
    s.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="run N notebooks at once, each in its own process and kernel with its share of the cores "
        "(default 1: one after the other); on a GPU machine the kernels share the device",
    )
    s.add_argument(
        "--record",
        action="store_true",
        help="also write the committed reference results in book/results/ (maintainers)",
    )
    s.add_argument(
        "--skip-current",
        action="store_true",
        help="skip notebooks whose committed result is current (same device type, notebook and "
        "settings unchanged since its commit): resumes a long --record run",
    )
    s.set_defaults(func=cmd_run)

    s = sub.add_parser(
        "lab",
        help="open JupyterLab in your workspace, or on the course (other arguments go to jupyter lab)",
        description="Open JupyterLab in your workspace (see `dlfund start`), or on the course when there is "
        "none; other arguments (e.g. --no-browser --port 8890) are passed to jupyter lab.",
    )
    s.set_defaults(func=cmd_lab)

    learner.add_parsers(sub)  # start, check, progress

    s = sub.add_parser("env", help="print versions, the device and the data cache, with OK/FAIL per item")
    s.set_defaults(func=cmd_env)

    s = sub.add_parser("data", help="fetch or list the course's datasets and weights")
    s.add_argument("action", choices=("fetch", "list"))
    s.add_argument("names", nargs="*", help="dataset names (see `dlfund data list`)")
    s.add_argument("--all", action="store_true", help="fetch every dataset")
    s.set_defaults(func=cmd_data)

    s = sub.add_parser("exercises", help="generate the learner's exercise notebooks from the solutions")
    s.add_argument("action", choices=("build",))
    s.add_argument("--check", action="store_true", help="only report stale notebooks (exit 1 if any)")
    s.set_defaults(func=cmd_exercises)

    s = sub.add_parser("generate", help="regenerate everything derived from the manifest and the solutions")
    s.add_argument("--check", action="store_true", help="only report stale files (exit 1 if any)")
    s.set_defaults(func=cmd_generate)

    quiz_help = (
        "Answer with the number of a choice (for 'select all that apply' the numbers of every right choice, "
        "for 'put in order' every number first to last, for 'a number' a number); Ctrl-D stops and scores "
        "what was answered. "
        "Exit status: 0 passed, 1 not passed, 3 incomplete. A pass (80%) writes an HTML "
        "certificate of self-assessment to --out (default runs/certificates/)."
    )
    for name, helptext in (
        ("quiz", "take the quiz of one unit (self-assessment)"),
        ("exam", "take the final exam: 25 questions from the exam pool of all units (self-assessment)"),
    ):
        s = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ". " + quiz_help)
        if name == "quiz":
            s.add_argument("--unit", required=True, help="unit number or slug, e.g. 4 or mlp")
        else:
            s.add_argument("--questions", type=int, default=25, help="how many questions (default 25)")
        s.add_argument("--name", help="your name for the certificate (asked after a pass if not given)")
        s.add_argument("--seed", type=int, help="seed of the question draw and order (default: random, printed)")
        s.add_argument("--out", help="folder for the certificate (default runs/certificates/)")
        s.add_argument("--feedback", metavar="FILE", help="also save the feedback (every answer explained) to FILE")
        s.set_defaults(func=cmd_quiz if name == "quiz" else cmd_exam)

    s = sub.add_parser(
        "bench",
        help="reference benchmarks: the course's code beside the libraries it teaches",
        description="Run dlfund's attention, ViT and GPT beside PyTorch's SDPA, timm and bf16/compile "
        "on the same inputs in one process, and print one table of ratios.",
    )
    s.add_argument("--tier", choices=manifest.TIERS, default="smoke", help="sizes: smoke (seconds, CPU) or full (GPU)")
    s.add_argument(
        "--suite",
        choices=SUITES,
        default="reference",
        help="reference: dlfund beside SDPA/timm/compile; fast-training: unit 11's precision, compile, "
        "memory and DDP/FSDP measurements; startup: each notebook's kernel start, setup, imports and work, "
        "one notebook at a time (smoke tier)",
    )
    s.add_argument("--units", nargs="+", metavar="UNIT", help="with --suite startup: only these units")
    s.add_argument("--record", action="store_true", help="write book/results/benchmarks/<suite>.<tier>.json")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser(
        "book",
        help="build the course book (Jupyter Book 1.x, offline) into runs/book",
        description="Build the book with every lecture and solution page's outputs: your own `dlfund run` "
        "copies where their code is current, else copies executed here in the smoke tier and cached by the "
        "notebook's content (a rebuild executes only what changed).",
    )
    s.add_argument("-v", "--verbose", action="store_true")
    s.add_argument("--jobs", type=int, help="notebooks executed at a time (default: one per core, at most 8)")
    s.add_argument("--no-execute", action="store_true", help="execute nothing: pages without an executed copy say so")
    s.set_defaults(func=cmd_book)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args, extra = p.parse_known_args(argv)
    if extra and args.command != "lab":
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return int(args.func(args))
    except (UsageError, FileNotFoundError, workspace.WorkspaceError, edits.KeptEdits) as err:
        print(f"dlfund: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if not isinstance(err, DataUnavailableError):
            raise
        print(f"dlfund: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dlfund: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
