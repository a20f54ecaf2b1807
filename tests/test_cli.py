"""The dlfund command line and the headless runner behind `dlfund run`."""

from __future__ import annotations

import importlib.metadata
import os
import re

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError
from packaging.requirements import Requirement

from dlfund.course import cli, manifest, runner


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_units_lists_every_unit(capsys):
    code, out, _ = run_cli(capsys, "units")
    assert code == 0
    for u in manifest.UNITS:
        assert u.title in out


def test_unknown_unit_is_a_clear_error(capsys):
    code, _, err = run_cli(capsys, "run", "99")
    assert code == 2 and "no unit '99'" in err and "known units" in err


def test_unknown_tier_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "1", "--tier", "fast"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'fast'" in capsys.readouterr().err


def test_run_needs_a_unit_or_all(capsys):
    code, _, err = run_cli(capsys, "run")
    assert code == 2 and "--all" in err


def test_help_describes_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in (
        "units",
        "run",
        "lab",
        "start",
        "check",
        "progress",
        "env",
        "data",
        "exercises",
        "generate",
        "book",
    ):
        assert command in out


def test_generated_files_are_current(capsys):
    code, out, _ = run_cli(capsys, "generate", "--check")
    assert code == 0, out


def test_data_needs_names_or_all(capsys):
    code, _, err = run_cli(capsys, "data", "fetch")
    assert code == 2 and "--all" in err
    code, _, err = run_cli(capsys, "data", "fetch", "no-such-data")
    assert code == 2 and "no-such-data" in err


@pytest.fixture
def fake_unit(tmp_path, monkeypatch):
    """A two-notebook unit in a temporary course: one notebook works, one fails."""
    monkeypatch.setattr(manifest, "UNITS_DIR", tmp_path / "units")
    monkeypatch.setattr(manifest, "RUNS_DIR", tmp_path / "runs")
    unit = manifest.Unit(99, "fake", "Fake", "", (manifest.Notebook("a", "A"), manifest.Notebook("b", "B")), (), ())
    unit.path.mkdir(parents=True)
    for name, code in (("a", "x = 6 * 7\nprint(x)"), ("b", "1 / 0")):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, str(unit.notebook_path(name)))
    return unit


@pytest.mark.notebooks
def test_runner_collects_failures_and_keeps_going(fake_unit, tmp_path, capsys):
    runs = runner.run_unit(fake_unit, "smoke")
    assert [r.status for r in runs] == ["ok", "FAILED"]
    assert "ZeroDivisionError" in runs[1].error
    executed = nbformat.read(str(runs[0].executed), as_version=4)
    assert executed.cells[0].outputs[0].text == "42\n"
    assert (tmp_path / "runs" / "99-fake" / "executed" / "b.smoke.ipynb").exists()
    text = runner.summary(runs, "smoke")
    assert "1/2 notebooks ran" in text and "FAILED" in text


@pytest.mark.notebooks
def test_warm_kernels_are_fresh_processes_and_none_is_left_behind(tmp_path, monkeypatch):
    """The next notebook's kernel starts early, but nothing of one notebook reaches the next."""
    monkeypatch.setattr(manifest, "UNITS_DIR", tmp_path / "units")
    monkeypatch.setattr(manifest, "RUNS_DIR", tmp_path / "runs")
    unit = manifest.Unit(98, "warm", "Warm", "", (manifest.Notebook("a", "A"), manifest.Notebook("b", "B")), (), ())
    unit.path.mkdir(parents=True)
    probe = "import os, sys\nprint(os.getpid(), 'secret' in globals(), os.getcwd(), os.environ['DLFUND_TIER'])"
    for name in ("a", "b"):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(probe), nbformat.v4.new_code_cell("secret = 1")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, str(unit.notebook_path(name)))
    started = []
    original = runner.WarmKernel

    def recording(cwd, env):
        kernel = original(cwd, env)
        started.append(kernel)
        return kernel

    monkeypatch.setattr(runner, "WarmKernel", recording)
    runs = runner.run_unit(unit, "smoke")
    assert [r.status for r in runs] == ["ok", "ok"] and len(started) == 2
    seen = []
    for r in runs:
        cells = nbformat.read(str(r.executed), as_version=4).cells
        assert [c.execution_count for c in cells] == [1, 2], "the warm-up leaves no execution count"
        pid, leaked, cwd, tier = cells[0].outputs[0].text.split()
        seen.append(pid)
        assert leaked == "False" and cwd == str(unit.path) and tier == "smoke"
    assert seen[0] != seen[1], "each notebook has a kernel process of its own"
    assert not any(k.km.has_kernel for k in started), "every kernel is shut down"


def test_env_reports_every_dependency_and_the_data(capsys):
    code, out, _ = run_cli(capsys, "env")
    assert "env: Python" in out
    required = [req.name for req, extra in cli.requirements() if extra is None]
    assert {"torch", "lightning", "scipy", "tensorboard", "jsonargparse"} <= set(required), "read from the metadata"
    for dist in required:
        assert f"OK   {dist}" in out, f"{dist} missing from `dlfund env`"
    assert "data fashion-mnist" in out and "device" in out
    assert code in (0, 1)  # 1 only when a cached dataset fails its hash


