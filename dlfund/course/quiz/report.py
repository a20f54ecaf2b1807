"""The outcome of a quiz or exam: each question with the answer given, the score, pass or not."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from dlfund.course.quiz.bank import Answer, Question

__all__ = ["EXIT_FAILED", "EXIT_INCOMPLETE", "EXIT_PASSED", "PASS_MARK", "Graded", "Report"]

PASS_MARK = Fraction(4, 5)
"""The share of questions that must be answered correctly to pass (80%)."""

EXIT_PASSED, EXIT_FAILED, EXIT_INCOMPLETE = 0, 1, 3
"""Exit statuses of ``dlfund quiz`` / ``dlfund exam`` (2 is left to usage errors)."""


@dataclass(frozen=True)
class Graded:
    """One question after the quiz: the answer given (see :data:`~dlfund.course.quiz.bank.Answer`: for a single
    answer the 0-based choice), ``None`` if not answered."""

    question: Question
    chosen: Answer | None

    @property
    def answered(self) -> bool:
        return self.chosen is not None

    @property
    def correct(self) -> bool:
        return self.chosen is not None and self.question.is_correct(self.chosen)


@dataclass(frozen=True)
class Report:
    """The outcome of one quiz or exam."""

    title: str
    items: tuple[Graded, ...]
    seed: int
    pass_mark: Fraction = PASS_MARK
    certificate: Path | None = None
    kind: str | None = None
    """What was drawn: ``"exam"`` or ``"unit N"`` (``None``: a report made by hand, e.g. in a test)."""
    bank: str | None = None
    """The :func:`~dlfund.course.quiz.bank.fingerprint` of the bank it was drawn from."""

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def answered(self) -> int:
        return sum(g.answered for g in self.items)

    @property
    def correct(self) -> int:
        return sum(g.correct for g in self.items)

    @property
    def complete(self) -> bool:
        return self.answered == self.total

    @property
    def score(self) -> Fraction:
        """Correct answers as a share of all questions asked (unanswered ones count as wrong)."""
        return Fraction(self.correct, self.total) if self.total else Fraction(0)

    @property
    def passed(self) -> bool:
        return self.complete and self.total > 0 and self.score >= self.pass_mark

    @property
    def question_ids(self) -> list[str]:
        return [g.question.id for g in self.items]

    @property
    def exit_code(self) -> int:
        if not self.complete:
            return EXIT_INCOMPLETE
        return EXIT_PASSED if self.passed else EXIT_FAILED

    def __repr__(self) -> str:  # short, for a notebook cell that ends with quiz(...)
        return (
            f"Report({self.title!r}: {self.correct}/{self.total} correct, answered {self.answered}, "
            f"{'passed' if self.passed else 'not passed'}"
            + (f", certificate {str(self.certificate)!r}" if self.certificate else "")
            + ")"
        )
