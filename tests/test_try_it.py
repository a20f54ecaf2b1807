"""Every lecture ends with open "Try it" questions, each discussed in the solutions (COURSE.md §12).

The last cell of every lecture notebook is a ``## Try it`` markdown cell with 2 to 4 numbered questions
(change a setting and predict, explain a printed number or curve, break something on purpose) and a
link to its unit's discussion page ``solutions/<unit>/try-it.md``. That page has one heading per
question, ``<notebook> · <n>``, so a question added without its discussion (or a discussion left behind
when a question is removed) fails here. There is no check: the questions are open."""

from __future__ import annotations

import re

import pytest

from dlfund.course import manifest, notebooks, pages

LECTURES = [(u, nb.name) for u in manifest.UNITS for nb in u.notebooks]
QUESTION = re.compile(r"^(\d+)\. \S", re.M)
"""A numbered question: a top-level Markdown list item (nested lists and prose do not count)."""
HEADING = re.compile(r"^#{2,4} .*?\b(\d\d-[\w-]+) · (\d+)\b", re.M)


def discussion_path(unit: manifest.Unit):
    return unit.solutions_path / f"{pages.TRY_IT}.md"


def pending(unit: manifest.Unit) -> None:
    """Skip a unit whose questions have not landed yet (``pages.TRY_IT_PENDING``), once it has none."""
    if not pages.has_try_it(unit):
        assert not discussion_path(unit).exists(), f"{unit.dirname} has its try-it.md: remove it from TRY_IT_PENDING"
        pytest.skip(f"unit {unit.dirname}: Try-it questions pending (issue 23, item 3; pages.TRY_IT_PENDING)")


def questions(unit: manifest.Unit, name: str) -> list[int]:
    """The numbers of the Try-it questions that close the notebook (asserting the cell's shape)."""
    last = notebooks.read(unit.notebook_path(name)).cells[-1]
    assert last.cell_type == "markdown" and last.source.lstrip().startswith("## Try it"), (
        "a lecture notebook ends with a '## Try it' markdown cell of open questions"
    )
    return [int(n) for n in QUESTION.findall(last.source)]


@pytest.mark.parametrize("unit,name", LECTURES, ids=[f"{u.dirname}/{n}" for u, n in LECTURES])
def test_lecture_ends_with_numbered_try_it_questions_and_a_link(unit, name):
    pending(unit)
    numbers = questions(unit, name)
    assert 2 <= len(numbers) <= 4, f"2 to 4 numbered questions, found {len(numbers)}"
    assert numbers == list(range(1, len(numbers) + 1)), f"questions numbered 1..n, found {numbers}"
    source = notebooks.read(unit.notebook_path(name)).cells[-1].source
    link = f"](../../solutions/{unit.dirname}/{pages.TRY_IT}.md)"
    assert link in source, f"the cell links its discussion with a relative link: {link}"
    assert discussion_path(unit).is_file(), f"{manifest.display_path(discussion_path(unit))} is missing"


@pytest.mark.parametrize("unit", manifest.UNITS, ids=lambda u: u.dirname)
def test_every_question_is_discussed_and_nothing_else(unit):
    pending(unit)
    path = discussion_path(unit)
    assert path.is_file(), f"{manifest.display_path(path)} is missing"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# "), "the discussion page opens with a '# Title'"
    discussed = HEADING.findall(text)
    asked = [(name, str(n)) for name in (nb.name for nb in unit.notebooks) for n in questions(unit, name)]
    assert len(discussed) == len(set(discussed)), "a question discussed twice"
    assert [q for q in asked if q not in discussed] == [], "questions without a discussion heading '<notebook> · <n>'"
    assert [d for d in discussed if d not in asked] == [], "discussions of questions no notebook asks"
    assert discussed == asked, "discussions in the order of the notebooks and their questions"
    sections = re.split(HEADING, text)[1:]
    for i in range(0, len(sections), 3):
        name, n, body = sections[i], sections[i + 1], sections[i + 2]
        assert len(body.split()) >= 25, f"{name} · {n}: a discussion of a few sentences at least"
