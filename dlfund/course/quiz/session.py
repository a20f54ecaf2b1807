"""Asking, grading and feedback: pure functions, and one interactive loop for terminal and notebook.

The loop reads answers through ``input_fn`` and writes through ``print_fn`` (``input`` and
``print`` by default), so the same code runs in a terminal, in a Jupyter notebook (``input()``
shows a text box there) and in tests, which pass scripted functions.

Rules: answers are the number of a choice, ``1`` to ``k``; anything else (empty, out of range,
not a number) is re-asked with a message. End of input (Ctrl-D) or Ctrl-C stops the quiz: what
was answered is scored, the attempt is marked incomplete and earns no certificate. The pass mark
is 80% of all questions asked; a certificate is written only for a complete attempt at or above it.
A Jupyter kernel run headless (no one to type) cannot read input: the quiz stops the same way.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

from dlfund.course import manifest, progress
from dlfund.course.quiz.bank import Question, fingerprint, load_bank, units_in
from dlfund.course.quiz.certificate import check_out_dir, clean_name, default_dir, write_certificate
from dlfund.course.quiz.report import PASS_MARK, Graded, Report
from dlfund.utils.io import atomic_write_text

EXAM_QUESTIONS = 25
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


def new_seed() -> int:
    """A fresh seed for a quiz whose user gave none (printed, so the same draw can be replayed)."""
    return random.SystemRandom().randrange(1, 1_000_000)


def select_unit(bank: Sequence[Question], unit: int, seed: int) -> list[Question]:
    """All questions of ``unit``, in an order shuffled by ``seed``."""
    chosen = [q for q in bank if q.unit == unit]
    if not chosen:
        raise KeyError(
            f"the quiz bank has no questions for unit {unit}; units with questions: "
            f"{', '.join(map(str, units_in(bank)))}"
        )
    random.Random(seed).shuffle(chosen)
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


def draw_exam(bank: Sequence[Question], n: int, seed: int) -> list[Question]:
    """``n`` questions across all units of the bank, seeded: every unit gets at least one and the
    rest follow the units' sizes. With fewer than ``n`` questions in the bank, all of them; with
    fewer than one per unit possible, one each from ``n`` units drawn at random."""
    if n < 1:
        raise ValueError(f"an exam needs at least one question, asked for {n}")
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


def grade(title: str, questions: Sequence[Question], answers: Sequence[int | None], seed: int) -> Report:
    """Grade ``answers`` (0-based choices; ``None`` or missing = not answered)."""
    answers = list(answers) + [None] * (len(questions) - len(answers))
    if len(answers) != len(questions):
        raise ValueError(f"{len(answers)} answers for {len(questions)} questions")
    for q, a in zip(questions, answers):
        if a is not None and not 0 <= a < len(q.choices):
            raise ValueError(f"question {q.id}: answer {a} is not a choice index 0..{len(q.choices) - 1}")
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


def question_text(q: Question, number: int, total: int, width: int | None = None) -> str:
    """A question as shown: its number and id, the text, and the numbered choices."""
    width = width or _width()
    lines = [f"Question {number} of {total}  [{q.id}]", _wrap(q.question, "", width)]
    for i, choice in enumerate(q.choices, 1):
        lines.append(
            textwrap.fill(" ".join(choice.split()), width=width, initial_indent=f"  {i}) ", subsequent_indent="     ")
        )
    return "\n".join(lines)


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
        lines.append(f"{n:>2}. {q.id}  {verdict}")
        lines.append(_wrap(f"your answer: {g.chosen + 1}) {q.choices[g.chosen]}", "    ", width, " " * 16))
        if not g.correct:
            right = q.correct_index
            lines.append(_wrap(f"right answer: {right + 1}) {q.choices[right]}", "    ", width, " " * 17))
        lines.append(_wrap(q.explanation, "    ", width))
        lines.append(f"    review: {q.section}")
        lines.append("")
    unanswered = [g.question.id for g in report.items if not g.answered]
    if unanswered:
        lines.append(_wrap(f"not answered ({len(unanswered)}): {', '.join(unanswered)}", "", width))
        lines.append("")
    lines.append(score_line(report))
    return "\n".join(lines)


def ask(q: Question, number: int, total: int, input_fn: InputFn, print_fn: PrintFn) -> int:
    """Show one question and read answers until one is valid; returns the 0-based choice.
    EOFError and KeyboardInterrupt from ``input_fn`` propagate (the caller stops the quiz)."""
    print_fn(question_text(q, number, total))
    unreadable = 0
    while True:
        try:
            return parse_answer(input_fn(f"Your answer (1-{len(q.choices)}): "), len(q.choices))
        except InvalidAnswer as err:
            print_fn(f"  {err}")
        except UnicodeDecodeError:  # bytes that are not text in the terminal's encoding
            unreadable += 1
            if unreadable >= MAX_UNREADABLE:
                raise EOFError from None  # input that never decodes: stop as at the end of input
            print_fn(f"  that answer could not be read as text: type a number from 1 to {len(q.choices)}")


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
        f"Answer with the number of a choice. Ctrl-D (end of input) stops and scores what you "
        f"answered. Pass mark {percent(PASS_MARK)}. This is a self-assessment."
    )
    answers: list[int | None] = []
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
    """Take the quiz of one unit (all its questions, in a seeded order), e.g. ``quiz(unit=4)``.
    ``unit`` is a number or a slug. Works in a terminal and in a notebook."""
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
    """Take the final exam: ``questions`` questions drawn across all units of the bank with
    ``seed`` (at least one per unit, the rest in proportion to each unit's questions). A shorter draw is
    practice: it is scored, but earns no certificate."""
    check_before(name, out_dir, feedback_path)
    bank = load_bank() if bank is None else bank
    seed = new_seed() if seed is None else seed
    chosen = draw_exam(bank, questions, seed)
    units = units_in(bank)
    intro = f"Drawn from units {', '.join(map(str, units))} of the quiz bank."
    if questions > len(bank):
        intro += (
            f" The bank holds only {len(bank)} questions, fewer than the {questions} asked for, "
            "so the exam uses all of them."
        )
    whole = questions >= min(EXAM_QUESTIONS, len(bank))  # a shorter practice draw is not the exam
    if not whole:
        intro += f" A practice draw of {questions}: scored, but no certificate (the exam has {EXAM_QUESTIONS})."
    report = run_questions(
        exam_title() if whole else f"Practice exam ({questions} questions)",
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
