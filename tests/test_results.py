"""Results are written atomically with provenance; the committed reference only when asked."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess

import nbformat
import pytest
import torch

import dlfund
from dlfund.course import manifest, results
from dlfund.utils.provenance import RECORDED, clean_metric, git_commit


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest, "RESULTS_DIR", tmp_path / "book")
    monkeypatch.setattr(manifest, "RUNS_DIR", tmp_path / "runs")
    return dlfund.setup(unit=1, notebook="03-perceptron-vectorised", tier="smoke")


def test_record_writes_the_run_with_provenance(cfg, tmp_path, capsys):
    assert cfg.record({"test_acc": torch.tensor(0.975), "epochs": 5, "curve": [3, 1, 0]}) is None
    path = tmp_path / "runs" / "results" / "01-perceptron" / "03-perceptron-vectorised.smoke.json"
    r = json.loads(path.read_text())
    assert r["metrics"] == {"test_acc": 0.975, "epochs": 5, "curve": [3, 1, 0]}
    assert r["settings"]["epochs"] == cfg.epochs
    prov = r["provenance"]
    assert prov["tier"] == "smoke" and prov["device_type"] == cfg.device.type and prov["wall_s"] >= 0
    assert prov["torch"] == torch.__version__ and prov["date"].startswith("20") and prov["commit"]
    assert prov["peak_memory_mb"] > 0
    assert not (tmp_path / "book").exists(), "without DLFUND_RECORD the committed results stay untouched"
    assert "test_acc" in capsys.readouterr().out


def test_record_reference_when_asked(cfg, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DLFUND_RECORD", "1")
    cfg.record({"test_acc": 0.5})
    ref = results.load(1, "03-perceptron-vectorised", "smoke")
    assert ref is not None and ref["metrics"]["test_acc"] == 0.5
    cfg.record({"test_acc": 0.75})
    out = capsys.readouterr().out
    assert "reference" in out and "0.5" in out  # the second run is shown beside the first


def test_a_smoke_run_on_a_gpu_is_recorded_apart(cfg, tmp_path, monkeypatch, capsys):
    """The GPU smoke pass writes `<notebook>.gpu-smoke.json`: the CPU smoke results stay as they are, and a
    run says how many notebooks shared the machine."""
    monkeypatch.setenv("DLFUND_RECORD", "1")
    monkeypatch.setenv("DLFUND_JOBS", "8")
    cfg.record({"test_acc": 0.5})  # this machine: the CPU smoke result
    fake = {"device": "NVIDIA H200", "device_type": "cuda", "wall_s": 1.0, "commit": "c0ffee", "date": "2026-12-04"}
    monkeypatch.setattr(results, "provenance", lambda device, tier, wall_s: {**fake, "tier": tier})
    results.record(cfg.unit, cfg.notebook, "smoke", torch.device("cuda"), 1.0, {"epochs": 1}, {"test_acc": 0.9})
    assert results.load(1, cfg.notebook, "smoke")["metrics"] == {"test_acc": 0.5}, "CPU smoke untouched"
    gpu = results.load(1, cfg.notebook, "gpu-smoke")
    assert gpu["metrics"] == {"test_acc": 0.9} and gpu["provenance"]["tier"] == "gpu-smoke"
    mine = json.loads(results.result_path(tmp_path / "book", cfg.unit, cfg.notebook, "smoke").read_text())
    assert mine["provenance"]["concurrent_notebooks"] == 8
    assert results.result_tier("smoke", "cuda") == "gpu-smoke" and results.result_tier("full", "cuda") == "full"
    assert results.result_tier("smoke", "cpu") == "smoke" and results.settings_tier("gpu-smoke") == "smoke"


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"x": math.nan}, "finite"),
        ({"x": torch.ones(2)}, "shape \\(2,\\)"),
        ({"x": object()}, "type object"),
        ({}, "at least one metric"),
    ],
)
def test_bad_metrics_are_refused(cfg, bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cfg.record(bad)


def test_corrupt_reference_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest, "RESULTS_DIR", tmp_path)
    path = results.result_path(tmp_path, manifest.get_unit(1), "x", "full")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON.*dlfund run 1 --record"):
        results.load(1, "x", "full")


# --- which recorded results are current (dlfund run --skip-current) ---------------------------------


def _git(root, *args):
    import subprocess

    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository holding one notebook file, committed, and a results folder beside it."""
    import shutil

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    (root / "units").mkdir(parents=True)
    notebook = root / "units" / "nb.ipynb"
    notebook.write_text("{}\n")
    _git(root, "init", "-q")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "nb")
    monkeypatch.setattr(manifest, "ROOT", root)
    monkeypatch.setattr(manifest, "RESULTS_DIR", root / "book" / "results")
    unit = manifest.get_unit(1)

    def write(**prov):
        payload = {
            "unit": 1,
            "notebook": "nb",
            "metrics": {"acc": 0.9},
            "settings": clean_metric(dataclasses.asdict(unit.tier_settings("full")), "settings"),
            "provenance": {
                "device_type": "cuda",
                "commit": _git(root, "rev-parse", "--short=12", "HEAD"),
                "wall_s": 12.5,
                **prov,
            },
        }
        path = results.result_path(manifest.RESULTS_DIR, unit, "nb", "full")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload))
        return payload

    return unit, notebook, write