def test_lab_starts_jupyterlab_on_the_course(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("DLFUND_WORKSPACE", str(tmp_path / "none"))  # no workspace: the course
    seen = {}
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, cwd: seen.update(cmd=cmd, cwd=cwd) or 0)
    code, out, _ = run_cli(capsys, "lab", "--no-browser")
    assert code == 0 and seen["cwd"] == manifest.ROOT
    assert seen["cmd"][1:3] == ["-m", "jupyterlab"] and "--no-browser" in seen["cmd"]
    assert f"--ServerApp.root_dir={manifest.ROOT}" in seen["cmd"]


def test_run_all_refuses_a_notebook_name(capsys):
    code, _, err = run_cli(capsys, "run", "--all", "--notebook", "01-supervised-workflow")
    assert code == 2 and "--notebook names a notebook of one unit" in err


def test_units_settings_prints_both_tiers_with_their_meaning(capsys):
    code, out, _ = run_cli(capsys, "units", "--settings", "7")
    assert code == 0
    row = next(line for line in out.splitlines() if line.strip().startswith("vit.dim "))
    smoke, full = (
        manifest.get_unit(7).tier_settings("smoke").vit.dim,
        manifest.get_unit(7).tier_settings("full").vit.dim,
    )
    assert row.split()[1:3] == [str(smoke), str(full)] and len(row.split()) > 3, "value in each tier, then the meaning"
    code, _, err = run_cli(capsys, "units", "--settings", "99")
    assert code == 2 and "no unit '99'" in err


@pytest.mark.notebooks
def test_run_parallel_runs_notebooks_at_once_and_collects_failures(tmp_path, monkeypatch, capsys):
    """`dlfund run -j 2`: two notebooks that each wait for the other can only finish when they run at once."""
    monkeypatch.setattr(manifest, "UNITS_DIR", tmp_path / "units")
    monkeypatch.setattr(manifest, "RUNS_DIR", tmp_path / "runs")
    names = ("a", "b", "c")
    unit = manifest.Unit(97, "par", "Par", "", tuple(manifest.Notebook(n, n.upper()) for n in names), (), ())
    unit.path.mkdir(parents=True)
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    rendezvous = (
        "import os, pathlib, time\n"
        f"here = pathlib.Path({str(meeting)!r})\n"
        "(here / '{me}').touch()\n"
        "deadline = time.time() + 120\n"
        "while not (here / '{other}').exists():\n"
        "    assert time.time() < deadline, 'the other notebook never ran beside this one'\n"
        "    time.sleep(0.1)\n"
        "print(os.environ['OMP_NUM_THREADS'], os.environ['DLFUND_JOBS'])"
    )
    sources = {"a": rendezvous.format(me="a", other="b"), "b": rendezvous.format(me="b", other="a"), "c": "1 / 0"}
    for name in names:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(sources[name])])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, str(unit.notebook_path(name)))
    [runs] = runner.run_parallel([unit], "smoke", jobs=2)
    assert [(r.name, r.status) for r in runs] == [("a", "ok"), ("b", "ok"), ("c", "FAILED")]
    assert "ZeroDivisionError" in runs[2].error
    threads, jobs = nbformat.read(str(runs[0].executed), as_version=4).cells[0].outputs[0].text.split()
    assert jobs == "2" and int(threads) == max(1, (os.cpu_count() or 1) // 2), "each kernel gets its share"
    assert runs[2].executed.exists(), "a failed notebook's executed copy is kept, with the error in context"
    out = capsys.readouterr().out
    assert "3 notebook(s) to run, 2 at a time" in out and "[3/3]" in out
    assert "failed: c" in runner.course_summary([runs], "smoke")


def test_run_refuses_fewer_than_one_job(capsys):
    code, _, err = run_cli(capsys, "run", "1", "--jobs", "0")
    assert code == 2 and "at least 1, found 0" in err


def test_requirements_from_a_checkout_match_the_installed_metadata():
    """On a machine where the course runs from a checkout on PYTHONPATH (the offline GPU machine), `dlfund env`
    reads pyproject.toml: the same requirements, with the same extras, as the installed metadata."""

    def key(line):
        req = Requirement(line)
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", str(req.marker or ""))
        return req.name.lower(), str(req.specifier), extra.group(1) if extra else None

    from_pyproject = cli._pyproject_requirements(manifest.ROOT / "pyproject.toml")
    assert sorted(map(key, from_pyproject)) == sorted(map(key, importlib.metadata.requires("dlfund")))
    assert any(extra == "test" for _, _, extra in map(key, from_pyproject)), "the extras are read too"


def test_requirements_without_metadata_or_pyproject_say_what_to_do(tmp_path):
    with pytest.raises(cli.UsageError, match="pip install -e ."):
        cli._pyproject_requirements(tmp_path / "pyproject.toml")


def test_a_failed_cell_is_summed_up_by_its_exception_not_the_last_line_of_its_message():
    """A message that ends with a launcher's log (a row of '=' on the GPU machine) still reads as what failed."""
    evalue = "torchrun failed (exit 1): ValueError: no GPU 1\n...\n=============================="
    err = CellExecutionError(f"An error occurred...\nRuntimeError: {evalue}", "RuntimeError", evalue)
    assert runner._error_summary(err) == "RuntimeError: torchrun failed (exit 1): ValueError: no GPU 1"
    assert runner._error_summary(CellExecutionError("tb", "AssertionError", "")) == "AssertionError"
    assert runner._error_summary(TimeoutError("A cell timed out after 60 s")) == "A cell timed out after 60 s"
