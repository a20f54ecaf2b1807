"""The book builds offline (Jupyter Book 1.x) with a page for every notebook in the manifest, loads
nothing from another host, and reads well in a real browser: maths typeset, images loaded, no errors.

The book is built once for this module (about 30 s); the browser tests open a few of its pages in
headless Chromium (skipped where Debian's chromium is not installed) and leave screenshots in
runs/screenshots/ for a person to look at.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dlfund.course import book, browser, manifest, notebooks, runner

# a lecture run headless before the build, so one page shows a real run's outputs
RUN_UNIT, RUN_NOTEBOOK = manifest.UNITS[0], manifest.UNITS[0].notebooks[0].name
SCREENSHOTS = manifest.ROOT / "runs" / "screenshots"


@pytest.fixture(scope="module")
def built_book(tmp_path_factory) -> Path:
    """The HTML folder of one book build, after a smoke run of unit 1's first notebook."""
    pytest.importorskip("jupyter_book", reason="the book extra is not installed: pip install -e '.[book]'")
    tmp = tmp_path_factory.mktemp("book")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(manifest, "RUNS_DIR", tmp / "runs")
        mp.setattr(book, "STAGE", tmp / "src")
        (run,) = runner.run_unit(RUN_UNIT, "smoke", only=RUN_NOTEBOOK)
        assert run.status == "ok", run.error
        return book.build(tmp / "out", execute=False).parent


@pytest.mark.book
def test_book_builds_every_page(built_book):
    html, unit = built_book, RUN_UNIT
    for u in manifest.UNITS:
        for nb_ in u.notebooks:
            assert (html / "units" / u.dirname / f"{nb_.name}.html").exists()
        for ex in u.exercises:
            assert (html / "units" / u.dirname / "exercises" / f"{ex.name}.html").exists()
            assert (html / "solutions" / u.dirname / f"{ex.name}.html").exists()
    page = (html / "units" / RUN_UNIT.dirname / f"{RUN_NOTEBOOK}.html").read_text(encoding="utf-8")
    assert 'class="cell_output' in page and "your <code" in page  # the run's outputs, and a banner saying whose
    assert len(re.findall(r'<img [^>]*src="[^"]*_images/', page)) >= 1  # its figures
    other = (html / "units" / unit.dirname / f"{unit.notebooks[1].name}.html").read_text(encoding="utf-8")
    assert "This page shows no outputs" in other  # not executed (the fixture builds with execute=False): it says so
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


# what a page loads: the src/href of these tags, CSS url(...) in <style> blocks and style attributes, and
# addresses written into inline scripts (an <a href> to a documentation site loads nothing)
LOADING_TAG = re.compile(r"<(?:script|link|img|iframe|source|audio|video|embed)\b([^>]*)>", re.IGNORECASE)
SRC_OR_HREF = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
INLINE = re.compile(r"<(script|style)\b[^>]*>(.*?)</\1>", re.IGNORECASE | re.DOTALL)
STYLE_ATTR = re.compile(r"""\bstyle\s*=\s*"([^"]*)\"""", re.IGNORECASE)
CSS_URL = re.compile(r"""url\(\s*["']?([^"')\s]+)""")
SCRIPT_URL = re.compile(r"""["'`]((?:https?:|wss?:)?//[^"'`\s]+)""")
EXTERNAL = re.compile(r"^(https?:|wss?:)?//", re.IGNORECASE)


def page_assets(text: str) -> list[str]:
    """The addresses an HTML page loads its assets from."""
    refs = [ref for attrs in LOADING_TAG.findall(text) for ref in SRC_OR_HREF.findall(attrs)]
    for tag, body in INLINE.findall(text):
        refs += (SCRIPT_URL if tag.lower() == "script" else CSS_URL).findall(body)
    for style in STYLE_ATTR.findall(text):
        refs += CSS_URL.findall(style)
    return refs


def external_assets(html: Path) -> list[str]:
    """Every reference of the built book to an asset on another host: ``page -> address``."""
    found = []
    for path in html.rglob("*"):
        rel = path.relative_to(html)
        if path.suffix == ".html" and "_static" not in rel.parts:  # _static/*.html are theme templates
            refs = page_assets(path.read_text(encoding="utf-8"))
        elif path.suffix == ".css":
            refs = CSS_URL.findall(path.read_text(encoding="utf-8", errors="replace"))
        else:
            continue
        found += [f"{rel} -> {ref}" for ref in refs if EXTERNAL.match(ref)]
    return found


