"""The certificate holds as far as a self-assessment can, and a quiz never ends in a traceback.

verify: every forged or malformed certificate below FAILs with a reason (and the others are still checked);
genuine ones pass, with the question draw redone from the seed. Session: a fuzz of scripted learners
(random answers to every kind of question, end of input, Ctrl-C, undecodable bytes, bad names, at random points)
never raises, and what is printed fits the terminal's width. All on the fixture bank of tests/quiz_fixture.py
(every kind, both pools), which the quiz and verify load here in place of the shipped bank.
"""

from __future__ import annotations

import io
import json
import random
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import quiz_fixture

from dlfund.course import cli, entry
from dlfund.course.quiz import certificate, session, verify
from dlfund.course.quiz.bank import fingerprint


@pytest.fixture(scope="module")
def questions(tmp_path_factory):
    return quiz_fixture.bank(tmp_path_factory.mktemp("bank"))


@pytest.fixture(autouse=True)
def fixture_bank(questions, monkeypatch):
    """The quiz, the exam and verify load the fixture bank."""
    monkeypatch.setattr(session, "load_bank", lambda: questions)
    monkeypatch.setattr(verify, "load_bank", lambda: questions)


class Script:
    """A learner who answers every question right (or as ``answer`` says) and types ``name`` if asked."""

    def __init__(self, questions, answer=None, names=("Ada Lovelace",)):
        self.by_id = {q.id: q for q in questions}
        self.printed: list[str] = []
        self.answer = answer or quiz_fixture.typed
        self.names = list(names)

    def print_fn(self, *args):
        self.printed.append(" ".join(map(str, args)))

    def input_fn(self, prompt):
        if prompt.startswith("Your name"):
            return self.names.pop(0) if self.names else ""
        qid = re.findall(r"\[(u\d{2}-[qx]\d{2,3})\]", "\n".join(self.printed))[-1]
        return self.answer(self.by_id[qid])


def genuine_exam(questions, tmp_path, seed=3) -> Path:
    learner = Script(questions)
    report = session.exam(seed=seed, out_dir=tmp_path, input_fn=learner.input_fn, print_fn=learner.print_fn)
    assert report.passed and report.certificate is not None
    return report.certificate


