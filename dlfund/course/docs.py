"""Files generated from the manifest: the README unit table, each unit's README header, the book's
table of contents, ARCHITECTURE.md's table of the library modules each unit uses, and the diagrams
(``book/figures/*.svg``, drawn by :mod:`dlfund.course.diagrams`). ``dlfund generate`` writes them; a test
fails when any text file is stale, or a diagram's file is missing (the SVG bytes are not compared: another
matplotlib version writes other bytes)."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from dlfund import data
from dlfund.course import diagrams, manifest, notebooks, pages, results
from dlfund.course.quiz.session import UNIT_QUESTIONS
from dlfund.utils.io import atomic_write_text

BEGIN = "<!-- BEGIN GENERATED: {what} (dlfund generate) -->"
END = "<!-- END GENERATED: {what} -->"


def _minutes(seconds: int) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds} s"


def unit_table() -> str:
    """The README's unit table: one row per unit, with links, exercises and run-time budgets."""
    rows = [
        "| # | unit | notebooks | exercises | data | smoke budget (CPU) | full budget (GPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for u in manifest.UNITS:
        rows.append(
            f"| {u.number:02d} | [{u.title}](units/{u.dirname}/README.md) | {len(u.notebooks)} | "
            f"{len(u.exercises)} | {', '.join(u.datasets)} | {_minutes(u.smoke_s)} | {_minutes(u.full_s)} |"
        )
    return "\n".join(rows)


def gpu_smoke_summary() -> str:
    """One paragraph on the smoke tier run on a GPU (``*.gpu-smoke.json``): how many of the course's lecture and
    solution notebooks have a result, on which device, commit and date, and which have none."""
    found, missing = [], []
    for u in manifest.UNITS:
        for item in (*u.notebooks, *u.exercises):
            path = results.result_path(manifest.RESULTS_DIR, u, item.name, results.GPU_SMOKE)
            if path.is_file():
                found.append(json.loads(path.read_text(encoding="utf-8"))["provenance"])
            else:
                missing.append(f"{u.number:02d}/{item.name}")
    total = len(found) + len(missing)
    if not found:
        return f"No notebook has been run on a GPU yet (0 of {total}; `bash tools/gpu-smoke.sh`)."
    runs = sorted({(p["device"], p["commit"], p["date"][:10], p.get("concurrent_notebooks", 1)) for p in found})
    where = "; ".join(f"{d}, commit {c}, {day}, {j} notebooks at a time" for d, c, day, j in runs)
    seconds = sum(p["wall_s"] for p in found)
    text = (
        f"**On a GPU, smoke tier** (`bash tools/gpu-smoke.sh`, results `*.gpu-smoke.json`): {len(found)} of "
        f"{total} lecture and solution notebooks recorded ({where}; {seconds:.0f} s of notebook time in all)."
    )
    if missing:
        text += f" Not recorded on a GPU: {', '.join(missing)}."
    return text


def results_section() -> str:
    """The README's results: the smoke tier on a GPU in one paragraph, then the committed full-tier
    measurements of each unit, with their device."""
    lines = [gpu_smoke_summary(), ""]
    for u in manifest.UNITS:
        rows = results.table(u, ("full",))
        if rows:
            lines += [f"**Unit {u.number:02d} · {u.title}**", "", *rows, ""]
    if len(lines) == 2:
        lines.append("No full-tier results have been recorded yet.")
    return "\n".join(lines).rstrip()


def roadmap_alt(unit: manifest.Unit) -> str:
    """The roadmap figure's alternative text: what it shows, for a reader who cannot see it."""
    previous = f"what it takes from unit {unit.number - 1:02d}, " if unit.number > 1 else ""
    return (
        f"Roadmap of unit {unit.number:02d}: {previous}its {len(unit.notebooks)} lecture notebooks in order, "
        f"and its {len(unit.exercises)} exercises"
    )


UNIT_QUIZ_LINE = (
    f"Each attempt draws {UNIT_QUESTIONS} of the unit's questions (all when it has fewer), so a retake asks "
    "others; 80% passes and earns a certificate of self-assessment."
)


def unit_header(unit: manifest.Unit) -> str:
    """The generated top of ``units/<unit>/README.md``."""
    low, high = unit.study_hours
    lines = [
        f"# Unit {unit.number:02d} · {unit.title}",
        "",
        f"![{roadmap_alt(unit)}](../../book/figures/unit{unit.number:02d}-roadmap.svg)",
        "",
        unit.summary,
        "",
        "**Before you start**",
        "",
        *(f"- {item}" for item in unit.prerequisites),
        "",
        "**You will be able to**",
        "",
        *(f"- {item}" for item in unit.outcomes),
        "",
        f"**Study time**: about {low}–{high} hours. This is an estimate, not a measurement: reading the notebooks, "
        "running them in the smoke tier and doing the exercises.",
        "",
        "## Notebooks",
        "",
        "| notebook | smoke budget | full budget |",
        "|---|---|---|",
    ]
    for nb in unit.notebooks:
        lines.append(f"| [{nb.title}]({nb.name}.ipynb) | {nb.smoke_s} s | {nb.full_s} s |")
    lines += ["", "## Exercises", "", "| exercise | checked by | solution |", "|---|---|---|"]
    for ex in unit.exercises:
        checks = ", ".join(f"`dlfund.checks.{c}`" for c in ex.checks)
        lines.append(
            f"| [{ex.title}](exercises/{ex.name}.ipynb) | {checks} | "
            f"[solution](../../solutions/{unit.dirname}/{ex.name}.ipynb) |"
        )
    lines += ["", "## Data", ""]
    for name in unit.datasets:
        ds = data.get(name)
        lines.append(f"- `{name}`: {ds.title} ({ds.license})")
    lines += [
        "",
        "## Run it",
        "",
        "```bash",
        f"dlfund run {unit.number}                # headless, in the default tier, with a summary",
        f"DLFUND_TIER=full dlfund run {unit.number}   # the full tier",
        "dlfund lab                 # open the notebooks in JupyterLab",
        "```",
        "",
        "## Quiz",
        "",
        f"When you are done, test yourself: `dlfund quiz --unit {unit.number}` in a terminal, or in a notebook "
        f"`from dlfund.course.quiz import form; form.quiz(unit={unit.number})`. {UNIT_QUIZ_LINE} "
        "See [the quiz](../../dlfund/course/quiz/README.md).",
    ]
    return "\n".join(lines)


def toc() -> str:
    """Jupyter Book 1.x ``_toc.yml`` (paths relative to the repository root, the book's source).

    Each unit is one sidebar entry (its README), with its lecture notebooks and exercises beneath. The
    solutions come last, in a part of their own with one chapter per unit (pages that ``book.stage()``
    writes through :mod:`dlfund.course.pages`): a learner reading on never lands on an answer by turning
    the page after the question. Each unit's solutions chapter ends with the discussion of its lectures'
    "Try it" questions (``solutions/<unit>/try-it.md``)."""
    units, solutions = [], []
    for u in manifest.UNITS:
        sections = [{"file": f"units/{u.dirname}/{nb.name}"} for nb in u.notebooks]
        sections += [{"file": f"units/{u.dirname}/exercises/{ex.name}"} for ex in u.exercises]
        units.append({"file": f"units/{u.dirname}/README", "sections": sections})
        if u.exercises:
            solutions.append(
                {
                    "file": f"{pages.SOLUTIONS_DIR.as_posix()}/{u.dirname}",
                    "sections": [{"file": f"solutions/{u.dirname}/{ex.name}"} for ex in u.exercises]
                    + ([{"file": f"solutions/{u.dirname}/{pages.TRY_IT}"}] if pages.has_try_it(u) else []),
                }
            )
    parts = [
        {"caption": "Units", "chapters": units},
        {"caption": "Certification quiz", "chapters": [{"file": "book/_generated/quiz"}]},
        {"caption": "Results", "chapters": [{"file": "book/_generated/results"}]},
        {"caption": "Solutions", "chapters": solutions},
    ]
    doc = {"format": "jb-book", "root": "book/intro", "parts": parts}
    return "# Generated from dlfund/course/manifest.py by `dlfund generate`: do not edit.\n" + yaml.safe_dump(
        doc, sort_keys=False, allow_unicode=True
    )


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ModuleNotFoundError, ValueError):
        return False