def test_a_result_is_current_only_for_its_device_commit_file_and_settings(repo, monkeypatch):
    unit, notebook, write = repo
    reason = lambda device="cuda": results.stale_reason(unit, "nb", notebook, "full", device)
    assert reason() == "no recorded result"
    write()
    assert reason() is None
    assert "recorded on 'cuda', this run uses 'cpu'" in reason("cpu")
    write(commit="abc+dirty")
    assert "not a clean commit" in reason()
    write(commit="0123456789ab")  # a commit this repository does not have
    assert "changed since 0123456789ab" in reason()
    write()
    notebook.write_text('{"cells": []}\n')  # edited after the recording
    assert reason() == "nb.ipynb changed since " + _git(notebook.parent, "rev-parse", "--short=12", "HEAD")
    notebook.write_text("{}\n")
    assert reason() is None
    changed = {**unit.settings, "full": dataclasses.replace(unit.tier_settings("full"), epochs=1)}
    monkeypatch.setattr(manifest.Unit, "tier_settings", lambda self, tier: changed[tier])  # Unit is frozen
    assert "settings changed" in reason()


def test_run_unit_skips_current_notebooks_and_runs_the_rest(repo, monkeypatch):
    from dlfund.course import runner

    unit, notebook, write = repo
    items = runner.unit_notebooks(unit)
    current = items[0][0]
    monkeypatch.setattr(
        runner, "stale_reason", lambda u, name, path, tier, device: None if name == current else "no recorded result"
    )
    monkeypatch.setattr(
        runner,
        "load",
        lambda u, name, tier: {"metrics": {"acc": 0.9}, "provenance": {"wall_s": 12.5, "commit": "c0ffee"}},
    )
    executed = []

    def fake_execute(path, out, **kwargs):
        executed.append(path.stem)
        if path.stem == items[1][0]:
            raise RuntimeError("boom")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(nbformat.writes(nbformat.v4.new_notebook()), encoding="utf-8")  # an executed copy

    monkeypatch.setattr(runner, "execute", fake_execute)
    monkeypatch.setattr(runner, "WarmKernel", lambda cwd, env: None)  # nothing runs: no kernels to warm
    monkeypatch.setattr(manifest, "RUNS_DIR", notebook.parent.parent / "runs")
    runs = runner.run_unit(unit, "full", skip_current="cuda")
    assert executed == [name for name, _, _ in items[1:]], "the current notebook is not executed again"
    assert [r.status for r in runs] == ["current", "FAILED"] + ["ok"] * (len(items) - 2)
    assert runs[0].metrics == {"acc": 0.9} and runs[0].wall_s == 12.5
    text = runner.summary(runs, "full")
    assert "1 notebook(s) skipped" in text and f"{len(items) - 2}/{len(items) - 1} notebooks ran" in text
    course_text = runner.course_summary([runs], "full")
    assert f"failed: {items[1][0]}" in course_text and unit.dirname in course_text


def test_a_copy_without_git_reports_the_bundled_commit(tmp_path, monkeypatch):
    monkeypatch.delenv("DLFUND_COMMIT", raising=False)
    assert git_commit(tmp_path) == "unknown"  # not a git repository
    monkeypatch.setenv("DLFUND_COMMIT", "0123456789ab")
    assert git_commit(tmp_path) == "0123456789ab"


def test_a_recording_run_does_not_mark_its_own_results_dirty(tmp_path):
    """The results a run writes are tracked files: they must not make the results recorded after them
    '+dirty' (and so never current); any other change to a tracked file does."""
    assert manifest.RESULTS_DIR == manifest.ROOT / RECORDED
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    (tmp_path / RECORDED).mkdir(parents=True)
    (tmp_path / RECORDED / "r.json").write_text("{}")
    (tmp_path / "lesson.py").write_text("x = 1\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    clean = git_commit(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{12}", clean)
    (tmp_path / RECORDED / "r.json").write_text('{"a": 1}')
    assert git_commit(tmp_path) == clean, "a changed result alone leaves the tree clean"
    (tmp_path / "lesson.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == clean + "+dirty"
