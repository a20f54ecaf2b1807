"""Build the course book (Jupyter Book 1.x, offline), every lecture and solution page with its outputs.

The book's sources are staged in ``runs/book-src``: the book pages, the units and the solutions, each
notebook replaced by an executed copy — the learner's own from ``dlfund run`` when its code is the
notebook's (full tier preferred), else the book's cache ``runs/book-cache``, whose entries are named by
the notebook's content hash. Notebooks with neither are executed first in the smoke tier, several at a
time, so a rebuild after an edit executes only what changed. Each page opens with a note saying where
its outputs come from (tier, device, date), or that its notebook failed and where.

The book loads nothing from another host: its maths is typeset by MathJax 2.7 from the book's own
``_static/mathjax/`` (copied from the PyPI package ``jupyter-server-mathjax``, which the ``book`` extra
installs; ``book/_config.yml`` points Sphinx at it), and the theme's extensions that fetch scripts
from the web (thebe's live code cells) are left out.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from tqdm.auto import tqdm

from dlfund.course import manifest, notebooks, pages, runner
from dlfund.course.bench.reference import recorded_markdown
from dlfund.utils.io import atomic_write_text

STAGE = manifest.RUNS_DIR / "book-src"
OUTPUT = manifest.RUNS_DIR / "book"
# staged MathJax lands here; book/_config.yml names this folder in html_static_path, so Sphinx copies it
# to the built book's _static/mathjax/ (not "_static" itself: Jupyter Book would link every .js in it)
ASSETS = "_assets"


def mathjax_dir() -> Path:
    """MathJax 2.7's files (``MathJax.js``, its extensions, input/output jax and STIX web fonts)."""
    spec = importlib.util.find_spec("jupyter_server_mathjax")  # finds the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec else []
    static = Path(folders[0]) / "static" if folders else None
    if static is None or not (static / "MathJax.js").is_file():
        raise RuntimeError(
            "the book typesets its maths with MathJax from the package jupyter-server-mathjax, which is "
            "not installed: pip install -e '.[book]'"
        )
    return static


def results_markdown() -> str:
    """The results page: every recorded result file, grouped by unit, with its provenance."""
    lines = [
        "# Recorded results",
        "",
        "Every number below was measured by running the notebook (`dlfund run N --record`) and read "
        "from `book/results/<unit>/<notebook>.<tier>.json`; nothing here is typed by hand.",
        "",
    ]
    found = False
    for u in manifest.UNITS:
        by_notebook: dict[str, dict[str, dict]] = {}
        for path in sorted((manifest.RESULTS_DIR / u.dirname).glob("*.json")):
            payload = json.loads(path.read_text(encoding="utf-8"))
            by_notebook.setdefault(payload["notebook"], {})[payload["provenance"]["tier"]] = payload
        if by_notebook:
            found = True
            lines += [f"## Unit {u.number:02d} · {u.title}", ""]
            titles = {nb.name: (nb.title, f"{nb.name}.ipynb") for nb in u.notebooks}
            titles |= {
                ex.name: (f"Exercise {i} · {ex.title}", f"exercises/{ex.name}.ipynb")
                for i, ex in enumerate(u.exercises, start=1)
            }
            for name, by_tier in by_notebook.items():
                title, page = titles.get(name, (name, None))
                heading = f"[{title}](../../units/{u.dirname}/{page})" if page else title
                lines += pages.results_section(heading, by_tier)
    if not found:
        lines.append("No results have been recorded yet.")

    bench = recorded_markdown()
    if bench:
        lines += [
            "## Reference benchmarks",
            "",
            "`dlfund bench --record`: the course's code beside the "
            "libraries it teaches, in one process on the same inputs.",
            "",
            *bench,
        ]
    return "\n".join(lines) + "\n"


BOOK_TIER = "smoke"
"""The tier ``dlfund book`` executes notebooks in (minutes for the whole course on a laptop)."""


