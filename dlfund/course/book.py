"""Build the course book (Jupyter Book 1.x, offline).

The book's sources are staged in ``runs/book-src``: the book pages, the units and the solutions,
with each notebook replaced by its executed copy from ``dlfund run`` when there is one (full tier
preferred), so the book shows outputs without executing anything during the build.

The book loads nothing from another host: its maths is typeset by MathJax 2.7 from the book's own
``_static/mathjax/`` (copied from the PyPI package ``jupyter-server-mathjax``, which the ``book`` extra
installs; ``book/_config.yml`` points Sphinx at it), and the theme's extensions that fetch scripts
from the web (thebe's live code cells) are left out.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from dlfund.course import manifest, results
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
        rows = results.table(u)
        if rows:
            found = True
            lines += [f"## Unit {u.number:02d} · {u.title}", "", *rows, ""]
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


def executed_copy(unit: manifest.Unit, name: str) -> Path | None:
    """The newest executed copy of a notebook left by ``dlfund run`` (full tier preferred)."""
    for tier in ("full", "smoke"):
        path = manifest.RUNS_DIR / unit.dirname / "executed" / f"{name}.{tier}.ipynb"
        if path.exists():
            return path
    return None


def stage(dest: Path | None = None) -> list[str]:
    """Copy the book's sources into ``dest`` (default ``STAGE``); return the notebooks shown with outputs."""
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
        (manifest.ROOT / "dlfund" / "course" / "quiz" / "README.md").read_text(encoding="utf-8"),
    )
    with_outputs = []
    for u in manifest.UNITS:
        for name in [nb.name for nb in u.notebooks] + [ex.name for ex in u.exercises]:
            executed = executed_copy(u, name)
            if executed is None:
                continue
            target = (
                dest / u.notebook_path(name).relative_to(manifest.ROOT)
                if any(nb.name == name for nb in u.notebooks)
                else dest / u.solution_path(name).relative_to(manifest.ROOT)
            )
            shutil.copyfile(executed, target)
            with_outputs.append(f"{u.dirname}/{name}")
    return with_outputs


def build(output: Path | None = None, *, quiet: bool = True) -> Path:
    """Build the HTML book into ``output`` (default ``OUTPUT``); return the path of its index page."""
    manifest.require_repo()
    output = output or OUTPUT
    with_outputs = stage()
    print(
        f"book: {len(with_outputs)} notebook(s) shown with outputs from `dlfund run`"
        + ("" if with_outputs else " (run a unit first to see outputs in the book)")
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
