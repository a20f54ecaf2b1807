"""The certification quiz: per-unit quizzes and a final exam, with feedback and a certificate.

From a notebook or a Python prompt::

    from dlfund.course.quiz import form
    form.quiz(unit=4)       # in JupyterLab: a form with a Submit button (dlfund.course.quiz.form)

    from dlfund.course.quiz import quiz, exam
    quiz(unit=4)            # 10 questions of unit 4's pool, drawn with a seed, typed into input() boxes
    exam(name="Ada")        # 25 questions from the exam pool

From the shell: ``dlfund quiz --unit 4`` and ``dlfund exam``. The questions live in
``dlfund/course/quiz/bank/unitNN.yaml`` (one file per unit, four kinds of question in two pools, answers
stored as salted hashes; see :mod:`dlfund.course.quiz.bank` and ``dlfund/course/quiz/README.md``); how fair
the bank is: ``python -m dlfund.course.quiz.fairness``. Passing means at least 80% of the
questions right in a complete attempt; it earns an HTML certificate that says honestly what it is:
a self-assessment, not an accredited qualification.
"""

from __future__ import annotations

from dlfund.course.quiz.bank import BankError, Question, load_bank
from dlfund.course.quiz.certificate import (
    CertificateError,
    verify_certificate,
    write_certificate,
)
from dlfund.course.quiz.report import PASS_MARK, Report
from dlfund.course.quiz.session import draw_exam, exam, quiz

__all__ = [
    "BankError",
    "CertificateError",
    "PASS_MARK",
    "Question",
    "Report",
    "draw_exam",
    "exam",
    "load_bank",
    "quiz",
    "verify_certificate",
    "write_certificate",
]