@dataclass(frozen=True)
class Page:
    """A notebook page of the book that shows outputs: a lecture, or an exercise's solution."""

    unit: manifest.Unit
    name: str
    source: Path
    """The committed notebook."""

    @property
    def cached(self) -> Path:
        """Its executed copy in the book's cache, named by the notebook's content (an edit misses the cache)."""
        digest = hashlib.sha256(self.source.read_bytes() + BOOK_TIER.encode()).hexdigest()[:16]
        return manifest.RUNS_DIR / "book-cache" / self.unit.dirname / f"{self.name}.{digest}.ipynb"

    def run_copies(self) -> list[Path]:
        """Executed copies left by ``dlfund run`` (full tier first)."""
        folder = manifest.RUNS_DIR / self.unit.dirname / "executed"
        return [p for tier in ("full", "smoke") if (p := folder / f"{self.name}.{tier}.ipynb").exists()]


def notebook_pages() -> list[Page]:
    """Every lecture and solution notebook, in course order."""
    return [Page(u, name, path) for u in manifest.UNITS for name, _, path in runner.unit_notebooks(u)]


def _code(nb: nbformat.NotebookNode) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def outputs_for(page: Page) -> Path | None:
    """The executed copy to show: a ``dlfund run`` copy of the notebook's current code that ran through
    and shows its figures, else the cache entry (which may hold a failure), else ``None``."""
    code = _code(notebooks.read(page.source))
    for copy in page.run_copies():
        nb = notebooks.read(copy)
        if _code(nb) == code and "error" not in runner.provenance_of(nb) and not notebooks.missing_figures(nb):
            return copy
    return page.cached if page.cached.exists() else None


def _failed(copy: Path) -> bool:
    return "error" in runner.provenance_of(notebooks.read(copy))


def execute_missing(todo: list[Page], jobs: int) -> list[str]:
    """Execute ``todo`` in the smoke tier, ``jobs`` notebooks at a time, into the book's cache; return the
    failures as ``"unit/notebook: error"``."""
    failures = []
    pairs = [(page.source, page.cached) for page in todo]
    env = runner.kernel_environment(BOOK_TIER)
    done = runner.execute_many(pairs, tier=BOOK_TIER, env=env, jobs=jobs)
    for index, error, _ in tqdm(done, total=len(todo), desc=f"executing ({BOOK_TIER} tier)", unit="notebook"):
        page = todo[index]
        tqdm.write(f"{'✗' if error else '✓'} {page.unit.dirname}/{page.name}" + (f"  {error}" if error else ""))
        if error:
            failures.append(f"{page.unit.dirname}/{page.name}: {error}")
    return failures


def banner(page: Page, copy: Path | None) -> str:
    """The note that opens a page: where its outputs come from, or why there are none."""
    run = f"`dlfund run {page.unit.number} --notebook {page.name}`"
    if copy is None:
        return (
            "```{note}\nThis page shows no outputs: its notebook has not been executed on this machine. "
            f"`dlfund book` executes it, or run it yourself: {run}.\n```"
        )
    facts = runner.provenance_of(notebooks.read(copy))
    tier = facts.get("tier", "smoke" if ".smoke." in copy.name or copy.parent.name != "executed" else "full")
    date = facts.get("date") or datetime.fromtimestamp(copy.stat().st_mtime, timezone.utc).isoformat()
    where = f"{facts.get('device', 'this machine')}, {date[:10]}"
    origin = "your `dlfund run`" if copy.parent.name == "executed" else "`dlfund book`"
    if "error" in facts:
        return (
            f"```{{warning}}\nThis notebook **failed** when {origin} executed it ({where}): "
            f"`{facts['error']}`. The outputs stop at the failing cell; run it yourself to see it whole: {run}.\n```"
        )
    small = " (small data, few steps: the numbers show the code works, not what it reaches)" if tier == "smoke" else ""
    return (
        f"```{{note}}\nThe outputs on this page come from the {tier} tier{small}, run by {origin} on {where}. "
        f"Run the notebook to see your own: {run}.\n```"
    )