def unit_modules(unit: manifest.Unit) -> list[str]:
    """The ``dlfund`` modules that a unit's lecture and solution notebooks import or reference, sorted."""
    found = set()
    paths = [unit.notebook_path(nb.name) for nb in unit.notebooks] + [
        unit.solution_path(ex.name) for ex in unit.exercises
    ]
    for path in paths:
        for source in notebooks.code_cells(notebooks.read(path)):
            if source.lstrip().startswith(("%", "!")):
                continue
            for node in ast.walk(ast.parse(source)):
                names = []
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dlfund"):
                    names = [f"{node.module}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names if a.name.startswith("dlfund")]
                elif isinstance(node, ast.Attribute):  # dlfund.perf.median_seconds(...)
                    chain, inner = [], node
                    while isinstance(inner, ast.Attribute):
                        chain.append(inner.attr)
                        inner = inner.value
                    if isinstance(inner, ast.Name) and inner.id == "dlfund":
                        names = ["dlfund." + ".".join(reversed(chain))]
                for name in names:
                    while not _is_module(name):
                        name = name.rsplit(".", 1)[0]
                    found.add(name)
    return sorted(found)


def module_table() -> str:
    """ARCHITECTURE.md's table: per unit, the library modules its notebooks use; bold where a unit is the
    first to use one (it introduces it), and the module of its exercise checks."""
    rows = ["| unit | library modules it uses (**first used here**) | checks |", "|---|---|---|"]
    seen: set[str] = set()
    for u in manifest.UNITS:
        used = [m for m in unit_modules(u) if m != "dlfund" and not m.startswith(("dlfund.course", "dlfund.checks"))]
        cells = [f"**`{m}`**" if m not in seen else f"`{m}`" for m in used]
        seen.update(used)
        rows.append(f"| {u.number:02d} {u.title} | {', '.join(cells)} | `dlfund.checks.unit{u.number:02d}` |")
    return "\n".join(rows)


def replace_block(text: str, what: str, body: str, where: str) -> str:
    begin, end = BEGIN.format(what=what), END.format(what=what)
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), flags=re.S)
    if not pattern.search(text):
        raise ValueError(f"{where} has no generated block; it needs the lines\n{begin}\n{end}")
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text)


