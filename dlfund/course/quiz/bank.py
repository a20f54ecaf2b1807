"""The question bank: one YAML file per unit, ``bank/unitNN.yaml``, loaded and validated.

A bank file is a mapping with one key, ``questions``, a list of questions. Each question has
exactly these fields:

==============  ===========================================================================
``id``          ``"uNN-qMM"``, unique in the whole bank; ``NN`` is the unit
``unit``        the unit number (an int, equal to ``NN`` and to the file's number)
``section``     what it tests: a notebook or exercise stem of the unit, then the section,
                e.g. ``"02-perceptron-python §3 The learning rule"``
``question``    the question text
``choices``     3 to 5 different, non-empty strings, shown in this order
``explanation`` why the right answer is right (shown after the quiz)
``salt``        random hex (at least 16 digits)
``answer_hash`` ``sha256(f"{salt}:{id}:{correct choice text}")`` as 64 lowercase hex digits
==============  ===========================================================================

The answer key is never stored in plain text: :meth:`Question.is_correct` hashes a choice and
compares. The hashes keep the answers out of sight of a learner reading the files, nothing more:
anyone who runs code can test every choice (the tests do), which is fine for a self-assessment.
Bank files are written from drafts with ``python -m dlfund.course.quiz.author`` (see its docstring).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BANK_DIR = Path(__file__).resolve().parent / "bank"
"""Where the bank files ship (package data of ``dlfund.course.quiz``)."""

FIELDS = ("id", "unit", "section", "question", "choices", "explanation", "salt", "answer_hash")
MIN_CHOICES, MAX_CHOICES = 3, 5
_ID = re.compile(r"^u(\d{2})-q(\d{2,3})$")
_FILE = re.compile(r"^unit(\d{2})\.yaml$")
_HEX = re.compile(r"^[0-9a-f]+$")


class BankError(ValueError):
    """A bank file that cannot be used; the message names the file, the question and the field."""


def answer_hash(salt: str, question_id: str, choice: str) -> str:
    """The stored form of a correct answer: sha256 of ``"{salt}:{id}:{choice}"``, hex."""
    return hashlib.sha256(f"{salt}:{question_id}:{choice}".encode()).hexdigest()


@dataclass(frozen=True)
class Question:
    """One multiple-choice question of the bank (see the module docstring for the fields)."""

    id: str
    unit: int
    section: str
    question: str
    choices: tuple[str, ...]
    explanation: str
    salt: str
    answer_hash: str

    def is_correct(self, index: int) -> bool:
        """Whether choice ``index`` (0-based) is the right answer."""
        return answer_hash(self.salt, self.id, self.choices[index]) == self.answer_hash

    @property
    def correct_index(self) -> int:
        """The 0-based index of the right choice (found by hashing each choice)."""
        matches = [i for i in range(len(self.choices)) if self.is_correct(i)]
        if len(matches) != 1:
            raise BankError(f"question {self.id}: {len(matches)} choices match answer_hash, expected exactly 1")
        return matches[0]


def _where(path: Path, position: int, qid: Any = None) -> str:
    return f"{path.name}: question {position + 1}" + (f" ({qid})" if isinstance(qid, str) else "")


def _text(where: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BankError(f"{where}: field {name!r} must be a non-empty string, found {value!r}")
    return value.strip()


def parse_question(raw: Any, path: Path, position: int, file_unit: int) -> Question:
    """Validate one question mapping read from ``path`` and return it as a :class:`Question`."""
    where = _where(path, position, raw.get("id") if isinstance(raw, dict) else None)
    if not isinstance(raw, dict):
        raise BankError(f"{where}: expected a mapping with fields {', '.join(FIELDS)}, found {type(raw).__name__}")
    missing = [f for f in FIELDS if f not in raw]
    unknown = sorted(set(raw) - set(FIELDS), key=str)
    if missing:
        raise BankError(f"{where}: missing field(s) {', '.join(missing)}")
    if unknown:
        raise BankError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}; expected {', '.join(FIELDS)}")

    qid = _text(where, "id", raw["id"])
    unit = raw["unit"]
    if not isinstance(unit, int) or isinstance(unit, bool):
        raise BankError(f"{where}: field 'unit' must be an integer, found {unit!r}")
    if unit != file_unit:
        raise BankError(f"{where}: field 'unit' is {unit}, but the file is for unit {file_unit}")
    match = _ID.match(qid)
    if not match or int(match.group(1)) != unit:
        raise BankError(
            f"{where}: field 'id' must look like 'u{unit:02d}-q01' (its unit, then a number), found {qid!r}"
        )

    choices = raw["choices"]
    if not isinstance(choices, list) or not MIN_CHOICES <= len(choices) <= MAX_CHOICES:
        raise BankError(
            f"{where}: field 'choices' must be a list of {MIN_CHOICES} to {MAX_CHOICES} strings, found {choices!r}"
        )
    choices = tuple(_text(where, f"choices[{i}]", c) for i, c in enumerate(choices))
    if len(set(choices)) != len(choices):
        raise BankError(f"{where}: field 'choices' has the same text twice")

    salt = _text(where, "salt", raw["salt"])
    if not _HEX.match(salt) or len(salt) < 16:
        raise BankError(f"{where}: field 'salt' must be at least 16 lowercase hex digits, found {salt!r}")
    digest = _text(where, "answer_hash", raw["answer_hash"])
    if not _HEX.match(digest) or len(digest) != 64:
        raise BankError(f"{where}: field 'answer_hash' must be 64 lowercase hex digits (sha256), found {digest!r}")

    question = Question(
        id=qid,
        unit=unit,
        section=_text(where, "section", raw["section"]),
        question=_text(where, "question", raw["question"]),
        choices=choices,
        explanation=_text(where, "explanation", raw["explanation"]),
        salt=salt,
        answer_hash=digest,
    )
    matching = sum(question.is_correct(i) for i in range(len(choices)))
    if matching != 1:
        raise BankError(
            f"{where}: field 'answer_hash' matches {matching} choices, expected exactly 1 "
            "(rebuild the file with `python -m dlfund.course.quiz.author`)"
        )
    return question


def unit_of_file(path: Path) -> int:
    """The unit number in a bank file's name, ``unitNN.yaml``."""
    match = _FILE.match(path.name)
    if not match:
        raise BankError(f"{path}: bank files are named unitNN.yaml (e.g. unit04.yaml), found {path.name!r}")
    return int(match.group(1))


