"""The certification quiz: the bank (schema, hashes, coverage, giveaways), the author tool, the
interactive session (scripted), the certificate and the `dlfund quiz` / `dlfund exam` commands.

Coverage rule: every unit of the manifest must have a bank file ``dlfund/course/quiz/bank/unitNN.yaml``
with at least ``MIN_PER_UNIT`` questions. Units still being written are listed in
``PENDING_UNITS``; their coverage test is a strict xfail, so it shows up in every run and starts
failing (XPASS) the day the unit's bank lands, which is the reminder to remove it from the set.
"""

from __future__ import annotations

import hashlib
import io
import re
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
import quiz_fixture
import yaml

from dlfund.course import cli, manifest
from dlfund.course.quiz import author, bank, certificate, session, verify
from dlfund.course.quiz import report as report_module
from dlfund.course.quiz.bank import BankError, load_bank, load_file

MIN_PER_UNIT = 6
PENDING_UNITS: set[int] = set()
"""Units whose questions are not written yet (their notebooks are being built). Empty it as units land."""


@pytest.fixture(scope="module")
def questions():
    return load_bank()


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    """The fixture bank of tests/quiz_fixture.py: every kind, both pools, 27 exam questions."""
    return quiz_fixture.bank(tmp_path_factory.mktemp("bank"))


def key_of(q) -> int:
    """The right choice of a single-answer question, found the way the brief allows a test to: by hashing
    every choice (other kinds: ``q.key``, tested in test_quiz_kinds.py)."""
    digests = [hashlib.sha256(f"{q.salt}:{q.id}:{c}".encode()).hexdigest() for c in q.choices]
    assert digests.count(q.answer_hash) == 1, f"{q.id}: {digests.count(q.answer_hash)} choices match its hash"
    return digests.index(q.answer_hash)


def norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


# --- the bank -------------------------------------------------------------------------------------


def test_bank_files_have_exactly_the_schema_fields_with_the_right_types():
    files = bank.bank_files()
    assert files, "no bank files shipped"
    for path in files:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert set(raw) == {"questions"}, path.name
        for q in raw["questions"]:
            where = f"{path.name} {q.get('id')}"
            assert list(q) == [f for f in bank.FIELDS if f in q], where
            assert set(bank.REQUIRED) <= set(q), where
            kind = q.get("kind", "single")
            assert isinstance(q["id"], str) and re.fullmatch(r"u\d{2}-[qx]\d{2,3}", q["id"]), where
            assert type(q["unit"]) is int and q["id"].startswith(f"u{q['unit']:02d}-"), where
            assert path.name == f"unit{q['unit']:02d}.yaml", where
            for field in ("section", "question", "explanation"):
                assert isinstance(q[field], str) and len(q[field].strip()) >= 10, f"{where}: {field}"
            if kind == "numeric":
                assert "choices" not in q, where
            else:
                low, high = bank.CHOICES[kind]
                assert isinstance(q["choices"], list) and low <= len(q["choices"]) <= high, where
                assert all(isinstance(c, str) and c.strip() for c in q["choices"]), where
            assert re.fullmatch(r"[0-9a-f]{16,}", q["salt"]), where
            assert re.fullmatch(r"[0-9a-f]{64}", q["answer_hash"]), where


def test_ids_are_unique_and_units_exist_in_the_manifest(questions):
    ids = Counter(q.id for q in questions)
    assert [i for i, n in ids.items() if n > 1] == []
    known = {u.number for u in manifest.UNITS}
    assert {q.unit for q in questions} <= known, "a bank file for a unit that is not in the manifest"


def test_salts_are_not_reused(questions):
    salts = Counter(q.salt for q in questions)
    assert [s for s, n in salts.items() if n > 1] == []


def test_each_section_names_a_notebook_or_exercise_of_its_unit(questions):
    for q in questions:
        unit = manifest.get_unit(q.unit)
        stems = {nb.name for nb in unit.notebooks} | {ex.name for ex in unit.exercises}
        assert q.section.split()[0] in stems, f"{q.id}: section {q.section!r} names no notebook of unit {q.unit}"


