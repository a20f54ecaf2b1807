"""Write bank files from drafts: ``python -m dlfund.course.quiz.author draft.yaml [-o bank.yaml]``.

A *draft* is a bank file with the plain answer instead of the hash. Keep drafts outside git
(e.g. in /tmp or a private folder): the repository never holds the answer key in plain text. ::

    questions:
    - id: u04-q13            # unit pool: uNN-qMM; exam pool: uNN-xMM
      unit: 4
      pool: exam             # optional: unit (default) or exam; must agree with the id (q: unit, x: exam)
      kind: multi            # optional: single (default), multi, numeric, ordering
      section: 01-softmax-regression §5 Logits, not probabilities
      question: ...
      choices: [...]         # single 3-5; multi 4-6; ordering the 4-6 steps as shown (scrambled); numeric: none
      answer: [1, 3]         # single: 2; multi: [1, 3] (increasing, 2 to n-1 of them);
                             # ordering: [3, 1, 4, 2] (choice numbers in the right order); numeric: 7850
      tolerance: 0.5         # numeric only, optional (default 0: exact, whole numbers only)
      units: parameters      # numeric only, optional: what the number counts or measures
      explanation: ...
      salt: 3f0c...          # optional: kept if present, so regenerating changes nothing else

Choices are counted from 1 as the quiz shows them. All questions of one draft belong to one unit; the bank
file goes to ``dlfund/course/quiz/bank/unitNN.yaml`` unless ``-o`` says otherwise. Defaults are not written
(no ``pool: unit``, ``kind: single`` or ``tolerance: 0`` in a bank file), so that a bank file and the draft
``--to-draft`` recovers from it rebuild each other byte for byte. How each kind's answer is hashed is in
:mod:`dlfund.course.quiz.bank`. The tool validates the result exactly as the quiz loads it, and warns about
answers that give themselves away (see :func:`lint`). ``--to-draft BANK`` turns a bank file back into a
draft by testing answers against their hash (anyone can: the hashes only keep the answers out of plain sight).
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from dlfund.course.quiz.bank import (
    BANK_DIR,
    CHOICES,
    FIELDS,
    MAX_GRID_STEPS,
    MAX_NUMBER,
    BankError,
    Question,
    answer_code,
    answer_hash,
    check_id,
    kind_and_pool,
    load_file,
    numeric_key,
    parse_question,
    plain,
    to_decimal,
    yaml_number,
)
from dlfund.course.quiz.fairness import LONG_RATIO, QUOTE_MIN
from dlfund.utils.io import atomic_write_text

DRAFT_FIELDS = (
    *[f for f in FIELDS if f not in ("answer_hash", "answer_code", "tolerance", "units", "explanation", "salt")],
    "answer",
    "tolerance",
    "units",
    "explanation",
    "salt",
)
"""A draft question's fields, in the order ``--to-draft`` writes them."""
HEADER = (
    "# Quiz bank for unit {unit:02d}: written by `python -m dlfund.course.quiz.author` from a draft kept\n"
    "# outside git. Edit the draft and regenerate (recover one with --to-draft); answers are\n"
    "# stored only as sha256(salt:id:choice), see dlfund/course/quiz/bank.py.\n"
)


