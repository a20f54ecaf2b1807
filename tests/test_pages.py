"""What a learner sees in the book (dlfund/course/pages.py, the book's table of contents): fast, no build."""

from __future__ import annotations

import re
import shutil

import nbformat
import pytest
import yaml

from dlfund.course import docs, exercises, manifest, pages

TARGETS = exercises.targets()
IDS = [f"{t.unit.dirname}/{t.exercise.name}" for t in TARGETS]


def _first_line(nb: nbformat.NotebookNode) -> str:
    return nb.cells[0].source.lstrip().split("\n", 1)[0]


def _text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(c.source for c in nb.cells)


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_exercise_and_solution_titles_differ_and_match(target):
    solution = nbformat.read(str(target.source), as_version=4)
    exercise = nbformat.read(str(target.target), as_version=4)
    number = int(re.match(r"ex(\d+)-", target.exercise.name).group(1))
    sol = re.fullmatch(r"# Solution (\d+) · (.+)", _first_line(solution))
    ex = re.fullmatch(r"# Exercise (\d+) · (.+)", _first_line(exercise))
    assert sol and ex, (_first_line(solution), _first_line(exercise))
    assert int(sol.group(1)) == int(ex.group(1)) == number
    assert sol.group(2) == ex.group(2)


@pytest.mark.parametrize(
    "title,message",
    [
        ("# Exercise 1: early stopping", "must start with the title"),
        ("# Solution 2 · Early stopping", "file name says"),
    ],
)
def test_a_solution_title_is_checked(title, message):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(title),
            nbformat.v4.new_code_cell("# BEGIN SOLUTION\nx = 1\n# END SOLUTION"),
        ]
    )
    with pytest.raises(exercises.SolutionFormatError, match=message):
        exercises.make_exercise(nb, "01-x", "ex01-early-stopping")


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_no_author_note_on_the_learner_notebook(target):
    exercise = nbformat.read(str(target.target), as_version=4)
    text = _text(exercise).lower()
    assert "edit the solution" not in text and "generated from" not in text
    # the note for authors is in the metadata, where the staleness check also sees it
    assert (
        exercise.metadata["dlfund"]["generated_from"] == f"solutions/{target.unit.dirname}/{target.exercise.name}.ipynb"
    )


def test_a_generated_notebook_without_its_metadata_is_stale(tmp_path, monkeypatch):
    target = TARGETS[0]
    nb = nbformat.read(str(target.target), as_version=4)
    del nb.metadata["dlfund"]
    fake = tmp_path / "exercise.ipynb"
    fake.write_text(exercises.render(nb), encoding="utf-8")
    monkeypatch.setattr(exercises.Target, "target", property(lambda self: fake))
    assert exercises.stale((target.unit,))


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_solution_page_has_no_markers_and_names_its_exercise(target):
    solution = nbformat.read(str(target.source), as_version=4)
    page = pages.solution_page(solution, "Exercise 1 · X", "../x.ipynb")
    code = "\n".join(c.source for c in page.cells if c.cell_type == "code")
    assert "BEGIN SOLUTION" not in code and "END SOLUTION" not in code
    assert _first_line(page).startswith("# Solution ")
    assert "[Exercise 1 · X](../x.ipynb)" in page.cells[1].source
    # the solution code itself is still there: only the marker lines go
    assert len(code.splitlines()) == sum(
        1
        for c in solution.cells
        if c.cell_type == "code"
        for line in c.source.split("\n")
        if not (exercises.BEGIN.match(line) or exercises.END.match(line))
    )
    assert "BEGIN SOLUTION" in "\n".join(c.source for c in solution.cells), "the source keeps its markers"


def test_stage_rewrites_only_the_staged_copy(tmp_path):
    for folder in ("units", "solutions"):
        shutil.copytree(manifest.ROOT / folder, tmp_path / folder)
    before = {p: p.read_bytes() for p in (manifest.ROOT / "solutions").rglob("*.ipynb")}
    pages.stage(tmp_path)
    assert before == {p: p.read_bytes() for p in (manifest.ROOT / "solutions").rglob("*.ipynb")}
    for u in manifest.UNITS:
        chapter = (tmp_path / pages.SOLUTIONS_DIR / f"{u.dirname}.md").read_text(encoding="utf-8")
        assert chapter.startswith(f"# Solutions · Unit {u.number:02d}\n")
        for ex in u.exercises:
            sol = nbformat.read(str(tmp_path / u.solution_path(ex.name).relative_to(manifest.ROOT)), as_version=4)
            assert "SOLUTION" not in "\n".join(c.source for c in sol.cells if c.cell_type == "code")
            assert f"exercises/{ex.name}.ipynb" in sol.cells[1].source
            exe = nbformat.read(str(tmp_path / u.exercise_path(ex.name).relative_to(manifest.ROOT)), as_version=4)
            assert f"solutions/{u.dirname}/{ex.name}.ipynb" in exe.cells[-1].source
            assert f"solutions/{u.dirname}/{ex.name}.ipynb" in chapter
        assert (f"solutions/{u.dirname}/{pages.TRY_IT}.md" in chapter) == pages.has_try_it(u)