def test_external_assets_are_found(tmp_path):
    (tmp_path / "a.html").write_text(
        '<link rel="stylesheet" href="https://fonts.example/x.css"><img alt="" src="//img.example/a.png">'
        '<script src="_static/local.js"></script><script>const URL = "https://unpkg.example/thebe.js"</script>'
        '<div style="background: url(\'http://bg.example/b.png\')"></div><a href="https://docs.example">docs</a>'
    )
    (tmp_path / "s.css").write_text("@font-face { src: url(https://fonts.example/f.woff2) } x { a: url(data:,) }")
    hosts = sorted(re.sub(r".*//([^/]+).*", r"\1", ref) for ref in external_assets(tmp_path))
    assert hosts == ["bg.example", "fonts.example", "fonts.example", "img.example", "unpkg.example"]


@pytest.mark.book
def test_book_loads_nothing_from_another_host(built_book):
    assert (built_book / "_static" / "mathjax" / "MathJax.js").is_file()
    assert external_assets(built_book) == []


def maths_pages(html: Path, n: int = 2) -> list[str]:
    """The first ``n`` lecture pages that have maths (they load MathJax)."""
    pages = [
        p.relative_to(html).as_posix()
        for p in sorted((html / "units").glob("*/*.html"))
        if p.stem != "README" and "mathjax/MathJax.js" in p.read_text(encoding="utf-8")
    ]
    return pages[:n]


def needs_chromium() -> None:
    if not browser.CHROMIUM.exists():
        pytest.skip(f"{browser.CHROMIUM} not found: the browser checks need Debian's chromium (apt-get install)")
    pytest.importorskip("websocket", reason="the test extra is not installed: pip install -e '.[test]'")


def test_the_browser_reports_what_a_reader_would_notice(tmp_path):
    needs_chromium()
    (tmp_path / "bad.html").write_text(
        "<p>raw maths \\(x^2\\) here</p><pre>code may say \\(</pre><img alt='' src='missing.png'>"
        "<script src='https://cdn.example/lib.js'></script><script>console.error('boom')</script>"
    )
    with browser.serve(tmp_path) as base, browser.Browser() as chromium:
        page = chromium.open(base + "bad.html")
    assert page.raw_maths == ["raw maths \\(x^2\\) here"] and page.maths == 0
    assert page.broken_images == [base + "missing.png"]
    assert page.external_requests == ["https://cdn.example/lib.js"]
    assert any("boom" in e for e in page.console_errors)
    assert any("missing.png" in r for r in page.failed_requests)


@pytest.fixture(scope="module")
def opened(built_book) -> dict[str, browser.Page]:
    """A few pages of the book opened in headless Chromium (screenshots in runs/screenshots/)."""
    needs_chromium()
    pages = ["book/intro.html", f"units/{RUN_UNIT.dirname}/{RUN_NOTEBOOK}.html", *maths_pages(built_book)]
    with browser.serve(built_book) as base, browser.Browser() as chromium:
        return {
            rel: chromium.open(
                base + rel,
                screenshot=SCREENSHOTS / (rel.removesuffix(".html").replace("/", "__") + ".png"),
                scroll_to="article .MathJax_Display, article .MathJax, article .cell_output img",
            )
            for rel in pages
        }


@pytest.mark.book
def test_pages_load_without_errors(opened):
    # no console error, no failed request, nothing asked of another host, every <img> loaded (naturalWidth > 0)
    problems = {rel: page.problems() for rel, page in opened.items() if page.problems()}
    assert not problems, problems


@pytest.mark.book
def test_maths_is_typeset(opened, built_book):
    pages = maths_pages(built_book)
    assert pages, "no lecture page has maths: the check has nothing to look at"
    for rel in pages:
        assert opened[rel].maths > 0 and not opened[rel].raw_maths, (rel, opened[rel].raw_maths)


@pytest.mark.book
def test_an_executed_lecture_shows_its_figures(opened):
    page = opened[f"units/{RUN_UNIT.dirname}/{RUN_NOTEBOOK}.html"]
    source = notebooks.read(RUN_UNIT.notebook_path(RUN_NOTEBOOK))
    shows = sum(notebooks.figure_calls(code) for code in notebooks.code_cells(source))
    assert shows > 0 and page.figures >= shows, f"{page.url}: {page.figures} figure(s) for {shows} plt.show() calls"
