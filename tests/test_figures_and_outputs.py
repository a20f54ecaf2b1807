"""Figures appear as image outputs, and the book shows every notebook page with outputs that say where
they come from (``dlfund.course.notebooks``, ``runner.execute``, ``book.outputs_for`` / ``execute_missing``)."""

from __future__ import annotations

import nbformat
import pytest

from dlfund.course import book, manifest, notebooks, runner

PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A title")] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, str(path))
    return path


def test_figure_calls_count_what_a_cell_shows():
    assert notebooks.figure_calls(PLOT) == 1
    assert notebooks.figure_calls("for i in range(3):\n    plt.plot([i])\n    plt.show()\nplt.show()") == 2
    assert notebooks.figure_calls("def draw():\n    plt.show()\n# plt.show()\nx = 'plt.show()'") == 0
    assert notebooks.figure_calls("this is not python (") == 0


def test_a_cell_without_its_image_is_named_with_the_cause():
    image = {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}
    text = {"output_type": "stream", "name": "stdout", "text": "hi"}
    assert notebooks.missing_figure(PLOT, [text, image]) is None
    assert notebooks.missing_figure("print('no plot')", []) is None
    why = notebooks.missing_figure(PLOT, [text])
    assert why and "plt.show() 1 time(s)" in why and "0 image(s)" in why and notebooks.INLINE_BACKEND in why


def test_a_kernel_run_shows_figures_and_records_where_its_outputs_come_from(tmp_path, monkeypatch):
    source = _notebook(tmp_path / "plot.ipynb", PLOT)
    monkeypatch.setenv("MPLBACKEND", "Agg")  # a learner's shell may say this: the kernel must still show figures
    runner.execute(source, tmp_path / "out.ipynb", tier="smoke", desc="plot", env=runner.kernel_environment("smoke"))
    nb = notebooks.read(tmp_path / "out.ipynb")
    assert notebooks.missing_figures(nb) == []
    assert notebooks.images(nb.cells[1].outputs) == 1
    facts = runner.provenance_of(nb)
    assert facts["tier"] == "smoke" and facts["device"] and facts["date"].startswith("20") and "error" not in facts

    # a headless backend inside the kernel is exactly the defect the check names
    runner.execute(source, tmp_path / "agg.ipynb", tier="smoke", desc="plot", env={"MPLBACKEND": "Agg"})
    assert notebooks.missing_figures(notebooks.read(tmp_path / "agg.ipynb"))


def _page(tmp_path, monkeypatch, *sources):
    monkeypatch.setattr(manifest, "RUNS_DIR", tmp_path / "runs")
    unit = manifest.UNITS[0]
    return book.Page(unit, "demo", _notebook(tmp_path / "demo.ipynb", *sources))


def _copy(page, tier, outputs, **facts):
    nb = notebooks.read(page.source)
    nb.cells[1].outputs = [nbformat.from_dict(o) for o in outputs]
    nb.metadata["dlfund"] = {"tier": tier, "device": "Test GPU", "date": "2026-12-01T00:00:00+00:00", **facts}
    path = manifest.RUNS_DIR / page.unit.dirname / "executed" / f"{page.name}.{tier}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def test_the_book_prefers_the_learners_current_run_and_otherwise_its_cache(tmp_path, monkeypatch):
    page = _page(tmp_path, monkeypatch, "print(1)")
    assert book.outputs_for(page) is None
    assert "no outputs" in book.banner(page, None) and f"dlfund run 1 --notebook {page.name}" in book.banner(page, None)

    out = [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    smoke = _copy(page, "smoke", out)
    full = _copy(page, "full", out)
    assert book.outputs_for(page) == full  # the full tier first
    text = book.banner(page, full)
    assert "full tier" in text and "Test GPU" in text and "2026-12-01" in text and "your `dlfund run`" in text

    full.unlink()
    _copy(page, "full", out, error="ZeroDivisionError: division by zero")
    assert book.outputs_for(page) == smoke  # a run that failed is not shown when another copy ran through

    # the notebook changed since those runs: their outputs are not its outputs any more
    _notebook(page.source, "print(2)")
    assert book.outputs_for(page) is None
    before = page.cached
    _notebook(page.source, "print(3)")
    assert page.cached != before  # the cache is keyed by the notebook's content


def test_a_run_whose_figures_are_missing_is_not_shown(tmp_path, monkeypatch):
    page = _page(tmp_path, monkeypatch, PLOT)
    _copy(page, "smoke", [])  # executed with a headless backend: no image
    assert book.outputs_for(page) is None


def test_the_book_executes_what_it_lacks_in_parallel_and_says_what_failed(tmp_path, monkeypatch):
    ok = _page(tmp_path, monkeypatch, PLOT)
    bad = book.Page(ok.unit, "broken", _notebook(tmp_path / "broken.ipynb", "print('before')", "1 / 0"))
    failures = book.execute_missing([ok, bad], jobs=2)
    assert failures == [f"{bad.unit.dirname}/broken: ZeroDivisionError: division by zero"]
    assert book.outputs_for(ok) == ok.cached
    shown = notebooks.read(ok.cached)
    assert notebooks.images(shown.cells[1].outputs) == 1
    assert "run by `dlfund book`" in book.banner(ok, ok.cached)
    assert book.outputs_for(bad) == bad.cached  # the failure is shown, not hidden
    warning = book.banner(bad, bad.cached)
    assert warning.startswith("```{warning}") and "**failed**" in warning and "ZeroDivisionError" in warning
    assert notebooks.read(bad.cached).cells[1].outputs[0]["text"] == "before\n"  # outputs up to the failure


@pytest.mark.parametrize("first", ["markdown", "code"])
def test_the_banner_goes_after_the_title(first):
    nb = nbformat.v4.new_notebook()
    make = nbformat.v4.new_markdown_cell if first == "markdown" else nbformat.v4.new_code_cell
    nb.cells = [make("# Title" if first == "markdown" else "x = 1")]
    out = book._with_banner(nb, "NOTE")
    assert [c.source for c in out.cells] == (["# Title", "NOTE"] if first == "markdown" else ["NOTE", "x = 1"])


def test_dlfund_run_fails_a_notebook_whose_figures_are_missing(tmp_path, monkeypatch):
    unit = manifest.get_unit(1)
    name = unit.notebooks[0].name

    def headless(path, out, **kwargs):  # as a kernel with a headless backend would leave it: no image
        nbformat.write(notebooks.read(path), str(out))

    monkeypatch.setattr(runner, "execute", headless)
    monkeypatch.setattr(runner, "WarmKernel", lambda cwd, env: None)
    monkeypatch.setattr(manifest, "RUNS_DIR", tmp_path / "runs")
    (tmp_path / "runs" / unit.dirname / "executed").mkdir(parents=True)
    (run,) = runner.run_unit(unit, "smoke", only=name)
    assert run.status == "FAILED" and "figure(s) missing" in run.error and "plt.show()" in run.error
