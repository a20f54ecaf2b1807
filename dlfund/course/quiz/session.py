"""Asking, grading and feedback: pure functions, and one interactive loop for terminal and notebook.

The loop reads answers through ``input_fn`` and writes through ``print_fn`` (``input`` and
``print`` by default), so the same code runs in a terminal, in a Jupyter notebook (``input()``
shows a text box there) and in tests, which pass scripted functions.

Rules, by kind (the question says which, and so does the prompt): ``single`` the number of a choice, ``1`` to
``k``; ``multi`` ("select all that apply", all-or-nothing) the numbers of the chosen choices separated by spaces
or commas, in any order (``1,3`` or ``3 1``); ``ordering`` every choice number once, first step first
(``3 1 4 2`` or ``3,1,4,2``); ``numeric`` a number: digits with an optional sign, decimal point and exponent
(``7850``, ``-0.5``, ``.5``, ``1e-3``, ``2.5E+4``), commas only between groups of three digits (``7,850``,
``1,234,567.5``), optionally followed by the question's units (``7850 parameters``). Anything else (empty, out
of range, a choice twice, a decimal comma, not a number) is re-asked with a line saying what is expected.
End of input (Ctrl-D) or Ctrl-C stops the quiz: what was answered is scored, the attempt is marked
incomplete and earns no certificate. The pass mark is 80% of all questions asked; a certificate is
written only for a complete attempt at or above it.
A Jupyter kernel run headless (no one to type) cannot read input: the quiz stops the same way.
"""

from __future__ import annotations

import random
import re
import shutil
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

from dlfund.course import manifest, progress
from dlfund.course.quiz.bank import MAX_NUMBER, Answer, BankError, Question, fingerprint, in_pool, load_bank, units_in
from dlfund.course.quiz.certificate import check_out_dir, clean_name, default_dir, write_certificate
from dlfund.course.quiz.report import PASS_MARK, Graded, Report
from dlfund.utils.io import atomic_write_text

EXAM_QUESTIONS = 25
UNIT_QUESTIONS = 10
"""How many questions a unit quiz draws from the unit's pool (all of them when it holds fewer)."""
MAX_UNREADABLE = 5
"""Answers in a row that cannot be decoded before the quiz stops as at the end of input."""
NAME_TRIES = 3
"""How often a name that cannot go on a certificate (empty is no certificate) is asked for again."""

InputFn = Callable[[str], str]
PrintFn = Callable[..., None]


class InvalidAnswer(ValueError):
    """An answer that is not the number of a choice; the message says what is expected."""


def parse_answer(text: str, n_choices: int) -> int:
    """The 0-based choice for an answer typed as ``"1"`` .. ``str(n_choices)``."""
    text = text.strip()
    if not text:
        raise InvalidAnswer(f"no answer given: type a number from 1 to {n_choices}")
    try:
        number = int(text)
    except ValueError:
        shown = text if len(text) <= 20 else text[:17] + "..."
        raise InvalidAnswer(f"{shown!r} is not a number: type a number from 1 to {n_choices}") from None
    if not 1 <= number <= n_choices:
        raise InvalidAnswer(f"{number} is not one of the choices: type a number from 1 to {n_choices}")
    return number - 1


def _shown(text: str) -> str:
    return repr(text if len(text) <= 20 else text[:17] + "...")


def _numbers(text: str, n: int, what: str) -> list[int]:
    """The choice numbers in ``text`` (separated by spaces and/or commas), each 1..n."""
    tokens = [t for t in re.split(r"[\s,]+", text.strip()) if t]
    if not tokens:
        raise InvalidAnswer(f"no answer given: {what}")
    numbers = []
    for token in tokens:
        try:
            number = int(token)
        except ValueError:
            raise InvalidAnswer(f"{_shown(token)} is not a number: {what}") from None
        if not 1 <= number <= n:
            raise InvalidAnswer(f"{number} is not one of the choices: {what}")
        if number in numbers:
            raise InvalidAnswer(f"choice {number} is there twice: {what}")
        numbers.append(number)
    return numbers


def parse_multi(text: str, n_choices: int) -> tuple[int, ...]:
    """The 0-based choices, increasing, for a "select all that apply" answer typed as ``"1,3"`` or ``"3 1"``."""
    what = f"type the numbers of all the right choices (1 to {n_choices}), separated by spaces or commas"
    return tuple(sorted(i - 1 for i in _numbers(text, n_choices, what)))