def test_exactly_one_choice_matches_each_hash(questions):
    for q in questions:
        if q.kind != "single":
            assert q.is_correct(q.key), q.id  # recovered by hashing every well-formed answer
            continue
        right = key_of(q)
        assert q.correct_index == right and q.is_correct(right)
        assert not any(q.is_correct(i) for i in range(len(q.choices)) if i != right)


def test_the_answer_key_is_not_stored_in_plain_text():
    for path in bank.bank_files():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*-?\s*answer\s*:", text, re.M), f"{path.name} holds a plain 'answer' field"
    # drafts (plain answers) stay outside the package
    assert sorted(p.name for p in bank.BANK_DIR.iterdir()) == sorted(p.name for p in bank.bank_files())


@pytest.mark.parametrize(
    "unit",
    [
        pytest.param(
            u.number,
            id=f"unit{u.number:02d}",
            marks=[
                pytest.mark.xfail(
                    reason=f"unit {u.number}'s quiz questions are not written yet "
                    "(PENDING_UNITS in tests/test_quiz.py)",
                    strict=True,
                )
            ]
            if u.number in PENDING_UNITS
            else [],
        )
        for u in manifest.UNITS
    ],
)
def test_every_manifest_unit_has_a_bank_with_enough_questions(unit):
    path = bank.BANK_DIR / f"unit{unit:02d}.yaml"
    assert path.exists(), f"unit {unit} has no quiz bank file {path.name}"
    assert len(load_file(path)) >= MIN_PER_UNIT


def test_every_bank_file_has_enough_questions():
    for path in bank.bank_files():
        assert len(load_file(path)) >= MIN_PER_UNIT, path.name


def test_pending_units_have_no_bank_yet():
    shipped = {bank.unit_of_file(p) for p in bank.bank_files()}
    assert PENDING_UNITS & shipped == set(), "remove units with a bank from PENDING_UNITS"


def test_no_duplicate_questions_or_choices(questions):
    texts = Counter(norm(q.question) for q in questions)
    assert [t for t, n in texts.items() if n > 1] == []
    for q in questions:
        assert len({norm(c) for c in q.choices}) == len(q.choices), q.id


def test_no_question_gives_its_answer_away(questions):
    for unit in sorted({q.unit for q in questions}):
        qs = [q for q in questions if q.unit == unit and q.kind == "single"]
        for q in qs:
            right = q.choices[key_of(q)]
            assert " ".join(right.lower().split()) not in " ".join(q.question.lower().split()), q.id
            assert not re.search(r"all of the above|none of the above", " ".join(q.choices), re.I), q.id
        positions = Counter(key_of(q) for q in qs)
        assert len(positions) > 1, f"unit {unit}: every right answer is in the same position"
        assert max(positions.values()) <= len(qs) / 2, f"unit {unit}: right answers bunch in one position"
        longest = [
            q.id
            for q in qs
            if all(len(q.choices[key_of(q)]) > len(c) for i, c in enumerate(q.choices) if i != key_of(q))
        ]
        assert len(longest) <= len(qs) / 2, f"unit {unit}: the right answer is the longest in {longest}"


def write_bank(tmp_path: Path, name: str, entries: list[dict]) -> Path:
    folder = tmp_path / "bank"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump({"questions": entries}, sort_keys=False), encoding="utf-8")
    return path


