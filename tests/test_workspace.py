"""The learner's workspace: `dlfund start`, `dlfund check`, `dlfund progress`, and the promise that no
command overwrites what a learner wrote.

One copy of unit 1 (units/ and solutions/) in a temporary folder plays the course, so a test can edit
and "update" it; one workspace with unit 1's exercises solved is checked once and shared.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from dlfund.course import cli, edits, exercises, learner, learner_check, manifest, progress, runner, workspace

UNIT = manifest.get_unit(1)


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def fake_course(mp: pytest.MonkeyPatch, root) -> None:
    """Unit 1 alone, in ``root``: its lectures, exercises and solutions, and runs/ of its own."""
    shutil.copytree(UNIT.path, root / "units" / UNIT.dirname)
    shutil.copytree(UNIT.solutions_path, root / "solutions" / UNIT.dirname)
    mp.setattr(manifest, "UNITS_DIR", root / "units")
    mp.setattr(manifest, "SOLUTIONS_DIR", root / "solutions")
    mp.setattr(manifest, "RUNS_DIR", root / "runs")
    mp.setattr(manifest, "UNITS", (UNIT,))


def read(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def solve(ws, name: str, edit=lambda source: source) -> None:
    """Write the solution's code into the workspace copy: each stub cell becomes the solution's cell."""
    solution = read(UNIT.solution_path(name))
    path = ws / UNIT.dirname / f"{name}.ipynb"
    nb = read(path)
    for mine, theirs in zip(code_cells(nb), code_cells(solution)):
        if "NotImplementedError" in "".join(mine["source"]):
            mine["source"] = edit("".join(theirs["source"]))
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """A workspace whose unit-1 exercises hold the solutions, checked once: (workspace, exit code, output)."""
    root = tmp_path_factory.mktemp("course")
    mp = pytest.MonkeyPatch()
    fake_course(mp, root)
    ws = root / "my work"
    assert cli.main(["start", "--path", str(ws)]) == 0
    for ex in UNIT.exercises:
        solve(ws, ex.name)
    before = {p.name: p.read_bytes() for p in (ws / UNIT.dirname).glob("*.ipynb")}
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["check", "1", "--path", str(ws)])
    yield ws, root, (code, out.getvalue(), err.getvalue()), before
    mp.undo()


def test_check_passes_the_solved_exercises_and_never_writes_the_learners_notebooks(solved):
    ws, root, (code, out, err), before = solved
    assert code == 0, out + err
    n = len(UNIT.exercises)
    assert f"unit 1: {n}/{n} exercises passed" in out
    assert len(re.findall(r"^  01 ex0\d-[\w-]+ +passed$", out, flags=re.M)) == n, out
    assert before == {p.name: p.read_bytes() for p in (ws / UNIT.dirname).glob("*.ipynb")}
    assert "Traceback" not in err
    assert len(list((root / "runs" / "check" / UNIT.dirname).glob("*.ipynb"))) == n  # the executed copies


def test_a_wrong_answer_is_not_yet_with_the_checks_message(solved, capsys, monkeypatch):
    ws, root, _, _ = solved
    fake_course(monkeypatch, root / "again")
    # a typical mistake: draw the random weights from the global generator, not from `generator`
    path = ws / UNIT.dirname / "ex02-random-init.ipynb"
    nb = read(path)
    for cell in code_cells(nb):
        cell["source"] = "".join(cell["source"]).replace(
            "torch.randn(num_features, generator=generator)", "torch.randn(num_features)"
        )
    path.write_text(json.dumps(nb), encoding="utf-8")
    code, out, err = run_cli(capsys, "check", "1/ex02", "--path", ws)
    assert code == 1, out + err
    line = next(line for line in out.splitlines() if "ex02-random-init" in line)
    assert "not yet: " in line and "generator" in line, line
    assert "unit 1: 0/1 exercises passed" in out
    recorded = progress.load(ws)["exercises"][f"{UNIT.dirname}/ex02-random-init"]
    assert recorded["status"] == "not yet"


def test_progress_shows_what_check_recorded_and_what_is_next(solved, capsys, monkeypatch):
    ws, root, _, _ = solved
    fake_course(monkeypatch, root / "progress")
    code = progress.main(["progress", "--path", str(ws)])
    out = capsys.readouterr().out
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("01 "))
    n = len(UNIT.exercises)
    assert re.search(rf"\s0/3\s+[{n - 1}{n}]/{n}\s", row), row  # one fewer when ex02 was made wrong above
    assert "next: lecture 01-perceptron/01-supervised-workflow.ipynb" in out


def test_progress_imports_neither_torch_nor_nbformat(solved):
    ws = solved[0]
    code = (
        "import sys; from dlfund.course import entry; rc = entry.main(['progress', '--path', sys.argv[1]]); "
        "heavy = [m for m in ('torch', 'nbformat', 'nbclient') if m in sys.modules]; "
        "assert not heavy, heavy; sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(ws)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "next:" in out.stdout
    pyproject = (manifest.ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dlfund = "dlfund.course.entry:main"' in pyproject, "the console command must start at the light entry"


def test_check_outcomes_not_started_no_check_error_timeout_and_broken_files(solved, monkeypatch):
    ws, root, _, _ = solved
    fake_course(monkeypatch, root / "outcomes")
    fresh = root / "fresh"
    assert cli.main(["start", "--path", str(fresh)]) == 0
    items = {i.exercise.name: i for i in learner_check.items_for(fresh, "1")}
    item = items["ex01-early-stopping"]

    def outcome(edit=None, text=None, timeout=5):
        if text is not None:
            item.path.write_text(text, encoding="utf-8")
        elif edit is not None:
            solve(fresh, item.exercise.name, edit)
        return learner_check.check_one(item, tier="smoke", timeout=timeout)

    assert outcome().status == "not started"  # untouched: nothing to execute
    nb = read(item.path)
    nb["cells"] = [c for c in nb["cells"] if "dlfund.checks.unit01.early_stopping(" not in "".join(c["source"])]
    deleted = outcome(text=json.dumps(nb))
    assert deleted.status == "no check"
    assert deleted.message.startswith(
        "no check ran: the cell calling dlfund.checks.unit01.early_stopping(...) is missing"
    )
    broken = outcome(text="{not json")
    assert broken.status == "error" and "is not a notebook" in broken.message
    assert outcome(text='{"cells": 3}').status == "error"
    shutil.copy(UNIT.exercise_path(item.exercise.name), item.path)

    crash = outcome(lambda s: s.replace("    val_mistakes = []\n", "    val_mistakes = []\n    1 / 0\n"))
    assert crash.status == "not yet"  # the check caught it and says where in the learner's cell
    assert "ZeroDivisionError" in crash.message and "`1 / 0`" in crash.message, crash.message
    shutil.copy(UNIT.exercise_path(item.exercise.name), item.path)
    top = outcome(lambda s: "x = [1, 2]\nx[5]\n" + s)
    assert top.status == "error"
    assert top.message.startswith("code cell 3, line 2: `x[5]`: IndexError: list index out of range"), top.message
    shutil.copy(UNIT.exercise_path(item.exercise.name), item.path)
    loop = outcome(lambda s: "while True:\n    pass\n" + s, timeout=5)
    assert loop.status == "error" and "did not finish within 5 s" in loop.message, loop.message


def test_ctrl_c_during_check_keeps_the_results_so_far(solved, capsys, monkeypatch):
    ws, root, _, _ = solved
    fake_course(monkeypatch, root / "ctrl-c")
    calls = []

    def fake(item, **_):
        calls.append(item.exercise.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return learner_check.Outcome("passed")

    monkeypatch.setattr(learner_check, "check_one", fake)
    before = (ws / progress.FILE).read_text(encoding="utf-8")
    code, out, err = run_cli(capsys, "check", "1", "--path", ws)
    assert code == 130
    assert re.search(r"ex01-early-stopping +passed", out), out
    assert f"interrupted: 1 of {len(UNIT.exercises)} exercise(s) checked" in out
    after = progress.load(ws)["exercises"]
    assert after[f"{UNIT.dirname}/ex01-early-stopping"]["status"] == "passed"
    assert (
        json.loads(before)["exercises"][f"{UNIT.dirname}/ex02-random-init"] == after[f"{UNIT.dirname}/ex02-random-init"]
    )
    assert not list(ws.glob(".progress.json.*.part"))  # nothing half-written


def test_a_course_update_never_overwrites_the_learners_work(tmp_path, capsys, monkeypatch):
    fake_course(monkeypatch, tmp_path)
    ws = tmp_path / "ws"
    assert run_cli(capsys, "start", "--path", ws)[0] == 0
    mine = ws / UNIT.dirname / "ex01-early-stopping.ipynb"
    solve(ws, "ex01-early-stopping", lambda s: s.replace("    val_mistakes = []\n", "    val_mistakes = []  # mine\n"))
    my_text = mine.read_text(encoding="utf-8")
    assert exercises.build((UNIT,)) == []  # nothing changed in the course yet
    # the course is updated: ex01 and ex03 change (ex03 is untouched in the workspace)
    for name in ("ex01-early-stopping", "ex03-learning-rate"):
        sol = UNIT.solution_path(name)
        nb = read(sol)
        nb["cells"][0]["source"] = "".join(nb["cells"][0]["source"]) + "\n\n(updated)"
        sol.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    assert len(exercises.build((UNIT,))) == 2
    code, out, _ = run_cli(capsys, "start", "--path", ws)
    assert code == 0
    assert "ex01-early-stopping.ipynb has your work, left as it is" in out and "1 updated in place" in out
    assert mine.read_text(encoding="utf-8") == my_text
    beside = ws / UNIT.dirname / "ex01-early-stopping.v2.ipynb"
    assert "(updated)" in beside.read_text(encoding="utf-8")
    assert "(updated)" in (ws / UNIT.dirname / "ex03-learning-rate.ipynb").read_text(encoding="utf-8")
    assert run_cli(capsys, "start", "--path", ws)[0] == 0  # again: nothing new, no v3
    assert not (ws / UNIT.dirname / "ex01-early-stopping.v3.ipynb").exists()

    code, out, _ = run_cli(capsys, "check", "1/ex01", "--path", ws)
    assert code == 0 and "unit 1: 1/1 exercises passed" in out, out
    assert mine.read_text(encoding="utf-8") == my_text and "# mine" in my_text
    assert beside.exists()
    code = progress.main(["progress", "--path", str(ws)])
    assert "the new version is beside it: 01-perceptron/ex01-early-stopping.v2.ipynb" in capsys.readouterr().out


def test_build_keeps_an_edited_exercise_and_start_takes_it_as_the_starting_point(tmp_path, capsys, monkeypatch):
    fake_course(monkeypatch, tmp_path)
    for fn in (exercises.build, exercises.targets):  # `dlfund exercises build` builds unit 1 only
        monkeypatch.setattr(fn, "__defaults__", ((UNIT,),))
    old = exercises.Target(UNIT, UNIT.exercises[0])  # generated before fingerprints existed: not an edit
    old.target.write_text(old.expected(stamped=False), encoding="utf-8")
    assert not old.edited()
    target = UNIT.exercise_path("ex02-random-init")
    nb = read(target)
    code_cells(nb)[2]["source"] = (
        "def init_weights(num_features, init, *, generator=None, scale=0.01):\n    return 42\n"
    )
    target.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    edited = target.read_text(encoding="utf-8")
    sol = UNIT.solution_path("ex02-random-init")  # the course changes, so the build would rewrite it
    sol.write_text(sol.read_text(encoding="utf-8").replace("Exercise", "Exercise (new)", 1), encoding="utf-8")
    code, out, err = run_cli(capsys, "exercises", "build")
    assert code == 1 and "ex02-random-init.ipynb has edits" in err and "`dlfund start`" in err
    assert f"wrote {old.target}" in out  # the old generation is rebuilt, with its fingerprint
    assert target.read_text(encoding="utf-8") == edited
    with pytest.raises(edits.KeptEdits):
        exercises.build()
    code, out, _ = run_cli(capsys, "start", "--path", tmp_path / "ws")
    assert code == 0 and f"copied your edited {target} to" in out, out
    copied = (tmp_path / "ws" / UNIT.dirname / "ex02-random-init.ipynb").read_text(encoding="utf-8")
    assert "return 42" in copied
    items = {i.exercise.name: i for i in learner_check.items_for(tmp_path / "ws", "1")}
    assert items["ex02-random-init"].base_code != edits.code_digest_of(copied)  # it counts as started


@pytest.mark.parametrize("kind", ["file", "units", "solutions", "read-only"])
def test_a_workspace_that_cannot_be_one_is_one_clear_line(kind, tmp_path, capsys, monkeypatch):
    fake_course(monkeypatch, tmp_path)
    path = {
        "file": tmp_path / "a-file",
        "units": tmp_path / "units" / "mine",
        "solutions": tmp_path / "solutions",
        "read-only": tmp_path / "ro" / "ws",
    }[kind]
    if kind == "file":
        path.write_text("x")
    if kind == "read-only":
        if os.geteuid() == 0:  # root writes through permissions: use a folder no one can create files in
            path = pathlib.Path("/proc/dlfund-workspace")
        else:
            (tmp_path / "ro").mkdir()
            (tmp_path / "ro").chmod(0o500)
    code, out, err = run_cli(capsys, "start", "--path", path)
    assert code == 2 and err.count("\n") == 1 and err.startswith("dlfund: error: "), err
    assert {"file": "is a file", "units": "inside units/", "solutions": "inside solutions/", "read-only": "cannot"}[
        kind
    ] in err


def test_commands_without_a_workspace_say_how_to_make_one(tmp_path, capsys):
    code, _, err = run_cli(capsys, "check", "1", "--path", tmp_path / "none")
    assert code == 2 and "`dlfund start` creates one" in err
    assert progress.main(["progress", "--path", str(tmp_path / "none")]) == 2


def test_a_corrupted_progress_file_is_kept_aside(tmp_path, capsys, monkeypatch):
    fake_course(monkeypatch, tmp_path)
    ws = tmp_path / "ws"
    assert cli.main(["start", "--path", str(ws)]) == 0
    (ws / progress.FILE).write_text('{"exercises": [1, 2', encoding="utf-8")
    capsys.readouterr()
    assert progress.main(["progress", "--path", str(ws)]) == 0
    out, err = capsys.readouterr()
    assert "next: " in out and err.count("\n") == 1 and "was not readable" in err
    assert len(list(ws.glob("progress.json.bad-*"))) == 1 and not (ws / progress.FILE).exists()


def test_the_quiz_and_the_exam_record_their_scores(tmp_path, capsys, monkeypatch):
    from dlfund.course.quiz import exam, quiz

    fake_course(monkeypatch, tmp_path)
    ws = tmp_path / "ws"
    assert cli.main(["start", "--path", str(ws)]) == 0
    monkeypatch.setenv(workspace.ENV, str(ws))

    def stop(prompt):
        raise EOFError

    def readable(prompt):  # an answer of the asked kind (right or wrong), read from the prompt
        if prompt.startswith("Your order"):
            n = int(re.search(r"1-(\d+)", prompt).group(1))
            return " ".join(str(i) for i in range(n, 0, -1))
        return "1 2" if "all that apply" in prompt else "1"

    quiz(1, seed=1, input_fn=stop, print_fn=lambda *a: None)  # stopped at once: incomplete
    quiz(1, seed=1, name="Ada", out_dir=tmp_path, input_fn=readable, print_fn=lambda *a: None)
    exam(seed=1, questions=3, input_fn=readable, print_fn=lambda *a: None, out_dir=tmp_path)
    recorded = progress.load(ws)["quizzes"]
    assert recorded["1"]["attempts"] == 2 and 0 <= recorded["1"]["best"] <= 1
    assert "exam" not in recorded  # a 3-question practice draw is not the final exam
    assert "quiz (best)" in progress.report(ws)


def test_lab_opens_the_workspace_and_allows_root(tmp_path, capsys, monkeypatch):
    fake_course(monkeypatch, tmp_path)
    ws = tmp_path / "ws"
    assert cli.main(["start", "--path", str(ws)]) == 0
    monkeypatch.setenv(workspace.ENV, str(ws))
    seen = {}
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, cwd: seen.update(cmd=cmd, cwd=cwd) or 0)
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    code, out, _ = run_cli(capsys, "lab", "--no-browser")
    assert code == 0 and seen["cwd"] == ws and f"--ServerApp.root_dir={ws}" in seen["cmd"]
    assert "--allow-root" in seen["cmd"] and "running as root" in out and "in your workspace" in out


def test_a_lecture_runs_from_the_workspace(solved, tmp_path, monkeypatch):
    """Notebooks find the library and their data from any folder: run a lecture copy where it lies."""
    ws = solved[0]
    lecture = ws / UNIT.dirname / f"{UNIT.notebooks[0].name}.ipynb"
    runner.execute(
        lecture, tmp_path / "executed.ipynb", tier="smoke", desc="lecture", env=runner.kernel_environment("smoke")
    )
    assert all(c.get("execution_count") for c in code_cells(read(tmp_path / "executed.ipynb")))
    assert lecture.read_text(encoding="utf-8") == (UNIT.notebook_path(UNIT.notebooks[0].name)).read_text(
        encoding="utf-8"
    )


def test_start_lists_every_notebook_of_the_course():
    rels = [f.rel for f in learner.course_files()]
    assert len(rels) == len(set(rels)) == sum(len(u.notebooks) + len(u.exercises) for u in manifest.UNITS)