def load_file(path: str | Path) -> list[Question]:
    """Load and validate one bank file."""
    path = Path(path)
    unit = unit_of_file(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise BankError(f"{path.name}: not valid YAML: {err}") from None
    if not isinstance(data, dict) or set(data) != {"questions"} or not isinstance(data["questions"], list):
        raise BankError(f"{path.name}: expected a mapping with one key, 'questions', holding a list")
    return [parse_question(raw, path, i, unit) for i, raw in enumerate(data["questions"])]


def bank_files(directory: str | Path | None = None) -> list[Path]:
    """The bank files in ``directory`` (default: the shipped bank), sorted by unit."""
    return sorted(Path(directory or BANK_DIR).glob("unit*.yaml"))


def load_bank(directory: str | Path | None = None) -> list[Question]:
    """Every question of every bank file, in unit order; ids must be unique across files."""
    questions: list[Question] = []
    seen: dict[str, str] = {}
    for path in bank_files(directory):
        for q in load_file(path):
            if q.id in seen:
                raise BankError(f"{path.name}: question id {q.id} is already used in {seen[q.id]}")
            seen[q.id] = path.name
            questions.append(q)
    if not questions:
        raise BankError(f"no questions found: no unitNN.yaml files in {Path(directory or BANK_DIR)}")
    return questions


def units_in(questions: Iterable[Question]) -> list[int]:
    """The unit numbers that have at least one question, sorted."""
    return sorted({q.unit for q in questions})


def fingerprint(questions: Iterable[Question]) -> str:
    """sha256 (hex) of a bank edition: every question's id, unit, text, choices and answer hash, in id order.
    A certificate records it, so verification can redo the draw when the bank is still the same edition."""
    canon = sorted((q.id, q.unit, q.question, list(q.choices), q.answer_hash) for q in questions)
    return hashlib.sha256(repr(canon).encode("utf-8")).hexdigest()