def entry(qid="u01-q01", unit=1, right=0, **changes) -> dict:
    choices = ["alpha answer", "beta answer", "gamma answer"]
    salt = "ab" * 16
    e = {
        "id": qid,
        "unit": unit,
        "section": "02-perceptron-python §3",
        "question": "Which one is right here?",
        "choices": choices,
        "explanation": "Because it is.",
        "salt": salt,
        "answer_hash": bank.answer_hash(salt, qid, choices[right]),
    }
    e.update(changes)
    return e


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"explanation": None}, "field 'explanation' must be a non-empty string"),
        ({"unit": "1"}, "field 'unit' must be an integer"),
        ({"unit": 2}, "field 'unit' is 2, but the file is for unit 1"),
        ({"id": "q1"}, "field 'id' must look like 'u01-q01'"),
        ({"choices": ["only", "two"]}, "field 'choices' of a single question must be a list of 3 to 5 strings"),
        ({"choices": ["same", "same", "other"]}, "field 'choices' has the same text twice"),
        ({"salt": "xyz"}, "field 'salt' must be at least 16 lowercase hex digits"),
        ({"answer_hash": "0" * 64}, "field 'answer_hash' matches 0 choices"),
        ({"explaination": "typo"}, "unknown field(s) explaination"),
    ],
)
def test_bank_errors_name_the_file_the_question_and_the_field(tmp_path, changes, message):
    path = write_bank(tmp_path, "unit01.yaml", [entry(), entry("u01-q02", **changes)])
    with pytest.raises(BankError) as err:
        load_bank(path.parent)
    assert "unit01.yaml: question 2" in str(err.value) and message in str(err.value)


def test_bank_errors_for_missing_fields_bad_names_and_duplicate_ids(tmp_path):
    e = entry()
    del e["salt"]
    with pytest.raises(BankError, match=r"unit01.yaml: question 1 \(u01-q01\): missing field\(s\) salt"):
        load_file(write_bank(tmp_path, "unit01.yaml", [e]))
    with pytest.raises(BankError, match="bank files are named unitNN.yaml"):
        load_file(write_bank(tmp_path, "perceptron.yaml", [entry()]))
    write_bank(tmp_path, "unit01.yaml", [entry()])
    write_bank(tmp_path, "unit02.yaml", [entry("u01-q01", unit=2)])
    with pytest.raises(BankError, match="field 'id' must look like 'u02-q01'"):
        load_bank(tmp_path / "bank")
    (tmp_path / "bank" / "unit03.yaml").write_text("questions: [unclosed", encoding="utf-8")
    with pytest.raises(BankError, match="unit03.yaml: not valid YAML"):
        load_file(tmp_path / "bank" / "unit03.yaml")


# --- the author tool ------------------------------------------------------------------------------

DRAFT = {
    "questions": [
        {
            "id": "u09-q01",
            "unit": 9,
            "section": "01-attention §1",
            "question": "What does the causal mask hide?",
            "choices": ["future positions", "past positions", "padding only"],
            "answer": 1,
            "explanation": "Position t may only look at positions up to t.",
        },
        {
            "id": "u09-q02",
            "unit": 9,
            "section": "01-attention §2",
            "question": "Why divide the scores by sqrt(d)?",
            "choices": [
                "to make them integers",
                "to keep their variance near 1 so softmax does not saturate",
                "to speed up the matmul",
            ],
            "answer": 2,
            "explanation": "Dot products of d-dimensional vectors have variance proportional to d.",
        },
    ]
}


def test_author_round_trips_a_draft(tmp_path, capsys):
    draft = tmp_path / "draft.yaml"
    draft.write_text(yaml.safe_dump(DRAFT, sort_keys=False), encoding="utf-8")
    out = tmp_path / "bank" / "unit09.yaml"
    assert author.main([str(draft), "-o", str(out)]) == 0
    assert "2 questions for unit 9" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert "answer:" not in text and "future positions" in text
    built = load_file(out)
    assert [q.correct_index + 1 for q in built] == [q["answer"] for q in DRAFT["questions"]]
    # back to a draft (answers recovered from the hashes, salts kept), and forward again: identical file
    recovered = yaml.safe_load(author.to_draft(out))
    assert [q["answer"] for q in recovered["questions"]] == [1, 2]
    assert [q["salt"] for q in recovered["questions"]] == [q.salt for q in built]
    draft.write_text(yaml.safe_dump(recovered, sort_keys=False), encoding="utf-8")
    again = tmp_path / "again.yaml"
    assert author.main([str(draft), "-o", str(again)]) == 0
    assert again.read_text(encoding="utf-8") == text