def _readme_text(path_or_text: Path | str, what: str, body: str) -> str:
    """The README (a path, or its text already updated) with its ``what`` block replaced by ``body``."""
    if isinstance(path_or_text, str):
        return replace_block(path_or_text, what, body, "README.md")
    if path_or_text.exists():
        return replace_block(path_or_text.read_text(encoding="utf-8"), what, body, manifest.display_path(path_or_text))
    return f"{BEGIN.format(what=what)}\n{body}\n{END.format(what=what)}\n"


def expected_files() -> dict[Path, Callable[[], str]]:
    """Every generated file (other than exercises) and how to produce its full text."""
    files: dict[Path, Callable[[], str]] = {
        manifest.ROOT / "README.md": lambda: _readme_text(
            _readme_text(manifest.ROOT / "README.md", "unit table", unit_table()), "results", results_section()
        ),
        manifest.BOOK_DIR / "_toc.yml": toc,
        manifest.ROOT / "ARCHITECTURE.md": lambda: _readme_text(
            manifest.ROOT / "ARCHITECTURE.md", "unit modules", module_table()
        ),
    }
    for u in manifest.UNITS:
        path = u.path / "README.md"
        files[path] = lambda u=u, path=path: _readme_text(path, "unit header", unit_header(u))
    return files


def build() -> list[Path]:
    changed = diagrams.write_all()
    for path, make in expected_files().items():
        text = make()
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
            changed.append(path)
    return changed


def stale() -> list[str]:
    problems = diagrams.problems()
    for path, make in expected_files().items():
        rel = path.relative_to(manifest.ROOT)
        if not path.exists():
            problems.append(f"{rel} is missing (run `dlfund generate`)")
        elif path.read_text(encoding="utf-8") != make():
            problems.append(f"{rel} is out of date with the manifest (run `dlfund generate`)")
    return problems
