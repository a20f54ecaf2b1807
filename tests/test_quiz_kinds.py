"""The question kinds (single, multi, numeric, ordering) and pools (unit, exam): the bank schema and its errors,
the hashed key of each kind, and the author tool's draft ↔ bank round trip, on the fixture bank
(tests/quiz_fixture.py) and on the shipped bank."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
import quiz_fixture
import yaml

from dlfund.course.quiz import author, bank, session
from dlfund.course.quiz.bank import BankError, load_bank, load_file


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory) -> Path:
    return quiz_fixture.write_bank(tmp_path_factory.mktemp("bank"))


@pytest.fixture(scope="module")
def fixture(fixture_dir) -> list[bank.Question]:
    return load_bank(fixture_dir)


def test_fixture_bank_has_every_kind_in_both_pools(fixture):
    kinds = {(q.pool, q.kind) for q in fixture}
    assert kinds == {(p, k) for p in bank.POOLS for k in bank.KINDS}
    assert all((q.id[4] == "x") == (q.pool == "exam") for q in fixture)


def test_each_kind_recovers_the_drafts_answer_and_nothing_else_is_right(fixture):
    for q in fixture:
        plain = quiz_fixture.plain_answer(q)
        if q.kind == "single":
            assert q.key == plain - 1 == q.correct_index
        elif q.kind == "numeric":
            assert q.key == Decimal(str(plain))
        else:
            assert q.key == tuple(i - 1 for i in plain)
        assert q.is_correct(q.key)
        if q.kind != "numeric":
            assert [a for a in q.candidates() if q.is_correct(a)] == [q.key]
        if q.kind != "single":
            with pytest.raises(BankError, match="no single right choice"):
                _ = q.correct_index


@pytest.mark.parametrize(
    "typed, right",
    [("7850", True), ("7850.5", True), ("7849.5", True), ("7850.51", False), ("7849.49", False), ("0", False)],
)
def test_numeric_answers_count_within_the_tolerance_inclusive(fixture, typed, right):
    q = next(q for q in fixture if q.kind == "numeric" and q.key == 7850)
    assert q.tolerance == Decimal("0.5") and q.units == "parameters"
    assert q.is_correct(Decimal(typed)) is right


def test_numeric_checks_hash_a_bounded_number_of_grid_points(fixture, monkeypatch):
    q = next(q for q in fixture if q.kind == "numeric")
    calls = []
    real = bank.answer_hash
    monkeypatch.setattr(bank, "answer_hash", lambda *a: calls.append(a) or real(*a))
    for x in ("1e15", "-1e15", "3.14159", "0"):
        q.is_correct(Decimal(x))
    assert len(calls) <= 4 * 201
    assert not q.is_correct(Decimal("1e16")) and not q.is_correct(Decimal("NaN")) and not q.is_correct("7850")


def test_wrong_shapes_are_simply_not_right(fixture):
    for q in fixture:
        for answer in (None, -1, 99, (), (0,), (0, 0), (99, 100), Decimal(-5), "1", [0, 1], 1.5):
            assert q.is_correct(answer) is False or answer == q.key


def test_author_round_trips_every_kind_byte_for_byte(fixture_dir, tmp_path):
    for path in bank.bank_files(fixture_dir):
        draft = tmp_path / f"draft-{path.name}"
        assert author.main(["--to-draft", str(path), "-o", str(draft)]) == 0
        text = draft.read_text(encoding="utf-8")
        recovered = yaml.safe_load(text)["questions"]
        original = quiz_fixture.drafts()[bank.unit_of_file(path)]["questions"]
        assert [q["answer"] for q in recovered] == [q["answer"] for q in original]
        assert "pool: unit" not in text and "kind: single" not in text
        again = tmp_path / path.name
        assert author.main([str(draft), "-o", str(again)]) == 0
        assert again.read_bytes() == path.read_bytes()


def test_the_shipped_bank_round_trips_byte_for_byte(tmp_path):
    for path in bank.bank_files():
        draft = tmp_path / "d.yaml"
        draft.write_text(author.to_draft(path), encoding="utf-8")
        _, text, _ = author.build(draft)
        assert text == path.read_text(encoding="utf-8"), path.name


def test_bank_files_hold_no_plain_answer_and_write_fields_in_order(fixture_dir):
    for path in bank.bank_files(fixture_dir):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*-?\s*answer\s*:", text, re.M)
        for q in yaml.safe_load(text)["questions"]:
            assert list(q) == [f for f in bank.FIELDS if f in q]


def draft_file(tmp_path: Path, *questions: dict) -> Path:
    path = tmp_path / "draft.yaml"
    path.write_text(yaml.safe_dump({"questions": list(questions)}, sort_keys=False), encoding="utf-8")
    return path


def good(_kind: str, **changes) -> dict:
    q = quiz_fixture.draft_question(1, "unit", 1, _kind)
    q.update(changes)
    return {k: v for k, v in q.items() if v is not None}


@pytest.mark.parametrize(
    "question, message",
    [
        (good("single", answer=5), "field 'answer' must be the number of the right choice, 1 to 4"),
        (good("multi", answer=[3, 1]), "must list the right choices in increasing order"),
        (good("multi", answer=[1]), "at least 2 and at most 4 of 1 to 5"),
        (good("multi", answer=[1, 2, 3, 4, 5]), "at least 2 and at most 4"),
        (good("multi", answer=2), "multi question must list the right choices"),
        (good("multi", choices=["a", "b", "c"]), "choices' of a multi question must be a list of 4 to 6"),
        (good("ordering", answer=[1, 2, 3, 4]), "already in the right order: scramble the choices"),
        (good("ordering", answer=[3, 1, 4, 4]), "each choice number 1 to 4 once"),
        (good("ordering", choices=["a", "b", "c", "d", "e", "f", "g"]), "must be a list of 4 to 6"),
        (good("numeric", answer="many"), "numeric question must be a number, e.g. 7850"),
        (good("numeric", answer=7850.125), "finer than its tolerance's grid (0.01): round it to a multiple of 0.01"),
        (good("numeric", answer=2.5, tolerance=None), "an exact answer, tolerance 0, is a whole number"),
        (good("numeric", answer=10**9, tolerance=0.5), "more than 10,000,000 grid steps from zero"),
        (good("numeric", tolerance=-1), "field 'tolerance' must be a number ≥ 0"),
        (good("numeric", choices=["a", "b", "c"]), "a numeric question has no field 'choices'"),
        (good("single", tolerance=0.5), "belong to numeric questions only, this one is single"),
        (good("single", kind="essay"), "field 'kind' must be one of single, multi, numeric, ordering"),
        (good("single", pool="final"), "field 'pool' must be one of unit, exam"),
        (good("single", pool="exam"), "does not agree with pool 'exam': unit-pool ids are uNN-qMM, exam-pool ids"),
        (good("single", id="u01-x01"), "does not agree with pool 'unit'"),
        (good("single", answers=1), "unknown field(s) answers"),
    ],
)
def test_author_refuses_bad_drafts_saying_what_is_expected(tmp_path, capsys, question, message):
    out = tmp_path / "unit01.yaml"
    assert author.main([str(draft_file(tmp_path, question)), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert message in err and "draft.yaml: question 1 (u01-" in err, err
    assert not out.exists()


def test_numeric_answers_in_other_spellings(tmp_path):
    q = good("numeric", answer="1e-3", tolerance="1e-4", units="seconds")
    _, text, (built,) = author.build(draft_file(tmp_path, q))
    assert built.key == Decimal("0.001") and built.tolerance == Decimal("0.0001")
    assert "tolerance: 0.0001" in text
    exact = good("numeric", answer=8, tolerance=0, units="bits")
    _, text, (built,) = author.build(draft_file(tmp_path, exact))
    assert "tolerance" not in text and built.key == 8 and built.is_correct(Decimal("8.0"))
    assert not built.is_correct(Decimal("8.001"))


def bank_entry(_kind: str, **changes) -> dict:
    entry = author.from_draft(good(_kind), Path("unit01.yaml"), 0)
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


@pytest.mark.parametrize(
    "entry, message",
    [
        (bank_entry("multi", answer_hash="0" * 64), "matches 0 sets of 2 to n−1 choices, expected exactly 1"),
        (bank_entry("ordering", answer_hash="0" * 64), "matches 0 orders"),
        (bank_entry("numeric", tolerance="0.5"), "field 'tolerance' must be a number ≥ 0"),
        (bank_entry("numeric", units=""), "field 'units' must be a non-empty string"),
        (bank_entry("multi", kind="numeric"), "a numeric question has no field 'choices'"),
        (bank_entry("numeric", kind="single"), "missing field(s) choices (a single question needs its choices)"),
        (bank_entry("numeric", answer_code="00ff"), "field 'answer_code' does not hold the number answer_hash holds"),
        (bank_entry("numeric", answer_code="not hex"), "field 'answer_code' does not hold"),
        (bank_entry("single", answer_code="00"), "belong to numeric questions only"),
    ],
)
def test_bank_errors_for_the_new_kinds_name_the_file_question_and_field(tmp_path, entry, message):
    folder = tmp_path / "bank"
    folder.mkdir()
    (folder / "unit01.yaml").write_text(yaml.safe_dump({"questions": [entry]}, sort_keys=False), encoding="utf-8")
    with pytest.raises(BankError) as err:
        load_file(folder / "unit01.yaml")
    assert "unit01.yaml: question 1 (u01-q01)" in str(err.value) and message in str(err.value), str(err.value)


def test_lint_warns_about_giveaways_of_the_new_kinds(fixture):
    warnings = author.lint(fixture)
    assert not [w for w in warnings if "numeric answer without" in w]
    q = next(q for q in fixture if q.kind == "numeric")
    bare = bank.Question(**{**q.__dict__, "units": None})
    assert any("without 'units'" in w for w in author.lint([bare]))


# --- the terminal: how each kind is asked, parsed and explained -----------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [("1,3", (0, 2)), ("3 1", (0, 2)), (" 1, 3 ,4 ", (0, 2, 3)), ("2", (1,)), ("1 2 3 4 5", tuple(range(5)))],
)
def test_multi_answers_are_choice_numbers_in_any_order(text, expected):
    assert session.parse_multi(text, 5) == expected


@pytest.mark.parametrize(
    "text, expected", [("3 1 4 2", (2, 0, 3, 1)), ("3,1,4,2", (2, 0, 3, 1)), ("2, 4 1,3", (1, 3, 0, 2))]
)
def test_orders_are_every_choice_number_once(text, expected):
    assert session.parse_ordering(text, 4) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("7850", "7850"),
        ("7,850", "7850"),
        ("1,234,567.5", "1234567.5"),
        ("1e-3", "0.001"),
        ("2.5E+4", "25000"),
        ("-0.5", "-0.5"),
        (".5", "0.5"),
        ("+3", "3"),
        ("7850 parameters", "7850"),
        ("  7850   Parameters ", "7850"),
    ],
)
def test_numbers_in_the_accepted_spellings(text, expected):
    assert session.parse_number(text, "parameters") == Decimal(expected)


@pytest.mark.parametrize(
    "parse, text, message",
    [
        (
            lambda t: session.parse_multi(t, 5),
            "",
            "no answer given: type the numbers of all the right choices (1 to 5)",
        ),
        (lambda t: session.parse_multi(t, 5), "1 1", "choice 1 is there twice"),
        (lambda t: session.parse_multi(t, 5), "1,6", "6 is not one of the choices"),
        (lambda t: session.parse_multi(t, 5), "1;3", "'1;3' is not a number"),
        (
            lambda t: session.parse_ordering(t, 4),
            "3 1 4",
            "3 of the 4 steps given (2 missing): type each of the numbers",
        ),
        (lambda t: session.parse_ordering(t, 4), "3 1 4 4", "choice 4 is there twice"),
        (lambda t: session.parse_ordering(t, 4), "3 1 4 2 5", "5 is not one of the choices"),
        (lambda t: session.parse_number(t), "", "no answer given: type a number"),
        (lambda t: session.parse_number(t), "0,5", "use a point for decimals (0.5); commas only group thousands"),
        (lambda t: session.parse_number(t), "7,85", "use a point for decimals"),
        (lambda t: session.parse_number(t), "abc", "'abc' is not a number: type a number, e.g. 12, 0.5, 1,024 or 2e-3"),
        (lambda t: session.parse_number(t), "nan", "is not a number"),
        (lambda t: session.parse_number(t), "inf", "is not a number"),
        (lambda t: session.parse_number(t), "1e999999999", "is too large"),
        (lambda t: session.parse_number(t), "1e-999999999", "too small to tell from 0"),
        (lambda t: session.parse_number(t), "1_000", "is not a number"),
        (lambda t: session.parse_number(t), "7850 bits", "is not a number"),
    ],
)
def test_bad_answers_say_what_is_expected(parse, text, message):
    with pytest.raises(session.InvalidAnswer, match=re.escape(message)):
        parse(text)


def test_the_question_and_the_prompt_state_the_kind(fixture):
    shown = {q.kind: (session.question_text(q, 1, 10, width=100), session.prompt(q)) for q in fixture}
    assert "(one answer)" in shown["single"][0] and "one choice, 1-4" in shown["single"][1]
    assert "(select all that apply)" in shown["multi"][0] and "all-or-nothing" in shown["multi"][0]
    assert "all that apply: numbers 1-5" in shown["multi"][1]
    assert "(put in order)" in shown["ordering"][0] and "first step first" in shown["ordering"][1]
    assert "(a number)" in shown["numeric"][0] and "answers within ±" in shown["numeric"][0]
    assert re.search(r"a number, in (parameters|nats)", shown["numeric"][1])


def test_feedback_gives_each_kinds_right_answer_in_words(fixture):
    qs = [next(q for q in fixture if q.kind == k and q.pool == "unit") for k in bank.KINDS]
    wrong = {"single": None, "multi": (0, 1, 2, 3, 4), "numeric": Decimal(1), "ordering": (0, 1, 2, 3)}
    answers = [(q.key + 1) % len(q.choices) if q.kind == "single" else wrong[q.kind] for q in qs]
    text = " ".join(session.feedback(session.grade("t", qs, answers, seed=0), width=200).split())
    single, multi, numeric, ordering = qs
    assert f"right answer: {single.key + 1}) {single.choices[single.key]}" in text
    assert "right answer: " + "; ".join(f"{i + 1}) {multi.choices[i]}" for i in multi.key) in text
    assert "you missed" not in text and "not right: " in text  # every choice ticked: some are not right
    assert f"right answer: {session.plain_number(numeric.key)} {numeric.units} (±" in text
    assert "right answer: first " + "; then ".join(f"{i + 1}) {ordering.choices[i]}" for i in ordering.key) in text
    assert "your answer: 1 " in text and text.count("WRONG") == 4


def test_grade_refuses_malformed_answers(fixture):
    multi = next(q for q in fixture if q.kind == "multi")
    for bad in ((2, 0), (0, 0), 3, Decimal(1), (9,)):
        with pytest.raises(ValueError, match="is not an answer to a multi question"):
            session.grade("t", [multi], [bad], seed=0)


def test_a_scripted_unit_quiz_of_every_kind_passes_and_certifies(fixture, tmp_path):
    printed: list[str] = []
    by_id = {q.id: q for q in fixture}

    def input_fn(prompt):
        if prompt.startswith("Your name"):
            return "Ada"
        qid = re.findall(r"\[(u\d{2}-[qx]\d{2})\]", "\n".join(printed))[-1]
        return quiz_fixture.typed(by_id[qid])

    report = session.quiz(1, seed=3, out_dir=tmp_path, input_fn=input_fn, print_fn=printed.append, bank=fixture)
    assert report.passed and report.total == session.UNIT_QUESTIONS and report.certificate is not None
    assert {g.question.kind for g in report.items} >= {"multi", "numeric", "ordering"}
    assert 'for "select all that apply" the numbers of every right choice (all-or-nothing)' in " ".join(
        " ".join(printed).split()
    )


def test_a_partly_right_multi_answer_says_what_was_missed(fixture):
    q = next(q for q in fixture if q.kind == "multi")
    report = session.grade("t", [q], [q.key[:1]], seed=0)
    text = " ".join(session.feedback(report, width=200).split())
    assert not report.items[0].correct and "you missed " + ", ".join(f"{i + 1})" for i in q.key[1:]) in text


def test_numeric_keys_come_from_the_answer_code_at_once_or_from_a_search_without_one(fixture, monkeypatch):
    import time

    q = next(q for q in fixture if q.kind == "numeric")
    assert q.answer_code and bank.decode_answer(q.salt, q.id, q.answer_code) == bank.numeric_key(q.key, q.tolerance)
    salt, qid, key = "cd" * 8, "u01-q01", bank.numeric_key(Decimal(3549698), Decimal(0))
    coded = bank.Question(
        qid, 1, "s", "q?", (), "e", salt, bank.answer_hash(salt, qid, key), kind="numeric", tolerance=Decimal(0),
        answer_code=bank.answer_code(salt, qid, key),
    )  # fmt: skip
    start = time.perf_counter()
    assert coded.key == 3549698 and time.perf_counter() - start < 0.1
    searched = bank.Question(
        **{**coded.__dict__, "answer_code": None, "answer_hash": bank.answer_hash(salt, qid, "7850e0")}
    )
    assert searched.key == 7850  # a bank file written before answer_code: found by the search