class _Dumper(yaml.SafeDumper):
    """Block style for lists and mappings, literal blocks for multi-line strings."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False)


def _load_questions(path: Path) -> list[Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise BankError(f"{path.name}: expected a mapping with a 'questions' list")
    return data["questions"]


def _numbers(value: Any) -> list[int] | None:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return None
    return value


def hashed_key(where: str, kind: str, answer: Any, choices: Any, tolerance: Decimal) -> str:
    """The key of a draft's ``answer`` as :mod:`~dlfund.course.quiz.bank` hashes it, after checking it fits
    the kind; a :class:`BankError` says what an answer of this kind looks like."""
    if kind == "numeric":
        number = to_decimal(answer)
        if number is None:
            raise BankError(
                f"{where}: field 'answer' of a numeric question must be a number, e.g. 7850, found {answer!r}"
            )
        key = numeric_key(number, tolerance)
        if key is None:
            grid = plain(Decimal(1).scaleb(tolerance.adjusted() - 1)) if tolerance > 0 else "1"
            raise BankError(
                f"{where}: field 'answer' {plain(number)} is finer than its tolerance's grid ({grid}): round it to a "
                f"multiple of {grid}" + (" (an exact answer, tolerance 0, is a whole number)" if tolerance == 0 else "")
            )
        if abs(number) > MAX_NUMBER or abs(int(key.split("e")[0])) > MAX_GRID_STEPS:
            raise BankError(
                f"{where}: field 'answer' {plain(number)} is more than {MAX_GRID_STEPS:,} grid steps from zero: "
                "give a larger tolerance or ask for the number in larger units"
            )
        return key
    n = len(choices) if isinstance(choices, list) else 0
    if kind == "single":
        if not isinstance(answer, int) or isinstance(answer, bool) or not 1 <= answer <= n:
            raise BankError(
                f"{where}: field 'answer' must be the number of the right choice, 1 to {n} "
                f"(counted from 1), found {answer!r}"
            )
        return choices[answer - 1].strip() if isinstance(choices[answer - 1], str) else ""
    numbers = _numbers(answer)
    if kind == "multi":
        if (
            numbers is None
            or not 2 <= len(numbers) <= n - 1
            or not all(1 <= v <= n for v in numbers)
            or numbers != sorted(set(numbers))
        ):
            raise BankError(
                f"{where}: field 'answer' of a multi question must list the right choices in increasing order, "
                f"at least 2 and at most {n - 1} of 1 to {n}, e.g. [1, 3]; found {answer!r}"
            )
    else:  # ordering
        if numbers is None or sorted(numbers) != list(range(1, n + 1)):
            raise BankError(
                f"{where}: field 'answer' of an ordering question must list each choice number 1 to {n} once, "
                f"in the right order, e.g. [3, 1, 4, 2]; found {answer!r}"
            )
        if numbers == list(range(1, n + 1)):
            raise BankError(
                f"{where}: the steps are shown already in the right order: scramble the choices (the answer "
                "must not be 1, 2, 3, ...)"
            )
    return ",".join(map(str, numbers))


def from_draft(raw: Any, path: Path, position: int) -> dict[str, Any]:
    """One draft question as a bank entry: the answer replaced by a salted hash, defaults left out."""
    where = f"{path.name}: question {position + 1}" + (f" ({raw.get('id')})" if isinstance(raw, dict) else "")
    if not isinstance(raw, dict):
        raise BankError(f"{where}: expected a mapping, found {type(raw).__name__}")
    required = ("id", "unit", "section", "question", "answer", "explanation")
    missing = [f for f in required if f not in raw]
    unknown = sorted(set(raw) - set(DRAFT_FIELDS), key=str)
    if missing or unknown:
        raise BankError(
            f"{where}: "
            + "; ".join(
                ([f"missing field(s) {', '.join(missing)}"] if missing else [])
                + ([f"unknown field(s) {', '.join(map(str, unknown))}"] if unknown else [])
            )
        )
    kind, pool = kind_and_pool(raw, where)
    if isinstance(raw["id"], str) and isinstance(raw["unit"], int) and not isinstance(raw["unit"], bool):
        check_id(where, raw["id"].strip(), raw["unit"], pool)
    choices = raw.get("choices")
    if kind != "numeric":
        low, high = CHOICES[kind]
        if not isinstance(choices, list) or not low <= len(choices) <= high:
            raise BankError(
                f"{where}: field 'choices' of a {kind} question must be a list of {low} to {high} strings, "
                f"found {choices!r}"
            )
        choices = [c.strip() if isinstance(c, str) else c for c in choices]
    tolerance = Decimal(0)
    if kind == "numeric" and "tolerance" in raw:
        tolerance = to_decimal(raw["tolerance"])  # a string such as "1e-3" too (YAML 1.1 reads it as text)
        if tolerance is None or tolerance < 0:
            raise BankError(f"{where}: field 'tolerance' must be a number ≥ 0, found {raw['tolerance']!r}")
    key = hashed_key(where, kind, raw["answer"], choices, tolerance)
    salt = raw.get("salt") or secrets.token_hex(16)
    entry: dict[str, Any] = {}
    for f in FIELDS:
        if f in ("salt", "answer_hash", "answer_code") or f not in raw:
            continue
        value = raw[f]
        if f == "pool" and value == "unit" or f == "kind" and value == "single" or f == "tolerance" and tolerance == 0:
            continue  # defaults are not written
        if f == "choices":
            value = choices
        elif f == "tolerance":
            value = yaml_number(tolerance)
        elif f in ("id", "section", "question", "explanation", "units") and isinstance(value, str):
            value = value.strip()
        entry[f] = value
    entry["salt"] = salt
    entry["answer_hash"] = answer_hash(salt, str(entry["id"]), key)
    if kind == "numeric":
        entry["answer_code"] = answer_code(salt, str(entry["id"]), key)
    return entry


def lint(questions: Sequence[Question]) -> list[str]:
    """Warnings about answers that give themselves away (``tests/test_quiz_fairness.py`` enforces the bank-wide
    rules): per unit, single-answer keys all in one position or mostly the longest choice; per question, a right
    choice found word for word in the question, one at least 1.4× longer than every other choice, a numeric
    answer without units."""
    warnings = []
    for unit in sorted({q.unit for q in questions}):
        qs = [q for q in questions if q.unit == unit and q.kind == "single"]
        positions = Counter(q.correct_index for q in qs)
        if len(qs) > 1 and len(positions) == 1:
            warnings.append(f"unit {unit}: every right answer is choice {qs[0].correct_index + 1}")
        longest = [
            q.id
            for q in qs
            if all(len(q.choices[q.correct_index]) > len(c) for i, c in enumerate(q.choices) if i != q.correct_index)
        ]
        if len(longest) > len(qs) / 2:
            warnings.append(
                f"unit {unit}: the right answer is the longest choice in {len(longest)} of "
                f"{len(qs)} questions ({', '.join(longest)})"
            )
    for q in questions:
        if q.kind == "numeric":
            if q.units is None:
                warnings.append(f"{q.id}: a numeric answer without 'units' (say what the number counts or measures)")
            continue
        key = q.key
        right = [key] if q.kind == "single" else list(key) if q.kind == "multi" else []
        for i in right:
            text = q.choices[i]
            if " ".join(text.lower().split()) in " ".join(q.question.lower().split()):
                warnings.append(f"{q.id}: the right answer appears word for word in the question")
            if q.kind == "single" and all(len(text) >= LONG_RATIO * len(c) for j, c in enumerate(q.choices) if j != i):
                warnings.append(f"{q.id}: the right choice is at least {LONG_RATIO}× longer than every other choice")
            if len(text) >= QUOTE_MIN and " ".join(text.lower().split()) in " ".join(q.explanation.lower().split()):
                warnings.append(f"{q.id}: the explanation quotes the right choice word for word")
    return warnings


def build(draft: str | Path) -> tuple[int, str, list[Question]]:
    """Turn a draft into bank-file text; returns (unit, text, the validated questions)."""
    path = Path(draft)
    entries = [from_draft(raw, path, i) for i, raw in enumerate(_load_questions(path))]
    units = {e["unit"] for e in entries}
    if len(units) != 1:
        raise BankError(f"{path.name}: a draft holds the questions of one unit, found units {sorted(units, key=str)}")
    unit = units.pop()
    if not isinstance(unit, int) or isinstance(unit, bool):
        raise BankError(f"{path.name}: field 'unit' must be an integer, found {unit!r}")
    fake = Path(f"unit{unit:02d}.yaml")  # validate under the name the file will have
    questions = [parse_question(e, fake, i, unit) for i, e in enumerate(entries)]
    ids = Counter(q.id for q in questions)
    if any(n > 1 for n in ids.values()):
        raise BankError(f"{path.name}: duplicate ids {', '.join(i for i, n in ids.items() if n > 1)}")
    return unit, HEADER.format(unit=unit) + dump({"questions": entries}), questions


def draft_answer(q: Question) -> int | float | list[int]:
    """A question's answer as a draft writes it (recovered from the hash)."""
    key = q.key
    if q.kind == "single":
        return int(key) + 1  # type: ignore[arg-type]
    if q.kind == "numeric":
        return yaml_number(key)  # type: ignore[arg-type]
    return [i + 1 for i in key]  # type: ignore[union-attr]


