"""The exercise generator, and the promise that every check fails on the learner's stub notebook.

The solution notebooks themselves run under nbval (their checks must pass there); the library tests
of each unit's checks (``tests/test_checks_unitNN.py``) try typical wrong answers.
"""

from __future__ import annotations

import os

import nbformat
import pytest

from dlfund.course import exercises, manifest

TARGETS = exercises.targets()
IDS = [f"{t.unit.dirname}/{t.exercise.name}" for t in TARGETS]


def test_generated_exercises_are_current():
    assert exercises.stale() == []


def test_stub_source_replaces_regions_at_their_indentation():
    source = (
        "def f(x):\n    # BEGIN SOLUTION hint: square it\n    y = x * x\n    return y\n    # END SOLUTION\n\nprint(1)"
    )
    stub, n = exercises.stub_source(source)
    assert n == 1
    assert stub == 'def f(x):\n    raise NotImplementedError("square it")\n\nprint(1)'
    stub, n = exercises.stub_source("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n# BEGIN SOLUTION\ny = 2\n# END SOLUTION")
    assert n == 2 and stub.count('raise NotImplementedError("your code here")') == 2


@pytest.mark.parametrize(
    "source,message",
    [
        ("# BEGIN SOLUTION\nx = 1", "has no END SOLUTION"),
        ("x = 1\n# END SOLUTION", "END SOLUTION without a BEGIN"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION", "inside the region"),
    ],
)
def test_malformed_markers_are_reported(source, message):
    with pytest.raises(exercises.SolutionFormatError, match=message):
        exercises.stub_source(source)


def test_a_solution_without_regions_is_refused():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(exercises.SolutionFormatError, match="no '# BEGIN SOLUTION' region"):
        exercises.make_exercise(nb, "01-x", "ex")


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_tampering_is_detected(target, tmp_path, monkeypatch):
    """Removing a solution region, or editing the generated notebook by hand, makes it stale."""
    solution = nbformat.read(str(target.source), as_version=4)
    generated = target.target.read_text(encoding="utf-8")
    for cell in solution.cells:  # drop the markers: the solution code would leak into the exercise
        if cell.cell_type == "code" and "# BEGIN SOLUTION" in cell.source:
            cell.source = "\n".join(l for l in cell.source.splitlines() if "SOLUTION" not in l)
    with pytest.raises(exercises.SolutionFormatError):
        exercises.make_exercise(solution, target.unit.dirname, target.exercise.name)
    fake = tmp_path / "exercise.ipynb"
    fake.write_text(generated.replace("NotImplementedError", "NotImplementedError ", 1), encoding="utf-8")
    monkeypatch.setattr(exercises.Target, "target", property(lambda self: fake))
    assert exercises.stale((target.unit,)), "a hand edit of a generated notebook must be reported"


@pytest.mark.notebooks
@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_checks_fail_on_the_stub_notebook(target):
    """Run the learner's notebook as generated: each of its checks must fail with 'not implemented'."""
    from nbclient import NotebookClient

    nb = nbformat.read(str(target.target), as_version=4)
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(target.target.parent)}},
    ).execute()
    for check in target.exercise.checks:
        calls = [c for c in nb.cells if c.cell_type == "code" and f"dlfund.checks.{check}(" in c.source]
        assert calls, f"the exercise never calls dlfund.checks.{check}"
        errors = [o for c in calls for o in c.outputs if o.output_type == "error"]
        assert errors, f"dlfund.checks.{check} did not fail on the unsolved exercise"
        assert {e.ename for e in errors} == {"CheckFailed"}, f"expected CheckFailed, got {[e.ename for e in errors]}"
        assert any("not implemented" in e.evalue for e in errors), [e.evalue for e in errors]
    assert os.environ["DLFUND_TIER"] in manifest.TIERS


def test_build_goes_on_past_a_missing_solution(tmp_path, monkeypatch):
    unit = manifest.UNITS[0]
    ghost = manifest.Unit(
        98, "ghost", "Ghost", "", (), (manifest.Exercise("ex01-missing", "Missing", ("unit01.early_stopping",)),), ()
    )
    monkeypatch.setattr(manifest, "UNITS_DIR", tmp_path / "units")
    monkeypatch.setattr(manifest, "SOLUTIONS_DIR", manifest.ROOT / "solutions")
    with pytest.raises(FileNotFoundError, match="ex01-missing"):
        exercises.build((ghost, unit))
    assert len(list((tmp_path / "units" / unit.dirname / "exercises").glob("*.ipynb"))) == len(unit.exercises)