def test_author_refuses_bad_drafts(tmp_path, capsys):
    bad = {"questions": [dict(DRAFT["questions"][0], answer=4)]}
    draft = tmp_path / "draft.yaml"
    draft.write_text(yaml.safe_dump(bad), encoding="utf-8")
    assert author.main([str(draft), "-o", str(tmp_path / "x.yaml")]) == 1
    assert "field 'answer' must be the number of the right choice, 1 to 3" in capsys.readouterr().err
    mixed = {"questions": [DRAFT["questions"][0], dict(DRAFT["questions"][1], unit=8, id="u08-q02")]}
    draft.write_text(yaml.safe_dump(mixed), encoding="utf-8")
    assert author.main([str(draft), "-o", str(tmp_path / "x.yaml")]) == 1
    assert "a draft holds the questions of one unit" in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()


def test_author_warns_about_giveaways():
    qs = [
        bank.Question(
            f"u09-q0{i}",
            9,
            "s",
            "q?",
            ("a much longer right answer", "b", "c"),
            "e",
            "ab" * 8,
            bank.answer_hash("ab" * 8, f"u09-q0{i}", "a much longer right answer"),
        )
        for i in (1, 2)
    ]
    warnings = author.lint(qs)
    assert any("every right answer is choice 1" in w for w in warnings)
    assert any("the longest choice in 2 of 2" in w for w in warnings)


# --- drawing and grading --------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [("1", 0), (" 3 \n", 2), ("4", 3)])
def test_parse_answer_accepts_choice_numbers(text, expected):
    assert session.parse_answer(text, 4) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no answer given"),
        ("   ", "no answer given"),
        ("0", "0 is not one of the choices"),
        ("99", "99 is not one"),
        ("-1", "-1 is not one"),
        ("abc", "'abc' is not a number"),
        ("2.5", "'2.5' is not a number"),
    ],
)
def test_parse_answer_explains_bad_input(text, message):
    with pytest.raises(session.InvalidAnswer, match=re.escape(message)) as err:
        session.parse_answer(text, 4)
    assert "1 to 4" in str(err.value)


def test_exam_draw_is_seeded_covers_every_unit_and_is_proportional(fixture):
    questions = [q for q in fixture if q.pool == "exam"]
    drawn = session.draw_exam(fixture, 25, seed=11)
    assert len(drawn) == 25 == len({q.id for q in drawn}) and all(q.pool == "exam" for q in drawn)
    assert {q.unit for q in drawn} == {q.unit for q in questions}
    assert [q.id for q in session.draw_exam(fixture, 25, seed=11)] == [q.id for q in drawn]
    assert [q.id for q in session.draw_exam(fixture, 25, seed=12)] != [q.id for q in drawn]
    assert session.exam_quota({1: 10, 2: 10, 3: 40}, 12) == {1: 2, 2: 2, 3: 8}
    assert session.exam_quota({1: 6, 2: 6, 3: 6, 4: 6, 5: 6}, 25) == {1: 5, 2: 5, 3: 5, 4: 5, 5: 5}
    assert session.exam_quota({1: 1, 2: 30}, 5) == {1: 1, 2: 4}
    assert sum(session.exam_quota({u: 6 + u for u in range(1, 15)}, 25).values()) == 25
    assert len(session.draw_exam(fixture, 500, seed=1)) == len(questions)  # fewer than asked: all
    few = session.draw_exam(fixture, 2, seed=1)  # fewer than units: one each from two units
    assert len(few) == 2 and len({q.unit for q in few}) == 2


def test_without_an_exam_pool_the_exam_fails_with_a_clear_message(fixture, monkeypatch, capsys):
    unit_only = [q for q in fixture if q.pool == "unit"]
    with pytest.raises(BankError, match=r"no exam-pool questions yet \(pool: exam, ids uNN-xMM\)"):
        session.draw_exam(unit_only, 25, seed=1)
    with pytest.raises(BankError, match="the final exam cannot be drawn"):
        session.exam(seed=1, bank=unit_only, input_fn=lambda p: "1", print_fn=lambda *a: None)
    monkeypatch.setattr(session, "load_bank", lambda: unit_only)
    code, out, err = run_cli(monkeypatch, capsys, "1\n", "exam", "--seed", "1")
    assert code == 2 and "no exam-pool questions yet" in err and "Question 1" not in out


