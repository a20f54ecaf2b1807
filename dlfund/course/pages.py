"""What the book shows a learner: transformations of the staged pages, never of their sources.

``book.stage()`` copies the units and solutions into the book's source folder and then calls
:func:`stage`, which, in that copy only:

- strips the ``# BEGIN SOLUTION`` / ``# END SOLUTION`` lines from the solution pages, says at the top
  of each which exercise it solves, and ends each exercise page with where its solution is;
- writes one "Solutions · Unit NN" page per unit, the chapter under which the book's final
  *Solutions* part lists that unit's solutions (far from the exercises: the answer is never the
  next page or the next sidebar entry after the question);

and :func:`quiz_page` keeps the quiz package's README for quiz takers (the authoring part stays for
authors), :func:`results_section` lays out a notebook's recorded results one metric per row.
Everything here but :func:`stage` is a pure function of notebooks and text.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import nbformat

from dlfund.course import exercises, manifest
from dlfund.course.results import GPU_SMOKE
from dlfund.utils.io import atomic_write_text

TRY_IT = "try-it"
"""``solutions/<unit>/try-it.md``: the discussion of the open "Try it" questions that close each of the unit's
lecture notebooks (COURSE.md §12); the unit's Solutions chapter lists it after the exercises' solutions."""

TRY_IT_PENDING: frozenset[int] = frozenset()
"""Units whose lectures do not end with "Try it" questions yet: none since issue 23, item 3 landed for every
unit. Kept for a unit added later: while listed here, the book lists no discussion page for it and
``tests/test_try_it.py`` skips it, naming it. Remove a unit from this set in the commit that adds its questions
and its ``try-it.md``."""


def has_try_it(unit: manifest.Unit) -> bool:
    """Whether the unit's lectures end with Try-it questions discussed in ``solutions/<unit>/try-it.md``."""
    return unit.number not in TRY_IT_PENDING


SOLUTIONS_DIR = Path("book") / "_generated" / "solutions"
"""Where the per-unit Solutions chapter pages are staged (relative to the book's source folder)."""

FOR_AUTHORS = "<!-- for authors: the book's quiz page stops here -->"
"""The line in ``dlfund/course/quiz/README.md`` after which everything is for question authors."""

VALUE_WIDTH = 48
"""The widest value cell of the results page (characters); longer values are summarised."""
LABEL_WIDTH = 60
"""The widest metric name of the results page (characters)."""


def _title(nb: nbformat.NotebookNode) -> str:
    return nb.cells[0].source.lstrip().split("\n", 1)[0].lstrip("# ").strip()


