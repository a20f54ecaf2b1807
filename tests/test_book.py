"""The book builds offline (Jupyter Book 1.x) with a page for every notebook in the manifest."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from dlfund.course import book, manifest, notebooks

PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@pytest.mark.book
def test_book_builds_every_page(tmp_path, monkeypatch):
    pytest.importorskip("jupyter_book", reason="the book extra is not installed: pip install -e '.[book]'")
    monkeypatch.setattr(book, "STAGE", tmp_path / "src")
    # one executed notebook from a (fake) earlier run: the book must show its outputs
    unit = manifest.UNITS[0]
    runs = tmp_path / "runs"
    monkeypatch.setattr(manifest, "RUNS_DIR", runs)
    executed = runs / unit.dirname / "executed" / f"{unit.notebooks[0].name}.smoke.ipynb"
    executed.parent.mkdir(parents=True)
    nb = json.loads(unit.notebook_path(unit.notebooks[0].name).read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "OUTPUT-FROM-A-RUN\n"}]
    for c in nb["cells"]:  # an executed copy shows its figures (one without them is not shown)
        if c["cell_type"] == "code" and notebooks.figure_calls("".join(c["source"])):
            c["outputs"] = [{"output_type": "display_data", "metadata": {}, "data": {"image/png": PIXEL}}]
    executed.write_text(json.dumps(nb), encoding="utf-8")

    index = book.build(tmp_path / "out", execute=False)
    html = index.parent
    for u in manifest.UNITS:
        for nb_ in u.notebooks:
            assert (html / "units" / u.dirname / f"{nb_.name}.html").exists()
        for ex in u.exercises:
            assert (html / "units" / u.dirname / "exercises" / f"{ex.name}.html").exists()
            assert (html / "solutions" / u.dirname / f"{ex.name}.html").exists()
    page = (html / "units" / unit.dirname / f"{unit.notebooks[0].name}.html").read_text(encoding="utf-8")
    assert "OUTPUT-FROM-A-RUN" in page and "your <code" in page  # its banner says whose outputs they are
    assert len(re.findall(r'<img [^>]*src="[^"]*_images/', page)) >= 1
    other = (html / "units" / unit.dirname / f"{unit.notebooks[1].name}.html").read_text(encoding="utf-8")
    assert "This page shows no outputs" in other  # nothing executed (execute=False): the page says so
    assert (html / "book" / "_generated" / "results.html").exists()
    quiz_page = (html / "book" / "_generated" / "quiz.html").read_text(encoding="utf-8")
    assert "Pass mark: 80%" in quiz_page and "self-assessment" in quiz_page
    assert "Writing questions" not in quiz_page and "answer_hash" not in quiz_page, "the authoring part is shown"
    # what a learner sees: each unit once in the sidebar, solutions apart, no markers, no notes for authors
    sidebar = re.search(r'<nav class="[^"]*bd-docs-nav[^"]*".*?</nav>', page, re.S)
    assert sidebar, "no sidebar found in a built page"
    for u in manifest.UNITS:
        assert sidebar.group(0).count(f"Unit {u.number:02d} · ") == 1, f"unit {u.number} in the sidebar not once"
    ex = manifest.UNITS[0].exercises[0]
    exercise_page = (html / "units" / unit.dirname / "exercises" / f"{ex.name}.html").read_text(encoding="utf-8")
    solution_page = (html / "solutions" / unit.dirname / f"{ex.name}.html").read_text(encoding="utf-8")
    assert "<title>Exercise 1 · " in exercise_page and "<title>Solution 1 · " in solution_page
    assert "edit the solution" not in exercise_page and "generated from" not in exercise_page
    assert "BEGIN SOLUTION" not in solution_page and "END SOLUTION" not in solution_page
    # every internal link of every page resolves to a file of the built book
    broken, checked = [], 0
    for built in html.rglob("*.html"):
        if "_static" in built.relative_to(html).parts:  # theme templates, not pages
            continue
        for href in re.findall(r'href="([^"]+)"', built.read_text(encoding="utf-8")):
            target = href.split("#")[0].split("?")[0]
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("//"):
                continue  # an anchor on the same page, or an external address
            checked += 1
            if not (built.parent / target).exists():
                broken.append(f"{built.relative_to(html)} -> {href}")
    assert checked > 100 and not broken, broken[:20]
    shutil.rmtree(tmp_path / "out")


def test_results_page_reads_the_recorded_files(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest, "RESULTS_DIR", tmp_path)
    assert "No results have been recorded yet" in book.results_markdown()
    unit = manifest.UNITS[0]
    (tmp_path / unit.dirname).mkdir()
    (tmp_path / unit.dirname / "x.full.json").write_text(
        json.dumps(
            {
                "unit": unit.number,
                "notebook": "x",
                "metrics": {"test_acc": 0.987654, "curve": [1, 2]},
                "provenance": {
                    "tier": "full",
                    "wall_s": 3.21,
                    "peak_memory_mb": 512.0,
                    "peak_memory_kind": "cuda_max_allocated",
                    "device": "NVIDIA H100",
                    "date": "2026-11-22T01:02:03+00:00",
                    "commit": "abc123",
                },
            }
        )
    )
    text = book.results_markdown()
    assert "### x\n\n| metric | full tier |\n|---|---|\n| test acc | 0.9877 |\n| curve | [1, 2] |\n" in text
    for row in (
        "| *device* | NVIDIA H100 |",
        "| *date* | 2026-11-22 |",
        "| *wall time* | 3.2 s |",
        "| *peak memory* | 512 MB |",
    ):
        assert row in text
