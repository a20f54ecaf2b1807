"""The question bank: one YAML file per unit, ``bank/unitNN.yaml``, loaded and validated.

A bank file is a mapping with one key, ``questions``, a list of questions. Each question has these
fields, in this order (the optional ones only where they apply):

===============  ==========================================================================
``id``           ``"uNN-qMM"`` (unit pool) or ``"uNN-xMM"`` (exam pool), unique in the whole bank
``unit``         the unit number (an int, equal to ``NN`` and to the file's number)
``pool``         optional: ``unit`` (the default, asked by the unit's quiz) or ``exam`` (asked only by
                 the final exam); it must agree with the id: ``q`` ↔ ``unit``, ``x`` ↔ ``exam``
``kind``         optional: ``single`` (the default), ``multi``, ``numeric`` or ``ordering``
``section``      what it tests: a notebook or exercise stem of the unit, then the section,
                 e.g. ``"02-perceptron-python §3 The learning rule"``
``question``     the question text
``choices``      different, non-empty strings, shown in this order: ``single`` 3 to 5; ``multi`` 4 to 6
                 ("select all that apply"); ``ordering`` the 4 to 6 steps as shown (scrambled);
                 ``numeric`` has no choices
``tolerance``    ``numeric`` only, optional: the absolute tolerance (a number ≥ 0, default 0: exact)
``units``        ``numeric`` only, optional: what the number counts or measures, shown to the learner
``explanation``  why the right answer is right (shown after the quiz)
``salt``         random hex (at least 16 digits)
``answer_hash``  ``sha256(f"{salt}:{id}:{key}")`` as 64 lowercase hex digits, ``key`` by kind (below)
``answer_code``  ``numeric`` only, optional (the author tool writes it): the key XOR a keystream made from the
                 salt and id, in hex, so that the feedback can show the right number at once (see below)
===============  ==========================================================================

**The hashed key of each kind** (``key`` above):

- ``single``: the right choice's text, e.g. ``"Softmax is unchanged by ..."`` (the first edition's rule).
- ``multi``: the right choices' numbers (from 1, as shown) in increasing order, joined by commas:
  ``"1,3"``. At least 2 and at most n−1 of the n choices are right, so that neither "none" nor "all"
  is a pattern; scoring is all-or-nothing.
- ``ordering``: the choice numbers in the right order, joined by commas: ``"3,1,4,2"``; never
  ``"1,2,...,n"`` (the steps are shown scrambled).
- ``numeric``: the answer on the tolerance's decimal grid, written ``"{k}e{e}"`` for the answer
  ``k × 10**e``: the grid step is ``10**e`` with ``e = floor(log10(tolerance)) − 1``, a tenth of the
  place of the tolerance's leading digit (0.5 → 0.01, 0.005 → 0.0001, 3 → 0.1, 50 → 1), or ``e = 0`` for an
  exact answer (tolerance 0: whole numbers only). The answer must lie on that grid (the author tool says so
  otherwise) and at most :data:`MAX_GRID_STEPS` steps from zero. A typed number ``x`` is right when some
  grid point ``g`` with ``|g − x| ≤ tolerance`` hashes to the key: checking hashes those points, at most
  ``2 × 99.9… + 1``, so 201 of them. The key is recovered (``--to-draft``, the feedback's right answer, the
  tests) from ``answer_code`` when the question has one: ``key = code XOR sha256(f"{salt}:{id}:code:{i}")``
  (blocks ``i = 0, 1, ...``), checked against ``answer_hash`` when the bank is loaded. That encoding hides the
  number from a reader exactly as well as the hash does (anyone who runs code can undo either: an exact
  7-digit count falls to the hash in some ten seconds). Without a code, the key is searched: first the grid
  points ``m × 10**j`` with at most four significant digits (answers people write; a fraction of a second),
  then every grid point outward from zero until one matches (about a second per million steps).

The answer key is never stored in plain text: :meth:`Question.is_correct` hashes an answer and
compares. The hashes keep the answers out of sight of a learner reading the files, nothing more:
anyone who runs code can test every answer (the tests and ``--to-draft`` do), which is fine for a
self-assessment. Bank files are written from drafts with ``python -m dlfund.course.quiz.author``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any

import yaml

BANK_DIR = Path(__file__).resolve().parent / "bank"
"""Where the bank files ship (package data of ``dlfund.course.quiz``)."""

FIELDS = (
    "id",
    "unit",
    "pool",
    "kind",
    "section",
    "question",
    "choices",
    "tolerance",
    "units",
    "explanation",
    "salt",
    "answer_hash",
    "answer_code",
)
"""Every field a question may have, in the order a bank file writes them."""
REQUIRED = ("id", "unit", "section", "question", "explanation", "salt", "answer_hash")
KINDS = ("single", "multi", "numeric", "ordering")
POOLS = ("unit", "exam")
CHOICES = {"single": (3, 5), "multi": (4, 6), "ordering": (4, 6)}
"""How many choices each kind has (numeric: none)."""
MIN_CHOICES, MAX_CHOICES = CHOICES["single"]
MAX_GRID_STEPS = 10**7
"""How far from zero a numeric answer may lie, in steps of its grid (so that ``--to-draft`` recovers it)."""
MAX_NUMBER = Decimal(10) ** 15
"""Typed numbers beyond ± this are refused (no answer in the course is that large)."""

_ID = re.compile(r"^u(\d{2})-([qx])(\d{2,3})$")
_FILE = re.compile(r"^unit(\d{2})\.yaml$")
_HEX = re.compile(r"^[0-9a-f]+$")
POOL_OF_LETTER = {"q": "unit", "x": "exam"}

Answer = int | tuple[int, ...] | Decimal
"""A learner's answer: ``single`` a 0-based choice; ``multi`` the 0-based choices, increasing; ``ordering`` the
0-based choices, first to last; ``numeric`` the number typed."""


class BankError(ValueError):
    """A bank file that cannot be used; the message names the file, the question and the field."""


def _keystream(salt: str, question_id: str, n: int) -> bytes:
    blocks = (hashlib.sha256(f"{salt}:{question_id}:code:{i}".encode()).digest() for i in range(n // 32 + 1))
    return b"".join(blocks)[:n]


def answer_code(salt: str, question_id: str, key: str) -> str:
    """A numeric key XOR a keystream from the salt and id, as hex (see the module docstring)."""
    data = key.encode()
    return bytes(a ^ b for a, b in zip(data, _keystream(salt, question_id, len(data)))).hex()


def decode_answer(salt: str, question_id: str, code: str) -> str | None:
    """The key an :func:`answer_code` holds, or ``None`` if ``code`` is not one."""
    try:
        data = bytes.fromhex(code)
        return bytes(a ^ b for a, b in zip(data, _keystream(salt, question_id, len(data)))).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def answer_hash(salt: str, question_id: str, key: str) -> str:
    """The stored form of a correct answer: sha256 of ``"{salt}:{id}:{key}"``, hex (``key`` by kind: see above)."""
    return hashlib.sha256(f"{salt}:{question_id}:{key}".encode()).hexdigest()


def to_decimal(value: Any) -> Decimal | None:
    """A YAML number (int or float, or a string such as ``"1e-3"``, which YAML 1.1 reads as text) as a finite
    Decimal; ``None`` if it is not one. Floats go through their shortest repr (``0.1`` → ``Decimal("0.1")``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    text = repr(value) if isinstance(value, float) else value if isinstance(value, str) else None
    if text is None:
        return None
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def plain(number: Decimal) -> str:
    """A Decimal in plain positional notation, no exponent, no trailing zeros: ``7.85E+3`` → ``"7850"``."""
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def yaml_number(number: Decimal) -> int | float:
    """How a number is written in a bank file or draft: an int when whole, else the float of its plain form."""
    return int(number) if number == number.to_integral_value() else float(plain(number))


def grid_exponent(tolerance: Decimal) -> int:
    """``e`` of the numeric grid step ``10**e`` (see the module docstring)."""
    return tolerance.adjusted() - 1 if tolerance > 0 else 0


def numeric_key(value: Decimal, tolerance: Decimal) -> str | None:
    """The hashed key of a numeric answer ``value`` (``"{k}e{e}"``), or ``None`` if it is not on the grid."""
    e = grid_exponent(tolerance)
    with localcontext() as ctx:
        ctx.prec = 100
        k = value.scaleb(-e)
    if k != k.to_integral_value():
        return None
    return f"{int(k)}e{e}"


@dataclass(frozen=True)
class Question:
    """One question of the bank (see the module docstring for the fields). ``choices`` is empty for
    ``numeric``; ``tolerance`` is set only for ``numeric`` (``Decimal(0)`` when exact)."""

    id: str
    unit: int
    section: str
    question: str
    choices: tuple[str, ...]
    explanation: str
    salt: str
    answer_hash: str
    kind: str = "single"
    pool: str = "unit"
    tolerance: Decimal | None = None
    units: str | None = None
    answer_code: str | None = None

    def _hashes(self, key: str) -> bool:
        return answer_hash(self.salt, self.id, key) == self.answer_hash

    def is_correct(self, answer: Answer | None) -> bool:
        """Whether ``answer`` (see :data:`Answer`; for ``single`` a 0-based index) is right. Never raises on an
        answer of the wrong shape: it is simply not right."""
        if answer is None:
            return False
        if self.kind == "single":
            return isinstance(answer, int) and 0 <= answer < len(self.choices) and self._hashes(self.choices[answer])
        if self.kind in ("multi", "ordering"):
            if not isinstance(answer, tuple) or not all(isinstance(i, int) for i in answer):
                return False
            return self._hashes(",".join(str(i + 1) for i in answer))
        if not isinstance(answer, Decimal) or not answer.is_finite() or answer.copy_abs() > MAX_NUMBER:
            return False
        tolerance = self.tolerance or Decimal(0)
        e = grid_exponent(tolerance)
        with localcontext() as ctx:  # exact: enough digits for any number up to MAX_NUMBER on any grid
            ctx.prec = 100
            low = (answer - tolerance).scaleb(-e).to_integral_value(rounding=ROUND_CEILING)
            high = (answer + tolerance).scaleb(-e).to_integral_value(rounding=ROUND_FLOOR)
        return any(self._hashes(f"{k}e{e}") for k in range(int(low), int(high) + 1))

    @property
    def correct_index(self) -> int:
        """The 0-based index of the right choice of a ``single`` question (found by hashing each choice)."""
        if self.kind != "single":
            raise BankError(f"question {self.id}: a {self.kind} question has no single right choice")
        matches = [i for i in range(len(self.choices)) if self.is_correct(i)]
        if len(matches) != 1:
            raise BankError(f"question {self.id}: {len(matches)} choices match answer_hash, expected exactly 1")
        return matches[0]

    def candidates(self) -> list[Answer]:
        """Every well-formed answer of a choice question, the right one among them if the hash is sound:
        ``single`` each index; ``multi`` each subset of 2..n−1 choices; ``ordering`` each order but 1..n."""
        n = len(self.choices)
        if self.kind == "single":
            return list(range(n))
        if self.kind == "multi":
            return [c for r in range(2, n) for c in itertools.combinations(range(n), r)]
        if self.kind == "ordering":
            return [p for p in itertools.permutations(range(n)) if p != tuple(range(n))]
        raise BankError(f"question {self.id}: a numeric question has no candidate list")

    @property
    def key(self) -> Answer:
        """The right answer, recovered by hashing (see the module docstring; numeric: searched outward from
        zero, at most :data:`MAX_GRID_STEPS` steps). Raises :class:`BankError` when no answer (or, for choice
        questions, more than one) matches the hash."""
        return _recover(self)


def _round_steps(digits: int = 4) -> Iterable[int]:
    """Grid step counts ``m × 10**j`` (``m`` below ``10**digits``) up to :data:`MAX_GRID_STEPS`: searched first."""
    for j in range(len(str(MAX_GRID_STEPS))):
        for m in range(10 ** (digits - 1) if j else 0, 10**digits):
            if m * 10**j <= MAX_GRID_STEPS:
                yield m * 10**j


@functools.lru_cache(maxsize=4096)
def _recover(q: Question) -> Answer:
    if q.kind == "numeric":
        e = grid_exponent(q.tolerance or Decimal(0))
        if q.answer_code is not None:  # checked against the hash when the bank was loaded
            key = decode_answer(q.salt, q.id, q.answer_code) or ""
            k, _, exponent = key.partition("e")
            if q._hashes(key) and exponent == str(e):
                return Decimal(int(k)).scaleb(e)
        prefix = hashlib.sha256(f"{q.salt}:{q.id}:".encode())
        target = bytes.fromhex(q.answer_hash)
        for k in itertools.chain(_round_steps(), range(MAX_GRID_STEPS + 1)):
            for signed in (k, -k) if k else (0,):
                h = prefix.copy()
                h.update(f"{signed}e{e}".encode())
                if h.digest() == target:
                    return Decimal(signed).scaleb(e)
        raise BankError(f"question {q.id}: no number within {MAX_GRID_STEPS} grid steps of zero matches answer_hash")
    matches = [a for a in q.candidates() if q.is_correct(a)]
    if len(matches) != 1:
        raise BankError(f"question {q.id}: {len(matches)} answers match answer_hash, expected exactly 1")
    return matches[0]


def _where(path: Path, position: int, qid: Any = None) -> str:
    return f"{path.name}: question {position + 1}" + (f" ({qid})" if isinstance(qid, str) else "")


def _text(where: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BankError(f"{where}: field {name!r} must be a non-empty string, found {value!r}")
    return value.strip()


def check_fields(raw: dict[str, Any], where: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
    """Missing and unknown fields, and the fields one kind does not take, each named in a :class:`BankError`."""
    missing = [f for f in required if f not in raw]
    unknown = sorted(set(raw) - set(allowed), key=str)
    if missing:
        raise BankError(f"{where}: missing field(s) {', '.join(missing)}")
    if unknown:
        raise BankError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}; expected {', '.join(allowed)}")


def kind_and_pool(raw: dict[str, Any], where: str) -> tuple[str, str]:
    """The ``kind`` and ``pool`` fields (defaults ``single`` and ``unit``), checked against each other's fields."""
    kind = raw.get("kind", "single")
    pool = raw.get("pool", "unit")
    if kind not in KINDS:
        raise BankError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}, found {kind!r}")
    if pool not in POOLS:
        raise BankError(f"{where}: field 'pool' must be one of {', '.join(POOLS)}, found {pool!r}")
    if kind == "numeric" and "choices" in raw:
        raise BankError(f"{where}: a numeric question has no field 'choices' (the learner types a number)")
    if kind != "numeric" and "choices" not in raw:
        raise BankError(f"{where}: missing field(s) choices (a {kind} question needs its choices)")
    extra = [f for f in ("tolerance", "units", "answer_code") if f in raw and kind != "numeric"]
    if extra:
        raise BankError(f"{where}: field(s) {', '.join(extra)} belong to numeric questions only, this one is {kind}")
    return kind, pool


def check_id(where: str, qid: str, unit: int, pool: str) -> None:
    match = _ID.match(qid)
    letter = "x" if pool == "exam" else "q"
    if not match or int(match.group(1)) != unit:
        raise BankError(
            f"{where}: field 'id' must look like 'u{unit:02d}-{letter}01' (its unit, then a number), found {qid!r}"
        )
    if POOL_OF_LETTER[match.group(2)] != pool:
        raise BankError(
            f"{where}: field 'id' {qid!r} does not agree with pool {pool!r}: "
            "unit-pool ids are uNN-qMM, exam-pool ids uNN-xMM"
        )


def check_choices(where: str, kind: str, choices: Any) -> tuple[str, ...]:
    low, high = CHOICES[kind]
    if not isinstance(choices, list) or not low <= len(choices) <= high:
        raise BankError(
            f"{where}: field 'choices' of a {kind} question must be a list of {low} to {high} strings, "
            f"found {choices!r}"
        )
    out = tuple(_text(where, f"choices[{i}]", c) for i, c in enumerate(choices))
    if len(set(out)) != len(out):
        raise BankError(f"{where}: field 'choices' has the same text twice")
    return out


def check_tolerance(where: str, raw: dict[str, Any]) -> Decimal:
    if "tolerance" not in raw:
        return Decimal(0)
    tolerance = to_decimal(raw["tolerance"])
    if tolerance is None or tolerance < 0 or isinstance(raw["tolerance"], str):
        raise BankError(f"{where}: field 'tolerance' must be a number ≥ 0, found {raw['tolerance']!r}")
    return tolerance


def parse_question(raw: Any, path: Path, position: int, file_unit: int) -> Question:
    """Validate one question mapping read from ``path`` and return it as a :class:`Question`."""
    where = _where(path, position, raw.get("id") if isinstance(raw, dict) else None)
    if not isinstance(raw, dict):
        raise BankError(f"{where}: expected a mapping with fields {', '.join(REQUIRED)}, found {type(raw).__name__}")
    check_fields(raw, where, FIELDS, REQUIRED)
    kind, pool = kind_and_pool(raw, where)

    qid = _text(where, "id", raw["id"])
    unit = raw["unit"]
    if not isinstance(unit, int) or isinstance(unit, bool):
        raise BankError(f"{where}: field 'unit' must be an integer, found {unit!r}")
    if unit != file_unit:
        raise BankError(f"{where}: field 'unit' is {unit}, but the file is for unit {file_unit}")
    check_id(where, qid, unit, pool)

    choices = check_choices(where, kind, raw["choices"]) if kind != "numeric" else ()
    tolerance = check_tolerance(where, raw) if kind == "numeric" else None
    units = _text(where, "units", raw["units"]) if "units" in raw else None

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
        kind=kind,
        pool=pool,
        tolerance=tolerance,
        units=units,
        answer_code=raw.get("answer_code"),
    )
    if "answer_code" in raw:
        code = raw["answer_code"]
        key = decode_answer(salt, qid, code) if isinstance(code, str) else None
        if key is None or not question._hashes(key) or not re.fullmatch(rf"-?\d+e{grid_exponent(tolerance)}", key):
            raise BankError(
                f"{where}: field 'answer_code' does not hold the number answer_hash holds "
                "(rebuild the file with `python -m dlfund.course.quiz.author`)"
            )
    if kind != "numeric":  # numeric keys are searched for only when needed (tests, --to-draft): see above
        matching = sum(question.is_correct(a) for a in question.candidates())
        if matching != 1:
            what = {"single": "choices", "multi": "sets of 2 to n−1 choices", "ordering": "orders"}[kind]
            raise BankError(
                f"{where}: field 'answer_hash' matches {matching} {what}, expected exactly 1 "
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


def in_pool(questions: Iterable[Question], pool: str) -> list[Question]:
    """The questions of one pool (``unit`` or ``exam``), in bank order."""
    return [q for q in questions if q.pool == pool]


DRAW_RULES = 2
"""Bumped when the draws change (2: unit quizzes draw a subset of the unit pool, the exam only the exam pool), so
that certificates drawn under older rules are reported as another edition instead of failing their re-check."""


def fingerprint(questions: Iterable[Question]) -> str:
    """sha256 (hex) of a bank edition under the current draw rules: every question's id, unit, pool, kind, text,
    choices and answer hash, in id order. A certificate records it, so verification can redo the draw when the
    bank is still the same edition."""
    canon = sorted((q.id, q.unit, q.pool, q.kind, q.question, list(q.choices), q.answer_hash) for q in questions)
    return hashlib.sha256(repr((DRAW_RULES, canon)).encode("utf-8")).hexdigest()