def test_unit_quiz_draws_a_seeded_subset_of_the_unit_pool_spread_over_sections(fixture, questions):
    pool = [q for q in fixture if q.unit == 2 and q.pool == "unit"]
    assert len(pool) == 12 > session.UNIT_QUESTIONS
    one = session.select_unit(fixture, 2, seed=5)
    assert len(one) == session.UNIT_QUESTIONS == len({q.id for q in one}) and {q.id for q in one} <= {
        q.id for q in pool
    }
    assert one == session.select_unit(fixture, 2, seed=5)
    assert sorted(Counter(session.section_of(q) for q in one).values()) == [3, 3, 4]  # spread over the 3 sections
    draws = {tuple(sorted(q.id for q in session.select_unit(fixture, 2, seed=s))) for s in range(20)}
    assert len(draws) > 5, "retakes draw different questions"
    for unit in {q.unit for q in questions}:  # the shipped bank: never an exam question, all when fewer
        drawn = session.select_unit(questions, unit, seed=1)
        in_pool = [q for q in questions if q.unit == unit and q.pool == "unit"]
        assert len(drawn) == min(session.UNIT_QUESTIONS, len(in_pool)) and all(q.pool == "unit" for q in drawn)
    with pytest.raises(KeyError, match="no questions for unit 99"):
        session.select_unit(questions, 99, seed=5)


def test_grading_counts_unanswered_as_not_correct(questions):
    qs = [q for q in questions if q.unit == 1 and q.kind == "single"][:5]
    report = session.grade("t", qs, [key_of(q) for q in qs[:4]], seed=0)
    assert (report.correct, report.answered, report.total, report.complete, report.passed) == (4, 4, 5, False, False)
    assert report.exit_code == report_module.EXIT_INCOMPLETE
    report = session.grade("t", qs, [key_of(q) for q in qs[:4]] + [(key_of(qs[4]) + 1) % 3], seed=0)
    assert report.score == report_module.PASS_MARK and report.passed and report.exit_code == 0
    assert "4/5 correct" in repr(report)


# --- the interactive loop, scripted ---------------------------------------------------------------


class Learner:
    """A scripted learner: answers each question through ``input_fn`` by reading the question id
    from what was printed. ``policy(question, n)`` returns the text typed (or raises EOFError)."""

    def __init__(self, bank_questions, policy):
        self.by_id = {q.id: q for q in bank_questions}
        self.policy = policy
        self.printed: list[str] = []
        self.prompts: list[str] = []
        self.asked: list[str] = []  # question ids in the order they were asked

    def print_fn(self, *args):
        self.printed.append(" ".join(map(str, args)))

    def input_fn(self, prompt):
        self.prompts.append(prompt)
        if prompt.startswith("Your name"):
            raise EOFError
        qid = re.findall(r"\[(u\d{2}-[qx]\d{2,3})\]", "\n".join(self.printed))[-1]
        if qid not in self.asked:
            self.asked.append(qid)
        return self.policy(self.by_id[qid], len(self.asked))  # n: the question's number in this run

    @property
    def output(self) -> str:
        return "\n".join(self.printed)


def right(q, n):
    return quiz_fixture.typed(q)


def wrong(q, n):
    return quiz_fixture.typed_wrong(q)


