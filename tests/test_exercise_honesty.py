"""Every exercise is honest: hints come in steps, and nothing before or after it gives the answer away.

COURSE.md §5 and §12 ask four things of every exercise in the manifest, and this file tests each:

- **progressive hints**: before the first code cell with a solution region, a markdown cell starting
  ``**Hint.**`` gives one visible nudge and at least one collapsed ``<details><summary>Hint N</summary>``;
- **short stub hints**: the ``# BEGIN SOLUTION hint: ...`` text is a nudge of at most 15 words, not a
  dictation of every line;
- **no lecture prints the answer**: a solution region is not, for the most part, a code cell of a lecture
  of its unit or an earlier one (the learner could copy it);
- **no lecture defines it under its name**: a lecture of the unit or an earlier one defines no function
  or class whose name is the one the exercise asks for (up to case, underscores and a leading ``My``);
- **no summary states the answer**: the markdown after the check (``## What we saw``) holds no code span
  or code block that contains a line of the solution.

Each detector is tested on a small synthetic case, where it must fail, as well as on the course.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from dlfund.course import exercises, manifest

MAX_HINT_WORDS = 15
COPIED_FRACTION = 0.6
"""A lecture cell that holds this fraction of a solution region's code lines (and at least
:data:`MIN_COPIED_LINES`) prints the answer."""
MIN_COPIED_LINES = 3
MIN_SUMMARY_LINE = 20
"""A solution line shorter than this (normalised) is too generic to count as stating the answer."""

# (exercise, name) -> why a lecture's function or class of that name does not give the exercise away.
SAME_NAME_ALLOWED: dict[tuple[str, str], str] = {
    ("03-backprop/ex01-backward-ops", "sigmoid"): (
        "notebook 02 composes σ from exp, addition and division, with no backward of its own; the exercise "
        "writes the fused node and its backward"
    ),
    ("03-backprop/ex02-standardise", "standardise"): (
        "unit 2 contrasts an in-place and a copying standardisation of all the data; the exercise fits the "
        "statistics on the training set, with the population std and a zero guard"
    ),
}

TARGETS = exercises.targets()
IDS = [f"{t.unit.dirname}/{t.exercise.name}" for t in TARGETS]

_HINT_BLOCK = re.compile(r"<details><summary>Hint (\d+)</summary>\n\n(.+?)\n\n</details>", re.DOTALL)
_SPAN = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)
_CHECK_CALL = re.compile(r"dlfund\.checks\.\w+\.\w+\(")


@dataclass(frozen=True)
class Region:
    """One ``# BEGIN SOLUTION`` … ``# END SOLUTION`` region of a solution notebook."""

    cell: int
    hint: str
    lines: tuple[str, ...]


def regions(nb: nbformat.NotebookNode) -> list[Region]:
    """The solution regions of a notebook, in order."""
    found: list[Region] = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        inside: list[str] | None = None
        hint = ""
        for line in cell.source.splitlines():
            begin = exercises.BEGIN.match(line)
            if begin:
                inside, hint = [], (begin.group("hint") or "").strip()
            elif exercises.END.match(line) and inside is not None:
                found.append(Region(i, hint, tuple(inside)))
                inside = None
            elif inside is not None:
                inside.append(line)
    return found


def strip_comment(line: str) -> str:
    """``line`` without its ``#`` comment (a ``#`` inside a string literal is kept)."""
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 1
            elif line.startswith(quote, i):
                i += len(quote) - 1
                quote = ""
        elif line.startswith(('"""', "'''"), i):
            quote = line[i : i + 3]
            i += 2
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
        i += 1
    return line


def normalise(line: str) -> str:
    """A code line without its comment and without any whitespace: ``x = f( a )  # c`` → ``x=f(a)``."""
    return re.sub(r"\s+", "", strip_comment(line))


def code_lines(lines: tuple[str, ...] | list[str]) -> list[str]:
    """The normalised non-blank, non-comment lines; lines of bare punctuation (``)``, ``],``) say nothing."""
    out = [normalise(line) for line in lines]
    return [line for line in out if re.search(r"[A-Za-z0-9]", line)]