def _with_banner(nb: nbformat.NotebookNode, text: str) -> nbformat.NotebookNode:
    """``nb`` with ``text`` as a markdown cell after its title cell."""
    at = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    nb.cells.insert(at, nbformat.v4.new_markdown_cell(text))
    return nb


def stage(dest: Path | None = None) -> dict[str, str]:
    """Copy the book's sources into ``dest`` (default ``STAGE``), each lecture and solution notebook with
    the executed copy of :func:`outputs_for` and its banner; return ``{"unit/notebook": origin}`` where
    origin is ``"run"``, ``"book"``, ``"failed"`` or ``"none"``."""
    dest = dest or STAGE
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "_generated", "results")
    for folder in ("book", "units", "solutions"):
        shutil.copytree(manifest.ROOT / folder, dest / folder, ignore=ignore)
    # all of it but the SVG output's fonts, which the package ships without the SVG output itself
    shutil.copytree(mathjax_dir(), dest / ASSETS / "mathjax", ignore=shutil.ignore_patterns("SVG"))
    atomic_write_text(dest / "book" / "_generated" / "results.md", results_markdown())
    # the quiz instructions have one source, the quiz package's README
    atomic_write_text(
        dest / "book" / "_generated" / "quiz.md",
        pages.quiz_page((manifest.ROOT / "dlfund" / "course" / "quiz" / "README.md").read_text(encoding="utf-8")),
    )
    origins = {}
    for page in notebook_pages():
        copy = outputs_for(page)
        nb = notebooks.read(copy or page.source)
        if copy is None:
            origin = "none"
        elif _failed(copy):
            origin = "failed"
        else:
            origin = "run" if copy.parent.name == "executed" else "book"
        origins[f"{page.unit.dirname}/{page.name}"] = origin
        target = dest / page.source.relative_to(manifest.ROOT)
        atomic_write_text(target, nbformat.writes(_with_banner(nb, banner(page, copy))))
    pages.stage(dest)  # what a learner sees: no solution markers, solutions apart from the exercises
    return origins


def build(output: Path | None = None, *, quiet: bool = True, execute: bool = True, jobs: int | None = None) -> Path:
    """Build the HTML book into ``output`` (default ``OUTPUT``); return the path of its index page.

    ``execute``: first execute, in the smoke tier, every notebook with no current executed copy
    (``jobs`` at a time; default one per core, at most 8); without it, such pages say they have no outputs.
    """
    manifest.require_repo()
    output = output or OUTPUT
    if execute:
        todo = [p for p in notebook_pages() if (c := outputs_for(p)) is None or (c == p.cached and _failed(c))]
        jobs = jobs or min(os.cpu_count() or 1, 8)
        print(f"book: {len(todo)} notebook(s) to execute ({BOOK_TIER} tier, {jobs} at a time)")
        execute_missing(todo, jobs)
    origins = stage()
    counts = {k: sum(v == k for v in origins.values()) for k in ("run", "book", "failed", "none")}
    print(
        f"book: {len(origins)} notebook pages: {counts['run']} with outputs from your `dlfund run`, "
        f"{counts['book']} executed by `dlfund book`, {counts['failed']} failed, {counts['none']} without outputs"
    )
    if output.exists():
        shutil.rmtree(output)
    cmd = [
        sys.executable,
        "-c",
        "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
        "build",
        str(STAGE),
        "--config",
        str(STAGE / "book" / "_config.yml"),
        "--toc",
        str(STAGE / "book" / "_toc.yml"),
        "--path-output",
        str(output),
        "--all",
        "-W",
        "--keep-going",
    ]
    if quiet:
        cmd.append("-q")
    proc = subprocess.run(cmd, cwd=STAGE, capture_output=True, text=True)
    index = output / "_build" / "html" / "index.html"
    if proc.returncode != 0 or not index.exists():
        raise RuntimeError(
            f"the book build failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return index
