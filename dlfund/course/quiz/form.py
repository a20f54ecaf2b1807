"""The quiz as a form in JupyterLab: one cell, every question on the page, a Submit button, feedback below it.

::

    from dlfund.course.quiz import form
    form.quiz(unit=4)              # the unit's quiz: the same seeded draw as `dlfund quiz --unit 4`
    form.exam(name="Ada")          # the final exam: 25 questions from the exam pool

Each kind has its widget: a single answer is a set of radio buttons; "select all that apply" a checkbox per
choice (all-or-nothing); "put in order" a text box for the step numbers, first step first (``3 1 4 2``); a
number a text box (``7850``, ``7,850``, ``1e-3``: see :func:`dlfund.course.quiz.session.parse_number`).
Submit checks that every typed answer can be read (those that cannot are marked, nothing is graded), asks for a
second press when questions are left unanswered (an incomplete attempt is scored but earns no certificate),
then grades, shows the feedback, records the attempt in the learner's progress like the terminal quiz, and
writes a certificate on a pass when a name is given (a "Write certificate" button appears if it was not).
The logic needs no browser: tests set the widgets' values and call :meth:`QuizForm.submit`.
The terminal-style ``quiz(unit=4)`` (``input()`` boxes) still works in a notebook.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import ipywidgets as widgets

from dlfund.course import manifest
from dlfund.course.quiz import session
from dlfund.course.quiz.bank import Answer, BankError, Question, fingerprint, load_bank
from dlfund.course.quiz.certificate import clean_name
from dlfund.course.quiz.report import Report

WIDTH = 100
"""Characters per line of the feedback text."""
_FULL = widgets.Layout(width="100%")


class QuizForm:
    """The widgets of one quiz or exam and what Submit does. ``box`` is the whole form; ``inputs[i]`` the answer
    widget of question ``i`` (RadioButtons, a VBox of Checkboxes, or a Text); ``report`` is set once graded."""

    def __init__(
        self,
        title: str,
        questions: Sequence[Question],
        seed: int,
        *,
        kind: str | None,
        bank: str,
        record_key: str | None,
        certify: bool = True,
        name: str | None = None,
        out_dir: str | Path | None = None,
        intro: str = "",
    ) -> None:
        self.title, self.questions, self.seed = title, list(questions), seed
        self.kind, self.bank, self.record_key, self.certify, self.out_dir = kind, bank, record_key, certify, out_dir
        self.report: Report | None = None
        self._confirm_incomplete = False
        self.inputs = [self._input(q) for q in self.questions]
        self.problems = [widgets.HTML() for _ in self.questions]
        self.name = widgets.Text(value=name or "", description="Your name", placeholder="for the certificate")
        self.submit_button = widgets.Button(description="Submit", button_style="primary", icon="check")
        self.submit_button.on_click(self.submit)
        self.certificate_button = widgets.Button(description="Write certificate", layout=widgets.Layout(display="none"))
        self.certificate_button.on_click(self.write_certificate)
        self.status = widgets.HTML()
        self.output = widgets.Output()
        header = (
            f"<h3>{html.escape(title)}</h3><p>{len(self.questions)} questions, seed {seed} "
            f"(<code>--seed {seed}</code> replays this draw). {html.escape(intro)} "
            f"{html.escape(session.answering(self.questions))} Pass mark {session.percent(session.PASS_MARK)}. "
            "This is a self-assessment.</p>"
        )
        parts: list[widgets.Widget] = [widgets.HTML(header)]
        for n, (q, widget, problem) in enumerate(zip(self.questions, self.inputs, self.problems), 1):
            parts += [widgets.HTML(self._question_html(q, n)), widget, problem]
        parts += [
            widgets.HBox([self.name, self.submit_button, self.certificate_button]),
            self.status,
            self.output,
        ]
        self.box = widgets.VBox(parts, layout=_FULL)
        self._shown = False

    @staticmethod
    def _input(q: Question) -> widgets.Widget:
        labels = [f"{i}) {' '.join(c.split())}" for i, c in enumerate(q.choices, 1)]
        if q.kind == "single":
            return widgets.RadioButtons(options=list(zip(labels, range(len(labels)))), value=None, layout=_FULL)
        if q.kind == "multi":
            return widgets.VBox([widgets.Checkbox(value=False, description=label, indent=False) for label in labels])
        if q.kind == "ordering":
            return widgets.Text(placeholder=f"the step numbers 1-{len(q.choices)}, first step first", layout=_FULL)
        return widgets.Text(placeholder="a number" + (f", in {q.units}" if q.units else ""), layout=_FULL)

    @staticmethod
    def _question_html(q: Question, n: int) -> str:
        steps = ""
        if q.kind == "ordering":
            steps = "<ol>" + "".join(f"<li>{html.escape(c)}</li>" for c in q.choices) + "</ol>"
        how = session.how_to_answer(q)
        return (
            f"<hr><b>Question {n}</b> <code>[{q.id}]</code> <i>({session.KIND_LABEL[q.kind]})</i>"
            f"<p>{html.escape(q.question)}</p>{steps}" + (f"<p><i>{html.escape(how)}</i></p>" if how else "")
        )

    def read(self, i: int) -> Answer | None:
        """The answer given to question ``i`` (``None``: not answered); raises ``InvalidAnswer`` if unreadable."""
        q, widget = self.questions[i], self.inputs[i]
        if q.kind == "single":
            return widget.value
        if q.kind == "multi":
            chosen = tuple(j for j, box in enumerate(widget.children) if box.value)
            return chosen or None
        if not widget.value.strip():
            return None
        return session.parse_for(q, widget.value)

    def _say(self, text: str) -> None:
        self.status.value = f"<p>{html.escape(text)}</p>"

    def _print(self, *args: object) -> None:
        self.output.append_stdout(" ".join(map(str, args)) + "\n")

    def submit(self, _button: widgets.Button | None = None) -> Report | None:
        """Grade the form (the Submit button's handler); returns the report, or ``None`` when not graded yet."""
        if self.report is not None:
            return self.report
        answers: list[Answer | None] = []
        unreadable = []
        for i in range(len(self.questions)):
            try:
                answers.append(self.read(i))
                self.problems[i].value = ""
            except session.InvalidAnswer as err:
                answers.append(None)
                unreadable.append(i + 1)
                self.problems[i].value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
        if unreadable:
            self._say(f"Answers to questions {', '.join(map(str, unreadable))} could not be read (see the red lines).")
            return None
        name = self.name.value.strip()
        if name:
            try:
                clean_name(name)
            except ValueError as err:
                self._say(f"Your name: {err}. Change it and press Submit again.")
                return None
        missing = [i + 1 for i, a in enumerate(answers) if a is None]
        if missing and not self._confirm_incomplete:
            self._confirm_incomplete = True
            self._say(
                f"Not answered: question(s) {', '.join(map(str, missing))}. Answer them, or press Submit again to "
                "hand in as it is (an incomplete attempt is scored but earns no certificate)."
            )
            return None
        report = replace(session.grade(self.title, self.questions, answers, self.seed), kind=self.kind, bank=self.bank)
        self.report = report
        for widget in (*self.inputs, self.submit_button):
            widget.disabled = True
            for child in getattr(widget, "children", ()):
                child.disabled = True
        self.output.outputs = ()
        self._print(session.feedback(report, width=WIDTH))
        self._say(session.score_line(report))
        if report.passed and self.certify:
            if name:
                self.write_certificate()
            else:
                self._print("No certificate yet: type your name beside the button and press Write certificate.")
                self.certificate_button.layout.display = None
        if self.record_key is not None:
            session._record(self.record_key, report, self._print)
        return self.report

    def write_certificate(self, _button: widgets.Button | None = None) -> Path | None:
        """Write the certificate of a passed attempt for the name typed (the Write certificate button's handler)."""
        if self.report is None or not self.report.passed or not self.certify or self.report.certificate:
            return self.report.certificate if self.report else None
        try:
            name = clean_name(self.name.value)
        except ValueError as err:
            self._print(f"No certificate: {err}; type your name beside the button and press Write certificate.")
            self.certificate_button.layout.display = None
            return None

        def no_input(prompt: str) -> str:
            raise EOFError

        self.report = session._certify(self.report, name, self.out_dir, no_input, self._print)
        if self.report.certificate is not None:
            self.certificate_button.layout.display = "none"
        return self.report.certificate

    def show(self) -> QuizForm:
        """Display the form in the notebook (once)."""
        if not self._shown:
            from IPython.display import display

            display(self.box)
            self._shown = True
        return self

    def _ipython_display_(self) -> None:  # a cell ending in form.quiz(...) shows the form once
        self.show()


def _prepare(
    name: str | None, out_dir: str | Path | None, bank: Sequence[Question] | None, seed: int | None
) -> tuple[Sequence[Question], int]:
    """Check what could lose a pass (the name, the folder) before any question; the bank and seed to use."""
    if name:
        clean_name(name)
    if out_dir is not None:
        session.check_before(None, out_dir)
    return (load_bank() if bank is None else bank), (session.new_seed() if seed is None else seed)


def quiz(
    unit: int | str,
    *,
    name: str | None = None,
    seed: int | None = None,
    out_dir: str | Path | None = None,
    bank: Sequence[Question] | None = None,
    show: bool = True,
) -> QuizForm:
    """The quiz of one unit as a form, e.g. ``form.quiz(unit=4)``: the same draw as the terminal quiz with the
    same seed (:func:`dlfund.course.quiz.session.select_unit`)."""
    number = unit if isinstance(unit, int) else manifest.get_unit(unit).number
    bank, seed = _prepare(name, out_dir, bank, seed)
    form = QuizForm(
        session.unit_title(number),
        session.select_unit(bank, number, seed),
        seed,
        kind=f"unit {number}",
        bank=fingerprint(bank),
        record_key=str(number),
        name=name,
        out_dir=out_dir,
    )
    return form.show() if show else form


def exam(
    *,
    name: str | None = None,
    seed: int | None = None,
    questions: int = session.EXAM_QUESTIONS,
    out_dir: str | Path | None = None,
    bank: Sequence[Question] | None = None,
    show: bool = True,
) -> QuizForm | None:
    """The final exam as a form: ``questions`` questions from the exam pool (a shorter draw is practice). While
    the bank has no exam pool it prints why and returns ``None``."""
    bank, seed = _prepare(name, out_dir, bank, seed)
    try:
        title, chosen, intro, whole = session.plan_exam(bank, questions, seed)
    except BankError as err:
        print(f"No exam: {err}")
        return None
    form = QuizForm(
        title,
        chosen,
        seed,
        kind="exam" if whole else None,
        bank=fingerprint(bank),
        record_key="exam" if whole else None,
        certify=whole,
        name=name,
        out_dir=out_dir,
        intro=intro,
    )
    return form.show() if show else form