def hint_problems(nb: nbformat.NotebookNode) -> list[str]:
    """What is wrong with the notebook's progressive hints ([] when nothing is)."""
    first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "# BEGIN SOLUTION" in c.source), None)
    if first is None:
        return ["no code cell holds a '# BEGIN SOLUTION' region"]
    problems: list[str] = []
    cells = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("**Hint.**")]
    if not cells:
        return ["no markdown cell starts with '**Hint.**'"]
    if cells[0][0] > first:
        problems.append(f"the first '**Hint.**' cell ({cells[0][0]}) comes after the first solution cell ({first})")
    for i, cell in cells:
        visible = cell.source.split("<details>", 1)[0].removeprefix("**Hint.**").strip()
        if not visible:
            problems.append(f"cell {i}: the '**Hint.**' cell has no visible nudge before its collapsed hints")
        blocks = _HINT_BLOCK.findall(cell.source)
        if not blocks:
            problems.append(f"cell {i}: no '<details><summary>Hint N</summary>\\n\\n...\\n\\n</details>' block")
        if not 1 <= len(blocks) <= 3:
            problems.append(f"cell {i}: {len(blocks)} collapsed hints, expected 1 to 3")
        numbers = [int(n) for n, _ in blocks]
        if numbers != list(range(2, 2 + len(blocks))):
            problems.append(f"cell {i}: collapsed hints are numbered {numbers}, expected Hint 2, Hint 3, ...")
        opened, closed = cell.source.count("<details>"), cell.source.count("</details>")
        if opened != closed or opened != len(blocks):
            problems.append(
                f"cell {i}: {opened} <details>, {closed} </details> but {len(blocks)} well-formed hint blocks"
            )
    return problems


def long_hints(nb: nbformat.NotebookNode) -> list[str]:
    """The BEGIN SOLUTION hints longer than :data:`MAX_HINT_WORDS` words."""
    return [
        f"cell {r.cell}: {len(r.hint.split())} words: {r.hint!r}"
        for r in regions(nb)
        if len(r.hint.split()) > MAX_HINT_WORDS
    ]


def copied_from(region: Region, lectures: dict[str, nbformat.NotebookNode]) -> list[str]:
    """Lecture cells that hold most of ``region``'s code lines: ``"<lecture> cell <i> (k of n lines)"``."""
    wanted = code_lines(region.lines)
    if len(wanted) < MIN_COPIED_LINES:
        return []
    found = []
    for where, nb in lectures.items():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            have = set(code_lines(cell.source.splitlines()))
            shared = sum(line in have for line in wanted)
            if shared >= MIN_COPIED_LINES and shared >= COPIED_FRACTION * len(wanted):
                found.append(f"{where} cell {i} ({shared} of {len(wanted)} lines)")
    return found


def code_in_markdown(source: str) -> list[str]:
    """The inline code spans and fenced code blocks of a markdown cell, normalised."""
    blocks = _FENCE.findall(source)
    rest = _FENCE.sub("", source)
    return [re.sub(r"\s+", "", b) for b in blocks] + [re.sub(r"\s+", "", s) for s in _SPAN.findall(rest)]


def stated_answers(nb: nbformat.NotebookNode) -> list[str]:
    """Code in the markdown after the (first) check call that contains a solution line of
    :data:`MIN_SUMMARY_LINE` characters or more."""
    check = next(
        (i for i, c in enumerate(nb.cells) if c.cell_type == "code" and _CHECK_CALL.search(c.source)), len(nb.cells)
    )
    answers = {line for r in regions(nb) for line in code_lines(r.lines) if len(line) >= MIN_SUMMARY_LINE}
    return [
        f"cell {i}: `{code}` holds the solution line `{line}`"
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "markdown" and i > check
        for code in code_in_markdown(cell.source)
        for line in sorted(answers)
        if line in code
    ]


def _key(name: str) -> str:
    """A name without case, underscores or a leading ``My``: ``MyLoRALinear`` and ``LoRALinear`` match."""
    key = name.lower().replace("_", "")
    return key.removeprefix("my") or key


def asked_names(nb: nbformat.NotebookNode) -> set[str]:
    """The top-level functions and classes of a solution that hold a solution region."""
    names = set()
    for cell in nb.cells:
        if cell.cell_type != "code" or "# BEGIN SOLUTION" not in cell.source:
            continue
        lines = cell.source.splitlines()
        for node in ast.parse(cell.source).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and any(
                "# BEGIN SOLUTION" in line for line in lines[node.lineno - 1 : node.end_lineno]
            ):
                names.add(node.name)
    return names


def defined_names(nb: nbformat.NotebookNode) -> dict[str, int]:
    """The top-level functions and classes a notebook defines, with the first cell that defines each."""
    found: dict[str, int] = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        try:
            body = ast.parse(cell.source).body
        except SyntaxError:  # a cell with a magic: nothing to define
            continue
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                found.setdefault(node.name, i)
    return found


