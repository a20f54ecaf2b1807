"""Write bank files from drafts: ``python -m dlfund.course.quiz.author draft.yaml [-o bank.yaml]``.

A *draft* is a bank file with the plain answer instead of the hash. Keep drafts outside git
(e.g. in /tmp or a private folder): the repository never holds the answer key in plain text. ::

    questions:
    - id: u04-q01
      unit: 4
      section: 01-softmax-regression §5 Logits, not probabilities
      question: What happens if the model's last layer applies a softmax before F.cross_entropy?
      choices:
      - ...
      - ...
      - ...
      answer: 2          # the right choice, counted from 1 as the quiz shows them
      explanation: ...
      salt: 3f0c...      # optional: kept if present, so regenerating changes nothing else

All questions of one draft belong to one unit; the bank file goes to
``dlfund/course/quiz/bank/unitNN.yaml`` unless ``-o`` says otherwise. The tool validates the result
exactly as the quiz loads it, and warns about answers that give themselves away (the right choice
always in one position, or the longest in most questions). ``--to-draft BANK`` turns a bank file
back into a draft by testing each choice against its hash (anyone can: the hashes only keep the
answers out of plain sight).
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from dlfund.course.quiz.bank import (
    BANK_DIR,
    FIELDS,
    BankError,
    Question,
    answer_hash,
    load_file,
    parse_question,
)
from dlfund.utils.io import atomic_write_text

DRAFT_FIELDS = tuple(f for f in FIELDS if f != "answer_hash") + ("answer",)
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


def from_draft(raw: Any, path: Path, position: int) -> dict[str, Any]:
    """One draft question as a bank entry: the answer replaced by a salted hash."""
    where = f"{path.name}: question {position + 1}" + (f" ({raw.get('id')})" if isinstance(raw, dict) else "")
    if not isinstance(raw, dict):
        raise BankError(f"{where}: expected a mapping, found {type(raw).__name__}")
    required = [f for f in DRAFT_FIELDS if f != "salt"]
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
    choices = raw["choices"]
    answer = raw["answer"]
    if not isinstance(choices, list):
        raise BankError(f"{where}: field 'choices' must be a list of strings, found {choices!r}")
    if not isinstance(answer, int) or isinstance(answer, bool) or not 1 <= answer <= len(choices):
        raise BankError(
            f"{where}: field 'answer' must be the number of the right choice, 1 to {len(choices)} "
            f"(counted from 1), found {answer!r}"
        )
    salt = raw.get("salt") or secrets.token_hex(16)
    entry = {f: raw[f] for f in FIELDS if f in raw and f not in ("salt", "answer_hash")}
    entry["choices"] = [c.strip() if isinstance(c, str) else c for c in choices]
    for key in ("id", "section", "question", "explanation"):
        if isinstance(entry[key], str):
            entry[key] = entry[key].strip()
    right = entry["choices"][answer - 1]
    entry["salt"] = salt
    entry["answer_hash"] = answer_hash(salt, str(entry["id"]), right if isinstance(right, str) else "")
    return {f: entry[f] for f in FIELDS}


def lint(questions: Sequence[Question]) -> list[str]:
    """Warnings about answers that give themselves away (the tests enforce the same rules)."""
    warnings = []
    for unit in sorted({q.unit for q in questions}):
        qs = [q for q in questions if q.unit == unit]
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
        for q in qs:
            if " ".join(q.choices[q.correct_index].lower().split()) in " ".join(q.question.lower().split()):
                warnings.append(f"{q.id}: the right answer appears word for word in the question")
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


def to_draft(bank_file: str | Path) -> str:
    """A draft (plain answers) recovered from a bank file by testing every choice against its hash."""
    questions = load_file(bank_file)
    rows = []
    for q in questions:
        rows.append(
            {
                "id": q.id,
                "unit": q.unit,
                "section": q.section,
                "question": q.question,
                "choices": list(q.choices),
                "answer": q.correct_index + 1,
                "explanation": q.explanation,
                "salt": q.salt,
            }
        )
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
    positions = Counter(q.correct_index + 1 for q in questions)
    print("right answers by position: " + ", ".join(f"{k}: {positions[k]}" for k in sorted(positions)))
    for warning in lint(questions):
        print(f"warning: {warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