def embedded(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    body = text.split('<script type="application/json" id="dlfund-certificate">', 1)[1].split("</script>", 1)[0]
    return json.loads(body)


def forge(path: Path, out: Path, **changes) -> Path:
    """What a cheater with the code does: change fields, recompute the checksum, render the page again."""
    data = embedded(path)
    data.pop("checksum")
    data.update(changes)
    out.write_text(certificate.render(data, certificate.checksum(data)), encoding="utf-8")
    return out


def test_genuine_certificates_verify_with_their_draw_redone(questions, tmp_path, capsys):
    exam_cert = genuine_exam(questions, tmp_path / "exam")
    learner = Script(questions)
    unit_report = session.quiz(
        2, seed=11, out_dir=tmp_path / "unit", input_fn=learner.input_fn, print_fn=learner.print_fn
    )
    data = certificate.verify_certificate(exam_cert)
    assert (data["format"], data["kind"], data["bank"]) == (2, "exam", fingerprint(questions))
    assert verify.check_draw(data, questions).startswith("the question draw of seed 3 re-checked")
    assert "re-checked" in verify.check_draw(certificate.verify_certificate(unit_report.certificate), questions)
    capsys.readouterr()
    assert verify.main([str(exam_cert), str(unit_report.certificate)]) == 0
    out = capsys.readouterr().out
    assert out.count("OK   ") == 2 and out.count("re-checked against this bank edition") == 2
    assert "consistent" in out and "cannot tell who answered" in out


def test_a_certificate_of_another_bank_edition_or_format_1_still_verifies(questions, tmp_path):
    cert = genuine_exam(questions, tmp_path)
    smaller = [q for q in questions if q.id != questions[0].id]
    assert verify.check_draw(certificate.verify_certificate(cert), smaller).startswith("drawn from another edition")
    old = embedded(cert)
    old.pop("checksum")
    old = {k: v for k, v in old.items() if k in certificate.FIELDS_V1} | {"format": 1}
    legacy = tmp_path / "legacy.html"
    legacy.write_text(certificate.render(old, certificate.checksum(old)), encoding="utf-8")
    note = verify.check_draw(certificate.verify_certificate(legacy), questions)
    assert "not re-checked" in note


def patch_data(path: Path, out: Path, **changes) -> Path:
    """Fields no page can be rendered from (a score as text, no questions): only the embedded data change."""
    text = path.read_text(encoding="utf-8")
    data = embedded(path)
    data.pop("checksum")
    data.update(changes)
    data["checksum"] = certificate.checksum(data)
    start = text.index('id="dlfund-certificate">') + len('id="dlfund-certificate">')
    end = text.index("</script>", start)
    out.write_text(text[:start] + "\n" + json.dumps(data) + "\n" + text[end:], encoding="utf-8")
    return out


def forgeries(questions, cert: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    """Name -> (file, what the FAIL must say)."""
    data = embedded(cert)
    text = cert.read_text(encoding="utf-8")
    other = next(q.id for q in questions if q.id not in data["question_ids"])
    cases: dict[str, tuple[Path, str]] = {
        "3 of 25, checksum recomputed": (forge(cert, tmp / "a.html", correct=3), "below the pass mark"),
        "30 of 25": (forge(cert, tmp / "b.html", correct=30), "between 0 and the total"),
        "a question that was not drawn": (
            forge(cert, tmp / "c.html", question_ids=[other, *data["question_ids"][1:]]),
            "not the draw of seed",
        ),
        "ids that do not exist": (
            forge(cert, tmp / "d.html", question_ids=[f"u99-q{i:02d}" for i in range(25)]),
            "not the draw of seed",
        ),
        "another seed": (forge(cert, tmp / "e.html", seed=data["seed"] + 1), "not the draw of seed"),
        "backdated day": (forge(cert, tmp / "f.html", date="2019-01-01"), "is not the day of the issue time"),
        "issued in the future": (
            forge(
                cert,
                tmp / "g.html",
                issued=(datetime.now(timezone.utc) + timedelta(days=30)).isoformat(timespec="seconds"),
                date=(datetime.now(timezone.utc) + timedelta(days=30)).date().isoformat(),
            ),
            "issued in the future",
        ),
        "pass mark lowered": (forge(cert, tmp / "h.html", pass_mark_percent=10), "the pass mark is 80%"),
        "a short exam": (
            forge(cert, tmp / "i.html", total=20, correct=20, question_ids=data["question_ids"][:20]),
            "exam certificate needs 25 questions",
        ),
        "score given as text": (patch_data(cert, tmp / "j.html", correct="25"), "must be a whole number"),
        "no questions": (
            patch_data(cert, tmp / "k.html", total=0, correct=0, question_ids=[]),
            "at least one question",
        ),
        "unknown format": (forge(cert, tmp / "l.html", format=99), "unknown certificate format"),
        "another quiz's title": (forge(cert, tmp / "m.html", title="Unit 3 quiz: X"), "titled 'Final exam'"),
    }
    hidden = tmp / "n.html"
    hidden.write_text(text.replace("</main>", '<p style="display:none">with distinction</p></main>'), "utf-8")
    cases["hidden added text"] = (hidden, "the page differs")
    visible_score = tmp / "o.html"
    visible_score.write_text(text.replace("25 of 25 correct", "26 of 25 correct"), "utf-8")
    cases["visible score edited"] = (visible_score, "the visible score says")
    binary = tmp / "p.html"
    binary.write_bytes(b"\xff\xfe<html>\x80\x81")
    cases["not UTF-8"] = (binary, "not UTF-8 text")
    empty = tmp / "q.html"
    empty.write_text("", "utf-8")
    cases["empty file"] = (empty, "missing or not JSON")
    listed = tmp / "r.html"
    listed.write_text('<script type="application/json" id="dlfund-certificate">[1, 2]</script>', "utf-8")
    cases["data not a mapping"] = (listed, "unknown certificate format")
    twice = tmp / "s.html"
    twice.write_text(text.replace('data-field="seed"', 'data-field="name"'), "utf-8")
    cases["a field twice"] = (twice, "appears twice")
    cases["a folder"] = (tmp, "cannot be read")
    cases["no such file"] = (tmp / "missing.html", "cannot be read")
    return cases


def test_forged_and_malformed_certificates_fail_each_with_its_reason(questions, tmp_path, capsys):
    cert = genuine_exam(questions, tmp_path / "genuine")
    cases = forgeries(questions, cert, tmp_path)
    assert len(cases) >= 10
    for name, (path, reason) in cases.items():
        with pytest.raises(certificate.CertificateError, match=re.escape(reason)):
            data = certificate.verify_certificate(path)
            verify.check_draw(data, questions)
        assert name  # the case's name shows in the parametrised failure above
    capsys.readouterr()
    paths = [str(p) for p, _ in cases.values()]
    assert verify.main([*paths, str(cert)]) == 1, "one FAIL makes the exit status 1"
    out = capsys.readouterr().out
    assert out.count("FAIL ") == len(cases) and out.count("OK   ") == 1, "every file is checked, the good one too"
    assert "Traceback" not in out


# --- the session ---------------------------------------------------------------------------------------


FUZZ = [
    *["", " ", "0", "-1", "7", "99", "abc", "1.5", "２", "\ufffd", "1 2", "\x00", "1", "2", "3", "4"],
    *["1,3", "3 1 4 2", "2,4,1,3", "1 1", "1,,3", " , ", "4 3 2 1", "1 2 3 4 5 6", "3 1 4", "1;3", "1-3"],
    *["7850", "7,850", "7,85", "0,5", "1e-3", "1E+3", "-0.5", ".5", "5.", "+3", "1e", ".", "-", "e5", "nan"],
    *["inf", "-Infinity", "1e999999999", "1e-999999999", "9" * 40, "0x10", "1_000", "7850 parameters", "½"],
    *["٣", "1 000", "12,3456", "1,234,567.5", "0.693 nats", "NaN parameters", "1e15", "-1e16", "１,２"],
]
"""Typed answers of every shape: right and wrong ones for each kind, and malformed ones."""


def random_answer(rng: random.Random) -> str:
    """A well-formed answer to some kind: a choice, a few choices, an order or a number."""
    kind = rng.choice(["single", "multi", "ordering", "numeric"])
    if kind == "single":
        return str(rng.randrange(1, 6))
    if kind == "numeric":
        return rng.choice([str(rng.randrange(-10, 10000)), f"{rng.uniform(-1, 1):.3f}", f"{rng.random():.1e}"])
    n = rng.randrange(2, 7)
    picks = rng.sample(range(1, n + 1), n if kind == "ordering" else rng.randrange(1, n + 1))
    return rng.choice([" ", ",", ", "]).join(map(str, picks))


def test_a_fuzz_of_learners_never_raises_and_fits_the_terminal(questions, tmp_path, monkeypatch):
    monkeypatch.setattr(session.shutil, "get_terminal_size", lambda fallback: type("S", (), {"columns": 72})())
    width = 72
    small = [q for q in questions if q.unit in (2, 3)]
    by_id = {q.id: q for q in small}
    pool = [*FUZZ, "x" * 300]
    stops = [EOFError, KeyboardInterrupt, NotImplementedError]
    names = ["", "Ada", "A" * 140, "\x00\x01", "  Grace   Hopper ", "Ω" * 99, "x" * 100, "y" * 101]
    written = 0
    right_kinds: set[str] = set()
    typed_count = 0
    for trial in range(1000):
        rng = random.Random(trial)
        stop_at = rng.choice([None, None, rng.randrange(1, 40)])
        calls = {"n": 0}
        name_pool = rng.sample(names, 4)
        good = rng.random() < 0.5
        printed: list[str] = []

        def input_fn(prompt, rng=rng, stop_at=stop_at, calls=calls, name_pool=name_pool, good=good, printed=printed):
            calls["n"] += 1
            if stop_at is not None and calls["n"] >= stop_at:
                raise rng.choice(stops)
            if rng.random() < 0.03:
                raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
            if prompt.startswith("Your name"):
                return name_pool.pop() if name_pool else ""
            if rng.random() < 0.3:
                return rng.choice(pool)
            if good:  # a learner who knows the answers (a few slips), so that some pass and get a certificate
                qid = re.findall(r"\[(u\d{2}-[qx]\d{2,3})\]", "\n".join(printed))[-1]
                return quiz_fixture.typed(by_id[qid])
            return random_answer(rng)

        kind = rng.choice(["quiz", "exam"])
        out = tmp_path / f"t{trial}"
        if kind == "quiz":
            report = session.quiz(
                rng.choice([2, 3]), seed=trial, out_dir=out, input_fn=input_fn, print_fn=printed.append, bank=small
            )
        else:
            report = session.exam(
                seed=trial, questions=10, out_dir=out, input_fn=input_fn, print_fn=printed.append, bank=small
            )
        assert 0 <= report.correct <= report.answered <= report.total
        right_kinds |= {g.question.kind for g in report.items if g.correct}
        typed_count += calls["n"]
        for block in printed:
            for line in block.splitlines():
                assert len(line) <= width or "/" in line, f"trial {trial}: a line wider than {width}: {line!r}"
        if report.certificate is not None:
            written += 1
            certificate.verify_certificate(report.certificate)
    assert written > 0, "some fuzzed learners pass and get a verified certificate"
    assert right_kinds == {"single", "multi", "numeric", "ordering"}, "every kind was asked and answered right"
    assert typed_count >= 5000, f"only {typed_count} inputs typed"


def test_a_too_long_name_is_asked_again_and_the_certificate_is_kept(questions, tmp_path):
    learner = Script(questions, names=["x" * 150, "Grace Hopper"])
    report = session.quiz(3, seed=1, out_dir=tmp_path, input_fn=learner.input_fn, print_fn=learner.print_fn)
    assert report.passed and certificate.verify_certificate(report.certificate)["name"] == "Grace Hopper"
    assert "at most 100 fit on a certificate: type it again (shorter)" in " ".join(" ".join(learner.printed).split())


def test_an_unwritable_folder_at_the_end_falls_back_and_keeps_the_certificate(questions, tmp_path, monkeypatch):
    target = tmp_path / "out"
    learner = Script(questions)
    real = certificate.write_certificate

    def flaky(report, name, folder=None, now=None):
        if Path(folder) == target:
            raise PermissionError(13, "Permission denied")
        return real(report, name, folder, now)

    monkeypatch.setattr(session, "write_certificate", flaky)
    monkeypatch.setattr(session, "default_dir", lambda: tmp_path / "fallback")
    report = session.quiz(3, seed=2, out_dir=target, input_fn=learner.input_fn, print_fn=learner.print_fn)
    assert report.certificate is not None and report.certificate.parent == tmp_path / "fallback"
    assert "could not be written to" in " ".join(" ".join(learner.printed).split())


def run_cli(monkeypatch, capsys, stdin: bytes, *argv):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_checks_out_name_and_feedback_before_the_first_question(monkeypatch, capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for args, says in (
        (["--out", str(blocker / "sub")], "cannot write a certificate in"),
        (["--name", "n" * 101], "at most 100 fit on a certificate"),
        (["--feedback", str(tmp_path)], "is a folder"),
    ):
        code, out, err = run_cli(monkeypatch, capsys, b"1\n", "quiz", "--unit", "3", *args)
        assert code == 2 and says in err, err
        assert "Question 1" not in out, "checked before the quiz starts"


def test_cli_saves_feedback_and_reads_bytes_that_are_not_text(questions, monkeypatch, capsys, tmp_path):
    order = session.select_unit(questions, 3, seed=4)
    answers = b"\xff\xfe\n" + b"".join(f"{quiz_fixture.typed(q)}\n".encode() for q in order)
    feedback = tmp_path / "feedback.txt"
    code, out, err = run_cli(
        monkeypatch, capsys, answers, "quiz", "--unit", "3", "--seed", "4", "--name", "Ada", "--out",
        str(tmp_path), "--feedback", str(feedback),
    )  # fmt: skip
    assert code == 0, out + err
    assert "is not a number" in out and "Traceback" not in out + err
    saved = feedback.read_text(encoding="utf-8")
    assert saved.startswith("Feedback: Unit 3 quiz") and "PASSED" in saved


def test_ctrl_c_while_the_command_line_loads_is_one_line(monkeypatch, capsys):
    class Interrupting:
        def find_spec(self, name, path=None, target=None):
            if name == "dlfund.course.cli":
                raise KeyboardInterrupt
            return None

    import dlfund.course

    monkeypatch.delitem(sys.modules, "dlfund.course.cli")
    monkeypatch.delattr(dlfund.course, "cli")
    monkeypatch.setattr(sys, "meta_path", [Interrupting(), *sys.meta_path])
    assert entry.main(["units"]) == 130
    assert capsys.readouterr().err == "dlfund: interrupted\n"