def strip_solution_markers(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without its ``# BEGIN SOLUTION`` (hint included) and ``# END SOLUTION`` lines."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        if cell.cell_type == "code":
            lines = cell.source.split("\n")
            cell.source = "\n".join(
                line for line in lines if not (exercises.BEGIN.match(line) or exercises.END.match(line))
            )
    return out


def solution_page(nb: nbformat.NotebookNode, exercise_title: str, exercise_link: str) -> nbformat.NotebookNode:
    """The book's page of a solution notebook: no markers, and a line under the title naming its exercise."""
    out = strip_solution_markers(nb)
    out.cells.insert(
        1,
        nbformat.v4.new_markdown_cell(
            f"This is the worked solution of [{exercise_title}]({exercise_link}). Try the exercise first: "
            "its checks tell you what is right and what is not."
        ),
    )
    return out


def exercise_page(nb: nbformat.NotebookNode, solution_title: str, solution_link: str) -> nbformat.NotebookNode:
    """The book's page of a learner's exercise: it ends by saying where the solution is."""
    out = copy.deepcopy(nb)
    out.cells.append(
        nbformat.v4.new_markdown_cell(
            f"When your checks pass, or when the hints no longer help, compare with [{solution_title}]"
            f"({solution_link}), in the *Solutions* part at the end of the book."
        )
    )
    return out


def solutions_chapter(unit: manifest.Unit, titles: list[str]) -> str:
    """The chapter page of one unit's solutions in the book's final Solutions part (``titles``: of its exercises)."""
    readme = f"../../../units/{unit.dirname}/README.md"
    lines = [
        f"# Solutions · Unit {unit.number:02d}",
        "",
        f"Worked solutions of the exercises of [Unit {unit.number:02d} · {unit.title}]({readme}). "
        "Each one is worth more after you have tried the exercise yourself:",
        "",
    ]
    for ex, title in zip(unit.exercises, titles, strict=True):
        exercise = f"../../../units/{unit.dirname}/exercises/{ex.name}.ipynb"
        lines.append(f"- [{title}]({exercise}): [its solution](../../../solutions/{unit.dirname}/{ex.name}.ipynb)")
    if has_try_it(unit):
        lines += [
            "",
            f"The open *Try it* questions that end each lecture are discussed in "
            f"[Try it · discussion](../../../solutions/{unit.dirname}/{TRY_IT}.md).",
        ]
    return "\n".join(lines) + "\n"


def quiz_page(readme: str) -> str:
    """The quiz package's README up to the authors' part: how to take the quiz and what the certificate is."""
    head, found, _ = readme.partition(FOR_AUTHORS)
    if not found:
        raise ValueError(f"the quiz README lacks the line {FOR_AUTHORS!r} that ends the part for quiz takers")
    return head.rstrip() + "\n"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summarise(value: Any, width: int = VALUE_WIDTH) -> str:
    """A metric as a short table cell: lists and dicts summarised, long text cut, never wider than ``width``."""
    if isinstance(value, dict):
        text = ", ".join(f"{k}: {summarise(v, width)}" for k, v in value.items())
        if len(text) > width:
            text = f"{len(value)} entries: " + text
    elif isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return f"a table of {len(value)} rows (see the notebook)"
        text = "[" + ", ".join(summarise(v, width) for v in value) + "]"
        if len(text) > width and len(value) > 2:
            text = f"{len(value)} values: {summarise(value[0], width)} … {summarise(value[-1], width)}"
    else:
        text = _fmt(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _flatten(metrics: dict[str, Any], most: int = 8) -> dict[str, Any]:
    """Metrics by row label: a small dict of scalars gives one row per entry (``metric · key``)."""
    rows: dict[str, Any] = {}
    for name, value in metrics.items():
        label = name.replace("_", " ")
        if (
            isinstance(value, dict)
            and 0 < len(value) <= most
            and not any(isinstance(v, (dict, list)) for v in value.values())
        ):
            rows.update({f"{label} · {key}": v for key, v in value.items()})
        else:
            rows[label] = value
    return rows


def results_section(heading: str, by_tier: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown of one notebook's recorded results under ``### heading``: one metric per row (a small dict
    of scalars one row per entry), a column per tier, the provenance (device, date, wall time, peak memory,
    commit) in the last rows.

    ``by_tier``: the recorded payload (``dlfund.course.results.record``) per tier. The smoke tier run on a GPU
    (a maintainer's proof that the notebook runs on CUDA) is one line under the table, not a third column."""
    gpu_smoke = by_tier.get(GPU_SMOKE)
    by_tier = {t: v for t, v in by_tier.items() if t != GPU_SMOKE}
    tiers = [t for t in ("full", "smoke") if t in by_tier] + sorted(set(by_tier) - {"full", "smoke"})
    metrics = {t: _flatten(by_tier[t]["metrics"]) for t in tiers}
    names: list[str] = []
    for t in tiers:
        names += [k for k in metrics[t] if k not in names]
    lines = [f"### {heading}", "", "| metric | " + " | ".join(f"{t} tier" for t in tiers) + " |"]
    lines.append("|---" * (len(tiers) + 1) + "|")
    for name in names:
        cells = [summarise(metrics[t][name]) if name in metrics[t] else "—" for t in tiers]
        lines.append(f"| {summarise(name, LABEL_WIDTH)} | " + " | ".join(cells) + " |")

    def mem(p: dict[str, Any]) -> str:
        return f"{p['peak_memory_mb']:.0f} MB" if p.get("peak_memory_mb") else "n/a"

    provenance = {
        "device": lambda p: p["device"],
        "date": lambda p: p["date"][:10],
        "wall time": lambda p: f"{p['wall_s']:.1f} s",
        "peak memory": mem,
        "commit": lambda p: p["commit"],
    }
    for label, get in provenance.items():
        cells = [summarise(get(by_tier[t]["provenance"])) for t in tiers]
        lines.append(f"| *{label}* | " + " | ".join(cells) + " |")
    if gpu_smoke is not None:
        p = gpu_smoke["provenance"]
        lines += [
            "",
            f"Also run in the smoke tier on a GPU: {p['device']}, {p['date'][:10]}, {p['wall_s']:.1f} s, "
            f"commit {p['commit']}.",
        ]
    return [*lines, ""]


QUIZ_README_LINK = "(../../dlfund/course/quiz/README.md)"
"""How a unit README links to the quiz instructions in the repository; the book has them as its quiz page."""
QUIZ_PAGE_LINK = "(../../book/_generated/quiz.md)"


def stage(dest: Path) -> None:
    """Apply the learner's view to the book's staged sources in ``dest`` (see the module docstring)."""
    for u in manifest.UNITS:
        readme = dest / "units" / u.dirname / "README.md"
        if readme.exists():  # the quiz instructions are a page of the book, not a file of the package
            atomic_write_text(readme, readme.read_text(encoding="utf-8").replace(QUIZ_README_LINK, QUIZ_PAGE_LINK))
        titles = []
        for ex in u.exercises:
            solution_path = dest / u.solution_path(ex.name).relative_to(manifest.ROOT)
            exercise_path = dest / u.exercise_path(ex.name).relative_to(manifest.ROOT)
            solution = nbformat.read(str(solution_path), as_version=4)
            exercise = nbformat.read(str(exercise_path), as_version=4)
            ex_title, sol_title = _title(exercise), _title(solution)
            titles.append(ex_title)
            page = solution_page(solution, ex_title, f"../../units/{u.dirname}/exercises/{ex.name}.ipynb")
            atomic_write_text(solution_path, nbformat.writes(page))
            page = exercise_page(exercise, sol_title, f"../../../solutions/{u.dirname}/{ex.name}.ipynb")
            atomic_write_text(exercise_path, nbformat.writes(page))
        if u.exercises:
            atomic_write_text(dest / SOLUTIONS_DIR / f"{u.dirname}.md", solutions_chapter(u, titles))