def to_draft(bank_file: str | Path) -> str:
    """A draft (plain answers) recovered from a bank file by testing answers against their hash. Rebuilding it
    gives the bank file back byte for byte."""
    rows = []
    for q in load_file(bank_file):
        row: dict[str, Any] = {"id": q.id, "unit": q.unit}
        if q.pool != "unit":
            row["pool"] = q.pool
        if q.kind != "single":
            row["kind"] = q.kind
        row["section"] = q.section
        row["question"] = q.question
        if q.kind != "numeric":
            row["choices"] = list(q.choices)
        row["answer"] = draft_answer(q)
        if q.tolerance:
            row["tolerance"] = yaml_number(q.tolerance)
        if q.units is not None:
            row["units"] = q.units
        row["explanation"] = q.explanation
        row["salt"] = q.salt
        rows.append(row)
    return "# Draft recovered from a bank file: it holds the answers in plain text. Keep it out of git.\n" + dump(
        {"questions": rows}
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m dlfund.course.quiz.author",
        description="Write a quiz bank file (hashed answers) from a draft (plain answers).",
    )
    p.add_argument("draft", help="the draft YAML (or, with --to-draft, a bank file)")
    p.add_argument(
        "-o",
        "--output",
        help="where to write (default: dlfund/course/quiz/bank/unitNN.yaml; with --to-draft: standard output)",
    )
    p.add_argument("--to-draft", action="store_true", help="recover a draft from a bank file")
    args = p.parse_args(argv)
    try:
        if args.to_draft:
            text = to_draft(args.draft)
            if args.output:
                atomic_write_text(args.output, text)
                print(f"wrote draft {args.output} (plain answers: keep it out of git)", file=sys.stderr)
            else:
                sys.stdout.write(text)
            return 0
        unit, text, questions = build(args.draft)
    except (BankError, OSError, yaml.YAMLError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    out = Path(args.output) if args.output else BANK_DIR / f"unit{unit:02d}.yaml"
    atomic_write_text(out, text)
    print(f"wrote {out}: {len(questions)} questions for unit {unit}")
    kinds = Counter(q.kind for q in questions)
    pools = Counter(q.pool for q in questions)
    print(
        "kinds: "
        + ", ".join(f"{k} {kinds[k]}" for k in sorted(kinds))
        + "; pools: "
        + ", ".join(f"{p} {pools[p]}" for p in sorted(pools))
    )
    positions = Counter(q.correct_index + 1 for q in questions if q.kind == "single")
    print("single-answer right answers by position: " + ", ".join(f"{k}: {positions[k]}" for k in sorted(positions)))
    for warning in lint(questions):
        print(f"warning: {warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
