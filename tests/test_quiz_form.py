"""The quiz as a JupyterLab form (dlfund/course/quiz/form.py), driven headlessly: the tests set the widgets'
values and press the buttons (``Button.click()`` runs the handlers), then check the report, the feedback, the
certificate and the learner's progress, on the fixture bank of tests/quiz_fixture.py (every kind)."""

from __future__ import annotations

import json

import ipywidgets as widgets
import pytest
import quiz_fixture

from dlfund.course import progress
from dlfund.course.quiz import certificate, form, session
from dlfund.course.quiz.report import EXIT_INCOMPLETE


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return quiz_fixture.bank(tmp_path_factory.mktemp("bank"))


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A learner's workspace, where progress is recorded."""
    ws = tmp_path / "workspace"
    ws.mkdir()
    monkeypatch.setattr(progress.workspace, "find", lambda path=None: ws)
    return ws


def answer(f: form.QuizForm, right: bool = True, skip: set[int] = frozenset()) -> None:
    """Set every widget to the right answer (or a wrong one), as a learner would click and type."""
    for i, (q, widget) in enumerate(zip(f.questions, f.inputs)):
        if i in skip:
            continue
        if q.kind == "single":
            widget.value = q.key if right else (q.key + 1) % len(q.choices)
        elif q.kind == "multi":
            chosen = set(q.key) if right else set(range(len(q.choices)))
            for j, box in enumerate(widget.children):
                box.value = j in chosen
        else:
            widget.value = quiz_fixture.typed(q) if right else quiz_fixture.typed_wrong(q)


def text(f: form.QuizForm) -> str:
    return " ".join("".join(o["text"] for o in f.output.outputs).split())


def test_each_kind_has_its_widget_and_the_draw_is_the_terminals(fixture):
    f = form.quiz(1, seed=4, bank=fixture, show=False)
    assert [q.id for q in f.questions] == [q.id for q in session.select_unit(fixture, 1, seed=4)]
    expected = {
        "single": widgets.RadioButtons,
        "multi": widgets.VBox,
        "ordering": widgets.Text,
        "numeric": widgets.Text,
    }
    for q, widget in zip(f.questions, f.inputs):
        assert isinstance(widget, expected[q.kind]), q.kind
        if q.kind == "multi":
            assert all(isinstance(c, widgets.Checkbox) for c in widget.children) and len(widget.children) == 5
    assert {q.kind for q in f.questions} == {"single", "multi", "numeric", "ordering"}
    shown = " ".join(w.value for w in f.box.children if isinstance(w, widgets.HTML))
    assert "(select all that apply)" in shown and "(put in order)" in shown and "(a number)" in shown


def test_a_right_form_passes_certifies_and_records_progress(fixture, workspace, tmp_path):
    f = form.quiz(1, seed=4, bank=fixture, out_dir=tmp_path / "certs", show=False)
    answer(f)
    f.name.value = "Ada Lovelace"
    f.submit_button.click()
    report = f.report
    assert report is not None and report.passed and report.correct == report.total == session.UNIT_QUESTIONS
    assert report.certificate is not None and report.certificate.parent == tmp_path / "certs"
    data = certificate.verify_certificate(report.certificate)
    assert data["name"] == "Ada Lovelace" and data["kind"] == "unit 1" and data["question_ids"] == report.question_ids
    out = text(f)
    assert "PASSED" in f.status.value and "Feedback: Unit 1 quiz" in out and "recorded in your progress" in out
    recorded = json.loads((workspace / progress.FILE).read_text())["quizzes"]["1"]
    assert recorded["passed"] and recorded["best"] == 1.0 and recorded["attempts"] == 1
    assert all(w.disabled for w in f.inputs) and f.submit_button.disabled
    f.submit_button.click()  # a second press changes nothing
    assert json.loads((workspace / progress.FILE).read_text())["quizzes"]["1"]["attempts"] == 1


def test_wrong_answers_get_feedback_in_words_and_no_certificate(fixture, workspace, tmp_path):
    f = form.quiz(2, seed=1, bank=fixture, out_dir=tmp_path, show=False)
    answer(f, right=False)
    f.name.value = "Ada"
    f.submit_button.click()
    assert f.report.correct == 0 and not f.report.passed and f.report.certificate is None
    out = text(f)
    assert out.count("WRONG") == f.report.total and "right answer: first " in out and "not passed" in f.status.value
    assert list(tmp_path.glob("*.html")) == []