def test_scripted_exam_that_passes_writes_a_verified_certificate(fixture, tmp_path):
    learner = Learner(fixture, right)
    report = session.exam(
        name="Ada Lovelace",
        seed=3,
        out_dir=tmp_path,
        input_fn=learner.input_fn,
        print_fn=learner.print_fn,
        bank=fixture,
    )
    assert report.total == 25 and report.correct == 25 and report.passed and report.exit_code == 0
    assert report.certificate is not None and report.certificate.parent == tmp_path
    assert "Score: 25 of 25 correct (100%)" in learner.output and "PASSED" in learner.output
    assert "self-assessment, not an accredited qualification" in learner.output
    assert (
        learner.output.count("    right answer:") == 0
        and len(re.findall(r"^ ?\d+\. u\d{2}-x\d{2}  right  \(", learner.output, re.M)) == 25
    )
    data = certificate.verify_certificate(report.certificate)
    assert data["name"] == "Ada Lovelace" and data["question_ids"] == report.question_ids
    assert (data["correct"], data["total"], data["pass_mark_percent"], data["seed"]) == (25, 25, 80, 3)


def test_scripted_exam_that_fails_gives_feedback_and_no_certificate(fixture, tmp_path):
    learner = Learner(fixture, lambda q, n: right(q, n) if n <= 19 else wrong(q, n))  # 19/25 = 76%
    report = session.exam(
        name="Ada", seed=4, out_dir=tmp_path, input_fn=learner.input_fn, print_fn=learner.print_fn, bank=fixture
    )
    assert (report.correct, report.total, report.passed, report.exit_code) == (19, 25, False, report_module.EXIT_FAILED)
    assert report.certificate is None and list(tmp_path.iterdir()) == []
    out = learner.output
    assert "Score: 19 of 25 correct (76%); pass mark 80%: not passed" in out
    assert out.count("WRONG") == 6 and out.count("    right answer:") == 6
    failed = [g for g in report.items if not g.correct]
    for g in failed:  # the right answer and the explanation are shown for each wrong one
        q = g.question
        assert " ".join(f"right answer: {session.right_answer(q)}".split()) in " ".join(out.split())
        assert " ".join(q.explanation.split()[:6]) in " ".join(out.split())
        assert f"review: {q.section}" in " ".join(out.split())  # fitted to the terminal's width


def test_exactly_the_pass_mark_passes(fixture, tmp_path):
    learner = Learner(fixture, lambda q, n: right(q, n) if n <= 20 else wrong(q, n))  # 20/25 = 80%
    report = session.exam(
        name="Ada", seed=5, out_dir=tmp_path, input_fn=learner.input_fn, print_fn=learner.print_fn, bank=fixture
    )
    assert report.correct == 20 and report.passed and report.certificate.exists()


def test_bad_inputs_are_re_asked_and_eof_mid_exam_stops_cleanly(fixture, tmp_path):
    script = iter(["", "0", "99", "abc", "2.5"])  # typed at the first single-answer question, each re-asked

    def policy(q, n):
        if n > 7:
            raise EOFError  # Ctrl-D at question 8
        return next(script, right(q, n)) if q.kind == "single" else right(q, n)

    learner = Learner(fixture, policy)
    report = session.exam(
        name="Ada", seed=6, out_dir=tmp_path, input_fn=learner.input_fn, print_fn=learner.print_fn, bank=fixture
    )
    out = learner.output
    for message in (
        "no answer given",
        "0 is not one of the choices",
        "99 is not one of the choices",
        "'abc' is not a number",
        "'2.5' is not a number",
    ):
        assert message in out
    assert report.answered == 7 and report.correct == 7 and not report.complete
    assert report.exit_code == report_module.EXIT_INCOMPLETE and not report.passed
    assert "Stopped (end of input) after 7 of 25 questions" in out
    assert "INCOMPLETE, 7 of 25 answered (7 of those right)" in " ".join(out.split())  # wrapped to the terminal
    assert "not answered (18)" in out and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "error, why",
    [
        (KeyboardInterrupt, "interrupted"),  # Ctrl-C
        (NotImplementedError, "this frontend cannot read answers"),
    ],
)  # headless kernel
def test_ctrl_c_or_no_input_stops_cleanly_too(questions, error, why):
    def policy(q, n):
        if n > 2:
            raise error
        return right(q, n)

    learner = Learner(questions, policy)
    report = session.quiz(1, seed=1, input_fn=learner.input_fn, print_fn=learner.print_fn, bank=questions)
    assert report.answered == 2 and report.exit_code == report_module.EXIT_INCOMPLETE
    assert f"Stopped ({why}) after 2 of" in learner.output