def same_names(asked: set[str], lectures: dict[str, nbformat.NotebookNode]) -> list[tuple[str, str]]:
    """``(asked name, "<lecture> cell <i> defines <name>")`` for each lecture definition of an asked name."""
    keys = {_key(name): name for name in asked}
    return [
        (keys[_key(name)], f"{where} cell {i} defines {name}")
        for where, nb in lectures.items()
        for name, i in defined_names(nb).items()
        if _key(name) in keys
    ]


@functools.cache
def _read(path: Path) -> nbformat.NotebookNode:
    """A lecture notebook, read once per session (the detectors only read it)."""
    return nbformat.read(path, as_version=4)


def lectures_up_to(unit: manifest.Unit) -> dict[str, nbformat.NotebookNode]:
    """The lecture notebooks of ``unit`` and every earlier unit, by ``<unit dir>/<notebook>``."""
    return {
        f"{u.dirname}/{n.name}": _read(u.notebook_path(n.name))
        for u in manifest.UNITS
        if u.number <= unit.number
        for n in u.notebooks
    }


def _solution(target: exercises.Target) -> nbformat.NotebookNode:
    return nbformat.read(str(target.source), as_version=4)


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_hints_are_progressive(target: exercises.Target) -> None:
    problems = hint_problems(_solution(target))
    assert not problems, (
        f"{target.source.name}: {'; '.join(problems)}. After the task, a markdown cell starts '**Hint.**' with one "
        "nudge, then 1–3 collapsed '<details><summary>Hint 2</summary>\\n\\n...\\n\\n</details>' blocks"
    )


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_stub_hints_are_short_nudges(target: exercises.Target) -> None:
    long = long_hints(_solution(target))
    assert not long, (
        f"{target.source.name}: BEGIN SOLUTION hints over {MAX_HINT_WORDS} words: {'; '.join(long)}. "
        "Keep a short nudge there and move the detail into the collapsed hints"
    )


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_no_lecture_prints_the_answer(target: exercises.Target) -> None:
    lectures = lectures_up_to(target.unit)
    found = [
        f"the region in cell {r.cell} is in {where}"
        for r in regions(_solution(target))
        for where in copied_from(r, lectures)
    ]
    assert not found, (
        f"{target.source.name}: {'; '.join(found)}. A lecture must not print the function the exercise asks for: "
        "show a different case there, or import the library's version without printing it"
    )


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_no_lecture_defines_the_asked_function(target: exercises.Target) -> None:
    where = f"{target.unit.dirname}/{target.exercise.name}"
    found = [
        why
        for name, why in same_names(asked_names(_solution(target)), lectures_up_to(target.unit))
        if (where, name) not in SAME_NAME_ALLOWED
    ]
    assert not found, (
        f"{target.source.name}: {'; '.join(found)}. A lecture must not write the function the exercise asks for: "
        "show a different case, or use the library's without printing it (or explain in SAME_NAME_ALLOWED why "
        "the lecture's function is a different one)"
    )


def test_every_same_name_allowance_is_still_needed() -> None:
    by_name = {f"{t.unit.dirname}/{t.exercise.name}": t for t in TARGETS}
    for (where, name), _why in SAME_NAME_ALLOWED.items():
        target = by_name[where]
        found = same_names(asked_names(_solution(target)), lectures_up_to(target.unit))
        assert any(asked == name for asked, _ in found), f"SAME_NAME_ALLOWED[{where!r}, {name!r}] is no longer needed"


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_no_summary_states_the_answer(target: exercises.Target) -> None:
    found = stated_answers(_solution(target))
    assert not found, (
        f"{target.source.name}: {'; '.join(found)}. Say what the exercise showed, not the code that answers it"
    )


# The detectors, on synthetic notebooks: each must be able to fail.

_TASK = (
    "def f(x):\n    # BEGIN SOLUTION hint: square it\n"
    "    y = x * x\n    z = y + 1  # one more\n    return z / 2\n    # END SOLUTION"
)
_GOOD_HINT = "**Hint.** What is x times itself?\n\n<details><summary>Hint 2</summary>\n\nMultiply.\n\n</details>"