def test_unreadable_answers_are_marked_and_nothing_is_graded(fixture):
    f = form.quiz(1, seed=4, bank=fixture, show=False)
    answer(f)
    numeric = next(i for i, q in enumerate(f.questions) if q.kind == "numeric")
    ordering = next(i for i, q in enumerate(f.questions) if q.kind == "ordering")
    f.inputs[numeric].value = "0,5"
    f.inputs[ordering].value = "1 1 2 3"
    f.submit_button.click()
    assert f.report is None
    assert "use a point for decimals" in f.problems[numeric].value and "is there twice" in f.problems[ordering].value
    assert f"questions {min(numeric, ordering) + 1}, {max(numeric, ordering) + 1} could not be read" in f.status.value
    answer(f)
    f.submit_button.click()
    assert f.report is not None and f.report.passed and f.problems[numeric].value == ""


def test_unanswered_questions_need_a_second_press_and_make_an_incomplete_attempt(fixture, workspace):
    f = form.quiz(1, seed=4, bank=fixture, show=False)
    answer(f, skip={0, 3})
    f.name.value = "Ada"
    f.submit_button.click()
    assert f.report is None and "Not answered: question(s) 1, 4" in f.status.value
    f.submit_button.click()
    assert f.report.exit_code == EXIT_INCOMPLETE and f.report.answered == f.report.total - 2
    assert f.report.certificate is None and "INCOMPLETE" in f.status.value
    assert json.loads((workspace / progress.FILE).read_text())["quizzes"]["1"]["passed"] is False


def test_a_pass_without_a_name_offers_the_certificate_button(fixture, tmp_path, workspace):
    f = form.quiz(3, seed=2, bank=fixture, out_dir=tmp_path, show=False)
    answer(f)
    f.submit_button.click()
    assert f.report.passed and f.report.certificate is None and f.certificate_button.layout.display is None
    f.name.value = "x" * 150
    f.certificate_button.click()
    assert f.report.certificate is None and "at most 100 fit" in text(f)
    f.name.value = "Grace Hopper"
    f.certificate_button.click()
    assert certificate.verify_certificate(f.report.certificate)["name"] == "Grace Hopper"
    assert f.certificate_button.layout.display == "none"


def test_a_name_that_cannot_go_on_a_certificate_is_refused_before_grading(fixture):
    f = form.quiz(1, seed=4, bank=fixture, show=False)
    answer(f)
    f.name.value = "y" * 101
    f.submit_button.click()
    assert f.report is None and "at most 100 fit on a certificate" in f.status.value


def test_the_exam_form_draws_from_the_exam_pool_and_fails_clearly_without_one(fixture, workspace, tmp_path, capsys):
    f = form.exam(seed=3, bank=fixture, out_dir=tmp_path, show=False)
    assert len(f.questions) == 25 and all(q.pool == "exam" for q in f.questions)
    assert [q.id for q in f.questions] == [q.id for q in session.draw_exam(fixture, 25, 3)]
    answer(f)
    f.name.value = "Ada"
    f.submit_button.click()
    assert f.report.passed and certificate.verify_certificate(f.report.certificate)["kind"] == "exam"
    assert json.loads((workspace / progress.FILE).read_text())["quizzes"]["exam"]["passed"]
    practice = form.exam(seed=3, questions=5, bank=fixture, show=False)
    assert practice.title == "Practice exam (5 questions)" and not practice.certify and practice.record_key is None
    assert form.exam(bank=[q for q in fixture if q.pool == "unit"], show=False) is None
    assert "No exam: the question bank has no exam-pool questions yet" in capsys.readouterr().out


def test_the_input_box_quiz_still_works_in_a_notebook(fixture, monkeypatch):
    from dlfund.course.quiz import quiz

    typed = iter([*(quiz_fixture.typed(q) for q in session.select_unit(fixture, 1, seed=9)), ""])  # "": no name
    monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
    report = quiz(unit=1, seed=9, bank=fixture, print_fn=lambda *a: None)
    assert report.correct == report.total == session.UNIT_QUESTIONS