def test_each_unit_once_in_the_toc_and_solutions_apart():
    toc = yaml.safe_load(docs.toc())
    captions = [p["caption"] for p in toc["parts"]]
    assert captions == ["Units", "Certification quiz", "Results", "Solutions"]
    units, solutions = toc["parts"][0]["chapters"], toc["parts"][-1]["chapters"]
    files = [c["file"] for c in units]
    assert files == [f"units/{u.dirname}/README" for u in manifest.UNITS], "one entry per unit, in order"
    assert not any(u.title in c for u in manifest.UNITS for c in captions), "a unit's title as a part caption too"
    for u, chapter in zip(manifest.UNITS, units, strict=True):
        beneath = [s["file"] for s in chapter["sections"]]
        assert beneath == [f"units/{u.dirname}/{nb.name}" for nb in u.notebooks] + [
            f"units/{u.dirname}/exercises/{ex.name}" for ex in u.exercises
        ]
    solution_files = [s["file"] for c in solutions for s in c["sections"]]
    assert solution_files == [
        f
        for u in manifest.UNITS
        for f in [f"solutions/{u.dirname}/{ex.name}" for ex in u.exercises]
        + [f"solutions/{u.dirname}/{pages.TRY_IT}"] * pages.has_try_it(u)
    ], "each unit's solutions, then the discussion of its lectures' Try it questions"
    assert [c["file"] for c in solutions] == [
        f"{pages.SOLUTIONS_DIR.as_posix()}/{u.dirname}" for u in manifest.UNITS if u.exercises
    ]


def test_quiz_page_is_for_quiz_takers():
    readme = (manifest.ROOT / "dlfund" / "course" / "quiz" / "README.md").read_text(encoding="utf-8")
    page = pages.quiz_page(readme)
    assert "## Taking it" in page and "## The certificate" in page and "Pass mark: 80%" in page
    assert "self-assessment" in page
    for authoring in ("## The bank", "Writing questions", "quiz.author", "answer_hash", "PENDING_UNITS"):
        assert authoring in readme and authoring not in page, authoring
    with pytest.raises(ValueError, match="for authors"):
        pages.quiz_page("# The quiz\n\n## The bank\n")


PAYLOAD = {
    "notebook": "x",
    "metrics": {
        "test_acc": 0.987654,
        "curve": list(range(100)),
        "by_width": {f"width {w}": w / 7 for w in range(30)},
        "by_depth": {"1 layer": 0.5, "2 layers": 0.75},
        "sweep": [{"lr": 0.1, "acc": 0.5}] * 4,
        "error": "ValueError: " + "a very long message " * 20,
        "pair": [0.25, 0.75],
    },
    "provenance": {
        "tier": "full",
        "wall_s": 3.21,
        "peak_memory_mb": 512.0,
        "device": "NVIDIA H100",
        "date": "2026-11-22T01:02:03+00:00",
        "commit": "abc123",
    },
}


def test_results_one_metric_per_row_and_narrow_cells():
    smoke = {**PAYLOAD, "metrics": {"test_acc": 0.5}, "provenance": {**PAYLOAD["provenance"], "tier": "smoke"}}
    lines = pages.results_section("X", {"smoke": smoke, "full": PAYLOAD})
    assert lines[0] == "### X"
    assert lines[2] == "| metric | full tier | smoke tier |"
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| metric")]
    assert [r.split(" | ")[0] for r in rows] == [
        "| test acc",
        "| curve",
        "| by width",
        "| by depth · 1 layer",
        "| by depth · 2 layers",
        "| sweep",
        "| error",
        "| pair",
        "| *device*",
        "| *date*",
        "| *wall time*",
        "| *peak memory*",
        "| *commit*",
    ]
    cells = {r.split(" | ")[0][2:]: r.strip("| ").split(" | ")[1:] for r in rows}
    assert cells["test acc"] == ["0.9877", "0.5"]
    assert cells["curve"] == ["100 values: 0 … 99", "—"]
    assert cells["sweep"][0] == "a table of 4 rows (see the notebook)"
    assert cells["pair"][0] == "[0.25, 0.75]"
    assert cells["by width"][0].startswith("30 entries: width 0: 0, width 1: 0.1429")
    assert cells["by depth · 2 layers"] == ["0.75", "—"]
    assert cells["*device*"] == ["NVIDIA H100", "NVIDIA H100"] and cells["*date*"][0] == "2026-11-22"
    assert all(len(c) <= pages.VALUE_WIDTH for r in cells.values() for c in r)


def test_the_results_page_fits_the_page():
    from dlfund.course import book

    text = book.results_markdown()
    notebooks = text.split("## Reference benchmarks")[0]
    rows = [line for line in notebooks.splitlines() if line.startswith("|")]
    assert rows, "no recorded results to show"
    assert max(len(r) for r in rows) <= pages.LABEL_WIDTH + 2 * pages.VALUE_WIDTH + 10, max(rows, key=len)
    assert all(r.count(" | ") <= 2 for r in rows), "a metric column and at most two tiers per table"


def test_unit_readmes_link_the_quiz_the_way_the_book_rewrites():
    # a unit README links the quiz instructions in the repository; the book stage points that link at the quiz page
    for u in manifest.UNITS:
        text = (manifest.ROOT / "units" / u.dirname / "README.md").read_text(encoding="utf-8")
        assert pages.QUIZ_README_LINK in text, (
            f"units/{u.dirname}/README.md lacks the quiz link {pages.QUIZ_README_LINK}"
        )
    target = pages.QUIZ_PAGE_LINK.strip("()").removeprefix("../../").removesuffix(".md")
    assert f"file: {target}" in (manifest.ROOT / "book" / "_toc.yml").read_text(encoding="utf-8"), (
        "the quiz page is not in the toc"
    )
