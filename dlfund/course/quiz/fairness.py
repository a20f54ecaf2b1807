"""Does the question bank give its answers away, repeat itself, or fall short of its size?
``python -m dlfund.course.quiz.fairness [BANK_DIR]`` prints every statistic with the offending ids and exits 1
when a target is missed; ``tests/test_quiz_fairness.py`` asserts the same targets.

Over the single-answer questions (both pools):

- **longest right choice**: the share whose right choice is the longest (strictly, or tied with another) is
  at most :data:`LONGEST_MAX` (30%); a learner who always picks the longest choice must not pass;
- **much longer**: no right choice is :data:`LONG_RATIO` (1.4) times longer, or more, than every other choice;
- **position**: for each position p, the share of questions whose right choice is the p-th is at most
  :data:`POSITION_MAX` (35%).

Over all questions:

- **explanations** do not quote a right choice (single, or each right choice of a multi) of at least
  :data:`QUOTE_MIN` (25) characters word for word (case-insensitive): they explain, they do not repeat;
- **cross-unit near-duplicates**: no two questions of different units have a text similarity of
  :data:`SIMILARITY` (0.33) or more. The measure (:func:`similarity`): each question's text is its question,
  its right answer (choices) and its explanation; lowercased, split into words (``-inf`` stays one word), common
  English words dropped, a few words the course uses for one idea mapped to one (:data:`SYNONYMS`: a held-out
  *movie* in unit 8 and a held-out *play* in unit 9 are one idea), plural and verb endings cut (``-s``, ``-es``,
  ``-ed``, ``-ing``). Each word is weighted by ``(1 + log count) × idf`` with the smoothed inverse document
  frequency ``idf = log((1 + N) / (1 + df)) + 1`` over the N questions of the bank (words many questions use
  count less), and two questions' similarity is the cosine of their weight vectors. The threshold flags the
  pairs that repeated one idea in the first edition (bf16's exponent bits in units 2 and 11, the −inf mask in
  8 and 9, the split by movie or play in 8, 9 and 10) and the few like them (RoPE's relative offsets in 9 and
  12, uint8 wrap-around in 2 and 7), and no pair that only shares a topic;
- **size**: at least :data:`UNIT_POOL_MIN` unit-pool questions, :data:`PER_UNIT_MIN` in every unit's pool,
  :data:`EXAM_POOL_MIN` exam-pool questions with :data:`EXAM_PER_UNIT_MIN` per unit, and a share of at least
  :data:`NON_SINGLE_MIN` of all questions that are not single-answer.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from dlfund.course import manifest
from dlfund.course.quiz.bank import BankError, Question, load_bank

LONGEST_MAX = Fraction(30, 100)
LONG_RATIO = 1.4
POSITION_MAX = Fraction(35, 100)
QUOTE_MIN = 25
SIMILARITY = 0.33
UNIT_POOL_MIN = 200
PER_UNIT_MIN = 13
EXAM_POOL_MIN = 60
EXAM_PER_UNIT_MIN = 4
NON_SINGLE_MIN = Fraction(25, 100)

STOP_WORDS = frozenset(
    """a about above after again all also an and any are as at be because been before being below between both
    but by can could did do does doing done down during each either else even every few for from further had
    has have having here how however i if in into is it its itself just may might more most much must no nor
    not now of off on once one only or other our out over own same should so some such than that the their them
    then there these they this those through thus to too two under until up upon us very was we were what when
    where whether which while who whom why will with would yet you your unit units notebook notebooks""".split()  # noqa: SIM905
)
SYNONYMS = {
    "group": "movie movies play plays scene scenes group groups",
    "line": "line lines review reviews",
    "heldout": "test validation validate validating held-out unseen",
    "neginf": "-inf inf infinity",
    "split": "split splits",
    "seen": "seen saw trained train training remember remembering memorisation memorise recognise recognising",
    "random": "random scattered",
}
"""Words the course uses for one idea, mapped to one word before comparing (see the module docstring)."""
_SYNONYM = {word: group for group, words in SYNONYMS.items() for word in words.split()}
_WORD = re.compile(r"-inf|[a-z0-9]+(?:['-][a-z0-9]+)*")


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def words(text: str) -> list[str]:
    """The words :func:`similarity` compares: lowercased, stop words dropped, synonyms merged, endings cut."""
    out = []
    for word in _WORD.findall(text.lower()):
        if word in STOP_WORDS:
            continue
        word = _SYNONYM.get(word, word)
        word = _stem(word)
        out.append(_SYNONYM.get(word, word))
    return out


def right_texts(q: Question) -> list[str]:
    """The right choice(s) of a single or multi question (none for numeric and ordering)."""
    if q.kind == "single":
        return [q.choices[q.correct_index]]
    if q.kind == "multi":
        return [q.choices[i] for i in q.key]  # type: ignore[union-attr]
    return []


def text_of(q: Question) -> str:
    """What :func:`similarity` compares: the question, its right answer and its explanation."""
    if q.kind == "ordering":
        answer = " ".join(q.choices)
    elif q.kind == "numeric":
        answer = q.units or ""
    else:
        answer = " ".join(right_texts(q))
    return f"{q.question} {answer} {q.explanation}"


def vectors(texts: Sequence[str]) -> list[dict[str, float]]:
    """Unit-length tf-idf weight vectors of ``texts`` (the idf over ``texts`` themselves)."""
    counts = [Counter(words(t)) for t in texts]
    df = Counter(w for c in counts for w in c)
    n = len(texts)
    out = []
    for c in counts:
        v = {w: (1 + math.log(k)) * (math.log((1 + n) / (1 + df[w])) + 1) for w, k in c.items()}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        out.append({w: x / norm for w, x in v.items()})
    return out


def similarity(a: dict[str, float], b: dict[str, float]) -> float:
    """Cosine of two unit vectors from :func:`vectors`."""
    if len(b) < len(a):
        a, b = b, a
    return sum(x * b.get(w, 0.0) for w, x in a.items())


def near_duplicates(
    items: Sequence[tuple[str, int, str]], threshold: float = SIMILARITY
) -> list[tuple[float, str, str]]:
    """Pairs of ``(id, unit, text)`` items from different units with a similarity ≥ ``threshold``, most similar
    first, as ``(similarity, id, id)``."""
    vecs = vectors([text for _, _, text in items])
    found = []
    for i, (id_a, unit_a, _) in enumerate(items):
        for j in range(i + 1, len(items)):
            id_b, unit_b, _ = items[j]
            if unit_a != unit_b:
                score = similarity(vecs[i], vecs[j])
                if score >= threshold:
                    found.append((round(score, 3), id_a, id_b))
    return sorted(found, key=lambda t: (-t[0], t[1], t[2]))


def longest_right(questions: Iterable[Question]) -> list[str]:
    """Single-answer questions whose right choice is the longest (strictly or tied)."""
    return [
        q.id
        for q in questions
        if q.kind == "single" and len(q.choices[q.correct_index]) >= max(len(c) for c in q.choices)
    ]


def much_longer(questions: Iterable[Question], ratio: float = LONG_RATIO) -> list[str]:
    """Single-answer questions whose right choice is ``ratio`` times longer, or more, than every other choice."""
    out = []
    for q in questions:
        if q.kind == "single":
            right = q.correct_index
            if all(len(q.choices[right]) >= ratio * len(c) for i, c in enumerate(q.choices) if i != right):
                out.append(q.id)
    return out


def positions(questions: Iterable[Question]) -> dict[int, list[str]]:
    """Position (from 1) → the single-answer questions whose right choice is there."""
    out: dict[int, list[str]] = {}
    for q in questions:
        if q.kind == "single":
            out.setdefault(q.correct_index + 1, []).append(q.id)
    return dict(sorted(out.items()))


def quoting_explanations(questions: Iterable[Question], minimum: int = QUOTE_MIN) -> list[str]:
    """Questions whose explanation contains a right choice of at least ``minimum`` characters, word for word."""
    out = []
    for q in questions:
        explanation = " ".join(q.explanation.lower().split())
        if any(len(t) >= minimum and " ".join(t.lower().split()) in explanation for t in right_texts(q)):
            out.append(q.id)
    return out


@dataclass
class Check:
    """One statistic: its value in words, whether it meets its target, and the ids to look at."""

    name: str
    value: str
    ok: bool
    ids: list[str] = field(default_factory=list)


def _share(part: int, whole: int) -> Fraction:
    return Fraction(part, whole) if whole else Fraction(0)


def _pct(value: Fraction) -> str:
    return f"{float(value) * 100:.1f}%"


def checks(questions: Sequence[Question]) -> list[Check]:
    """Every statistic of the module docstring on ``questions`` (a whole bank)."""
    single = [q for q in questions if q.kind == "single"]
    out = []
    longest = longest_right(single)
    share = _share(len(longest), len(single))
    out.append(
        Check(
            "right choice the longest (or tied), single-answer",
            f"{len(longest)} of {len(single)} = {_pct(share)} (at most {_pct(LONGEST_MAX)})",
            share <= LONGEST_MAX,
            longest,
        )
    )
    longer = much_longer(single)
    out.append(Check(f"right choice ≥ {LONG_RATIO}× every other", f"{len(longer)} (must be 0)", not longer, longer))
    by_position = positions(single)
    shares = ", ".join(f"{p}: {_pct(_share(len(ids), len(single)))}" for p, ids in by_position.items())
    over = [p for p, ids in by_position.items() if _share(len(ids), len(single)) > POSITION_MAX]
    out.append(
        Check(
            "right choice by position, single-answer",
            f"{shares} (each at most {_pct(POSITION_MAX)})",
            not over,
            [f"position {p}: {', '.join(by_position[p])}" for p in over],
        )
    )
    quoting = quoting_explanations(questions)
    out.append(Check("explanations quoting a right choice", f"{len(quoting)} (must be 0)", not quoting, quoting))
    pairs = near_duplicates([(q.id, q.unit, text_of(q)) for q in questions])
    out.append(
        Check(
            f"cross-unit near-duplicates (similarity ≥ {SIMILARITY})",
            f"{len(pairs)} pairs (must be 0)",
            not pairs,
            [f"{a}~{b} ({s:.2f})" for s, a, b in pairs],
        )
    )
    unit_pool = [q for q in questions if q.pool == "unit"]
    exam_pool = [q for q in questions if q.pool == "exam"]
    out.append(
        Check("unit-pool questions", f"{len(unit_pool)} (at least {UNIT_POOL_MIN})", len(unit_pool) >= UNIT_POOL_MIN)
    )
    units = [u.number for u in manifest.UNITS]
    per_unit = Counter(q.unit for q in unit_pool)
    short = [f"unit {u}: {per_unit[u]}" for u in units if per_unit[u] < PER_UNIT_MIN]
    out.append(
        Check(
            "unit-pool questions per unit",
            f"fewest {min(per_unit[u] for u in units)} (at least {PER_UNIT_MIN} each)",
            not short,
            short,
        )
    )
    out.append(
        Check("exam-pool questions", f"{len(exam_pool)} (at least {EXAM_POOL_MIN})", len(exam_pool) >= EXAM_POOL_MIN)
    )
    per_unit_exam = Counter(q.unit for q in exam_pool)
    short_exam = [f"unit {u}: {per_unit_exam[u]}" for u in units if per_unit_exam[u] < EXAM_PER_UNIT_MIN]
    out.append(
        Check(
            "exam-pool questions per unit",
            f"fewest {min(per_unit_exam[u] for u in units)} (at least {EXAM_PER_UNIT_MIN} each)",
            not short_exam,
            short_exam,
        )
    )
    kinds = Counter(q.kind for q in questions)
    non_single = _share(len(questions) - kinds["single"], len(questions))
    out.append(
        Check(
            "not single-answer",
            f"{len(questions) - kinds['single']} of {len(questions)} = {_pct(non_single)} (at least "
            f"{_pct(NON_SINGLE_MIN)}; " + ", ".join(f"{k} {kinds[k]}" for k in sorted(kinds)) + ")",
            non_single >= NON_SINGLE_MIN,
        )
    )
    return out


def report(questions: Sequence[Question]) -> str:
    """The statistics as text, one line each (``ok`` or ``MISSED``), with the ids to look at."""
    lines = [f"quiz bank: {len(questions)} questions"]
    for c in checks(questions):
        lines.append(f"{'ok    ' if c.ok else 'MISSED'} {c.name}: {c.value}")
        if c.ids and not c.ok:
            lines.append("       " + ", ".join(c.ids))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or args[:1] in (["-h"], ["--help"]):
        print("usage: python -m dlfund.course.quiz.fairness [BANK_DIR]", file=sys.stderr)
        return 2
    try:
        questions = load_bank(args[0] if args else None)
    except BankError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report(questions))
    return 0 if all(c.ok for c in checks(questions)) else 1


if __name__ == "__main__":
    sys.exit(main())