def parse_ordering(text: str, n_choices: int) -> tuple[int, ...]:
    """The 0-based choices, first to last, for an order typed as ``"3 1 4 2"`` or ``"3,1,4,2"``."""
    what = f"type each of the numbers 1 to {n_choices} once, first step first, separated by spaces or commas"
    numbers = _numbers(text, n_choices, what)
    if len(numbers) != n_choices:
        missing = ", ".join(str(i) for i in range(1, n_choices + 1) if i not in numbers)
        raise InvalidAnswer(f"{len(numbers)} of the {n_choices} steps given ({missing} missing): {what}")
    return tuple(i - 1 for i in numbers)


MIN_EXPONENT = 50
"""Typed numbers closer to 0 than 1e-50 (but not 0) are refused: no answer needs them."""
_NUMBER = re.compile(r"^[+-]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


def parse_number(text: str, units: str | None = None) -> Decimal:
    """A typed number (see the module docstring for what is accepted), e.g. ``"7,850"`` → ``Decimal("7850")``."""
    what = "type a number, e.g. 12, 0.5, 1,024 or 2e-3 (a point for decimals)"
    body = " ".join(text.split())
    if not body:
        raise InvalidAnswer(f"no answer given: {what}")
    if units and body.lower().endswith(units.lower()):
        body = body[: -len(units)].strip()
    if not _NUMBER.match(body):
        if re.fullmatch(r"[+-]?\d+,\d+", body):
            raise InvalidAnswer(f"{_shown(body)}: use a point for decimals (0.5); commas only group thousands (7,850)")
        raise InvalidAnswer(f"{_shown(body)} is not a number: {what}")
    try:
        number = Decimal(body.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern admits only what Decimal reads
        raise InvalidAnswer(f"{_shown(body)} is not a number: {what}") from None
    if number.copy_abs() > MAX_NUMBER:  # copy_abs: no arithmetic, so no overflow on 1e999999999
        raise InvalidAnswer(f"{_shown(body)} is too large: {what}, between -1e15 and 1e15")
    if number and number.adjusted() < -MIN_EXPONENT:
        raise InvalidAnswer(f"{_shown(body)} is too small to tell from 0: type 0 if you mean zero")
    return number


def parse_for(q: Question, text: str) -> Answer:
    """``text`` as an answer to ``q``, by its kind; raises :class:`InvalidAnswer` saying what is expected."""
    if q.kind == "multi":
        return parse_multi(text, len(q.choices))
    if q.kind == "ordering":
        return parse_ordering(text, len(q.choices))
    if q.kind == "numeric":
        return parse_number(text, q.units)
    return parse_answer(text, len(q.choices))


KIND_LABEL = {
    "single": "one answer",
    "multi": "select all that apply",
    "numeric": "a number",
    "ordering": "put in order",
}
"""How each kind is named to the learner (in the question's header line)."""


def prompt(q: Question) -> str:
    """The input prompt, which says what to type for ``q``'s kind."""
    n = len(q.choices)
    if q.kind == "multi":
        return f"Your answer (all that apply: numbers 1-{n}, separated by spaces or commas): "
    if q.kind == "ordering":
        return f"Your order (each of 1-{n} once, first step first, separated by spaces): "
    if q.kind == "numeric":
        return f"Your answer (a number{f', in {q.units}' if q.units else ''}): "
    return f"Your answer (one choice, 1-{n}): "


def new_seed() -> int:
    """A fresh seed for a quiz whose user gave none (printed, so the same draw can be replayed)."""
    return random.SystemRandom().randrange(1, 1_000_000)


def section_of(q: Question) -> str:
    """The notebook or exercise a question tests (the first word of its section)."""
    return q.section.split()[0]


def select_unit(bank: Sequence[Question], unit: int, seed: int, n: int = UNIT_QUESTIONS) -> list[Question]:
    """``n`` questions of ``unit``'s pool (all of them when it holds fewer), spread over the unit's notebooks and
    exercises, in an order shuffled by ``seed``: each section's questions are shuffled, then taken one section
    after the other in a shuffled order, so that each section gives as many as the others (±1) while it has any."""
    pool = [q for q in in_pool(bank, "unit") if q.unit == unit]
    if not pool:
        raise KeyError(
            f"the quiz bank has no questions for unit {unit}; units with questions: "
            f"{', '.join(map(str, units_in(in_pool(bank, 'unit'))))}"
        )
    rng = random.Random(seed)
    if len(pool) <= n:
        chosen = pool
    else:
        sections = sorted({section_of(q) for q in pool})
        groups = [[q for q in pool if section_of(q) == s] for s in sections]
        for group in groups:
            rng.shuffle(group)
        rng.shuffle(groups)
        chosen = []
        while len(chosen) < n:
            for group in groups:
                if group and len(chosen) < n:
                    chosen.append(group.pop())
    rng.shuffle(chosen)
    return chosen


def exam_quota(sizes: dict[int, int], n: int) -> dict[int, int]:
    """How many questions to draw per unit: one each, then the rest in proportion to the questions
    each unit has left (largest remainder), never more than a unit has. ``n`` must be at least the
    number of units and at most the total."""
    units = sorted(sizes)
    if not len(units) <= n <= sum(sizes.values()):
        raise ValueError(f"cannot draw {n} questions from {len(units)} units holding {sum(sizes.values())}")
    quota = dict.fromkeys(units, 1)
    while sum(quota.values()) < n:
        left = n - sum(quota.values())
        open_units = [u for u in units if quota[u] < sizes[u]]
        room = sum(sizes[u] - quota[u] for u in open_units)
        shares = {u: Fraction(left * (sizes[u] - quota[u]), room) for u in open_units}
        whole = {u: min(int(shares[u]), sizes[u] - quota[u]) for u in open_units}
        if sum(whole.values()) == 0:  # fewer left than units with room: largest remainders get one
            for u in sorted(open_units, key=lambda u: (-(shares[u] - int(shares[u])), u))[:left]:
                quota[u] += 1
        for u, extra in whole.items():
            quota[u] += extra
    return quota


NO_EXAM_POOL = (
    "the question bank has no exam-pool questions yet (pool: exam, ids uNN-xMM), so the final exam cannot be "
    "drawn; the unit quizzes work meanwhile: `dlfund quiz --unit N`"
)


def exam_pool(bank: Sequence[Question]) -> list[Question]:
    """The exam's questions (pool ``exam``); raises :class:`BankError` saying so when there are none."""
    pool = in_pool(bank, "exam")
    if not pool:
        raise BankError(NO_EXAM_POOL)
    return pool


def draw_exam(bank: Sequence[Question], n: int, seed: int) -> list[Question]:
    """``n`` questions from the bank's exam pool (never one a unit quiz asks), seeded: every unit gets at least
    one and the rest follow the units' sizes in the pool. With fewer than ``n`` in the pool, all of them; with
    fewer than one per unit possible, one each from ``n`` units drawn at random. Raises :class:`BankError` when
    the bank has no exam pool."""
    if n < 1:
        raise ValueError(f"an exam needs at least one question, asked for {n}")
    bank = exam_pool(bank)
    rng = random.Random(seed)
    by_unit = {u: [q for q in bank if q.unit == u] for u in units_in(bank)}
    if n >= len(bank):
        chosen = list(bank)
    elif n < len(by_unit):
        chosen = [rng.choice(by_unit[u]) for u in sorted(rng.sample(sorted(by_unit), n))]
    else:
        quota = exam_quota({u: len(qs) for u, qs in by_unit.items()}, n)
        chosen = [q for u, qs in by_unit.items() for q in rng.sample(qs, quota[u])]
    rng.shuffle(chosen)
    return chosen


def well_formed(q: Question, answer: Answer) -> bool:
    """Whether ``answer`` has the shape of an answer to ``q`` (see :data:`~dlfund.course.quiz.bank.Answer`)."""
    n = len(q.choices)
    if q.kind == "single":
        return isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < n
    if q.kind == "numeric":
        return isinstance(answer, Decimal) and answer.is_finite()
    if not isinstance(answer, tuple) or not all(isinstance(i, int) and 0 <= i < n for i in answer):
        return False
    if q.kind == "multi":
        return len(answer) >= 1 and list(answer) == sorted(set(answer))
    return sorted(answer) == list(range(n))


def grade(title: str, questions: Sequence[Question], answers: Sequence[Answer | None], seed: int) -> Report:
    """Grade ``answers`` (see :data:`~dlfund.course.quiz.bank.Answer`; ``None`` or missing = not answered)."""
    answers = list(answers) + [None] * (len(questions) - len(answers))
    if len(answers) != len(questions):
        raise ValueError(f"{len(answers)} answers for {len(questions)} questions")
    for q, a in zip(questions, answers):
        if a is not None and not well_formed(q, a):
            raise ValueError(
                f"question {q.id}: {a!r} is not an answer to a {q.kind} question with {len(q.choices)} choices"
            )
    return Report(title, tuple(Graded(q, a) for q, a in zip(questions, answers)), seed)


def percent(value: Fraction) -> str:
    """``Fraction(21, 25)`` → ``"84%"`` (one decimal only when needed)."""
    text = f"{float(value) * 100:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


def _width() -> int:
    return max(60, min(100, shutil.get_terminal_size((88, 24)).columns))


def _wrap(text: str, indent: str, width: int, hanging: str = "") -> str:
    return textwrap.fill(" ".join(text.split()), width=width, initial_indent=indent, subsequent_indent=indent + hanging)


def fit(text: str, width: int | None = None) -> str:
    """``text`` with every line longer than ``width`` wrapped at spaces, keeping its indentation (a word longer
    than the width, such as a path, stays whole on a line of its own)."""
    width = width or _width()
    out = []
    for line in text.splitlines() or [""]:
        if len(line) <= width:
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        out.append(
            textwrap.fill(
                line.strip(),
                width=width,
                initial_indent=indent,
                subsequent_indent=indent + "  ",
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return "\n".join(out)


def fitting(print_fn: PrintFn) -> PrintFn:
    """``print_fn`` that first fits what it prints to the terminal's width (see :func:`fit`)."""

    def fitted(*args: object) -> None:
        print_fn(fit(" ".join(map(str, args))))

    return fitted


def how_to_answer(q: Question) -> str:
    """What the learner is asked to give for ``q``'s kind, in one sentence (empty for a single answer)."""
    if q.kind == "multi":
        return "Select all that apply: every right choice and no other earns the point (all-or-nothing)."
    if q.kind == "ordering":
        return "Put the steps in order: type their numbers, first step first."
    if q.kind == "numeric":
        within = f"; answers within ±{plain_number(q.tolerance)} count" if q.tolerance else "; exactly"
        return f"Type a number{f' (in {q.units})' if q.units else ''}{within}."
    return ""


def plain_number(value: Decimal | None) -> str:
    """A number as the quiz prints it: ``Decimal("7.85E+3")`` → ``"7,850"``, ``Decimal("0.0010")`` → ``"0.001"``."""
    value = Decimal(0) if value is None else value.normalize()
    text = f"{value:,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def question_text(q: Question, number: int, total: int, width: int | None = None) -> str:
    """A question as shown: its number, id and kind, the text, the numbered choices and how to answer."""
    width = width or _width()
    lines = [f"Question {number} of {total}  [{q.id}]  ({KIND_LABEL[q.kind]})", _wrap(q.question, "", width)]
    for i, choice in enumerate(q.choices, 1):
        lines.append(
            textwrap.fill(" ".join(choice.split()), width=width, initial_indent=f"  {i}) ", subsequent_indent="     ")
        )
    if how_to_answer(q):
        lines.append(_wrap(how_to_answer(q), "", width))
    return "\n".join(lines)


def describe(q: Question, answer: Answer) -> str:
    """An answer to ``q`` in words: the chosen choices with their text, or the number with its units."""
    if q.kind == "numeric":
        return plain_number(answer) + (f" {q.units}" if q.units else "")  # type: ignore[arg-type]
    if q.kind == "single":
        return f"{answer + 1}) {q.choices[answer]}"  # type: ignore[operator,index]
    parts = [f"{i + 1}) {q.choices[i]}" for i in answer]  # type: ignore[union-attr]
    if q.kind == "ordering":
        return "first " + "; then ".join(parts)
    return "; ".join(parts) if parts else "none"


def right_answer(q: Question) -> str:
    """The right answer of ``q`` in words (recovered from its hash), with the tolerance of a numeric one."""
    text = describe(q, q.key)
    if q.kind == "numeric" and q.tolerance:
        text += f" (±{plain_number(q.tolerance)} counts)"
    return text


def _multi_difference(q: Question, chosen: tuple[int, ...]) -> str:
    right = set(q.key)  # type: ignore[arg-type]
    missed = sorted(right - set(chosen))
    extra = sorted(set(chosen) - right)
    parts = []
    if missed:
        parts.append("you missed " + ", ".join(f"{i + 1})" for i in missed))
    if extra:
        parts.append("not right: " + ", ".join(f"{i + 1})" for i in extra))
    return "; ".join(parts)


def score_line(report: Report) -> str:
    """One line: the score, the pass mark and the outcome."""
    text = (
        f"Score: {report.correct} of {report.total} correct ({percent(report.score)}); "
        f"pass mark {percent(report.pass_mark)}: "
    )
    if not report.complete:
        return text + (
            f"INCOMPLETE, {report.answered} of {report.total} answered "
            f"({report.correct} of those right); no certificate for an incomplete attempt"
        )
    return text + ("PASSED" if report.passed else "not passed")


def feedback(report: Report, width: int | None = None) -> str:
    """Per-question feedback: your answer, right or wrong, the right answer when wrong, the
    explanation and the section to review; then the score. Unanswered questions are only listed,
    so that their answers stay unseen for the next attempt."""
    width = width or _width()
    lines = [f"Feedback: {report.title}", ""]
    for n, g in enumerate(report.items, 1):
        q = g.question
        if not g.answered:
            continue
        verdict = "right" if g.correct else "WRONG"
        lines.append(f"{n:>2}. {q.id}  {verdict}  ({KIND_LABEL[q.kind]})")
        lines.append(_wrap(f"your answer: {describe(q, g.chosen)}", "    ", width, " " * 16))
        if not g.correct:
            lines.append(_wrap(f"right answer: {right_answer(q)}", "    ", width, " " * 17))
            if q.kind == "multi":
                lines.append(_wrap(_multi_difference(q, g.chosen), "    ", width, "  "))  # type: ignore[arg-type]
        lines.append(_wrap(q.explanation, "    ", width))
        lines.append(f"    review: {q.section}")
        lines.append("")
    unanswered = [g.question.id for g in report.items if not g.answered]
    if unanswered:
        lines.append(_wrap(f"not answered ({len(unanswered)}): {', '.join(unanswered)}", "", width))
        lines.append("")
    lines.append(score_line(report))
    return "\n".join(lines)


def ask(q: Question, number: int, total: int, input_fn: InputFn, print_fn: PrintFn) -> Answer:
    """Show one question and read answers until one is valid; returns the answer (see :func:`parse_for`).
    EOFError and KeyboardInterrupt from ``input_fn`` propagate (the caller stops the quiz)."""
    print_fn(question_text(q, number, total))
    unreadable = 0
    while True:
        try:
            return parse_for(q, input_fn(prompt(q)))
        except InvalidAnswer as err:
            print_fn(f"  {err}")
        except UnicodeDecodeError:  # bytes that are not text in the terminal's encoding
            unreadable += 1
            if unreadable >= MAX_UNREADABLE:
                raise EOFError from None  # input that never decodes: stop as at the end of input
            print_fn(f"  that answer could not be read as text: {prompt(q).split('(', 1)[1].rsplit(')', 1)[0]}")


def answering(questions: Sequence[Question]) -> str:
    """How to answer the kinds among ``questions``, in one or two sentences (printed before the first)."""
    kinds = {q.kind for q in questions}
    ways = ["the number of a choice"]
    if "multi" in kinds:
        ways.append('for "select all that apply" the numbers of every right choice (all-or-nothing)')
    if "ordering" in kinds:
        ways.append('for "put in order" every choice number once, first step first')
    if "numeric" in kinds:
        ways.append('for "a number" a number such as 12, 0.5, 1,024 or 2e-3')
    return "Answer with " + "; ".join(ways) + "."


def run_questions(
    title: str,
    questions: Sequence[Question],
    seed: int,
    *,
    name: str | None = None,
    out_dir: str | Path | None = None,
    input_fn: InputFn | None = None,
    print_fn: PrintFn | None = None,
    intro: str = "",
    kind: str | None = None,
    bank: str | None = None,
    feedback_path: str | Path | None = None,
    certify: bool = True,
) -> Report:
    """Ask ``questions`` one by one, then print feedback and the score, and write a certificate
    when the attempt is complete and passes (and save the feedback to ``feedback_path``). ``kind`` and ``bank``
    (what was drawn, from which bank edition) go on the certificate. Returns the :class:`Report`. ``input_fn`` and
    ``print_fn`` default to the built-in ``input`` and ``print`` looked up at call time (Jupyter
    kernels replace ``input`` with one that asks the notebook)."""
    input_fn = input_fn or (lambda prompt: input(prompt))
    print_fn = fitting(print_fn or print)  # every line fits the terminal: none wraps mid-word
    print_fn(f"{title} ({len(questions)} questions, seed {seed}: --seed {seed} replays this draw)")
    if intro:
        print_fn(intro)
    print_fn(
        f"{answering(questions)} Ctrl-D (end of input) stops and scores what you "
        f"answered. Pass mark {percent(PASS_MARK)}. This is a self-assessment."
    )
    answers: list[Answer | None] = []
    stopped = None
    for n, q in enumerate(questions, 1):
        print_fn("")
        try:
            answers.append(ask(q, n, len(questions), input_fn, print_fn))
        except (EOFError, KeyboardInterrupt, NotImplementedError) as err:
            # NotImplementedError: a headless Jupyter kernel (StdinNotImplementedError) cannot ask
            stopped = {EOFError: "end of input", KeyboardInterrupt: "interrupted"}.get(
                type(err), "this frontend cannot read answers"
            )
            break
    print_fn("")
    if stopped:
        print_fn(f"Stopped ({stopped}) after {len(answers)} of {len(questions)} questions: the attempt is incomplete.")
        print_fn("")
    report = replace(grade(title, questions, answers, seed), kind=kind, bank=bank)
    text = feedback(report)
    print_fn(text)
    if feedback_path is not None:
        _save_feedback(Path(feedback_path), text, print_fn)
    if report.passed and certify:
        report = _certify(report, name, out_dir, input_fn, print_fn)
    return report


def _save_feedback(path: Path, text: str, print_fn: PrintFn) -> None:
    try:
        atomic_write_text(path, text + "\n")
    except OSError as err:
        print_fn(f"The feedback could not be saved to {path} ({err.strerror or err}); it is printed above.")
    else:
        print_fn(f"Feedback saved to {manifest.display_path(path)}")


def _certify(
    report: Report, name: str | None, out_dir: str | Path | None, input_fn: InputFn, print_fn: PrintFn
) -> Report:
    if name is not None and name.strip():
        tries = [name]  # given up front (and checked before the quiz by the command line)
    else:
        tries = []
    for attempt in range(NAME_TRIES):
        if attempt >= len(tries):
            try:
                typed = input_fn("Your name for the certificate (empty: no certificate): ")
            except (EOFError, KeyboardInterrupt, NotImplementedError, UnicodeDecodeError):
                typed = ""
            if not typed.strip():
                print_fn("No certificate written: no name given (pass a name with --name).")
                return report
            tries.append(typed)
        try:
            name = clean_name(tries[attempt])
            break
        except ValueError as err:
            print_fn(f"  {err}: type it again" + (" (shorter)" if "characters" in str(err) else ""))
    else:
        print_fn(f"No certificate written: no usable name after {NAME_TRIES} tries (pass a name with --name).")
        return report
    for folder in _certificate_folders(out_dir):
        try:
            path = write_certificate(report, name, folder)
        except OSError as err:
            print_fn(f"The certificate could not be written to {folder} ({err.strerror or err}); trying elsewhere.")
            continue
        print_fn(f"Certificate (self-assessment, not an accredited qualification): {manifest.display_path(path)}")
        return replace(report, certificate=path)
    print_fn("No certificate written: no folder could be written to (see above).")
    return report


def _certificate_folders(out_dir: str | Path | None) -> list[Path]:
    """Where to write a certificate, in order: the folder asked for, then the default, then the temp folder."""
    folders = [Path(out_dir)] if out_dir is not None else []
    for fallback in (default_dir(), Path(tempfile.gettempdir()) / "dlfund-certificates"):
        if fallback not in folders:
            folders.append(fallback)
    return folders


def exam_title() -> str:
    """The title of the final exam (on its report and certificate)."""
    return "Final exam"


def unit_title(unit: int) -> str:
    """The title of unit ``unit``'s quiz (on its report and certificate)."""
    try:
        return f"Unit {unit} quiz: {manifest.get_unit(unit).title}"
    except KeyError:
        return f"Unit {unit} quiz"


def check_before(name: str | None, out_dir: str | Path | None, feedback_path: str | Path | None = None) -> None:
    """What can be checked before the first question, so that a passed attempt is not lost at the end: a name
    given up front fits a certificate, the certificate folder and the feedback file can be written. Raises
    ``ValueError`` (the name) or ``OSError`` (a folder or file), each saying what to change."""
    if name is not None and name.strip():
        clean_name(name)
    if out_dir is not None:
        check_out_dir(out_dir)
    if feedback_path is not None:
        folder = Path(feedback_path).resolve().parent
        if Path(feedback_path).is_dir():
            raise IsADirectoryError(f"--feedback {feedback_path} is a folder: give a file name")
        check_out_dir(folder)


def quiz(
    unit: int | str,
    *,
    name: str | None = None,
    seed: int | None = None,
    out_dir: str | Path | None = None,
    input_fn: InputFn | None = None,
    print_fn: PrintFn | None = None,
    bank: Sequence[Question] | None = None,
    feedback_path: str | Path | None = None,
) -> Report:
    """Take the quiz of one unit, e.g. ``quiz(unit=4)``: :data:`UNIT_QUESTIONS` questions of the unit's pool drawn
    with ``seed`` (all when it holds fewer), spread over its sections, so that a retake differs. ``unit`` is a
    number or a slug. Works in a terminal and in a notebook (``input()`` boxes; ``form.quiz`` is the form)."""
    number = unit if isinstance(unit, int) else manifest.get_unit(unit).number
    check_before(name, out_dir, feedback_path)
    bank = load_bank() if bank is None else bank
    seed = new_seed() if seed is None else seed
    report = run_questions(
        unit_title(number),
        select_unit(bank, number, seed),
        seed,
        name=name,
        out_dir=out_dir,
        input_fn=input_fn,
        print_fn=print_fn,
        kind=f"unit {number}",
        bank=fingerprint(bank),
        feedback_path=feedback_path,
    )
    return _record(str(number), report, print_fn)


def _record(key: str, report: Report, print_fn: PrintFn | None) -> Report:
    """Note the attempt in the learner's progress (their workspace, if they have one)."""
    line = progress.record_quiz(key, float(report.score), report.passed, report.complete)
    if line:
        fitting(print_fn or print)(line)
    return report


def plan_exam(bank: Sequence[Question], questions: int, seed: int) -> tuple[str, list[Question], str, bool]:
    """The exam's title, its draw, the line that introduces it, and whether it is the whole exam (a shorter
    draw is practice: scored, no certificate, not recorded). Raises :class:`BankError` without an exam pool."""
    chosen = draw_exam(bank, questions, seed)
    pool = exam_pool(bank)
    intro = f"Drawn from the exam pool of units {', '.join(map(str, units_in(pool)))} (no unit quiz asks these)."
    if questions > len(pool):
        intro += (
            f" The exam pool holds only {len(pool)} questions, fewer than the {questions} asked for, "
            "so the exam uses all of them."
        )
    whole = questions >= min(EXAM_QUESTIONS, len(pool))  # a shorter practice draw is not the exam
    if not whole:
        intro += f" A practice draw of {questions}: scored, but no certificate (the exam has {EXAM_QUESTIONS})."
    return exam_title() if whole else f"Practice exam ({questions} questions)", chosen, intro, whole


def exam(
    *,
    name: str | None = None,
    seed: int | None = None,
    questions: int = EXAM_QUESTIONS,
    out_dir: str | Path | None = None,
    input_fn: InputFn | None = None,
    print_fn: PrintFn | None = None,
    bank: Sequence[Question] | None = None,
    feedback_path: str | Path | None = None,
) -> Report:
    """Take the final exam: ``questions`` questions drawn from the bank's exam pool with ``seed`` (at least one
    per unit, the rest in proportion to each unit's exam questions). A shorter draw is practice: it is scored,
    but earns no certificate. Raises :class:`BankError` while the bank has no exam pool."""
    check_before(name, out_dir, feedback_path)
    bank = load_bank() if bank is None else bank
    seed = new_seed() if seed is None else seed
    title, chosen, intro, whole = plan_exam(bank, questions, seed)
    report = run_questions(
        title,
        chosen,
        seed,
        name=name,
        out_dir=out_dir,
        input_fn=input_fn,
        print_fn=print_fn,
        intro=intro,
        kind="exam" if whole else None,
        bank=fingerprint(bank),
        feedback_path=feedback_path,
        certify=whole,
    )
    if whole:
        _record("exam", report, print_fn)
    return report
