"""Build the course book (Jupyter Book 1.x, offline) from the repository root."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import course
from ._io import atomic_write_text

GENERATED = course.BOOK_DIR / "_generated"
OUTPUT = course.RUNS_DIR / "book"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def results_markdown() -> str:
    """The results page: every recorded result file, grouped by unit, with its provenance."""
    lines = ["# Recorded results", "",
             "Every number below was measured by running the notebook (`dlfund run N --record`) and read "
             "from `book/results/<unit>/<notebook>.<tier>.json`; nothing here is typed by hand.", ""]
    found = False
    for u in course.UNITS:
        files = sorted((course.RESULTS_DIR / u.dirname).glob("*.json"))
        if not files:
            continue
        found = True
        lines += [f"## Unit {u.number:02d} · {u.title}", "",
                  "| notebook | tier | key metrics | wall time | peak memory | device | date | commit |",
                  "|---|---|---|---|---|---|---|---|"]
        for path in files:
            r = json.loads(path.read_text(encoding="utf-8"))
            p = r["provenance"]
            metrics = ", ".join(f"{k}={_fmt(v)}" for k, v in r["metrics"].items() if not isinstance(v, (list, dict)))
            mem = f"{p['peak_memory_mb']:.0f} MB ({p['peak_memory_kind']})" if p.get("peak_memory_mb") else "n/a"
            lines.append(f"| {r['notebook']} | {p['tier']} | {metrics} | {p['wall_s']:.1f} s | {mem} | "
                         f"{p['device']} | {p['date'][:10]} | {p['commit']} |")
        lines.append("")
    if not found:
        lines.append("No results have been recorded yet.")
    return "\n".join(lines) + "\n"


def build(output: Path = OUTPUT, *, quiet: bool = True) -> Path:
    """Build the HTML book into ``output``; return the path of its index page."""
    course.require_repo()
    GENERATED.mkdir(parents=True, exist_ok=True)
    atomic_write_text(GENERATED / "results.md", results_markdown())
    if output.exists():
        shutil.rmtree(output)
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())", "build", str(course.ROOT),
           "--config", str(course.BOOK_DIR / "_config.yml"), "--toc", str(course.BOOK_DIR / "_toc.yml"),
           "--path-output", str(output), "--all", "-W", "--keep-going"]
    if quiet:
        cmd.append("-q")
    proc = subprocess.run(cmd, cwd=course.ROOT, capture_output=True, text=True)
    index = output / "_build" / "html" / "index.html"
    if proc.returncode != 0 or not index.exists():
        raise RuntimeError(f"the book build failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return index