def test_a_pass_without_a_name_asks_for_one(questions, tmp_path):
    unit1 = [q for q in questions if q.unit == 1]
    typed = iter([quiz_fixture.typed(q) for q in session.select_unit(unit1, 1, seed=2)] + ["  Grace   Hopper "])
    lines: list[str] = []
    report = session.quiz(
        1,
        seed=2,
        out_dir=tmp_path,
        input_fn=lambda prompt: next(typed),
        print_fn=lambda *a: lines.append(" ".join(map(str, a))),
        bank=questions,
    )
    assert report.passed and certificate.verify_certificate(report.certificate)["name"] == "Grace Hopper"
    # EOF instead of a name: a pass, but no certificate, and a message saying why
    learner = Learner(questions, right)
    report = session.quiz(
        1, seed=2, out_dir=tmp_path / "none", input_fn=learner.input_fn, print_fn=learner.print_fn, bank=questions
    )
    assert report.passed and report.certificate is None
    assert "No certificate written: no name given" in learner.output


def test_quiz_from_a_notebook_uses_input(questions, monkeypatch, tmp_path):
    from dlfund.course.quiz import quiz

    order = session.select_unit(questions, 4, seed=9)
    typed = iter(quiz_fixture.typed(q) for q in order)
    monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
    report = quiz(unit=4, name="Notebook Learner", seed=9, out_dir=tmp_path, print_fn=lambda *a: None)
    assert report.passed and report.total == len(order) and report.certificate.exists()
    assert quiz.__module__ == "dlfund.course.quiz.session"


# --- the certificate ------------------------------------------------------------------------------


def passed_report(questions, n=6):
    qs = [q for q in questions if q.unit == 3][:n]
    return session.grade("Unit 3 quiz: Backpropagation and autograd", qs, [q.key for q in qs], seed=42)


def test_certificate_shows_name_date_score_ids_and_checksum(questions, tmp_path):
    report = passed_report(questions)
    when = datetime(2026, 5, 17, 9, 30, tzinfo=timezone.utc)
    path = certificate.write_certificate(report, "Ada Lovelace", tmp_path, now=when)
    text = path.read_text(encoding="utf-8")
    data = certificate.verify_certificate(path)
    assert path.name.startswith("ada-lovelace-unit-3-quiz-") and path.suffix == ".html"
    assert data["date"] == when.astimezone().date().isoformat() and data["date"] in text
    for expected in (
        "Ada Lovelace",
        "Unit 3 quiz: Backpropagation and autograd",
        "6 of 6 correct (100%)",
        "Pass mark",
        "80%",
        data["checksum"],
        "self-assessment, not an accredited qualification",
    ):
        assert expected in text
    assert ", ".join(report.question_ids) in text
    assert data["checksum"] == certificate.checksum({k: v for k, v in data.items() if k != "checksum"})
    assert not re.search(r"(src|href)=", text), "the certificate must be self-contained"
    assert verify.main([str(path)]) == 0


@pytest.mark.parametrize(
    "edit",
    [
        ("6 of 6 correct (100%)", "9 of 6 correct (150%)"),  # the visible score
        ('"correct": 6', '"correct": 5'),  # the embedded data
        (">Ada Lovelace<", ">Charles Babbage<"),  # the visible name
        ('"seed": 42', '"seed": 43'),  # a field only in the data
    ],
)
def test_tampering_is_detected(questions, tmp_path, edit):
    path = certificate.write_certificate(passed_report(questions), "Ada Lovelace", tmp_path)
    text = path.read_text(encoding="utf-8")
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1]), encoding="utf-8")
    with pytest.raises(certificate.CertificateError):
        certificate.verify_certificate(path)
    assert verify.main([str(path)]) == 1