def _notebook(*cells: tuple[str, str]) -> nbformat.NotebookNode:
    make = {"md": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    return nbformat.v4.new_notebook(cells=[make[kind](source) for kind, source in cells])


def test_the_hint_detector() -> None:
    assert hint_problems(_notebook(("md", "Task"), ("md", _GOOD_HINT), ("code", _TASK))) == []
    three = _GOOD_HINT + "\n\n<details><summary>Hint 3</summary>\n\nAlmost.\n\n</details>"
    assert hint_problems(_notebook(("md", three), ("code", _TASK))) == []
    bad = {
        "no markdown cell": _notebook(("md", "Task"), ("code", _TASK)),
        "comes after": _notebook(("code", _TASK), ("md", _GOOD_HINT)),
        "no visible nudge": _notebook(("md", "**Hint.**\n" + _GOOD_HINT.split("\n", 1)[1]), ("code", _TASK)),
        "no '<details>": _notebook(("md", "**Hint.** Think."), ("code", _TASK)),
        "numbered": _notebook(("md", _GOOD_HINT.replace("Hint 2", "Hint 3")), ("code", _TASK)),
        "1 <details>, 0 </details>": _notebook(("md", _GOOD_HINT.replace("</details>", "")), ("code", _TASK)),
        "no code cell": _notebook(("md", _GOOD_HINT)),
    }
    for why, nb in bad.items():
        problems = hint_problems(nb)
        assert any(why in p for p in problems), (why, problems)


def test_the_long_hint_detector() -> None:
    assert long_hints(_notebook(("code", _TASK))) == []
    dictated = _TASK.replace("square it", "multiply x by x, add one, divide by two, return that, and do not forget it")
    assert long_hints(_notebook(("code", dictated))) == [
        "cell 0: 16 words: 'multiply x by x, add one, divide by two, return that, and do not forget it'"
    ]


def test_normalising_drops_comments_and_whitespace_but_not_strings() -> None:
    assert normalise("    z = y + 1  # one more") == "z=y+1"
    assert normalise('s = "a # b"  # c') == 's="a#b"'
    assert normalise("t = 'it''s'  # c") == "t='it''s'"
    assert code_lines(["# only a comment", "", "    )", "x = 1"]) == ["x=1"]


def test_the_copy_detector() -> None:
    region = regions(_notebook(("code", _TASK)))[0]
    copied = {"00-x/01-lecture": _notebook(("code", "import torch"), ("code", "y = x*x\nz = y + 1\nreturn z/2"))}
    assert copied_from(region, copied) == ["00-x/01-lecture cell 1 (3 of 3 lines)"]
    other = {"00-x/01-lecture": _notebook(("code", "y = x * x\nz = y - 1\nreturn z * 2"))}
    assert copied_from(region, other) == []  # one line in three is shared: a different case
    short = Region(0, "", ("return x",))
    assert copied_from(short, {"l": _notebook(("code", "return x"))}) == []


def test_the_name_detector() -> None:
    solution = _notebook(("code", "import torch"), ("code", _TASK), ("code", "def helper():\n    return 1"))
    assert asked_names(solution) == {"f"}
    lecture = _notebook(("code", "def g(x):\n    return x"), ("code", "%time 1"), ("code", "class Other:\n    pass"))
    assert same_names({"f"}, {"00-x/01-lecture": lecture}) == []
    lecture.cells.append(nbformat.v4.new_code_cell("def f(x):\n    return x * x"))
    assert same_names({"f"}, {"00-x/01-lecture": lecture}) == [("f", "00-x/01-lecture cell 3 defines f")]
    assert same_names({"MyLoRALinear", "RMSNorm"}, {"l": _notebook(("code", "class LoRALinear:\n    pass"))}) == [
        ("MyLoRALinear", "l cell 0 defines LoRALinear")
    ]
    assert same_names({"RMSNorm"}, {"l": _notebook(("code", "def rms_norm(x):\n    return x"))}) == [
        ("RMSNorm", "l cell 0 defines rms_norm")
    ]


def test_the_summary_detector() -> None:
    task = _TASK.replace("z = y + 1", "zeta = torch.clamp(y, min=0.0)")
    check = "dlfund.checks.unit00.f(f)"
    honest = _notebook(
        ("code", "import dlfund.checks.unit00"),
        ("code", task),
        ("code", check),
        ("md", "## What we saw\n\nClamping keeps `y` non-negative."),
    )
    assert stated_answers(honest) == []
    for summary in (
        "## What we saw\n\n- `zeta = torch.clamp(y, min=0.0)` does it.",
        "## What we saw\n\n```python\nzeta = torch.clamp(y,  min=0.0)\n```",
    ):
        found = stated_answers(_notebook(("code", task), ("code", check), ("md", summary)))
        assert found and "zeta=torch.clamp(y,min=0.0)" in found[0], found
    before = _notebook(("md", "`zeta = torch.clamp(y, min=0.0)`"), ("code", task), ("code", check))
    assert stated_answers(before) == []  # the task may show code; only what follows the check is a summary


def test_lectures_are_found_for_every_unit() -> None:
    assert len(lectures_up_to(manifest.UNITS[1])) == len(manifest.UNITS[0].notebooks) + len(manifest.UNITS[1].notebooks)
