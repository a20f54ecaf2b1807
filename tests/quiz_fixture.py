"""A tiny question bank with every kind and both pools, written by the author tool from drafts made here, for
the quiz tests (the shipped bank's content changes; these tests test the machinery).

Units 1 to 3 each hold 12 unit-pool questions over three sections (6 single, 2 multi, 2 numeric, 2 ordering)
and 9 exam-pool questions (3 single, 2 of each other kind): 36 + 27 questions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dlfund.course.quiz import author
from dlfund.course.quiz.bank import Question, load_bank

UNITS = (1, 2, 3)
SECTIONS = ("01-alpha §1 First", "02-beta §2 Second", "03-gamma §3 Third")
KINDS = ["single"] * 6 + ["multi", "multi", "numeric", "numeric", "ordering", "ordering"]
EXAM_KINDS = ["single"] * 3 + ["multi", "multi", "numeric", "numeric", "ordering", "ordering"]


def draft_question(unit: int, pool: str, number: int, kind: str) -> dict[str, Any]:
    """One draft question; its answer varies with ``number`` so that keys sit in different positions."""
    letter = "q" if pool == "unit" else "x"
    q: dict[str, Any] = {"id": f"u{unit:02d}-{letter}{number:02d}", "unit": unit}
    if pool == "exam":
        q["pool"] = "exam"
    if kind != "single":
        q["kind"] = kind
    q["section"] = SECTIONS[number % 3]
    q["question"] = f"Fixture {kind} question {number} of unit {unit} ({pool} pool)?"
    if kind == "single":
        q["choices"] = [f"single choice {c} of {number}" for c in "abcd"]
        q["answer"] = 1 + number % 4
    elif kind == "multi":
        q["choices"] = [f"multi choice {c} of {number}" for c in "abcde"]
        q["answer"] = [1, 3] if number % 2 else [2, 4, 5]
    elif kind == "ordering":
        q["choices"] = [f"step {c} of {number}" for c in "abcd"]
        q["answer"] = [3, 1, 4, 2] if number % 2 else [2, 4, 1, 3]
    else:
        q["answer"] = 7850 if number % 2 else 0.693
        q["tolerance"] = 0.5 if number % 2 else 0.005
        q["units"] = "parameters" if number % 2 else "nats"
    q["explanation"] = f"Because fixture question {number} says so."
    return q


def drafts() -> dict[int, dict[str, Any]]:
    """Unit → draft (plain answers)."""
    out = {}
    for unit in UNITS:
        qs = [draft_question(unit, "unit", n, kind) for n, kind in enumerate(KINDS, 1)]
        qs += [draft_question(unit, "exam", n, kind) for n, kind in enumerate(EXAM_KINDS, 1)]
        out[unit] = {"questions": qs}
    return out


def write_bank(folder: Path) -> Path:
    """Write the fixture bank's files (``unit01.yaml`` ...) into ``folder`` with the author tool."""
    folder.mkdir(parents=True, exist_ok=True)
    for unit, draft in drafts().items():
        path = folder / f"draft{unit:02d}.yaml"
        path.write_text(yaml.safe_dump(draft, sort_keys=False, allow_unicode=True), encoding="utf-8")
        assert author.main([str(path), "-o", str(folder / f"unit{unit:02d}.yaml")]) == 0
        path.unlink()
    return folder


def bank(folder: Path) -> list[Question]:
    return load_bank(write_bank(folder))


def typed(q: Question, answer: Any = None) -> str:
    """What a learner types for ``answer`` (default: the right one), as the terminal quiz asks."""
    answer = q.key if answer is None else answer
    if q.kind == "single":
        return str(answer + 1)
    if q.kind == "numeric":
        return str(answer)
    return " ".join(str(i + 1) for i in answer)


def typed_wrong(q: Question) -> str:
    """A well-formed wrong answer."""
    if q.kind == "single":
        return str((q.key + 1) % len(q.choices) + 1)
    if q.kind == "numeric":
        return str(q.key + 2 * (q.tolerance or 0) + 1)
    if q.kind == "multi":
        return " ".join(str(i + 1) for i in range(len(q.choices)))  # all of them: never right
    return " ".join(str(i + 1) for i in range(len(q.choices)))  # shown order: never right


def plain_answer(q: Question) -> Any:
    """The draft's answer of ``q`` (for checking that the hash recovers it)."""
    for raw in drafts()[q.unit]["questions"]:
        if raw["id"] == q.id:
            return raw["answer"]
    raise KeyError(q.id)