def test_certificate_escapes_the_name(questions, tmp_path):
    name = '<script>alert("x")</script> & Co'
    path = certificate.write_certificate(passed_report(questions), name, tmp_path)
    text = path.read_text(encoding="utf-8")
    assert "<script>alert" not in text and "</script> &" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in text
    assert text.count("<script") == 1  # only the embedded data block (type application/json)
    assert certificate.verify_certificate(path)["name"] == name
    assert re.fullmatch(r"script-alert-x-script-co-unit-3-quiz-[\d-]+-[0-9a-f]{8}\.html", path.name)


def test_no_certificate_for_a_failed_attempt_or_without_a_name(questions, tmp_path):
    qs = [q for q in questions if q.unit == 3][:5]
    failed = session.grade("t", qs, [q.key for q in qs[:3]] + [None, None], seed=1)
    with pytest.raises(ValueError, match="was not passed"):
        certificate.write_certificate(failed, "Ada", tmp_path)
    with pytest.raises(ValueError, match="no name given"):
        certificate.write_certificate(passed_report(questions), " \t\x00 ", tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- the command line -----------------------------------------------------------------------------


def run_cli(monkeypatch, capsys, stdin: str, *argv):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_quiz_passes_and_writes_a_certificate(questions, monkeypatch, capsys, tmp_path):
    answers = "".join(f"{quiz_fixture.typed(q)}\n" for q in session.select_unit(questions, 2, seed=8))
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "abc\n" + answers,
        "quiz",
        "--unit",
        "tensors",
        "--name",
        "Test",
        "--seed",
        "8",
        "--out",
        str(tmp_path),
    )
    assert code == 0, out + err
    assert "'abc' is not a number" in out and "PASSED" in out
    (cert,) = tmp_path.glob("*.html")
    assert f"Certificate (self-assessment, not an accredited qualification): {cert}" in " ".join(out.split())
    assert certificate.verify_certificate(cert)["name"] == "Test"


def test_cli_exam_that_fails_and_one_cut_short(fixture, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(session, "load_bank", lambda: fixture)
    drawn = session.draw_exam(fixture, 5, seed=2)
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "".join(f"{wrong(q, 0)}\n" for q in drawn),
        "exam",
        "--questions",
        "5",
        "--seed",
        "2",
        "--name",
        "T",
        "--out",
        str(tmp_path),
    )
    assert code == 1 and "Score: 0 of 5 correct (0%)" in out and "not passed" in out
    code, out, err = run_cli(monkeypatch, capsys, "1\n", "exam", "--seed", "2", "--out", str(tmp_path))
    assert code == 3 and "Stopped (end of input) after 1 of 25 questions" in out and "Traceback" not in out + err
    assert list(tmp_path.iterdir()) == []


def test_cli_says_when_the_bank_has_fewer_questions_than_asked(fixture, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(session, "load_bank", lambda: fixture)
    code, out, _ = run_cli(monkeypatch, capsys, "", "exam", "--questions", "1000", "--out", str(tmp_path))
    exam = [q for q in fixture if q.pool == "exam"]
    assert code == 3 and f"exam pool holds only {len(exam)} questions, fewer than the 1000 asked for" in " ".join(
        out.split()
    )


def test_cli_usage_errors(monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "", "quiz", "--unit", "99")
    assert code == 2 and "no unit '99'" in err
    code, _, err = run_cli(monkeypatch, capsys, "", "exam", "--questions", "0")
    assert code == 2 and "--questions must be at least 1" in err
    missing = next(
        (u.number for u in manifest.UNITS if not (bank.BANK_DIR / f"unit{u.number:02d}.yaml").exists()), None
    )
    if missing is not None:
        code, _, err = run_cli(monkeypatch, capsys, "", "quiz", "--unit", str(missing))
        assert code == 2 and f"no questions for unit {missing}" in err
    with pytest.raises(SystemExit):
        cli.main(["quiz"])  # --unit is required
    assert "--unit" in capsys.readouterr().err


def test_cli_help_lists_the_quiz_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "quiz" in out and "exam" in out and "self-assessment" in out
